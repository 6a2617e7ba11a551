//! `RRULE` values (RFC 5545 §3.3.10).

use super::{parse_date, parse_date_time};
use chrono::{NaiveDate, NaiveDateTime, Weekday};
use std::fmt::{self, Write as _};

/// Recurrence frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frequency {
    /// `SECONDLY`
    Secondly,
    /// `MINUTELY`
    Minutely,
    /// `HOURLY`
    Hourly,
    /// `DAILY`
    Daily,
    /// `WEEKLY`
    Weekly,
    /// `MONTHLY`
    Monthly,
    /// `YEARLY`
    Yearly,
}

impl Frequency {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "SECONDLY" => Self::Secondly,
            "MINUTELY" => Self::Minutely,
            "HOURLY" => Self::Hourly,
            "DAILY" => Self::Daily,
            "WEEKLY" => Self::Weekly,
            "MONTHLY" => Self::Monthly,
            "YEARLY" => Self::Yearly,
            _ => return None,
        })
    }

    /// The iCalendar name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Secondly => "SECONDLY",
            Self::Minutely => "MINUTELY",
            Self::Hourly => "HOURLY",
            Self::Daily => "DAILY",
            Self::Weekly => "WEEKLY",
            Self::Monthly => "MONTHLY",
            Self::Yearly => "YEARLY",
        }
    }
}

/// A `BYDAY` entry: a weekday with an optional ordinal (`-1FR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeekdayNum {
    /// Ordinal within the month or year; `None` means every such weekday.
    pub ordinal: Option<i16>,
    /// The weekday.
    pub weekday: Weekday,
}

/// The `UNTIL` of a rule: a date, or a date-time that is UTC or floating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Until {
    /// `UNTIL=20250301`
    Date(NaiveDate),
    /// `UNTIL=20250301T100000Z`
    Utc(NaiveDateTime),
    /// `UNTIL=20250301T100000` (with a floating `DTSTART`)
    Floating(NaiveDateTime),
}

/// An `RRULE` value (RFC 5545 §3.3.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecurrenceRule {
    /// `FREQ`
    pub freq: Frequency,
    /// `INTERVAL`, as written (absent means 1).
    pub interval: Option<u32>,
    /// `COUNT`
    pub count: Option<u32>,
    /// `UNTIL`
    pub until: Option<Until>,
    /// `BYSECOND`
    pub by_second: Vec<u8>,
    /// `BYMINUTE`
    pub by_minute: Vec<u8>,
    /// `BYHOUR`
    pub by_hour: Vec<u8>,
    /// `BYDAY`
    pub by_day: Vec<WeekdayNum>,
    /// `BYMONTHDAY`
    pub by_month_day: Vec<i8>,
    /// `BYYEARDAY`
    pub by_year_day: Vec<i16>,
    /// `BYWEEKNO`
    pub by_week_no: Vec<i8>,
    /// `BYMONTH`
    pub by_month: Vec<u8>,
    /// `BYSETPOS`
    pub by_set_pos: Vec<i32>,
    /// `WKST`
    pub week_start: Option<Weekday>,
    /// Parts this model does not interpret (`RSCALE`, `SKIP`, `X-...`), kept.
    pub other: Vec<(String, String)>,
}

