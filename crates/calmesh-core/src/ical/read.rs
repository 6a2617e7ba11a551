//! From components to the event model.

use super::lex::{self, Component, Param, Property};
use super::value::{
    self, RecurrenceRule, parse_date, parse_date_time, parse_duration, split_text_list,
    unescape_text,
};
use crate::event::{
    Class, Event, Item, PartStat, Person, RDate, RecurrenceId, Status, Transparency,
};
use crate::ids::ItemId;
use crate::time::EventTime;
use crate::zone::{Zone, resolve_zone_name};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::fmt;

/// A parsed calendar file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Calendar-level properties (`VERSION`, `PRODID`, `X-WR-CALNAME`, ...), as written.
    pub properties: Vec<Property>,
    /// `VTIMEZONE` components, as written.
    pub timezones: Vec<Component>,
    /// Events grouped by UID, in order of first appearance.
    pub items: Vec<Item>,
    /// Components other than `VEVENT` and `VTIMEZONE` (`VTODO`, ...), as written.
    pub other_components: Vec<Component>,
}

/// Something wrong in the input, located by UID and line. The component it
/// names was skipped, or the property it names was kept uninterpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// UID of the component, when it has one.
    pub uid: Option<ItemId>,
    /// Physical line (1-based).
    pub line: u32,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(uid) = &self.uid {
            write!(f, " (UID {uid})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The result of [`parse_calendar`]: what loaded, and what did not.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The calendar.
    pub calendar: Calendar,
    /// Problems found, in file order.
    pub problems: Vec<Problem>,
    /// For each item (same index as `calendar.items`), the line of its first
    /// component, so that later problems (expansion) can say where it is.
    pub item_lines: Vec<u32>,
}

/// Input that cannot be used as a calendar at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No `BEGIN:VCALENDAR` and no calendar component anywhere.
    #[error("not an iCalendar file: no BEGIN:VCALENDAR or BEGIN:VEVENT found")]
    NotICalendar,
}

/// Parses a whole iCalendar file (one or several `VCALENDAR`s).
pub fn parse_calendar(input: &[u8]) -> Result<Parsed, ParseError> {
    let lexed = lex::lex(input);
    if lexed.calendars == 0 && lexed.components.is_empty() {
        return Err(ParseError::NotICalendar);
    }
    let mut problems: Vec<Problem> = lexed
        .problems
        .into_iter()
        .map(|problem| Problem {
            uid: problem.uid.map(ItemId::new),
            line: problem.line,
            message: problem.message,
        })
        .collect();
    let mut calendar = Calendar {
        properties: lexed.calendar_properties,
        ..Calendar::default()
    };
    let mut zones = ZoneContext::new(&calendar.properties, &lexed.components, &mut problems);
    let mut index: HashMap<ItemId, usize> = HashMap::new();
    let mut item_lines = Vec::new();
    for component in lexed.components {
        match component.name.as_str() {
            "VTIMEZONE" => calendar.timezones.push(component),
            "VEVENT" => {
                let line = component.line;
                match read_event(component, &mut zones, &mut problems) {
                    Ok(event) => {
                        add_event(&mut calendar.items, &mut index, event, line, &mut problems);
                        if item_lines.len() < calendar.items.len() {
                            item_lines.push(line);
                        }
                    }
                    Err(problem) => problems.push(problem),
                }
            }
            _ => calendar.other_components.push(component),
        }
    }
    problems.sort_by_key(|problem| problem.line);
    Ok(Parsed {
        calendar,
        problems,
        item_lines,
    })
}

fn add_event(
    items: &mut Vec<Item>,
    index: &mut HashMap<ItemId, usize>,
    event: Event,
    line: u32,
    problems: &mut Vec<Problem>,
) {
    let idx = *index.entry(event.uid.clone()).or_insert_with(|| {
        items.push(Item {
            uid: event.uid.clone(),
            master: None,
            overrides: Vec::new(),
        });
        items.len() - 1
    });
    let Some(item) = items.get_mut(idx) else {
        return;
    };
    let duplicate = |what: &str| Problem {
        uid: Some(event.uid.clone()),
        line,
        message: format!("duplicate {what}; kept the one with the higher SEQUENCE"),
    };
    match &event.recurrence_id {
        None => match &item.master {
            None => item.master = Some(event),
            Some(existing) => {
                problems.push(duplicate("UID"));
                if event.sequence.unwrap_or(0) > existing.sequence.unwrap_or(0) {
                    item.master = Some(event);
                }
            }
        },
        Some(rid) => {
            let existing = item
                .overrides
                .iter()
                .position(|other| other.recurrence_id.as_ref().map(|r| &r.time) == Some(&rid.time));
            match existing {
                None => item.overrides.push(event),
                Some(pos) => {
                    problems.push(duplicate("RECURRENCE-ID"));
                    if event.sequence.unwrap_or(0) > item.overrides[pos].sequence.unwrap_or(0) {
                        item.overrides[pos] = event;
                    }
                }
            }
        }
    }
}

