//! Hostile input: no panic, and bounded work.
//!
//! Each test names the fault it guards against:
//! - fault 1: a panic on external input (byte slicing inside a UTF-8
//!   character, unchecked date arithmetic on huge values);
//! - fault 2: expansion work not bounded by the window and the instance cap,
//!   and instances past year 9999.

use crate::util::parse;
use calmesh_core::event::{Event, add_duration, checked_add_duration};
use calmesh_core::ical::value::{IcalDuration, RecurrenceRule, parse_duration};
use calmesh_core::ical::{parse_calendar, write_calendar};
use calmesh_core::recur::{Cut, ExpandOptions, Window};
use calmesh_core::time::EventTime;
use calmesh_core::{Item, ItemId};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use std::time::Instant;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn options(max_instances: usize) -> ExpandOptions {
    ExpandOptions {
        max_instances,
        ..ExpandOptions::default()
    }
}

const GOOD: &str = "BEGIN:VEVENT\nUID:good\nDTSTART:20250310T090000Z\nEND:VEVENT";

/// Fault 1: `BYDAY=éA` split the value two bytes from its end, inside "é".
#[test]
fn fault1_byday_with_a_multibyte_character_is_a_problem() {
    let parsed = parse(&format!(
        "BEGIN:VEVENT\nUID:bad\nDTSTART:20250310T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=éA\nEND:VEVENT\n{GOOD}"
    ));
    assert_eq!(parsed.calendar.items.len(), 1);
    assert_eq!(parsed.calendar.items[0].uid.as_str(), "good");
    assert_eq!(parsed.problems.len(), 1);
    let message = &parsed.problems[0].message;
    assert!(
        message.contains("RRULE") && message.contains("BYDAY"),
        "{message}"
    );
    for value in [
        "FREQ=WEEKLY;BYDAY=é",
        "FREQ=WEEKLY;BYDAY=1é",
        "FREQ=WEEKLY;BYDAY=ÉÉ,MO",
    ] {
        assert!(RecurrenceRule::parse(value).is_err(), "{value}");
    }
}

/// Fault 1: `P99999999W` from DTSTART overflowed chrono's date range in
/// `add_duration` (event.rs) and in the expansion (recur.rs).
#[test]
fn fault1_huge_duration_is_a_problem_naming_duration() {
    for duration in [
        "P99999999W",
        "P4294967295W",
        "P4294967295D",
        "PT9999999999999H",
    ] {
        let parsed = parse(&format!(
            "BEGIN:VEVENT\nUID:huge\nDTSTART:20250310T090000Z\nDURATION:{duration}\n\
             RRULE:FREQ=DAILY\nEND:VEVENT\n{GOOD}"
        ));
        let uids: Vec<&str> = parsed
            .calendar
            .items
            .iter()
            .map(|i| i.uid.as_str())
            .collect();
        assert_eq!(uids, vec!["good"], "{duration}");
        assert_eq!(parsed.problems.len(), 1, "{duration}");
        let problem = &parsed.problems[0];
        assert_eq!(problem.uid.as_ref().map(ItemId::as_str), Some("huge"));
        assert!(
            problem.message.contains("DURATION: value out of range"),
            "{duration}: {}",
            problem.message
        );
        // The line is the DURATION's (after the three header lines).
        assert_eq!(problem.line, 7, "{duration}");
    }
}

/// Fault 1: the seconds of a duration were summed unchecked (overflow in
/// value.rs), and weeks × 7 overflowed `u32` when printed.
#[test]
fn fault1_duration_parts_do_not_overflow() {
    assert_eq!(
        parse_duration("PT5124095576030431H5124095576030431H5124095576030431H"),
        None
    );
    assert_eq!(parse_duration("PT18446744073709551615S1S"), None);
    let huge = IcalDuration {
        negative: false,
        weeks: u32::MAX,
        days: u32::MAX,
        seconds: u64::MAX,
    };
    assert!(huge.to_string().starts_with('P'));
    assert_eq!(huge.checked_exact(), None);
    let start = EventTime::Utc(at("2025-03-10T09:00:00Z"));
    assert_eq!(checked_add_duration(&start, &huge), None);
    // The unchecked forms do not panic either.
    let _ = add_duration(&start, &huge);
    let _ = huge.exact();
}

/// Fault 1: an RDATE period with a huge duration reached `add_duration`.
#[test]
fn fault1_rdate_period_out_of_range_is_dropped_with_a_problem() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250310T090000Z\n\
         RDATE;VALUE=PERIOD:20250311T090000Z/P99999999W,20250312T090000Z/PT1H\nEND:VEVENT",
    );
    assert_eq!(parsed.problems.len(), 1);
    assert!(
        parsed.problems[0].message.contains("RDATE")
            && parsed.problems[0].message.contains("out of range"),
        "{}",
        parsed.problems[0].message
    );
    let master = parsed.calendar.items[0].master.as_ref().unwrap();
    assert_eq!(master.rdates.len(), 1);
}

