//! Content hashes: equal when two copies of an event mean the same to a user.
//!
//! The hash covers, for the master and every override (in `RECURRENCE-ID`
//! order), these fields after normalization:
//!
//! | field | normalization |
//! |---|---|
//! | `RECURRENCE-ID` | instant (UTC) for zoned and UTC times; wall time for floating; date for all-day; plus `THISANDFUTURE` |
//! | start, end | end = `DTEND`, else start + `DURATION`, else the RFC 5545 default. Non-recurring timed events: instants in UTC (so `Z`, `+00:00`, a `TZID` and its Windows name hash equal when they denote the same instant). Recurring series: wall time plus the IANA zone, which decides expansion. Floating: wall time. All-day: dates |
//! | summary, location | trimmed; empty = absent |
//! | description | line ends as `\n`, trimmed; empty = absent |
//! | status | absent = `CONFIRMED` |
//! | transparency | absent = `OPAQUE` |
//! | class | absent = `PUBLIC`; `CONFIDENTIAL` stays distinct |
//! | categories | trimmed, case-folded, sorted, deduplicated |
//! | organizer | e-mail (no `mailto:`, lower-case) |
//! | attendees | e-mail and participation status (absent = `NEEDS-ACTION`), sorted |
//! | `RRULE` | parts in a fixed order, `BY*` lists sorted, `INTERVAL=1` = absent, `WKST=MO` = absent, `UNTIL` as an instant |
//! | `RDATE`, `EXDATE` | as instants (floating: wall time; dates: dates), sorted, deduplicated |
//!
//! Not in the hash: `UID` (items are compared under one UID already),
//! `DTSTAMP`, `LAST-MODIFIED`, `CREATED`, `SEQUENCE`, alarms (they are
//! per-user reminders that providers rewrite), `X-` properties (provider
//! bookkeeping, including calmesh's own tags), other parameters (`CN`,
//! `ROLE`, `LANGUAGE`, ...), property order, folding, parameter case.

use crate::event::{Class, Event, Item, PartStat, RDate, Status, Transparency};
use crate::ical::value::{RecurrenceRule, Until, weekday_str};
use crate::time::EventTime;
use chrono::Weekday;
use sha2::{Digest, Sha256};
use std::fmt;

/// A 128-bit content hash, printed as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 16]);

impl ContentHash {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The hash of a whole item (master and overrides).
pub fn item_hash(item: &Item) -> ContentHash {
    let mut canon = Canonical::default();
    if let Some(master) = &item.master {
        canon.event(master);
    }
    let mut overrides: Vec<(String, &Event)> = item
        .overrides
        .iter()
        .map(|over| {
            let key = over
                .recurrence_id
                .as_ref()
                .map(|rid| time_text(&rid.time, false))
                .unwrap_or_default();
            (key, over)
        })
        .collect();
    overrides.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, over) in overrides {
        canon.text.push_str("\u{1e}override\n");
        canon.event(over);
    }
    canon.finish()
}

/// The hash of one event (master, single event or override) on its own.
pub fn event_hash(event: &Event) -> ContentHash {
    let mut canon = Canonical::default();
    canon.event(event);
    canon.finish()
}

/// A time as the hash sees it. `keep_zone` keeps wall time + IANA zone
/// (for series, whose zone decides expansion); otherwise zoned times are
/// reduced to their instant.
fn time_text(time: &EventTime, keep_zone: bool) -> String {
    match time {
        EventTime::Date(date) => format!("D{}", date.format("%Y%m%d")),
        EventTime::Floating(local) => format!("F{}", local.format("%Y%m%dT%H%M%S")),
        EventTime::Zoned { local, zone } if keep_zone => {
            format!("L{}@{}", local.format("%Y%m%dT%H%M%S"), zone.tz().name())
        }
        other => format!("U{}", other.to_utc(chrono_tz::UTC).format("%Y%m%dT%H%M%SZ")),
    }
}

#[derive(Default)]
struct Canonical {
    text: String,
}

impl Canonical {
    fn field(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        self.text.push('=');
        self.text.push_str(value);
        self.text.push('\n');
    }

    fn opt_text(&mut self, name: &str, value: Option<&str>, multiline: bool) {
        let Some(value) = value else { return };
        let value = if multiline {
            value.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            value.to_string()
        };
        let value = value.trim();
        if !value.is_empty() {
            // Escape the separator so fields cannot run into each other.
            self.field(name, &value.replace('\\', "\\\\").replace('\n', "\\n"));
        }
    }

