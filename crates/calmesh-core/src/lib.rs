//! The pure core of calmesh: the provider-neutral event model, iCalendar in and
//! out, recurrence expansion and content hashes.
//!
//! Nothing in this crate performs I/O, spawns tasks or reads the clock: every
//! function that depends on "now" takes it as a parameter. Provider quirks live
//! in the adapter crates, never here.
//!
//! ```
//! use calmesh_core::ical::parse_calendar;
//! use calmesh_core::recur::{ExpandOptions, Window};
//!
//! let ics = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a@example.com\r\n\
//! DTSTART;TZID=Europe/Berlin:20250303T100000\r\nDURATION:PT1H\r\n\
//! RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
//! let parsed = parse_calendar(ics).unwrap();
//! let window = Window::dates("2025-03-01", "2025-04-01").unwrap();
//! let item = &parsed.calendar.items[0];
//! let expansion = item.expand(&window, &ExpandOptions::default()).unwrap();
//! assert_eq!(expansion.instances.len(), 3);
//! ```

pub mod busy;
pub mod event;
pub mod hash;
pub mod ical;
pub mod ids;
pub mod recur;
pub mod time;
pub mod zone;

pub use event::{Event, Item};
pub use ids::{AccountId, CalendarId, ItemId, RuleId, UserId};
pub use time::EventTime;
