//! The iCalendar reader: parse, expand in a bounded window with a small
//! instance cap, write, re-read. Nothing may panic, and what was read
//! writes back to the same model (the reader's round-trip property).

#![no_main]

use calmesh_core::ical::{parse_calendar, write_calendar};
use calmesh_core::recur::{ExpandOptions, Window};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_calendar(data) else {
        return;
    };
    // Windows near the seeds' dates, around DST changes, and at the ends of
    // the years iCalendar can write.
    let windows = [
        ("2025-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ("2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z"),
        ("0000-01-01T00:00:00Z", "0000-02-01T00:00:00Z"),
        ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59Z"),
    ];
    let options = [
        ExpandOptions {
            max_instances: 50,
            floating_zone: chrono_tz::UTC,
        },
        ExpandOptions {
            max_instances: 20,
            floating_zone: chrono_tz::America::New_York,
        },
    ];
    for (idx, (from, to)) in windows.iter().enumerate() {
        let Ok(window) = Window::new(instant(from), instant(to)) else {
            continue;
        };
        let options = &options[idx % options.len()];
        for item in &parsed.calendar.items {
            if let Ok(expansion) = item.expand(&window, options) {
                assert!(expansion.instances.len() <= options.max_instances);
                assert_eq!(expansion.truncated, expansion.cut.is_some());
                for instance in &expansion.instances {
                    assert!(instance.start_at >= window.from && instance.start_at < window.to);
                    // Printable as RFC 3339: four-digit years.
                    assert!(instance.start.in_range() && instance.end.in_range());
                    let _ = instance.start.to_rfc3339_at(instance.start_at);
                    let _ = instance.end.to_rfc3339_at(instance.end_at);
                }
            }
        }
    }
    for item in &parsed.calendar.items {
        for event in item.events() {
            let _ = event.effective_end().to_rfc3339();
            let _ = calmesh_core::ical::recurrence_lines(event);
        }
        let _ = calmesh_core::hash::item_hash(item);
    }
    let written = write_calendar(&parsed.calendar);
    let again = match parse_calendar(written.as_bytes()) {
        Ok(again) => again,
        Err(err) => panic!("written calendar does not re-read: {err}\n{written}"),
    };
    // The writer adds VERSION and PRODID when they are missing; everything
    // else reads back as it was.
    let mut properties = again.calendar.properties.clone();
    for name in ["VERSION", "PRODID"] {
        if !parsed.calendar.properties.iter().any(|p| p.name == name) {
            properties.retain(|p| p.name != name);
        }
    }
    assert_eq!(properties, parsed.calendar.properties, "properties\n{written}");
    assert_eq!(again.calendar.timezones, parsed.calendar.timezones, "timezones\n{written}");
    assert_eq!(
        again.calendar.other_components, parsed.calendar.other_components,
        "other components\n{written}"
    );
    assert_eq!(again.calendar.items, parsed.calendar.items, "items\n{written}");
});