/// Fault 1: an event built in code (not read) with a huge duration made
/// `effective_end` and the expansion overflow.
#[test]
fn fault1_code_built_event_with_huge_duration_does_not_panic() {
    let mut event = Event::new(ItemId::new("a"), EventTime::Utc(at("2025-03-10T09:00:00Z")));
    event.duration = Some(IcalDuration {
        negative: false,
        weeks: 99_999_999,
        days: 0,
        seconds: 0,
    });
    assert_eq!(event.checked_effective_end(), None);
    assert_eq!(event.effective_end(), event.start);
    event.rrule = Some(RecurrenceRule::parse("FREQ=DAILY").unwrap());
    let item = Item {
        uid: event.uid.clone(),
        master: Some(event),
        overrides: Vec::new(),
    };
    let window = Window::dates("2025-03-01", "2025-04-01").unwrap();
    let err = item.expand(&window, &ExpandOptions::default()).unwrap_err();
    assert!(err.reason.contains("year 9999"), "{}", err.reason);
}

/// Fault 1: times at the ends of chrono's range in checked arithmetic.
#[test]
fn fault1_arithmetic_at_the_ends_of_time_does_not_panic() {
    let max = EventTime::Floating(NaiveDateTime::MAX);
    assert_eq!(max.checked_add_exact(Duration::seconds(1)), None);
    assert_eq!(max.add_exact(Duration::seconds(1)), max);
    let last = EventTime::Date(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap());
    assert_eq!(last.checked_add_exact(Duration::days(1)), None);
    let _ = calmesh_core::time::resolve_local(chrono_tz::America::New_York, NaiveDateTime::MIN);
    let _ = calmesh_core::time::resolve_local(chrono_tz::America::New_York, NaiveDateTime::MAX);
    // A window reaching the end of chrono's time.
    let parsed =
        parse("BEGIN:VEVENT\nUID:a\nDTSTART:99991231T220000Z\nRRULE:FREQ=HOURLY\nEND:VEVENT");
    let window = Window::new(at("9999-12-31T00:00:00Z"), DateTime::<Utc>::MAX_UTC).unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(100))
        .unwrap();
    assert_eq!(expansion.instances.len(), 2);
}

/// Fault 2: an instance ending past year 9999 was printed as
/// `+10499-…`, which is not RFC 3339; the event is a problem instead.
#[test]
fn fault2_instances_past_year_9999_are_an_error() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:long\nDTSTART:20000101T000000Z\nDTEND:99990101T000000Z\n\
         RRULE:FREQ=YEARLY\nEND:VEVENT",
    );
    assert_eq!(parsed.problems, vec![]);
    let window = Window::dates("2500-01-01", "2501-01-01").unwrap();
    let err = parsed.calendar.items[0]
        .expand(&window, &ExpandOptions::default())
        .unwrap_err();
    assert!(err.reason.contains("after year 9999"), "{}", err.reason);
}

/// Fault 2: the cap counted occurrences from DTSTART: a SECONDLY series
/// started a month before a one-hour window gave no instance and "cut".
#[test]
fn fault2_secondly_series_counts_the_cap_inside_the_window() {
    let parsed =
        parse("BEGIN:VEVENT\nUID:s\nDTSTART:20250101T000000Z\nRRULE:FREQ=SECONDLY\nEND:VEVENT");
    let window = Window::new(at("2025-02-01T10:00:00Z"), at("2025-02-01T11:00:00Z")).unwrap();
    let started = Instant::now();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    assert_eq!(expansion.instances.len(), 1000);
    assert_eq!(expansion.instances[0].start_at, window.from);
    assert_eq!(
        expansion.instances[999].start_at,
        window.from + Duration::seconds(999)
    );
    assert!(expansion.truncated);
    assert_eq!(expansion.cut, Some(Cut::InstanceCap { max: 1000 }));
    // Generous: it took seconds, and now takes milliseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Without a cap in the way, exactly the window's seconds.
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(10_000))
        .unwrap();
    assert_eq!(expansion.instances.len(), 3600);
    assert!(!expansion.truncated);
}

