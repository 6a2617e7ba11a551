//! Expansion agrees with an independent implementation, the `rrule` crate,
//! over generated rules and zones, where that crate is right.
//!
//! Where it is not, the comparison steps aside: the crate drops a `DTSTART`
//! that the rule does not match (RFC 5545 counts it), and it treats local
//! times in DST gaps and repeated hours its own way. Those cases have their
//! own tests in `expand.rs`.

use crate::util::calendar;
use calmesh_core::ical::parse_calendar;
use calmesh_core::recur::{ExpandOptions, Window};
use chrono::{DateTime, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use std::collections::BTreeSet;

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "America/Santiago",
];
const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

fn rule() -> impl Strategy<Value = String> {
    let freq = prop_oneof![
        Just("DAILY"),
        Just("WEEKLY"),
        Just("MONTHLY"),
        Just("YEARLY")
    ];
    let by_day = proptest::collection::btree_set(0usize..7, 0..4);
    let ordinal = proptest::option::of(prop_oneof![Just(1i8), Just(2), Just(-1), Just(3)]);
    let month_days = proptest::collection::btree_set(prop_oneof![1i8..=31, -3i8..=-1], 0..3);
    let months = proptest::collection::btree_set(1u8..=12, 0..3);
    let set_pos = proptest::option::of(prop_oneof![Just(1i32), Just(-1), Just(2)]);
    let end = prop_oneof![
        (1u32..40).prop_map(|count| format!(";COUNT={count}")),
        (0i64..900).prop_map(|days| {
            let until = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(days);
            format!(";UNTIL={}T235959Z", until.format("%Y%m%d"))
        }),
    ];
    (
        freq,
        1u32..4,
        by_day,
        ordinal,
        month_days,
        months,
        set_pos,
        end,
    )
        .prop_map(
            |(freq, interval, by_day, ordinal, month_days, months, set_pos, end)| {
                let mut rule = format!("FREQ={freq}");
                if interval > 1 {
                    rule.push_str(&format!(";INTERVAL={interval}"));
                }
                if !by_day.is_empty() {
                    let ordinal = match (freq, ordinal) {
                        ("MONTHLY" | "YEARLY", Some(n))
                            if by_day.len() == 1 && months.is_empty() || freq == "MONTHLY" =>
                        {
                            Some(n)
                        }
                        _ => None,
                    };
                    let days: Vec<String> = by_day
                        .iter()
                        .map(|day| match ordinal {
                            Some(n) => format!("{n}{}", DAYS[*day]),
                            None => DAYS[*day].to_string(),
                        })
                        .collect();
                    rule.push_str(&format!(";BYDAY={}", days.join(",")));
                }
                if !month_days.is_empty() && freq != "WEEKLY" {
                    let days: Vec<String> = month_days.iter().map(ToString::to_string).collect();
                    rule.push_str(&format!(";BYMONTHDAY={}", days.join(",")));
                }
                if !months.is_empty() {
                    let months: Vec<String> = months.iter().map(ToString::to_string).collect();
                    rule.push_str(&format!(";BYMONTH={}", months.join(",")));
                }
                if let Some(pos) = set_pos
                    && (rule.contains("BYDAY") || rule.contains("BYMONTHDAY"))
                {
                    rule.push_str(&format!(";BYSETPOS={pos}"));
                }
                rule.push_str(&end);
                rule
            },
        )
}

