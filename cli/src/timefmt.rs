//! Versions as times: a version is microseconds since the Unix epoch, printed both raw and
//! as an RFC 3339 UTC timestamp, and parsed from either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zverse::Version;

/// The last microsecond RFC 3339 can spell (9999-12-31T23:59:59.999999Z).
const RFC3339_MICROS_MAX: u64 = 253_402_300_799_999_999;

/// The version as an RFC 3339 UTC timestamp with microseconds, or `None` past year 9999.
pub fn rfc3339(version: Version) -> Option<String> {
    if version.get() > RFC3339_MICROS_MAX {
        return None;
    }
    let time = UNIX_EPOCH + Duration::from_micros(version.get());
    Some(humantime::format_rfc3339_micros(time).to_string())
}

/// `VERSION (TIME)`, the way every command prints a version.
pub fn display(version: Version) -> String {
    match rfc3339(version) {
        Some(time) => format!("{} ({time})", version.get()),
        None => version.get().to_string(),
    }
}

/// Parses TIME: a raw version (digits), `now`, or an RFC 3339 UTC timestamp
/// (`2026-11-22T03:10:00Z`, fractions up to nanoseconds, `T` or a space, `Z` optional).
pub fn parse(text: &str) -> Result<Version, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Version::new)
            .map_err(|_| format!("version {text} is larger than {}", u64::MAX));
    }
    if text == "now" {
        return Ok(Version::from_system_time(SystemTime::now()));
    }
    humantime::parse_rfc3339_weak(text).map(Version::from_system_time).map_err(|error| {
        format!(
            "bad time {text:?} ({error}): give a version number, `now`, or an RFC 3339 UTC time \
             like 2026-11-22T03:10:00Z"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{display, parse};
    use zverse::Version;

    #[test]
    fn parses_versions_and_times() {
        assert_eq!(parse("42").unwrap(), Version::new(42));
        assert_eq!(parse("1970-01-01T00:00:01Z").unwrap(), Version::new(1_000_000));
        assert_eq!(parse("1970-01-01 00:00:00.000002").unwrap(), Version::new(2));
        assert!(parse("yesterday").is_err());
        assert!(parse("99999999999999999999").is_err());
        assert_eq!(display(Version::new(1)), "1 (1970-01-01T00:00:00.000001Z)");
        assert_eq!(display(Version::MAX), u64::MAX.to_string());
    }
}
