//! Versions as times: a version is microseconds since the Unix epoch, printed both raw and
//! as an RFC 3339 UTC timestamp, and parsed from a raw version, an absolute time or a time
//! relative to now, as `jiff` reads them.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ZonedDateTime};
use zverse::Version;

/// The version as an RFC 3339 UTC timestamp with microseconds, or `None` past year 9999.
pub fn rfc3339(version: Version) -> Option<String> {
    let micros = i64::try_from(version.get()).ok()?;
    let time = Timestamp::from_microsecond(micros).ok()?;
    Some(format!("{time:.6}"))
}

/// `VERSION (TIME)`, the way every command prints a version.
pub fn display(version: Version) -> String {
    match rfc3339(version) {
        Some(time) => format!("{} ({time})", version.get()),
        None => version.get().to_string(),
    }
}

/// Parses TIME: a raw version (digits); `now`; `yesterday` (now minus one day); an RFC 3339
/// time with any offset (`2026-11-22T03:10:00Z`, `2026-11-22T04:10:00+01:00`, what `date
/// -Iseconds` prints; fractions up to nanoseconds); a date and time without an offset, taken
/// as UTC (`2026-11-22 03:10:00`, `2026-11-22`); or a span relative to now in the local time
/// zone (`1h ago`, `2 days ago`, `90 minutes ago`, `-1h`).
pub fn parse(text: &str) -> Result<Version, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Version::new)
            .map_err(|_| format!("version {text} is larger than {}", u64::MAX));
    }
    let time = match text {
        "now" => Ok(Timestamp::now()),
        "yesterday" => relative(Span::new().days(-1)),
        _ => {
            absolute(text).or_else(|| text.parse::<Span>().ok().map(relative)).ok_or_else(|| {
                format!(
                    "bad time {text:?}: give a version number, `now`, `yesterday`, an RFC 3339 \
                     time (2026-11-22T03:10:00Z, or with an offset as `date -Iseconds` prints \
                     it), or a relative time like `1h ago` or `2 days ago`"
                )
            })?
        }
    }?;
    let micros = time.as_microsecond();
    u64::try_from(micros)
        .map(Version::new)
        .map_err(|_| format!("time {text:?} is before 1970, where versions start"))
}

/// An RFC 3339 time with an offset, or a civil date and time read as UTC.
fn absolute(text: &str) -> Option<Result<Timestamp, String>> {
    if let Ok(time) = text.parse::<Timestamp>() {
        return Some(Ok(time));
    }
    let civil = text.parse::<DateTime>().ok()?;
    Some(
        civil
            .to_zoned_datetime(TimeZone::UTC)
            .map(|zoned| zoned.timestamp())
            .map_err(|e| e.to_string()),
    )
}

/// Now plus `span` (negative for `ago`), in the local time zone so that days are calendar days.
fn relative(span: Span) -> Result<Timestamp, String> {
    ZonedDateTime::now()
        .checked_add(span)
        .map(|zoned| zoned.timestamp())
        .map_err(|error| format!("{span} from now is out of range: {error}"))
}

#[cfg(test)]
mod tests {
    use super::{display, parse};
    use zverse::Version;

    const SECOND_MICROS: u64 = 1_000_000;

    fn now_micros() -> u64 {
        Version::from_system_time(std::time::SystemTime::now()).get()
    }

    #[test]
    fn parses_versions_and_absolute_times() {
        assert_eq!(parse("42").unwrap(), Version::new(42));
        assert_eq!(parse("1970-01-01T00:00:01Z").unwrap(), Version::new(1_000_000));
        assert_eq!(parse("1970-01-01T01:00:01+01:00").unwrap(), Version::new(1_000_000));
        assert_eq!(parse("1970-01-01 00:00:00.000002").unwrap(), Version::new(2));
        assert_eq!(parse("1970-01-02").unwrap(), Version::new(86_400 * SECOND_MICROS));
        assert_eq!(
            parse("2026-12-07T12:45:25+00:00").unwrap(),
            parse("2026-12-07T13:45:25+01:00").unwrap(),
            "date -Iseconds output, any offset"
        );
        assert!(parse("1969-12-31T23:59:59Z").unwrap_err().contains("before 1970"));
        assert!(parse("99999999999999999999").is_err());
        assert!(parse("tomorrowish").unwrap_err().contains("bad time"));
        assert_eq!(display(Version::new(1)), "1 (1970-01-01T00:00:00.000001Z)");
        assert_eq!(display(Version::new(2_000_000)), "2000000 (1970-01-01T00:00:02.000000Z)");
        assert_eq!(display(Version::MAX), u64::MAX.to_string());
    }

    #[test]
    fn parses_times_relative_to_now() {
        let hour_micros = 3_600 * SECOND_MICROS;
        for (text, ago_micros) in [
            ("1h ago", hour_micros),
            ("90 minutes ago", hour_micros * 3 / 2),
            ("-1h", hour_micros),
            ("2 days ago", 48 * hour_micros),
            ("yesterday", 24 * hour_micros),
        ] {
            let before = now_micros();
            let parsed = parse(text).unwrap().get();
            let after = now_micros();
            // A day is a calendar day: 23 to 25 hours across a DST change.
            let slack = if ago_micros >= 24 * hour_micros { hour_micros } else { 0 };
            assert!(parsed + ago_micros + slack >= before, "{text}");
            assert!(parsed + ago_micros <= after + slack, "{text}");
        }
        let now = parse("now").unwrap().get();
        assert!(now.abs_diff(now_micros()) < 60 * SECOND_MICROS);
    }
}