/// Fault 2: COUNT is counted from DTSTART, also when the expansion skips
/// ahead to the window.
#[test]
fn fault2_skipping_ahead_keeps_count() {
    // 31 days of seconds, plus 30: the series ends 30 s into February.
    let count = 31 * 86_400 + 30;
    let parsed = parse(&format!(
        "BEGIN:VEVENT\nUID:s\nDTSTART:20250101T000000Z\nRRULE:FREQ=SECONDLY;COUNT={count}\nEND:VEVENT"
    ));
    let window = Window::new(at("2025-02-01T00:00:00Z"), at("2025-02-01T01:00:00Z")).unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    assert_eq!(expansion.instances.len(), 30);
    assert!(!expansion.truncated);
    // INTERVAL and a zoned start: every 7 minutes from 2020, in Berlin.
    let parsed = parse(
        "BEGIN:VEVENT\nUID:m\nDTSTART;TZID=Europe/Berlin:20200101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=7\nEND:VEVENT",
    );
    let window = Window::new(at("2025-06-01T00:00:00Z"), at("2025-06-01T01:00:00Z")).unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    // Steps are taken on the series' wall clock (as calcard does).
    let first = NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let minutes: Vec<i64> = expansion
        .instances
        .iter()
        .map(|i| (i.start.local() - first).num_minutes())
        .collect();
    assert!(matches!(minutes.len(), 8 | 9), "{minutes:?}");
    assert!(minutes.iter().all(|m| m % 7 == 0), "{minutes:?}");
    assert!(minutes.windows(2).all(|w| w[1] - w[0] == 7), "{minutes:?}");
}

/// Fault 2: every second of a year (YEARLY with every BY part) took 7–9 s
/// and 2.3 GB: calcard builds a whole period before it yields. It is
/// refused at once as an expansion cut.
#[test]
fn fault2_every_second_of_a_year_is_refused_at_once() {
    let all = |n: u32| (0..n).map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    let months = (1..=12)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let days = (1..=31)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let parsed = parse(&format!(
        "BEGIN:VEVENT\nUID:y\nDTSTART:20250101T000000Z\nRRULE:FREQ=YEARLY;BYMONTH={months};\
         BYMONTHDAY={days};BYHOUR={};BYMINUTE={};BYSECOND={}\nEND:VEVENT",
        all(24),
        all(60),
        all(60)
    ));
    let window = Window::dates("2025-01-01", "2026-01-01").unwrap();
    let started = Instant::now();
    let err = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap_err();
    assert!(err.reason.starts_with("expansion cut"), "{}", err.reason);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Fault 2: a SECONDLY rule with a filter, started two years before the
/// window, ran into calcard's occurrence cap before reaching the window and
/// gave nothing. Chunks from just before the window find its instances.
#[test]
fn fault2_filtered_rule_from_long_ago_reaches_the_window() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:f\nDTSTART:20230101T000000Z\nRRULE:FREQ=SECONDLY;BYHOUR=9;BYMINUTE=30\nEND:VEVENT",
    );
    let window = Window::dates("2025-01-01", "2025-01-03").unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    assert_eq!(expansion.instances.len(), 120);
    assert_eq!(expansion.instances[0].start_at, at("2025-01-01T09:30:00Z"));
    assert!(!expansion.truncated);
}

/// Fault 2: a rule whose occurrences are sparse among many periods stopped
/// silently (calcard gives up after 100,000 empty periods); the work is now
/// bounded and the cut said.
#[test]
fn fault2_work_bound_cuts_and_says_so() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:d\nDTSTART:20250101T000000Z\nRRULE:FREQ=SECONDLY;BYMONTH=12;BYHOUR=0;BYMINUTE=0\nEND:VEVENT",
    );
    let window = Window::dates("2025-01-01", "2026-01-01").unwrap();
    let started = Instant::now();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    assert!(expansion.truncated);
    assert!(
        matches!(expansion.cut, Some(Cut::Work { .. })),
        "{:?}",
        expansion.cut
    );
    assert!(
        expansion
            .cut
            .unwrap()
            .to_string()
            .starts_with("expansion cut")
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The same rule over a window in December finds its instances.
    let window = Window::dates("2025-12-01", "2025-12-03").unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(1000))
        .unwrap();
    assert_eq!(expansion.instances.len(), 120);
    assert!(!expansion.truncated);
}

/// Fault 2: occurrences moved out of a DST gap land on later ones; they are
/// listed once, in order.
#[test]
fn fault2_lazy_occurrences_in_a_dst_gap_are_listed_once() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:g\nDTSTART;TZID=America/New_York:20250309T013000\nRRULE:FREQ=MINUTELY;INTERVAL=30;COUNT=5\nEND:VEVENT",
    );
    let window = Window::dates("2025-03-09", "2025-03-10").unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &options(100))
        .unwrap();
    let starts: Vec<String> = expansion
        .instances
        .iter()
        .map(|i| i.start.to_rfc3339_at(i.start_at))
        .collect();
    // 02:00 and 02:30 do not exist: they become 03:00 and 03:30, which the
    // rule yields as well.
    assert_eq!(
        starts,
        vec![
            "2025-03-09T01:30:00-05:00",
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:30:00-04:00",
        ]
    );
}