    fn event(&mut self, event: &Event) {
        let series = event.is_recurring();
        if let Some(rid) = &event.recurrence_id {
            self.field("rid", &time_text(&rid.time, false));
            if rid.this_and_future {
                self.field("range", "THISANDFUTURE");
            }
        }
        self.field("start", &time_text(&event.start, series));
        self.field("end", &time_text(&event.effective_end(), series));
        self.opt_text("summary", event.summary.as_deref(), false);
        self.opt_text("location", event.location.as_deref(), false);
        self.opt_text("description", event.description.as_deref(), true);
        let status = match event.status.as_ref().unwrap_or(&Status::Confirmed) {
            Status::Tentative => "TENTATIVE".to_string(),
            Status::Confirmed => "CONFIRMED".to_string(),
            Status::Cancelled => "CANCELLED".to_string(),
            Status::Other(other) => other.to_ascii_uppercase(),
        };
        self.field("status", &status);
        let transparency = match event.transparency.unwrap_or(Transparency::Opaque) {
            Transparency::Opaque => "OPAQUE",
            Transparency::Transparent => "TRANSPARENT",
        };
        self.field("transp", transparency);
        let class = match event.class.as_ref().unwrap_or(&Class::Public) {
            Class::Public => "PUBLIC".to_string(),
            Class::Private => "PRIVATE".to_string(),
            Class::Confidential => "CONFIDENTIAL".to_string(),
            Class::Other(other) => other.to_ascii_uppercase(),
        };
        self.field("class", &class);
        let mut categories: Vec<String> = event
            .categories
            .iter()
            .map(|category| category.trim().to_lowercase())
            .filter(|category| !category.is_empty())
            .collect();
        categories.sort();
        categories.dedup();
        for category in categories {
            self.field("category", &category);
        }
        if let Some(organizer) = &event.organizer {
            self.field("organizer", &organizer.email());
        }
        let mut attendees: Vec<String> = event
            .attendees
            .iter()
            .map(|attendee| {
                let partstat = match attendee.partstat.as_ref().unwrap_or(&PartStat::NeedsAction) {
                    PartStat::NeedsAction => "NEEDS-ACTION".to_string(),
                    PartStat::Accepted => "ACCEPTED".to_string(),
                    PartStat::Declined => "DECLINED".to_string(),
                    PartStat::Tentative => "TENTATIVE".to_string(),
                    PartStat::Delegated => "DELEGATED".to_string(),
                    PartStat::Other(other) => other.to_ascii_uppercase(),
                };
                format!("{} {partstat}", attendee.email())
            })
            .collect();
        attendees.sort();
        attendees.dedup();
        for attendee in attendees {
            self.field("attendee", &attendee);
        }
        if let Some(rule) = &event.rrule {
            self.field("rrule", &canonical_rule(rule, &event.start));
        }
        let mut rdates: Vec<String> = event
            .rdates
            .iter()
            .map(|rdate| match rdate {
                RDate::Time(time) => time_text(time, false),
                RDate::Period { start, end } => {
                    format!("{}/{}", time_text(start, false), time_text(end, false))
                }
                RDate::PeriodDuration { start, duration } => {
                    let end = crate::event::add_duration(start, duration);
                    format!("{}/{}", time_text(start, false), time_text(&end, false))
                }
            })
            .collect();
        rdates.sort();
        rdates.dedup();
        for rdate in rdates {
            self.field("rdate", &rdate);
        }
        let mut exdates: Vec<String> = event
            .exdates
            .iter()
            .map(|time| time_text(time, false))
            .collect();
        exdates.sort();
        exdates.dedup();
        for exdate in exdates {
            self.field("exdate", &exdate);
        }
    }

    fn finish(self) -> ContentHash {
        let digest = Sha256::digest(self.text.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        ContentHash(bytes)
    }
}

fn canonical_rule(rule: &RecurrenceRule, start: &EventTime) -> String {
    let mut rule = rule.clone();
    if rule.interval == Some(1) {
        rule.interval = None;
    }
    if rule.week_start == Some(Weekday::Mon) {
        rule.week_start = None;
    }
    // UNTIL as an instant, whichever way it was written.
    rule.until = rule.until.map(|until| match (until, start) {
        (Until::Floating(local), EventTime::Zoned { .. }) => {
            Until::Utc(start.with_local(local).to_utc(chrono_tz::UTC).naive_utc())
        }
        (other, _) => other,
    });
    rule.by_second.sort_unstable();
    rule.by_second.dedup();
    rule.by_minute.sort_unstable();
    rule.by_minute.dedup();
    rule.by_hour.sort_unstable();
    rule.by_hour.dedup();
    rule.by_day
        .sort_by_key(|day| (day.ordinal, weekday_str(day.weekday)));
    rule.by_day.dedup();
    rule.by_month_day.sort_unstable();
    rule.by_month_day.dedup();
    rule.by_year_day.sort_unstable();
    rule.by_year_day.dedup();
    rule.by_week_no.sort_unstable();
    rule.by_week_no.dedup();
    rule.by_month.sort_unstable();
    rule.by_month.dedup();
    rule.by_set_pos.sort_unstable();
    rule.by_set_pos.dedup();
    rule.other.sort();
    rule.to_string()
}
