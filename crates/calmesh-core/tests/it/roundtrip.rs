//! parse → write → parse is the identity on the model.

use calmesh_core::ItemId;
use calmesh_core::event::{
    Class, Event, Item, PartStat, Person, RDate, RecurrenceId, Status, Transparency,
};
use calmesh_core::ical::value::{IcalDuration, RecurrenceRule};
use calmesh_core::ical::{Calendar, Param, Property, parse_calendar, write_calendar};
use calmesh_core::time::EventTime;
use calmesh_core::zone::Zone;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use proptest::prelude::*;
use std::path::Path;

fn data_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[test]
fn fixture_corpus_round_trips() {
    let mut n_files = 0;
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "ics") {
            continue;
        }
        n_files += 1;
        let first = parse_calendar(&std::fs::read(&path).unwrap()).unwrap();
        let text = write_calendar(&first.calendar);
        let second = parse_calendar(text.as_bytes()).unwrap();
        assert_eq!(
            second.problems,
            vec![],
            "{}: problems after writing",
            path.display()
        );
        assert_eq!(first.calendar, second.calendar, "{}", path.display());
        // Writing is stable: a second write produces the same bytes.
        assert_eq!(text, write_calendar(&second.calendar), "{}", path.display());
    }
    assert!(n_files >= 8, "fixture corpus missing ({n_files} files)");
}

fn local() -> impl Strategy<Value = NaiveDateTime> {
    (
        2000i32..2040,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| {
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap()
        })
}

fn utc() -> impl Strategy<Value = DateTime<Utc>> {
    local().prop_map(|local| local.and_utc())
}

fn zone() -> impl Strategy<Value = Zone> {
    prop_oneof![
        Just(Zone::iana(chrono_tz::Europe::Berlin)),
        Just(Zone::iana(chrono_tz::America::New_York)),
        Just(Zone::new(
            "W. Europe Standard Time",
            chrono_tz::Europe::Berlin
        )),
        Just(Zone::iana(chrono_tz::Asia::Kolkata)),
    ]
}

fn time() -> impl Strategy<Value = EventTime> {
    prop_oneof![
        local().prop_map(|l| EventTime::Date(l.date())),
        local().prop_map(EventTime::Floating),
        utc().prop_map(EventTime::Utc),
        (local(), zone()).prop_map(|(local, zone)| EventTime::Zoned { local, zone }),
    ]
}

fn text() -> impl Strategy<Value = String> {
    // Anything a person types, including the characters TEXT escapes.
    "[a-zA-Z0-9 ,;:\\\\\"éß€😀\n-]{0,120}"
}

fn person() -> impl Strategy<Value = Person> {
    (
        "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)",
        proptest::option::of("[A-Za-z ,.]{1,20}"),
        proptest::option::of(prop_oneof![
            Just(PartStat::Accepted),
            Just(PartStat::Declined),
            Just(PartStat::NeedsAction),
            Just(PartStat::Other("X-WHATEVER".into()))
        ]),
        any::<bool>(),
    )
        .prop_map(|(email, name, partstat, rsvp)| Person {
            address: format!("mailto:{email}"),
            name,
            partstat,
            params: if rsvp {
                vec![
                    Param::new("RSVP", "TRUE"),
                    Param::new("ROLE", "REQ-PARTICIPANT"),
                ]
            } else {
                vec![]
            },
        })
}

fn rule() -> impl Strategy<Value = RecurrenceRule> {
    prop_oneof![
        Just("FREQ=WEEKLY;BYDAY=MO,WE"),
        Just("FREQ=DAILY;COUNT=10"),
        Just("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;UNTIL=20300101T000000Z"),
        Just("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;X-NAME=kept"),
    ]
    .prop_map(|text| RecurrenceRule::parse(text).unwrap())
}

fn event() -> impl Strategy<Value = Event> {
    (
        (
            time(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(text()),
        ),
        (
            proptest::option::of(prop_oneof![
                Just(Status::Confirmed),
                Just(Status::Cancelled),
                Just(Status::Tentative)
            ]),
            proptest::option::of(prop_oneof![
                Just(Transparency::Opaque),
                Just(Transparency::Transparent)
            ]),
            proptest::option::of(prop_oneof![
                Just(Class::Private),
                Just(Class::Public),
                Just(Class::Other("X-CLASS".into()))
            ]),
            proptest::collection::vec("[A-Za-z][A-Za-z ,;]{0,10}[A-Za-z]", 0..3),
        ),
        (
            proptest::option::of(person()),
            proptest::collection::vec(person(), 0..3),
        ),
        (
            proptest::option::of(rule()),
            proptest::collection::vec(utc(), 0..3),
            proptest::option::of(0i64..100),
        ),
        (
            proptest::option::of(utc()),
            proptest::option::of(0u64..100_000),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (start, summary, description, location),
                (status, transparency, class, categories),
                (organizer, attendees),
                (rrule, exdates, sequence),
                (dtstamp, duration, x_prop),
            )| {
                let mut event = Event::new(ItemId::new("uid-1@example.com"), start.clone());
                event.summary = summary;
                event.description = description;
                event.location = location;
                event.status = status;
                event.transparency = transparency;
                event.class = class;
                event.categories = categories;
                event.organizer = organizer;
                event.attendees = attendees;
                event.rrule = rrule;
                event.exdates = exdates.into_iter().map(EventTime::Utc).collect();
                if x_prop {
                    let start = EventTime::Utc(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
                    let end = EventTime::Utc(DateTime::from_timestamp(1_700_007_200, 0).unwrap());
                    event.rdates = vec![
                        RDate::Period {
                            start: start.clone(),
                            end,
                        },
                        RDate::PeriodDuration {
                            start,
                            duration: IcalDuration {
                                seconds: 3600,
                                ..IcalDuration::default()
                            },
                        },
                    ];
                }
                event.sequence = sequence;
                event.dtstamp =
                    dtstamp.map(|t| DateTime::from_timestamp(t.timestamp(), 0).unwrap());
                if let Some(seconds) = duration
                    && !start.is_date()
                {
                    event.duration = Some(IcalDuration {
                        seconds,
                        ..IcalDuration::default()
                    });
                }
                if x_prop {
                    event.other_properties.push(Property {
                        name: "X-CALMESH-SOURCE".into(),
                        params: vec![Param::new("X-RULE", "busy:1;2")],
                        value: "abc,def".into(),
                        line: 0,
                    });
                    event
                        .other_params
                        .push(("SUMMARY".into(), vec![Param::new("LANGUAGE", "de")]));
                }
                event
            },
        )
}

proptest! {
    #[test]
    fn written_events_read_back_identical(mut master in event(), over in proptest::option::of((event(), utc()))) {
        if master.summary.is_none() {
            master.other_params.retain(|(name, _)| name != "SUMMARY");
        }
        let mut overrides = Vec::new();
        if let Some((mut over, rid)) = over {
            over.rrule = None;
            over.rdates.clear();
            over.exdates.clear();
            over.other_params.retain(|(name, _)| name != "SUMMARY" || over.summary.is_some());
            over.recurrence_id = Some(RecurrenceId { time: EventTime::Utc(rid), this_and_future: false });
            overrides.push(over);
        }
        let item = Item { uid: master.uid.clone(), master: Some(master), overrides };
        let calendar = Calendar { items: vec![item], ..Calendar::default() };
        let text = write_calendar(&calendar);
        let parsed = parse_calendar(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed.problems, vec![]);
        let mut want = calendar.clone();
        want.properties = parsed.calendar.properties.clone();
        prop_assert_eq!(&parsed.calendar, &want, "{}", text);
    }
}