/// Resolves `TZID`s, with the file's `VTIMEZONE`s and `X-WR-TIMEZONE`.
struct ZoneContext {
    /// `X-WR-TIMEZONE`: applies to floating times only.
    default: Option<Zone>,
    vtimezones: HashMap<String, Option<Tz>>,
    cache: HashMap<String, Option<Zone>>,
}

impl ZoneContext {
    fn new(properties: &[Property], components: &[Component], problems: &mut Vec<Problem>) -> Self {
        let default = properties
            .iter()
            .find(|prop| prop.name == "X-WR-TIMEZONE")
            .and_then(|prop| {
                let name = unescape_text(prop.value.trim());
                let zone = resolve_zone_name(&name).map(|tz| Zone::new(name.as_str(), tz));
                if zone.is_none() {
                    problems.push(Problem {
                        uid: None,
                        line: prop.line,
                        message: format!(
                            "X-WR-TIMEZONE {name:?} is not a known time zone; ignored"
                        ),
                    });
                }
                zone
            });
        let vtimezones = components
            .iter()
            .filter(|component| component.name == "VTIMEZONE")
            .filter_map(|component| {
                let tzid = component.property("TZID")?.value.trim().to_string();
                Some((tzid, vtimezone_zone(component)))
            })
            .collect();
        Self {
            default,
            vtimezones,
            cache: HashMap::new(),
        }
    }

    fn resolve(&mut self, tzid: &str) -> Option<Zone> {
        if let Some(zone) = self.cache.get(tzid) {
            return zone.clone();
        }
        let tz = resolve_zone_name(tzid).or_else(|| self.vtimezones.get(tzid).copied().flatten());
        let zone = tz.map(|tz| Zone::new(tzid, tz));
        self.cache.insert(tzid.to_string(), zone.clone());
        zone
    }
}

/// The IANA zone a `VTIMEZONE` stands for, from its hints.
fn vtimezone_zone(component: &Component) -> Option<Tz> {
    for prop in &component.properties {
        match prop.name.as_str() {
            "X-LIC-LOCATION" => {
                if let Some(tz) = resolve_zone_name(&prop.value) {
                    return Some(tz);
                }
            }
            "X-MICROSOFT-CDO-TZID" => {
                if let Some(calcard::common::timezone::Tz::Tz(tz)) =
                    calcard::common::timezone::Tz::from_ms_cdo_zone_id(prop.value.trim())
                {
                    return Some(tz);
                }
            }
            _ => {}
        }
    }
    None
}

struct Reader<'a> {
    zones: &'a mut ZoneContext,
    problems: &'a mut Vec<Problem>,
    uid: Option<ItemId>,
}

impl Reader<'_> {
    fn warn(&mut self, line: u32, message: String) {
        self.problems.push(Problem {
            uid: self.uid.clone(),
            line,
            message,
        });
    }

    /// Reads one date or date-time value of `prop`.
    fn time(&mut self, prop: &Property, text: &str) -> Result<EventTime, String> {
        let text = text.trim();
        let is_date = prop
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
            || (text.len() == 8 && !text.contains(['T', 't']));
        if is_date {
            return parse_date(text)
                .map(EventTime::Date)
                .ok_or_else(|| format!("{}: {text:?} is not a date", prop.name));
        }
        let (local, utc) = parse_date_time(text)
            .ok_or_else(|| format!("{}: {text:?} is not a date-time", prop.name))?;
        if utc {
            return Ok(EventTime::Utc(local.and_utc()));
        }
        if let Some(tzid) = prop.param("TZID") {
            let tzid = tzid.trim();
            if let Some(zone) = self.zones.resolve(tzid) {
                return Ok(EventTime::Zoned { local, zone });
            }
            // Read as a time without a zone: the calendar's own zone
            // (`X-WR-TIMEZONE`) when it has one, else floating. So the time
            // reads the same once written back (without the unknown TZID).
            let (time, read_as) = match &self.zones.default {
                Some(zone) => (
                    EventTime::Zoned {
                        local,
                        zone: zone.clone(),
                    },
                    format!("in the calendar's time zone {}", zone.tzid()),
                ),
                None => (EventTime::Floating(local), "as floating time".to_owned()),
            };
            self.warn(
                prop.line,
                format!("{}: unknown time zone {tzid:?}; read {read_as}", prop.name),
            );
            return Ok(time);
        }
        Ok(match &self.zones.default {
            Some(zone) => EventTime::Zoned {
                local,
                zone: zone.clone(),
            },
            None => EventTime::Floating(local),
        })
    }

    fn utc(&mut self, prop: &Property) -> Option<DateTime<Utc>> {
        match self.time(prop, &prop.value) {
            Ok(time) => Some(time.to_utc(Tz::UTC)),
            Err(message) => {
                self.warn(prop.line, message);
                None
            }
        }
    }
}

