//! Value types of iCalendar properties (RFC 5545 §3.3): dates, date-times,
//! durations, periods, text, recurrence rules.

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use std::fmt::{self, Write as _};

mod rrule;
pub use rrule::{Frequency, RecurrenceRule, RuleError, Until, WeekdayNum, weekday_str};

/// A duration as iCalendar writes it. Weeks and days are nominal (a day is
/// the same wall-clock time the next day, 23 or 25 hours across DST); the
/// seconds part is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IcalDuration {
    /// Negative durations (`-PT15M`), used by alarms.
    pub negative: bool,
    /// Nominal weeks.
    pub weeks: u32,
    /// Nominal days.
    pub days: u32,
    /// Exact seconds (hours, minutes and seconds together).
    pub seconds: u64,
}

impl IcalDuration {
    /// Nominal days in total (weeks × 7 + days), signed.
    pub fn nominal_days(&self) -> i64 {
        let days = i64::from(self.weeks) * 7 + i64::from(self.days);
        if self.negative { -days } else { days }
    }

    /// Exact part, signed. Saturates at chrono's limits (about 292 million
    /// years); see [`IcalDuration::checked_exact`].
    pub fn exact(&self) -> Duration {
        self.checked_exact().unwrap_or(if self.negative {
            Duration::MIN
        } else {
            Duration::MAX
        })
    }

    /// Exact part, signed; `None` when chrono cannot hold it.
    pub fn checked_exact(&self) -> Option<Duration> {
        let seconds = i64::try_from(self.seconds).ok()?;
        Duration::try_seconds(if self.negative { -seconds } else { seconds })
    }

    /// Nominal days as a chrono duration; `None` when chrono cannot hold it.
    pub fn checked_nominal(&self) -> Option<Duration> {
        Duration::try_days(self.nominal_days())
    }

    /// A duration of exact seconds (`PTnS` written in the largest units).
    pub fn from_exact(span: Duration) -> Self {
        let seconds = span.num_seconds();
        Self {
            negative: seconds < 0,
            weeks: 0,
            days: 0,
            seconds: seconds.unsigned_abs(),
        }
    }
}

impl fmt::Display for IcalDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_char('-')?;
        }
        f.write_char('P')?;
        if self.weeks > 0 && self.days == 0 && self.seconds == 0 {
            return write!(f, "{}W", self.weeks);
        }
        let days = u64::from(self.weeks) * 7 + u64::from(self.days);
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if self.seconds > 0 || days == 0 {
            f.write_char('T')?;
            let (h, m, s) = (
                self.seconds / 3600,
                (self.seconds % 3600) / 60,
                self.seconds % 60,
            );
            if h > 0 {
                write!(f, "{h}H")?;
            }
            if m > 0 {
                write!(f, "{m}M")?;
            }
            if s > 0 || (h == 0 && m == 0) {
                write!(f, "{s}S")?;
            }
        }
        Ok(())
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 9 {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u32::from(byte - b'0'))
    })
}

/// Parses `YYYYMMDD` (also tolerates `YYYY-MM-DD`).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.trim().as_bytes();
    let (year, month, day) = match bytes.len() {
        8 => (&bytes[..4], &bytes[4..6], &bytes[6..]),
        10 if bytes[4] == b'-' && bytes[7] == b'-' => (&bytes[..4], &bytes[5..7], &bytes[8..]),
        _ => return None,
    };
    let year = i32::try_from(digits(year)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(month)?, digits(day)?)
}

/// Parses `YYYYMMDDTHHMMSS[Z]`; returns the wall-clock time and whether it
/// was UTC. Tolerates a missing seconds field and lower-case `t`/`z`.
pub fn parse_date_time(text: &str) -> Option<(NaiveDateTime, bool)> {
    let text = text.trim();
    let (body, utc) = match text.strip_suffix(['Z', 'z']) {
        Some(body) => (body, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(['T', 't'])?;
    let date = parse_date(date)?;
    let bytes = time.as_bytes();
    let (hour, minute, second) = match bytes.len() {
        6 => (&bytes[..2], &bytes[2..4], &bytes[4..]),
        4 => (&bytes[..2], &bytes[2..4], &b"00"[..]),
        8 if bytes[2] == b':' && bytes[5] == b':' => (&bytes[..2], &bytes[3..5], &bytes[6..]),
        _ => return None,
    };
    // A leap second (60) is read as the last second of the minute.
    let time = NaiveTime::from_hms_opt(digits(hour)?, digits(minute)?, digits(second)?.min(59))?;
    Some((date.and_time(time), utc))
}

/// Parses a duration (`P1W`, `-PT15M`, `P1DT2H`).
pub fn parse_duration(text: &str) -> Option<IcalDuration> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let mut duration = IcalDuration {
        negative,
        ..IcalDuration::default()
    };
    let mut number = String::new();
    let mut in_time = false;
    let mut any = false;
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => number.push(c),
            'T' if number.is_empty() => in_time = true,
            unit => {
                let value: u64 = number.parse().ok()?;
                number.clear();
                any = true;
                let value = match (unit, in_time) {
                    ('W', false) => {
                        duration.weeks = u32::try_from(value).ok()?;
                        0
                    }
                    ('D', false) => {
                        duration.days = u32::try_from(value).ok()?;
                        0
                    }
                    ('H', true) => value.checked_mul(3600)?,
                    ('M', true) => value.checked_mul(60)?,
                    ('S', true) => value,
                    _ => return None,
                };
                if in_time {
                    duration.seconds = duration.seconds.checked_add(value)?;
                }
            }
        }
    }
    (any && number.is_empty()).then_some(duration)
}

/// Undoes TEXT escaping (`\n`, `\,`, `\;`, `\\`).
pub fn unescape_text(text: &str) -> String {
    // A bare CR is no character of TEXT (line breaks are written `\n`);
    // it is dropped, as the writer drops it, so a value reads back the same.
    if !text.contains(['\\', '\r']) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some('\r') => {}
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Splits a TEXT list on unescaped commas and unescapes each part.
pub fn split_text_list(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => parts.push(unescape_text(&std::mem::take(&mut current))),
            _ => current.push(c),
        }
    }
    parts.push(unescape_text(&current));
    parts
}

/// Applies TEXT escaping.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in [
            "PT1H",
            "-PT15M",
            "P1D",
            "P1DT2H30M",
            "P2W",
            "PT0S",
            "PT1H0M5S",
        ] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&parsed.to_string()), Some(parsed), "{text}");
        }
        assert_eq!(parse_duration("P1DT2H").unwrap().seconds, 7200);
        assert_eq!(parse_duration("garbage"), None);
        assert_eq!(parse_duration("PT"), None);
    }

    #[test]
    fn text_escapes_round_trip() {
        let text = "a, b; c\\d\nline";
        assert_eq!(unescape_text(&escape_text(text)), text);
        assert_eq!(split_text_list("a\\,b,c"), vec!["a,b", "c"]);
    }
}
