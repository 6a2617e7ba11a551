//! Recurrence expansion, one case per rule of RFC 5545 that sync depends on.

use crate::util::{check, parse};
use calmesh_core::recur::{ExpandOptions, Window};

#[test]
fn single_timed_event_in_and_out_of_window() {
    let body = "BEGIN:VEVENT\nUID:a\nDTSTART:20250310T090000Z\nDTEND:20250310T100000Z\nSUMMARY:x\nEND:VEVENT";
    check(
        body,
        "2025-03-10",
        "2025-03-11",
        "2025-03-10T09:00:00Z 2025-03-10T10:00:00Z x",
    );
    check(body, "2025-03-11", "2025-03-12", "");
    // The window is half-open: an event starting at its end is outside.
    check(body, "2025-03-09", "2025-03-10T09:00:00Z", "");
}

#[test]
fn weekly_count_until_and_interval() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=Europe/Berlin:20250303T100000\nDURATION:PT30M\n\
         RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;UNTIL=20250320T090000Z\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T10:00:00+01:00 2025-03-03T10:30:00+01:00 rid=2025-03-03T10:00:00+01:00
         2025-03-05T10:00:00+01:00 2025-03-05T10:30:00+01:00 rid=2025-03-05T10:00:00+01:00
         2025-03-17T10:00:00+01:00 2025-03-17T10:30:00+01:00 rid=2025-03-17T10:00:00+01:00
         2025-03-19T10:00:00+01:00 2025-03-19T10:30:00+01:00 rid=2025-03-19T10:00:00+01:00",
    );
}

#[test]
fn monthly_last_friday_and_bysetpos() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250131T120000Z\nRRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=3\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:b\nDTSTART:20250131T080000Z\n\
         RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3\nEND:VEVENT",
        "2025-01-01",
        "2026-01-01",
        "2025-01-31T12:00:00Z 2025-01-31T12:00:00Z rid=2025-01-31T12:00:00Z
         2025-02-28T12:00:00Z 2025-02-28T12:00:00Z rid=2025-02-28T12:00:00Z
         2025-03-28T12:00:00Z 2025-03-28T12:00:00Z rid=2025-03-28T12:00:00Z
         2025-01-31T08:00:00Z 2025-01-31T08:00:00Z rid=2025-01-31T08:00:00Z
         2025-02-28T08:00:00Z 2025-02-28T08:00:00Z rid=2025-02-28T08:00:00Z
         2025-03-31T08:00:00Z 2025-03-31T08:00:00Z rid=2025-03-31T08:00:00Z",
    );
}

#[test]
fn unsynchronized_dtstart_is_the_first_instance() {
    // DTSTART is a Sunday; the rule says Mondays. RFC 5545 §3.8.5.3: the
    // DTSTART still counts as an instance.
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250302T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=2\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-02T09:00:00Z 2025-03-02T09:00:00Z rid=2025-03-02T09:00:00Z
         2025-03-03T09:00:00Z 2025-03-03T09:00:00Z rid=2025-03-03T09:00:00Z
         2025-03-10T09:00:00Z 2025-03-10T09:00:00Z rid=2025-03-10T09:00:00Z",
    );
}

#[test]
fn rdate_dates_datetimes_periods_and_exdate() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=America/New_York:20250303T090000\nDTEND;TZID=America/New_York:20250303T100000\n\
         RRULE:FREQ=DAILY;COUNT=3\nEXDATE;TZID=America/New_York:20250304T090000\n\
         RDATE;TZID=America/New_York:20250310T090000\nRDATE:20250311T200000Z\n\
         RDATE;VALUE=PERIOD:20250312T130000Z/20250312T170000Z\nRDATE;VALUE=PERIOD:20250313T130000Z/PT15M\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T09:00:00-05:00 2025-03-03T10:00:00-05:00 rid=2025-03-03T09:00:00-05:00
         2025-03-05T09:00:00-05:00 2025-03-05T10:00:00-05:00 rid=2025-03-05T09:00:00-05:00
         2025-03-10T09:00:00-04:00 2025-03-10T10:00:00-04:00 rid=2025-03-10T09:00:00-04:00
         2025-03-11T16:00:00-04:00 2025-03-11T17:00:00-04:00 rid=2025-03-11T16:00:00-04:00
         2025-03-12T09:00:00-04:00 2025-03-12T13:00:00-04:00 rid=2025-03-12T09:00:00-04:00
         2025-03-13T09:00:00-04:00 2025-03-13T09:15:00-04:00 rid=2025-03-13T09:00:00-04:00",
    );
}

