//! iCalendar in and out (RFC 5545).
//!
//! [`parse_calendar`] reads a whole file of many events, groups components by
//! UID into [`Item`](crate::Item)s, keeps `VTIMEZONE`s and every property it
//! does not interpret, and reports each broken component with its UID and
//! line while loading the rest. [`write_calendar`] writes it back.

mod lex;
mod read;
pub mod value;
mod write;

pub use lex::{Component, Param, Property};
pub use read::{Calendar, ParseError, Parsed, Problem, parse_calendar};
pub use write::{recurrence_lines, write_calendar, write_item};