/// Instants whose local time is the series' time of day and exists exactly
/// once: the cases both implementations must agree on.
fn comparable(
    instants: impl IntoIterator<Item = DateTime<Utc>>,
    tz: Tz,
    hour: u32,
    minute: u32,
) -> BTreeSet<DateTime<Utc>> {
    instants
        .into_iter()
        .filter(|instant| {
            let local = instant.with_timezone(&tz).naive_local();
            local.hour() == hour
                && local.minute() == minute
                && matches!(tz.from_local_datetime(&local), LocalResult::Single(_))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn expansion_agrees_with_rrule_crate(
        rule in rule(),
        zone in 0usize..ZONES.len(),
        day in 0i64..730,
        hour in 0u32..24,
        minute in prop_oneof![Just(0u32), Just(30)],
    ) {
        let zone_name = ZONES[zone];
        let tz: Tz = zone_name.parse().unwrap();
        let start = (NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(day))
            .and_hms_opt(hour, minute, 0)
            .unwrap();
        let dtstart = format!("DTSTART;TZID={zone_name}:{}", start.format("%Y%m%dT%H%M%S"));

        let oracle: rrule::RRuleSet = match format!("{dtstart}\nRRULE:{rule}").parse() {
            Ok(set) => set,
            // The oracle refuses some valid combinations; nothing to compare.
            Err(_) => return Ok(()),
        };
        let oracle = oracle.all(5000);
        prop_assume!(!oracle.limited);
        let window = Window::dates("2000-01-01", "2300-01-01").unwrap();
        let oracle_instants: Vec<DateTime<Utc>> = oracle
            .dates
            .iter()
            .map(|d| d.with_timezone(&Utc))
            .filter(|instant| *instant < window.to)
            .collect();

        let body = format!("BEGIN:VEVENT\nUID:p\n{dtstart}\nRRULE:{rule}\nEND:VEVENT");
        let parsed = parse_calendar(calendar(&body).as_bytes()).unwrap();
        prop_assert_eq!(&parsed.problems, &vec![]);
        let ours = parsed.calendar.items[0].expand(&window, &ExpandOptions::default()).unwrap();
        let ours: Vec<DateTime<Utc>> = ours.instances.iter().map(|i| i.start_at).collect();

        // DTSTART is an instance for us always, for the oracle only when it
        // matches the rule.
        let dtstart_at = calmesh_core::time::resolve_local(tz, start);
        let mut ours_set = comparable(ours.iter().copied(), tz, hour, minute);
        let mut oracle_set = comparable(oracle_instants.iter().copied(), tz, hour, minute);
        ours_set.remove(&dtstart_at);
        oracle_set.remove(&dtstart_at);
        // With COUNT, the two may disagree on how many instances a DST gap
        // consumes; compare up to the first instance either side skipped.
        let skipped = ours.iter().chain(oracle_instants.iter())
            .filter(|instant| !comparable([**instant], tz, hour, minute).contains(*instant))
            .min()
            .copied();
        if let (Some(cut), true) = (skipped, rule.contains("COUNT")) {
            ours_set.retain(|instant| *instant < cut);
            oracle_set.retain(|instant| *instant < cut);
        }
        prop_assert_eq!(ours_set, oracle_set, "rule {} from {} in {}", rule, start, zone_name);
        prop_assert!(ours.contains(&dtstart_at), "DTSTART missing");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A narrow window returns exactly the instances of a wide one that
    /// start in it: skipping history before the window loses nothing.
    #[test]
    fn narrow_window_is_a_slice_of_the_wide_one(
        rule in rule().prop_map(|rule| rule.split(";COUNT").next().unwrap().split(";UNTIL").next().unwrap().to_string()),
        zone in 0usize..ZONES.len(),
        day in 0i64..730,
        hour in 0u32..24,
        from_day in 0i64..1500,
        len_days in 1i64..120,
        has_override in any::<bool>(),
    ) {
        let zone_name = ZONES[zone];
        let start = (NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(day)).and_hms_opt(hour, 0, 0).unwrap();
        let mut body = format!(
            "BEGIN:VEVENT\nUID:p\nDTSTART;TZID={zone_name}:{}\nDURATION:PT1H\nRRULE:{rule}\nEND:VEVENT",
            start.format("%Y%m%dT%H%M%S")
        );
        if has_override {
            // Moves the occurrence after DTSTART's day forward by an hour from then on.
            let rid = start + chrono::Duration::days(7);
            body.push_str(&format!(
                "\nBEGIN:VEVENT\nUID:p\nRECURRENCE-ID;TZID={zone_name};RANGE=THISANDFUTURE:{}\nDTSTART;TZID={zone_name}:{}\nEND:VEVENT",
                rid.format("%Y%m%dT%H%M%S"),
                (rid + chrono::Duration::hours(1)).format("%Y%m%dT%H%M%S"),
            ));
        }
        let parsed = parse_calendar(calendar(&body).as_bytes()).unwrap();
        prop_assume!(parsed.calendar.items.len() == 1);
        let item = &parsed.calendar.items[0];
        let wide = Window::dates("2023-01-01", "2031-01-01").unwrap();
        let from = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Duration::days(from_day);
        let narrow = Window::new(
            from.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            (from + chrono::Duration::days(len_days)).and_hms_opt(0, 0, 0).unwrap().and_utc(),
        ).unwrap();
        let options = ExpandOptions { max_instances: 100_000, ..ExpandOptions::default() };
        let Ok(all) = item.expand(&wide, &options) else { return Ok(()) };
        let want: Vec<_> = all.instances.into_iter()
            .filter(|instance| instance.start_at >= narrow.from && instance.start_at < narrow.to)
            .collect();
        let got = item.expand(&narrow, &options).unwrap().instances;
        prop_assert_eq!(got, want);
    }
}