/// Parameters the model interprets for a property; others are kept.
fn interpreted_param(prop: &str, param: &str) -> bool {
    match prop {
        "DTSTART" | "DTEND" | "RDATE" | "EXDATE" => matches!(param, "TZID" | "VALUE"),
        "RECURRENCE-ID" => matches!(param, "TZID" | "VALUE" | "RANGE"),
        _ => false,
    }
}

fn person(prop: &Property) -> Person {
    let mut person = Person {
        address: prop.value.trim().to_string(),
        name: None,
        partstat: None,
        params: Vec::new(),
    };
    for param in &prop.params {
        match param.name.as_str() {
            "CN" => person.name = Some(param.value().to_string()),
            "PARTSTAT" => {
                person.partstat = Some(match param.value().to_ascii_uppercase().as_str() {
                    "NEEDS-ACTION" => PartStat::NeedsAction,
                    "ACCEPTED" => PartStat::Accepted,
                    "DECLINED" => PartStat::Declined,
                    "TENTATIVE" => PartStat::Tentative,
                    "DELEGATED" => PartStat::Delegated,
                    _ => PartStat::Other(param.value().to_string()),
                })
            }
            _ => person.params.push(param.clone()),
        }
    }
    person
}

/// Builds an event from a `VEVENT`. A component without a usable `DTSTART`,
/// or with an unreadable `RRULE` or `RECURRENCE-ID`, is skipped; any other
/// unreadable property is reported and kept as written.
fn read_event(
    component: Component,
    zones: &mut ZoneContext,
    problems: &mut Vec<Problem>,
) -> Result<Event, Problem> {
    let uid = component
        .property("UID")
        .map(|prop| ItemId::new(unescape_text(prop.value.trim())))
        .filter(|uid| !uid.as_str().is_empty());
    let mut reader = Reader {
        zones,
        problems,
        uid: uid.clone(),
    };
    let fatal = |line: u32, message: String| Problem {
        uid: uid.clone(),
        line,
        message: format!("VEVENT skipped: {message}"),
    };
    let Some(uid) = uid.clone() else {
        return Err(fatal(component.line, "UID is missing".to_string()));
    };
    let Some(start_prop) = component.property("DTSTART") else {
        return Err(fatal(component.line, "DTSTART is missing".to_string()));
    };
    let start = reader
        .time(start_prop, &start_prop.value)
        .map_err(|message| fatal(start_prop.line, message))?;
    let mut event = Event::new(uid, start);
    let params_of = |event: &mut Event, prop: &Property| {
        let kept: Vec<Param> = prop
            .params
            .iter()
            .filter(|param| !interpreted_param(&prop.name, &param.name))
            .cloned()
            .collect();
        if !kept.is_empty()
            && !event
                .other_params
                .iter()
                .any(|(name, _)| name == &prop.name)
        {
            event.other_params.push((prop.name.clone(), kept));
        }
    };
    let mut duration_line = None;
    for prop in component.properties {
        let name = prop.name.as_str();
        match name {
            "UID" => {}
            "DTSTART" => params_of(&mut event, &prop),
            "DTEND" => match reader.time(&prop, &prop.value) {
                Ok(end) => {
                    params_of(&mut event, &prop);
                    event.end = Some(end);
                }
                Err(message) => {
                    reader.warn(prop.line, format!("{message}; kept uninterpreted"));
                    event.other_properties.push(prop);
                }
            },
            "DURATION" => match parse_duration(&prop.value) {
                Some(duration) => {
                    params_of(&mut event, &prop);
                    event.duration = Some(duration);
                    duration_line = Some(prop.line);
                }
                None => {
                    reader.warn(
                        prop.line,
                        format!(
                            "DURATION: {:?} is not a duration; kept uninterpreted",
                            prop.value
                        ),
                    );
                    event.other_properties.push(prop);
                }
            },
            "RECURRENCE-ID" => {
                let time = reader
                    .time(&prop, &prop.value)
                    .map_err(|message| fatal(prop.line, message))?;
                params_of(&mut event, &prop);
                let this_and_future = prop
                    .param("RANGE")
                    .is_some_and(|range| range.eq_ignore_ascii_case("THISANDFUTURE"));
                event.recurrence_id = Some(RecurrenceId {
                    time,
                    this_and_future,
                });
            }
            "SUMMARY" | "DESCRIPTION" | "LOCATION" => {
                params_of(&mut event, &prop);
                let text = Some(unescape_text(&prop.value));
                match name {
                    "SUMMARY" => event.summary = text,
                    "DESCRIPTION" => event.description = text,
                    _ => event.location = text,
                }
            }
            "STATUS" => {
                params_of(&mut event, &prop);
                event.status = Some(match prop.value.trim().to_ascii_uppercase().as_str() {
                    "TENTATIVE" => Status::Tentative,
                    "CONFIRMED" => Status::Confirmed,
                    "CANCELLED" => Status::Cancelled,
                    _ => Status::Other(prop.value.trim().to_string()),
                });
            }
            "TRANSP" => match prop.value.trim().to_ascii_uppercase().as_str() {
                "OPAQUE" => event.transparency = Some(Transparency::Opaque),
                "TRANSPARENT" => event.transparency = Some(Transparency::Transparent),
                _ => {
                    reader.warn(
                        prop.line,
                        format!("TRANSP: unknown value {:?}; kept uninterpreted", prop.value),
                    );
                    event.other_properties.push(prop);
                }
            },
            "CLASS" => {
                params_of(&mut event, &prop);
                event.class = Some(match prop.value.trim().to_ascii_uppercase().as_str() {
                    "PUBLIC" => Class::Public,
                    "PRIVATE" => Class::Private,
                    "CONFIDENTIAL" => Class::Confidential,
                    _ => Class::Other(prop.value.trim().to_string()),
                });
            }
            "CATEGORIES" => {
                params_of(&mut event, &prop);
                event.categories.extend(
                    split_text_list(&prop.value)
                        .into_iter()
                        .map(|category| category.trim().to_string())
                        .filter(|category| !category.is_empty()),
                );
            }
            "ORGANIZER" => event.organizer = Some(person(&prop)),
            "ATTENDEE" => event.attendees.push(person(&prop)),
            "RRULE" if event.rrule.is_none() => {
                let rule = RecurrenceRule::parse(&prop.value)
                    .map_err(|err| fatal(prop.line, format!("RRULE: {err}")))?;
                event.rrule = Some(rule);
            }
            "RDATE" => {
                let is_period = prop
                    .param("VALUE")
                    .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"));
                for text in prop.value.split(',') {
                    let rdate = if is_period || text.contains('/') {
                        read_period(&mut reader, &prop, text)
                    } else {
                        reader.time(&prop, text).map(RDate::Time)
                    };
                    match rdate {
                        Ok(rdate) => event.rdates.push(rdate),
                        Err(message) => reader.warn(prop.line, format!("{message}; value dropped")),
                    }
                }
            }
            "EXDATE" => {
                for text in prop.value.split(',') {
                    match reader.time(&prop, text) {
                        Ok(time) => event.exdates.push(time),
                        Err(message) => reader.warn(prop.line, format!("{message}; value dropped")),
                    }
                }
            }
            "SEQUENCE" => match prop.value.trim().parse() {
                Ok(sequence) => event.sequence = Some(sequence),
                Err(_) => {
                    reader.warn(
                        prop.line,
                        format!(
                            "SEQUENCE: {:?} is not an integer; kept uninterpreted",
                            prop.value
                        ),
                    );
                    event.other_properties.push(prop);
                }
            },
            "LAST-MODIFIED" | "CREATED" | "DTSTAMP" => match reader.utc(&prop) {
                Some(time) => match name {
                    "LAST-MODIFIED" => event.last_modified = Some(time),
                    "CREATED" => event.created = Some(time),
                    _ => event.dtstamp = Some(time),
                },
                None => event.other_properties.push(prop),
            },
            _ => event.other_properties.push(prop),
        }
    }
    // Kept per property name, in name order: the writer puts properties in
    // its own order, and the parameters must read back the same.
    event.other_params.sort_by(|a, b| a.0.cmp(&b.0));
    // An end past year 9999 cannot be written, shown or computed with.
    if let Some(line) = duration_line
        && event.end.is_none()
        && event.checked_effective_end().is_none()
    {
        return Err(fatal(line, "DURATION: value out of range".to_string()));
    }
    for child in component.children {
        if child.name == "VALARM" {
            event.alarms.push(child);
        } else {
            event.other_components.push(child);
        }
    }
    Ok(event)
}

fn read_period(reader: &mut Reader<'_>, prop: &Property, text: &str) -> Result<RDate, String> {
    let (start, rest) = text
        .split_once('/')
        .ok_or_else(|| format!("RDATE: {text:?} is not a period"))?;
    let start = reader.time(prop, start)?;
    if let Some(duration) = value::parse_duration(rest) {
        if crate::event::checked_add_duration(&start, &duration).is_none() {
            return Err(format!("RDATE: period {text:?}: value out of range"));
        }
        return Ok(RDate::PeriodDuration { start, duration });
    }
    let end = reader.time(prop, rest)?;
    Ok(RDate::Period { start, end })
}
