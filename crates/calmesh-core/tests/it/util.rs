//! Shared helpers.

use calmesh_core::ical::{Parsed, parse_calendar};
use calmesh_core::recur::{ExpandOptions, Window};

/// Wraps VEVENT text in a calendar, with `\n` line ends turned into CRLF.
pub fn calendar(body: &str) -> String {
    let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for line in body.trim().lines() {
        text.push_str(line.trim_start());
        text.push_str("\r\n");
    }
    text.push_str("END:VCALENDAR\r\n");
    text
}

pub fn parse(body: &str) -> Parsed {
    parse_calendar(calendar(body).as_bytes()).expect("parses")
}

/// Expands every item in [from, to) and renders one line per instance:
/// `start end [rid=...] summary`.
#[track_caller]
pub fn expand_lines(body: &str, from: &str, to: &str) -> String {
    let parsed = parse(body);
    assert_eq!(parsed.problems, vec![], "unexpected problems");
    let window = Window::dates(from, to).unwrap();
    let options = ExpandOptions::default();
    let mut lines = Vec::new();
    for item in &parsed.calendar.items {
        let expansion = item.expand(&window, &options).unwrap();
        for instance in expansion.instances {
            let mut line = format!(
                "{} {}",
                instance.start.to_rfc3339_at(instance.start_at),
                instance.end.to_rfc3339_at(instance.end_at)
            );
            if let Some(rid) = &instance.recurrence_id {
                line.push_str(&format!(" rid={}", rid.to_rfc3339()));
            }
            if let Some(summary) = &instance.event.summary {
                line.push_str(&format!(" {summary}"));
            }
            lines.push(line);
        }
    }
    lines.join("\n")
}

#[track_caller]
pub fn check(body: &str, from: &str, to: &str, expect: &str) {
    let got = expand_lines(body, from, to);
    let want: Vec<&str> = expect.trim().lines().map(str::trim).collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}
