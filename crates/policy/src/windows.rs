//! Weekly time windows in an IANA time zone (the `time_window` kind and the client's
//! `outside_windows`): the zone comes from the bundled tzdb, so every node and every replay
//! agrees whatever the host's zone files say.

use alter_core::time::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::limits::MAX_WINDOWS;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One window as written: days, start and end (`HH:MM`, end may be `24:00`; an end before the
/// start runs overnight into the next day).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// `mon` … `sun`, unique.
    pub days: Vec<String>,
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM` or `24:00`.
    pub end: String,
}

/// Windows compiled for evaluation.
#[derive(Debug, Clone)]
pub struct Windows {
    tz: TimeZone,
    /// (day bitmask, start minute, end minute).
    windows: Vec<(u8, u16, u16)>,
}

fn minutes(text: &str, allow_24: bool) -> Result<u16, String> {
    let bad = || format!("time {text:?} must be HH:MM");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if allow_24 && h == 24 && m == 0 {
        return Ok(1440);
    }
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The bundled zone named exactly `name`, and its canonical name.
pub fn zone(name: &str) -> Result<(TimeZone, String), String> {
    let tz = TimeZone::get(name).map_err(|_| format!("unknown time zone {name:?}"))?;
    let canonical = tz.iana_name().unwrap_or(name).to_owned();
    if !canonical.eq_ignore_ascii_case(name) {
        return Err(format!("unknown time zone {name:?}"));
    }
    Ok((tz, canonical))
}

impl Windows {
    /// Compiles `specs` in zone `timezone`; returns them with the normalised specs and zone name.
    pub fn compile(
        timezone: &str,
        specs: &[WindowSpec],
    ) -> Result<(Windows, String, Vec<WindowSpec>), String> {
        let (tz, canonical) = zone(timezone)?;
        if specs.is_empty() || specs.len() > MAX_WINDOWS {
            return Err(format!("between 1 and {MAX_WINDOWS} windows are needed"));
        }
        let mut windows = Vec::with_capacity(specs.len());
        let mut normal = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut mask = 0u8;
            let mut days = Vec::new();
            for day in &spec.days {
                let lower = day.to_ascii_lowercase();
                let index = DAYS
                    .iter()
                    .position(|d| *d == lower)
                    .ok_or_else(|| format!("day {day:?} must be one of mon … sun"))?;
                if mask & (1 << index) != 0 {
                    return Err(format!("day {day:?} is listed twice"));
                }
                mask |= 1 << index;
                days.push(lower);
            }
            if mask == 0 {
                return Err("a window needs at least one day".into());
            }
            let start = minutes(&spec.start, false)?;
            let end = minutes(&spec.end, true)?;
            if start == end {
                return Err(format!(
                    "window {}–{} is empty (start equals end)",
                    spec.start, spec.end
                ));
            }
            windows.push((mask, start, end));
            normal.push(WindowSpec {
                days,
                start: spec.start.clone(),
                end: spec.end.clone(),
            });
        }
        Ok((Windows { tz, windows }, canonical, normal))
    }

    /// Whether `at` falls inside any window.
    pub fn contains(&self, at: Timestamp) -> bool {
        let Ok(ts) = jiff::Timestamp::from_microsecond(at.micros()) else {
            return false;
        };
        let local = self.tz.to_datetime(ts);
        let day = local.weekday().to_monday_zero_offset();
        let yesterday = (day + 6) % 7;
        let minute = (local.hour() as u16) * 60 + local.minute() as u16;
        self.windows.iter().any(|&(mask, start, end)| {
            let on = |d: i8| mask & (1 << d) != 0;
            if start < end {
                on(day) && minute >= start && minute < end
            } else {
                (on(day) && minute >= start) || (on(yesterday) && minute < end)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(days: &[&str], start: &str, end: &str) -> WindowSpec {
        WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            start: start.into(),
            end: end.into(),
        }
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn business_hours_in_a_zone() {
        let (w, name, _) =
            Windows::compile("europe/paris", &[spec(&["mon", "FRI"], "09:00", "17:00")]).unwrap();
        assert_eq!(name, "Europe/Paris");
        // Monday 2026-12-07 08:30 UTC is 09:30 in Paris.
        assert!(w.contains(at("2026-12-07T08:30:00Z")));
        assert!(!w.contains(at("2026-12-07T07:59:00Z")));
        assert!(!w.contains(at("2026-12-07T16:00:00Z"))); // 17:00 local: end is exclusive
        assert!(!w.contains(at("2026-12-08T10:00:00Z"))); // Tuesday
    }

    #[test]
    fn overnight_and_midnight_end() {
        let (w, _, _) = Windows::compile("UTC", &[spec(&["fri"], "22:00", "02:00")]).unwrap();
        assert!(w.contains(at("2026-12-11T23:00:00Z"))); // Friday 23:00
        assert!(w.contains(at("2026-12-12T01:59:00Z"))); // Saturday 01:59
        assert!(!w.contains(at("2026-12-12T02:00:00Z")));
        assert!(!w.contains(at("2026-12-10T23:00:00Z"))); // Thursday
        let (w, _, _) = Windows::compile("UTC", &[spec(&["sun"], "20:00", "24:00")]).unwrap();
        assert!(w.contains(at("2026-12-13T23:59:00Z")));
        assert!(!w.contains(at("2026-12-14T00:00:00Z")));
    }

    #[test]
    fn bad_windows_are_refused() {
        for (tz, s) in [
            ("Mars/Olympus", spec(&["mon"], "09:00", "17:00")),
            ("UTC", spec(&["mon", "mon"], "09:00", "17:00")),
            ("UTC", spec(&["funday"], "09:00", "17:00")),
            ("UTC", spec(&[], "09:00", "17:00")),
            ("UTC", spec(&["mon"], "09:00", "09:00")),
            ("UTC", spec(&["mon"], "24:00", "09:00")),
            ("UTC", spec(&["mon"], "9:00", "17:00")),
            ("UTC", spec(&["mon"], "09:60", "17:00")),
        ] {
            assert!(Windows::compile(tz, &[s]).is_err(), "{tz}");
        }
        assert!(Windows::compile("UTC", &[]).is_err());
    }
}