#[test]
fn exdate_as_utc_matches_zoned_instance() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=Europe/Berlin:20250303T100000\nRRULE:FREQ=DAILY;COUNT=3\n\
         EXDATE:20250304T090000Z\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T10:00:00+01:00 2025-03-03T10:00:00+01:00 rid=2025-03-03T10:00:00+01:00
         2025-03-05T10:00:00+01:00 2025-03-05T10:00:00+01:00 rid=2025-03-05T10:00:00+01:00",
    );
}

/// calcard keys overrides by (SEQUENCE, RECURRENCE-ID): an override whose
/// SEQUENCE differs from the master's is not applied and the instance shows
/// twice. Overrides belong to their UID, whatever their SEQUENCE.
#[test]
fn override_with_other_sequence_replaces_its_instance() {
    check(
        "BEGIN:VEVENT\nUID:a\nSEQUENCE:0\nDTSTART:20250303T090000Z\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3\nSUMMARY:m\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:a\nSEQUENCE:4\nRECURRENCE-ID:20250304T090000Z\nDTSTART:20250304T150000Z\nDURATION:PT2H\nSUMMARY:moved\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T09:00:00Z 2025-03-03T10:00:00Z rid=2025-03-03T09:00:00Z m
         2025-03-04T15:00:00Z 2025-03-04T17:00:00Z rid=2025-03-04T09:00:00Z moved
         2025-03-05T09:00:00Z 2025-03-05T10:00:00Z rid=2025-03-05T09:00:00Z m",
    );
}

#[test]
fn override_matched_across_zone_spellings() {
    // The master is written with a Windows zone, the override in UTC.
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=W. Europe Standard Time:20250303T100000\nRRULE:FREQ=DAILY;COUNT=2\nSUMMARY:m\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20250304T090000Z\nDTSTART;TZID=Europe/Berlin:20250304T120000\nSUMMARY:o\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T10:00:00+01:00 2025-03-03T10:00:00+01:00 rid=2025-03-03T10:00:00+01:00 m
         2025-03-04T12:00:00+01:00 2025-03-04T12:00:00+01:00 rid=2025-03-04T10:00:00+01:00 o",
    );
}

#[test]
fn override_moved_into_window_from_outside() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250303T090000Z\nRRULE:FREQ=WEEKLY;COUNT=3\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20250317T090000Z\nDTSTART:20250301T090000Z\nEND:VEVENT",
        "2025-03-01",
        "2025-03-02",
        "2025-03-01T09:00:00Z 2025-03-01T09:00:00Z rid=2025-03-17T09:00:00Z",
    );
}

#[test]
fn cancelled_override_is_still_an_instance() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250303T090000Z\nRRULE:FREQ=DAILY;COUNT=2\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:a\nRECURRENCE-ID:20250304T090000Z\nDTSTART:20250304T090000Z\nSTATUS:CANCELLED\nEND:VEVENT",
    );
    let window = Window::dates("2025-03-01", "2025-04-01").unwrap();
    let expansion = parsed.calendar.items[0]
        .expand(&window, &ExpandOptions::default())
        .unwrap();
    assert_eq!(expansion.instances.len(), 2);
    assert!(expansion.instances[1].event.recurrence_id.is_some());
}