/// Why an `RRULE` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RRULE part {part:?}: {reason}")]
pub struct RuleError {
    /// The offending part.
    pub part: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn weekday(text: &str) -> Option<Weekday> {
    Some(match text {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

/// The two-letter iCalendar name of a weekday.
pub fn weekday_str(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}

fn list<T: std::str::FromStr>(
    part: &str,
    value: &str,
    ok: impl Fn(&T) -> bool,
) -> Result<Vec<T>, RuleError> {
    value
        .split(',')
        .map(|item| {
            item.trim()
                .trim_start_matches('+')
                .parse::<T>()
                .ok()
                .filter(|v| ok(v))
                .ok_or_else(|| RuleError {
                    part: part.to_string(),
                    reason: "value out of range",
                })
        })
        .collect()
}

impl RecurrenceRule {
    /// Parses an `RRULE` value such as `FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20250301T000000Z`.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let mut freq = None;
        let mut rule = RecurrenceRule {
            freq: Frequency::Daily,
            interval: None,
            count: None,
            until: None,
            by_second: Vec::new(),
            by_minute: Vec::new(),
            by_hour: Vec::new(),
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_year_day: Vec::new(),
            by_week_no: Vec::new(),
            by_month: Vec::new(),
            by_set_pos: Vec::new(),
            week_start: None,
            other: Vec::new(),
        };
        for part in text
            .trim()
            .split(';')
            .filter(|part| !part.trim().is_empty())
        {
            let Some((name, value)) = part.split_once('=') else {
                return Err(RuleError {
                    part: part.to_string(),
                    reason: "expected NAME=VALUE",
                });
            };
            let name = name.trim().to_ascii_uppercase();
            let upper = value.trim().to_ascii_uppercase();
            let err = |reason| RuleError {
                part: part.to_string(),
                reason,
            };
            match name.as_str() {
                "FREQ" => {
                    freq = Some(Frequency::parse(&upper).ok_or_else(|| err("unknown frequency"))?)
                }
                "INTERVAL" => {
                    rule.interval = Some(
                        upper
                            .parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| err("not a positive integer"))?,
                    )
                }
                "COUNT" => rule.count = Some(upper.parse().map_err(|_| err("not an integer"))?),
                "UNTIL" => {
                    rule.until = Some(if let Some((local, utc)) = parse_date_time(&upper) {
                        if utc {
                            Until::Utc(local)
                        } else {
                            Until::Floating(local)
                        }
                    } else {
                        Until::Date(
                            parse_date(&upper).ok_or_else(|| err("not a date or date-time"))?,
                        )
                    })
                }
                "BYSECOND" => rule.by_second = list(part, &upper, |v: &u8| *v <= 60)?,
                "BYMINUTE" => rule.by_minute = list(part, &upper, |v: &u8| *v <= 59)?,
                "BYHOUR" => rule.by_hour = list(part, &upper, |v: &u8| *v <= 23)?,
                "BYMONTHDAY" => {
                    rule.by_month_day =
                        list(part, &upper, |v: &i8| *v != 0 && (-31..=31).contains(v))?
                }
                "BYYEARDAY" => {
                    rule.by_year_day =
                        list(part, &upper, |v: &i16| *v != 0 && (-366..=366).contains(v))?
                }
                "BYWEEKNO" => {
                    rule.by_week_no =
                        list(part, &upper, |v: &i8| *v != 0 && (-53..=53).contains(v))?
                }
                "BYMONTH" => rule.by_month = list(part, &upper, |v: &u8| (1..=12).contains(v))?,
                "BYSETPOS" => {
                    rule.by_set_pos =
                        list(part, &upper, |v: &i32| *v != 0 && (-366..=366).contains(v))?
                }
                "WKST" => {
                    rule.week_start = Some(weekday(&upper).ok_or_else(|| err("unknown weekday"))?)
                }
                "BYDAY" => {
                    for item in upper.split(',') {
                        let item = item.trim();
                        // The weekday is the last two characters; a
                        // multi-byte character there is no weekday.
                        let (num, day) = item
                            .len()
                            .checked_sub(2)
                            .and_then(|split| item.split_at_checked(split))
                            .ok_or_else(|| err("unknown weekday"))?;
                        let weekday = weekday(day).ok_or_else(|| err("unknown weekday"))?;
                        let ordinal = if num.is_empty() {
                            None
                        } else {
                            Some(
                                num.trim_start_matches('+')
                                    .parse::<i16>()
                                    .ok()
                                    .filter(|n| *n != 0 && (-53..=53).contains(n))
                                    .ok_or_else(|| err("bad weekday ordinal"))?,
                            )
                        };
                        rule.by_day.push(WeekdayNum { ordinal, weekday });
                    }
                }
                _ => rule.other.push((name, value.trim().to_string())),
            }
        }
        rule.freq = freq.ok_or(RuleError {
            part: text.to_string(),
            reason: "FREQ is missing",
        })?;
        Ok(rule)
    }

    /// Whether the rule has an end (`COUNT` or `UNTIL`).
    pub fn is_finite(&self) -> bool {
        self.count.is_some() || self.until.is_some()
    }
}

fn join<T: fmt::Display>(out: &mut String, name: &str, values: &[T]) {
    if values.is_empty() {
        return;
    }
    let _ = write!(out, ";{name}=");
    for (idx, value) in values.iter().enumerate() {
        if idx > 0 {
            out.push(',');
        }
        let _ = write!(out, "{value}");
    }
}

impl fmt::Display for RecurrenceRule {
    /// The rule in a fixed part order: the same rule always prints the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("FREQ={}", self.freq.as_str());
        if let Some(until) = &self.until {
            match until {
                Until::Date(date) => write!(out, ";UNTIL={}", date.format("%Y%m%d"))?,
                Until::Utc(local) => write!(out, ";UNTIL={}Z", local.format("%Y%m%dT%H%M%S"))?,
                Until::Floating(local) => write!(out, ";UNTIL={}", local.format("%Y%m%dT%H%M%S"))?,
            }
        }
        if let Some(count) = self.count {
            write!(out, ";COUNT={count}")?;
        }
        if let Some(interval) = self.interval {
            write!(out, ";INTERVAL={interval}")?;
        }
        join(&mut out, "BYSECOND", &self.by_second);
        join(&mut out, "BYMINUTE", &self.by_minute);
        join(&mut out, "BYHOUR", &self.by_hour);
        let days: Vec<String> = self
            .by_day
            .iter()
            .map(|day| match day.ordinal {
                Some(n) => format!("{n}{}", weekday_str(day.weekday)),
                None => weekday_str(day.weekday).to_string(),
            })
            .collect();
        join(&mut out, "BYDAY", &days);
        join(&mut out, "BYMONTHDAY", &self.by_month_day);
        join(&mut out, "BYYEARDAY", &self.by_year_day);
        join(&mut out, "BYWEEKNO", &self.by_week_no);
        join(&mut out, "BYMONTH", &self.by_month);
        join(&mut out, "BYSETPOS", &self.by_set_pos);
        if let Some(day) = self.week_start {
            write!(out, ";WKST={}", weekday_str(day))?;
        }
        for (name, value) in &self.other {
            write!(out, ";{name}={value}")?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print_canonically() {
        let rule = RecurrenceRule::parse("byday=we,mo;FREQ=WEEKLY;until=20250301T000000Z;X-FOO=1")
            .unwrap();
        assert_eq!(
            rule.to_string(),
            "FREQ=WEEKLY;UNTIL=20250301T000000Z;BYDAY=WE,MO;X-FOO=1"
        );
        let rule = RecurrenceRule::parse("FREQ=MONTHLY;BYDAY=-1FR,+2TU;BYSETPOS=-1").unwrap();
        assert_eq!(rule.by_day[0].ordinal, Some(-1));
        assert_eq!(rule.by_day[1].ordinal, Some(2));
        assert!(RecurrenceRule::parse("BYDAY=MO").is_err());
        assert!(RecurrenceRule::parse("FREQ=WEEKLY;BYDAY=XX").is_err());
        assert!(RecurrenceRule::parse("FREQ=DAILY;INTERVAL=0").is_err());
    }
}