/// Fault 1: what the reader loads writes back and re-reads without panic.
#[test]
fn fault1_hostile_values_round_trip_without_panic() {
    let text = crate::util::calendar(
        "BEGIN:VEVENT\nUID:a\nDTSTART:00000101T000000Z\nDURATION:P1W\nRRULE:FREQ=YEARLY;BYDAY=é1,MO\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:b\nDTSTART;VALUE=DATE:99991231\nDURATION:P1D\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:c\nDTSTART:00000101T000000\nRRULE:FREQ=DAILY;UNTIL=99991231\nEND:VEVENT",
    );
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    assert_eq!(again.calendar, parsed.calendar);
    let window = Window::dates("9999-12-30", "9999-12-31").unwrap();
    for item in &again.calendar.items {
        let _ = item.expand(&window, &options(10));
    }
}

/// Found by fuzzing (fuzz target `ical`): a parameter with no `=`
/// (`T;D:`) read as no value and was written back as `D=`, which read as
/// one empty value, so the calendar did not round-trip.
#[test]
fn fuzz_a_parameter_without_a_value_round_trips() {
    let text = "BEGIN:VCALENDAR\r\nT;D:\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260101T090000Z\r\n\
                X-A;X-FLAG;X-B=1:v\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    let props = |c: &calmesh_core::ical::Calendar| {
        c.properties
            .iter()
            .filter(|p| p.name == "T")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(props(&again.calendar), props(&parsed.calendar));
    assert_eq!(again.calendar.items, parsed.calendar.items);
}

/// Found by fuzzing: a bare CR inside a value (`UID:47e0<CR>0e`) was kept
/// by the reader and dropped by the writer, so the UID changed on a round
/// trip. The reader drops it too.
#[test]
fn fuzz_a_bare_cr_inside_a_value_round_trips() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:47e0\r0e\r\nSUMMARY:a\rb\\\r\r\n\
                DTSTART:20260101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    assert_eq!(parsed.calendar.items[0].uid.as_str(), "47e00e");
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    assert_eq!(again.calendar.items, parsed.calendar.items);
}

/// Found by fuzzing: a time with an unknown TZID read as floating, was
/// written without the TZID, and read back in the calendar's
/// `X-WR-TIMEZONE`. It reads in that zone the first time too. (The stray CR
/// before the line end is dropped as the line is read.)
#[test]
fn fuzz_a_stray_cr_before_a_line_end_round_trips() {
    let text = "BEGIN:VCALENDAR\r\nX-WR-TIMEZONE:Europe/Berlin\r\r\nBEGIN:VEVENT\r\nUID:Z\r\n\
                DTSTART;TZID=America/N:20261030T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    assert_eq!(again.calendar.items, parsed.calendar.items);
    let start = &parsed.calendar.items[0].events().next().unwrap().start;
    assert!(
        matches!(start, calmesh_core::time::EventTime::Zoned { .. }),
        "{start:?}"
    );
}

/// Found by fuzzing: a DQUOTE inside an unquoted parameter value (`D=x"a`)
/// was kept by the reader and written as `'` (a parameter value cannot
/// hold a DQUOTE), so it did not round-trip. The reader reads it as `'`.
#[test]
fn fuzz_a_quote_inside_an_unquoted_parameter_round_trips() {
    let text = "BEGIN:VCALENDAR\r\nP;D=x\"a/T:v\r\nEND:VCALENDAR\r\n";
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    let param = |c: &calmesh_core::ical::Calendar| {
        c.properties
            .iter()
            .find(|p| p.name == "P")
            .map(|p| p.params.clone())
    };
    assert_eq!(param(&again.calendar), param(&parsed.calendar));
    assert_eq!(
        parsed.calendar.properties[0].params[0].values,
        vec!["x'a/T"]
    );
}

/// Found by fuzzing: unknown parameters of RECURRENCE-ID before those of
/// DTSTART came back in the writer's order (DTSTART first). They are kept
/// in property-name order.
#[test]
fn fuzz_unknown_parameters_keep_one_order() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:7\r\nRECURRENCE-ID;X-A=1:20260308T023000\r\n\
                DTSTART;X-B=2:20260308T023000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let parsed = parse_calendar(text.as_bytes()).unwrap();
    let again = parse_calendar(write_calendar(&parsed.calendar).as_bytes()).unwrap();
    assert_eq!(again.calendar.items, parsed.calendar.items);
}
