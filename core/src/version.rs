//! [`Version`]: the 64-bit version every write gets.

use core::fmt;

/// A write's version: a hybrid-logical-clock timestamp in microseconds since the Unix epoch.
///
/// Versions are strictly increasing across a whole database and across restarts, so a version
/// is both a unique write id and (approximately) the wall-clock time of the write.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u64);

impl Version {
    /// The smallest version. No write is ever given it; it reads as "before everything".
    pub const ZERO: Version = Version(0);
    /// The largest version: a read at `Version::MAX` sees the latest value.
    pub const MAX: Version = Version(u64::MAX);

    /// Wraps a raw version.
    #[must_use]
    pub const fn new(raw: u64) -> Version {
        Version(raw)
    }

    /// The raw version.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version whose wall-clock time is `time` (microseconds since the Unix epoch;
    /// times before the epoch map to [`Version::ZERO`], times past year 586,000 saturate).
    #[cfg(feature = "std")]
    #[must_use]
    pub fn from_system_time(time: std::time::SystemTime) -> Version {
        let micros = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        Version(micros)
    }

    /// The wall-clock time this version stands for.
    #[cfg(feature = "std")]
    #[must_use]
    pub fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(self.0)
    }
}

impl From<u64> for Version {
    fn from(raw: u64) -> Version {
        Version(raw)
    }
}

impl From<Version> for u64 {
    fn from(version: Version) -> u64 {
        version.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
