//! Time-zone identifiers as producers write them, resolved to IANA zones.
//!
//! Resolution order for a `TZID`: an IANA name; a Windows name through the
//! CLDR `windowsZones` table (with the variants Exchange and Webex emit, such
//! as `W. Europe Standard Time 1` or `Pacific Time`); the file's own
//! `VTIMEZONE` (its `X-LIC-LOCATION` or `X-MICROSOFT-CDO-TZID`); calcard's
//! heuristics (libical prefixes such as `/freeassociation.sourceforge.net/`,
//! `GMT+0100` style names).

use chrono_tz::Tz;
use std::str::FromStr;
use std::sync::Arc;
use windows_timezones::WindowsTimezone;

/// A zone as written in a `TZID` parameter, with the IANA zone it means.
///
/// The text is kept so that writing the event back names the same
/// `VTIMEZONE` the producer wrote; all arithmetic uses `tz`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Zone {
    tzid: Arc<str>,
    tz: Tz,
}

impl Zone {
    /// A zone written as its IANA name.
    pub fn iana(tz: Tz) -> Self {
        Self {
            tzid: Arc::from(tz.name()),
            tz,
        }
    }

    /// A zone written as `tzid` that resolved to `tz`.
    pub fn new(tzid: impl Into<Arc<str>>, tz: Tz) -> Self {
        Self {
            tzid: tzid.into(),
            tz,
        }
    }

    /// The `TZID` as the producer wrote it.
    pub fn tzid(&self) -> &str {
        &self.tzid
    }

    /// The IANA zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }
}

/// Maps a zone name (IANA or Windows, including common producer variants) to
/// an IANA zone without consulting any `VTIMEZONE`.
pub fn resolve_zone_name(raw: &str) -> Option<Tz> {
    let name = raw.trim().trim_matches('"').trim();
    if name.is_empty() {
        return None;
    }
    if let Ok(tz) = Tz::from_str(name) {
        return Some(tz);
    }
    if let Some(tz) = resolve_windows(name) {
        return Some(tz);
    }
    // libical and Mozilla prefix IANA names with a vendor path.
    if let Some(idx) = find_iana_suffix(name)
        && let Ok(tz) = Tz::from_str(&name[idx..])
    {
        return Some(tz);
    }
    match calcard::common::timezone::Tz::from_str(name) {
        Ok(calcard::common::timezone::Tz::Tz(tz)) => Some(tz),
        Ok(calcard::common::timezone::Tz::Fixed(offset)) => fixed_offset_zone(offset),
        _ => None,
    }
}

/// The `Etc/GMT±N` zone for a whole-hour fixed offset.
pub fn fixed_offset_zone(offset: chrono::FixedOffset) -> Option<Tz> {
    let seconds = offset.local_minus_utc();
    if seconds == 0 {
        return Some(Tz::UTC);
    }
    if seconds % 3600 != 0 {
        return None;
    }
    // POSIX-style names invert the sign: UTC+2 is Etc/GMT-2.
    let hours = -seconds / 3600;
    Tz::from_str(&format!("Etc/GMT{hours:+}")).ok()
}

fn resolve_windows(name: &str) -> Option<Tz> {
    if let Ok(zone) = WindowsTimezone::from_str(name) {
        return Some(zone.into());
    }
    // Exchange appends " 1", " 2" to duplicated zone definitions.
    let trimmed = name
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end();
    if trimmed != name
        && let Ok(zone) = WindowsTimezone::from_str(trimmed)
    {
        return Some(zone.into());
    }
    // Known misspellings and short forms seen in the wild.
    let alias = match trimmed {
        "Central European Time" => "Central European Standard Time",
        "Central Europe Time" => "Central Europe Standard Time",
        "Pacific Time" => "Pacific Standard Time",
        "Eastern Time" => "Eastern Standard Time",
        "Central Time" => "Central Standard Time",
        "Mountain Time" => "Mountain Standard Time",
        _ => {
            if let Some(stem) = trimmed.strip_suffix(" Time") {
                return WindowsTimezone::from_str(&format!("{stem} Standard Time"))
                    .ok()
                    .map(Into::into);
            }
            return None;
        }
    };
    WindowsTimezone::from_str(alias).ok().map(Into::into)
}

/// Finds where an IANA-looking `Area/Location` suffix starts in a prefixed name
/// such as `/freeassociation.sourceforge.net/Tzfile/Europe/London`.
fn find_iana_suffix(name: &str) -> Option<usize> {
    const AREAS: [&str; 10] = [
        "Africa/",
        "America/",
        "Antarctica/",
        "Asia/",
        "Atlantic/",
        "Australia/",
        "Europe/",
        "Indian/",
        "Pacific/",
        "Etc/",
    ];
    AREAS.iter().filter_map(|area| name.find(area)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_iana_windows_and_variants() {
        let cases = [
            ("Europe/Berlin", "Europe/Berlin"),
            ("\"America/New_York\"", "America/New_York"),
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("W. Europe Standard Time 1", "Europe/Berlin"),
            ("Eastern Standard Time 1", "America/New_York"),
            ("Central Europe Standard Time", "Europe/Budapest"),
            ("Central European Standard Time", "Europe/Warsaw"),
            ("Pacific Standard Time", "America/Los_Angeles"),
            ("Pacific Time", "America/Los_Angeles"),
            (
                "/freeassociation.sourceforge.net/Tzfile/Europe/London",
                "Europe/London",
            ),
            ("/mozilla.org/20050126_1/America/Chicago", "America/Chicago"),
            ("UTC", "UTC"),
        ];
        for (raw, want) in cases {
            let got = resolve_zone_name(raw).map(|tz| tz.name());
            assert_eq!(got, Some(want), "{raw}");
        }
        assert_eq!(resolve_zone_name("Not A Zone"), None);
    }
}
