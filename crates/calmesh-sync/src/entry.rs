//! Cache entries ↔ provider entries and planner entries: each cached entry
//! is one VEVENT in a VCALENDAR, written and read by calmesh-core.

use calmesh_core::busy::CalEntry;
use calmesh_core::ical::{parse_calendar, write_item};
use calmesh_core::{Event, Item};
use calmesh_provider::RemoteEntry;
use calmesh_store::CachedEntry;

/// The cache form of a provider entry.
pub fn to_cached(entry: &RemoteEntry) -> CachedEntry {
    CachedEntry {
        remote_id: entry.remote_id.clone(),
        parent_id: entry.parent_id.clone(),
        etag: entry.etag.clone(),
        updated: entry.updated,
        ics: event_ics(&entry.event),
        tags: entry.tags.clone(),
    }
}

/// One event as a VCALENDAR.
pub fn event_ics(event: &Event) -> String {
    let item = if event.recurrence_id.is_some() {
        Item {
            uid: event.uid.clone(),
            master: None,
            overrides: vec![event.clone()],
        }
    } else {
        Item {
            uid: event.uid.clone(),
            master: Some(event.clone()),
            overrides: Vec::new(),
        }
    };
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calmesh//EN\r\n");
    write_item(&mut out, &item);
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// The planner form of a cached entry, or why it cannot be read.
pub fn to_plan(entry: &CachedEntry) -> Result<CalEntry, String> {
    let parsed = parse_calendar(entry.ics.as_bytes()).map_err(|e| e.to_string())?;
    if let Some(problem) = parsed.problems.first() {
        return Err(problem.message.clone());
    }
    let item = parsed
        .calendar
        .items
        .into_iter()
        .next()
        .ok_or("the cached entry holds no event")?;
    let event = item
        .master
        .or_else(|| item.overrides.into_iter().next())
        .ok_or("the cached entry holds no event")?;
    Ok(CalEntry {
        remote_id: entry.remote_id.clone(),
        parent_id: entry.parent_id.clone(),
        etag: entry.etag.clone(),
        event,
        tags: entry.tags.clone(),
    })
}
