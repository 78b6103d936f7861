//! Time as the domain sees it: microsecond timestamps and an injected [`Clock`], so tests move
//! time instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::ports::Clock;

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// From whole seconds since the epoch.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant moved by `seconds` (saturating).
    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// Whole seconds from `self` until `later` (negative if `later` is earlier).
    pub const fn seconds_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(1_000_000)
    }

    /// Parses an RFC 3339 / ISO-8601 date-time with an offset (`Z` or `±HH:MM`).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = dt.unix_timestamp_nanos().div_euclid(1_000);
        i64::try_from(micros).ok().map(Timestamp)
    }

    /// RFC 3339 in UTC with microseconds and `Z`, e.g. `2026-11-25T07:19:11.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let dt = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.microsecond()
        )
    }

    /// `YYYYMMDD-HHMMSS`, for default names.
    pub fn compact(self) -> String {
        let dt = self.to_datetime();
        format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    }

    /// The date-time, clamped to the years 0001–9999 that RFC 3339 can write.
    fn to_datetime(self) -> OffsetDateTime {
        let limit = if self.0 < 0 {
            time::macros::datetime!(0001-01-01 0:00 UTC)
        } else {
            time::macros::datetime!(9999-12-31 23:59:59.999_999 UTC)
        };
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(limit)
            .to_offset(UtcOffset::UTC)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 date-time"))
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
        Timestamp(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Starts at the given instant.
    pub fn starting_at(at: Timestamp) -> Self {
        ManualClock(AtomicI64::new(at.micros()))
    }

    /// Moves time forward (or back, with a negative value).
    pub fn advance_seconds(&self, seconds: i64) {
        self.0
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }

    /// Jumps to an instant.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::from_micros(1_700_000_000_123_456);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T23:13:20.123456+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("2023-11-14"), None);
        assert_eq!(t.compact(), "20231114-221320");
        assert_eq!(
            Timestamp::from_micros(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59.999999Z",
            "beyond what RFC 3339 can write, times clamp instead of wrapping"
        );
    }

    #[test]
    fn arithmetic() {
        let t = Timestamp::from_unix_seconds(100);
        assert_eq!(t.plus_seconds(5).unix_seconds(), 105);
        assert_eq!(t.seconds_until(t.plus_seconds(-3)), -3);
        let clock = ManualClock::starting_at(t);
        clock.advance_seconds(10);
        assert_eq!(clock.now().unix_seconds(), 110);
    }
}