#[test]
fn this_and_future_shifts_and_reshapes_later_instances() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250303T090000Z\nDTEND:20250303T100000Z\nRRULE:FREQ=DAILY;COUNT=5\nSUMMARY:old\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:a\nRECURRENCE-ID;RANGE=THISANDFUTURE:20250305T090000Z\nDTSTART:20250305T110000Z\n\
         DTEND:20250305T113000Z\nSUMMARY:new\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-03T09:00:00Z 2025-03-03T10:00:00Z rid=2025-03-03T09:00:00Z old
         2025-03-04T09:00:00Z 2025-03-04T10:00:00Z rid=2025-03-04T09:00:00Z old
         2025-03-05T11:00:00Z 2025-03-05T11:30:00Z rid=2025-03-05T09:00:00Z new
         2025-03-06T11:00:00Z 2025-03-06T11:30:00Z rid=2025-03-06T09:00:00Z new
         2025-03-07T11:00:00Z 2025-03-07T11:30:00Z rid=2025-03-07T09:00:00Z new",
    );
}

#[test]
fn all_day_series_and_default_end() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;VALUE=DATE:20250228\nRRULE:FREQ=YEARLY;COUNT=3\nSUMMARY:b\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:c\nDTSTART;VALUE=DATE:20250301\nDTEND;VALUE=DATE:20250303\nRRULE:FREQ=WEEKLY;COUNT=2\nEND:VEVENT",
        "2025-01-01",
        "2028-01-01",
        "2025-02-28 2025-03-01 rid=2025-02-28 b
         2026-02-28 2026-03-01 rid=2026-02-28 b
         2027-02-28 2027-03-01 rid=2027-02-28 b
         2025-03-01 2025-03-03 rid=2025-03-01
         2025-03-08 2025-03-10 rid=2025-03-08",
    );
}

#[test]
fn leap_day_yearly_skips_common_years() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;VALUE=DATE:20240229\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=2\nEND:VEVENT",
        "2024-01-01",
        "2030-01-01",
        "2024-02-29 2024-03-01 rid=2024-02-29
         2028-02-29 2028-03-01 rid=2028-02-29",
    );
}

#[test]
fn floating_series_stays_on_the_wall_clock() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART:20250308T090000\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-08T09:00:00 2025-03-08T10:00:00 rid=2025-03-08T09:00:00
         2025-03-09T09:00:00 2025-03-09T10:00:00 rid=2025-03-09T09:00:00
         2025-03-10T09:00:00 2025-03-10T10:00:00 rid=2025-03-10T09:00:00",
    );
}

/// calcard resolves a repeated local time to the later instant. RFC 5545
/// §3.3.5 says the first.
#[test]
fn repeated_hour_resolves_to_first_and_gap_moves_forward() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=America/New_York:20251101T013000\nDURATION:PT1H\nRRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:b\nDTSTART;TZID=America/New_York:20250308T023000\nDTEND;TZID=America/New_York:20250308T033000\n\
         RRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT",
        "2025-01-01",
        "2026-01-01",
        "2025-11-01T01:30:00-04:00 2025-11-01T02:30:00-04:00 rid=2025-11-01T01:30:00-04:00
         2025-11-02T01:30:00-04:00 2025-11-02T01:30:00-05:00 rid=2025-11-02T01:30:00-04:00
         2025-11-03T01:30:00-05:00 2025-11-03T02:30:00-05:00 rid=2025-11-03T01:30:00-05:00
         2025-03-08T02:30:00-05:00 2025-03-08T03:30:00-05:00 rid=2025-03-08T02:30:00-05:00
         2025-03-09T03:30:00-04:00 2025-03-09T04:30:00-04:00 rid=2025-03-09T03:30:00-04:00
         2025-03-10T02:30:00-04:00 2025-03-10T03:30:00-04:00 rid=2025-03-10T02:30:00-04:00",
    );
}

#[test]
fn nominal_day_duration_keeps_wall_clock_across_dst() {
    // P1D from 12:00 the day before the change ends at 12:00 the next day
    // (23 real hours); PT24H ends at 13:00.
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=Europe/Berlin:20250329T120000\nDURATION:P1D\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:b\nDTSTART;TZID=Europe/Berlin:20250329T120000\nDURATION:PT24H\nEND:VEVENT",
        "2025-03-01",
        "2025-04-01",
        "2025-03-29T12:00:00+01:00 2025-03-30T12:00:00+02:00
         2025-03-29T12:00:00+01:00 2025-03-30T13:00:00+02:00",
    );
}

#[test]
fn infinite_series_from_long_ago_reaches_the_window() {
    check(
        "BEGIN:VEVENT\nUID:a\nDTSTART;TZID=Europe/Berlin:20000103T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO\nEND:VEVENT",
        "2026-03-01",
        "2026-03-10",
        "2026-03-02T09:00:00+01:00 2026-03-02T09:00:00+01:00 rid=2026-03-02T09:00:00+01:00
         2026-03-09T09:00:00+01:00 2026-03-09T09:00:00+01:00 rid=2026-03-09T09:00:00+01:00",
    );
}

#[test]
fn instance_cap_truncates_and_says_so() {
    let parsed =
        parse("BEGIN:VEVENT\nUID:a\nDTSTART:20250101T000000Z\nRRULE:FREQ=HOURLY\nEND:VEVENT");
    let window = Window::dates("2025-01-01", "2026-01-01").unwrap();
    let options = ExpandOptions {
        max_instances: 100,
        ..ExpandOptions::default()
    };
    let expansion = parsed.calendar.items[0].expand(&window, &options).unwrap();
    assert_eq!(expansion.instances.len(), 100);
    assert!(expansion.truncated);
}

#[test]
fn windows_zone_and_x_wr_timezone_only_for_floating() {
    let body = "X-WR-TIMEZONE:America/Chicago\n\
                BEGIN:VEVENT\nUID:f\nDTSTART:20250310T090000\nEND:VEVENT\n\
                BEGIN:VEVENT\nUID:z\nDTSTART:20250310T090000Z\nEND:VEVENT\n\
                BEGIN:VEVENT\nUID:w\nDTSTART;TZID=\"Pacific Standard Time\":20250310T090000\nEND:VEVENT";
    check(
        body,
        "2025-03-10",
        "2025-03-11",
        "2025-03-10T09:00:00-05:00 2025-03-10T09:00:00-05:00
         2025-03-10T09:00:00Z 2025-03-10T09:00:00Z
         2025-03-10T09:00:00-07:00 2025-03-10T09:00:00-07:00",
    );
}

#[test]
fn broken_components_are_reported_and_skipped() {
    let parsed = parse(
        "BEGIN:VEVENT\nUID:good1\nDTSTART:20250310T090000Z\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:bad-start\nDTSTART:garbage\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:bad-rule\nDTSTART:20250310T090000Z\nRRULE:FREQ=SOMETIMES\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:no-start\nSUMMARY:x\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:good2\nDTSTART:20250310T090000Z\nDTEND:nonsense\nEND:VEVENT",
    );
    let uids: Vec<&str> = parsed
        .calendar
        .items
        .iter()
        .map(|item| item.uid.as_str())
        .collect();
    assert_eq!(uids, vec!["good1", "good2"]);
    let problems: Vec<(Option<&str>, u32)> = parsed
        .problems
        .iter()
        .map(|problem| (problem.uid.as_ref().map(|uid| uid.as_str()), problem.line))
        .collect();
    // Lines count the three calendar header lines.
    assert_eq!(
        problems,
        vec![
            (Some("bad-start"), 10),
            (Some("bad-rule"), 15),
            (Some("no-start"), 17),
            (Some("good2"), 24)
        ]
    );
    assert!(
        parsed.problems[0].message.contains("DTSTART"),
        "{}",
        parsed.problems[0].message
    );
    assert!(
        parsed.problems[3].message.contains("DTEND"),
        "{}",
        parsed.problems[3].message
    );
    // The unreadable DTEND is kept as written, not lost.
    let good2 = parsed.calendar.items[1].master.as_ref().unwrap();
    assert_eq!(good2.other_property("DTEND").unwrap().value, "nonsense");
}
