//! Content hashes: equal when the meaning is equal, different when it is not.

use crate::util::parse;
use calmesh_core::hash::item_hash;

fn hash(body: &str) -> String {
    let parsed = parse(body);
    assert_eq!(parsed.problems, vec![]);
    assert_eq!(parsed.calendar.items.len(), 1);
    item_hash(&parsed.calendar.items[0]).to_string()
}

const BASE: &str = "BEGIN:VEVENT\nUID:a\nDTSTAMP:20250101T000000Z\nDTSTART;TZID=Europe/Berlin:20250310T100000\n\
DTEND;TZID=Europe/Berlin:20250310T110000\nSUMMARY:Planning\nDESCRIPTION:line one\\nline two\nLOCATION:Room 1\n\
ORGANIZER;CN=Ann:mailto:ann@example.com\nATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com\n\
ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:cy@example.com\nCATEGORIES:Work,Team\nEND:VEVENT";

#[test]
fn cosmetic_differences_hash_equal() {
    let base = hash(BASE);
    let same = [
        // Another DTSTAMP, LAST-MODIFIED, SEQUENCE and an X- property.
        BASE.replace("DTSTAMP:20250101T000000Z", "DTSTAMP:20261121T101010Z\nLAST-MODIFIED:20261121T101010Z\nSEQUENCE:7\nX-GOOGLE-CONFERENCE:https://meet"),
        // The same instants in UTC, with Z.
        BASE.replace("DTSTART;TZID=Europe/Berlin:20250310T100000", "DTSTART:20250310T090000Z")
            .replace("DTEND;TZID=Europe/Berlin:20250310T110000", "DTEND:20250310T100000Z"),
        // The Windows name of the zone, quoted, as Exchange writes it.
        BASE.replace("TZID=Europe/Berlin", "TZID=\"W. Europe Standard Time\""),
        // DURATION instead of DTEND.
        BASE.replace("DTEND;TZID=Europe/Berlin:20250310T110000", "DURATION:PT1H"),
        // Property order, parameter case, mailto: case, attendee order, categories order.
        "BEGIN:VEVENT\nCATEGORIES:team\nCATEGORIES:WORK\nATTENDEE;partstat=needs-action:MAILTO:CY@example.com\n\
         attendee;PARTSTAT=accepted;CN=Bob;ROLE=REQ-PARTICIPANT:mailto:Bob@Example.com\nLOCATION:Room 1 \n\
         SUMMARY:Planning\nDESCRIPTION:line one\\nline two\\n\nORGANIZER:mailto:ann@EXAMPLE.com\nUID:a\n\
         DTEND:20250310T100000Z\nDTSTART:20250310T090000Z\nEND:VEVENT"
            .to_string(),
        // Explicit defaults: STATUS, TRANSP, CLASS.
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning\nSTATUS:CONFIRMED\nTRANSP:OPAQUE\nCLASS:PUBLIC"),
        // Alarms are per-user reminders.
        BASE.replace("END:VEVENT", "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT10M\nEND:VALARM\nEND:VEVENT"),
    ];
    for (idx, body) in same.iter().enumerate() {
        assert_eq!(hash(body), base, "variant {idx} should hash equal:\n{body}");
    }
}

#[test]
fn meaningful_differences_hash_different() {
    let base = hash(BASE);
    let different = [
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning!"),
        BASE.replace("20250310T110000", "20250310T113000"),
        BASE.replace("TZID=Europe/Berlin", "TZID=Europe/London"),
        BASE.replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED"),
        BASE.replace("LOCATION:Room 1", "LOCATION:Room 2"),
        BASE.replace("line two", "line 2"),
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning\nTRANSP:TRANSPARENT"),
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning\nSTATUS:CANCELLED"),
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning\nCLASS:PRIVATE"),
        BASE.replace("CATEGORIES:Work,Team", "CATEGORIES:Work"),
        BASE.replace("SUMMARY:Planning", "SUMMARY:Planning\nRRULE:FREQ=WEEKLY"),
        BASE.replace("ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:cy@example.com\n", ""),
    ];
    for (idx, body) in different.iter().enumerate() {
        assert_ne!(
            hash(body),
            base,
            "variant {idx} should hash different:\n{body}"
        );
    }
}

#[test]
fn series_hash_covers_rule_exceptions_and_overrides() {
    let series = "BEGIN:VEVENT\nUID:s\nDTSTART;TZID=America/New_York:20250303T090000\nDURATION:PT1H\n\
                  RRULE:FREQ=WEEKLY;BYDAY=MO,WE;INTERVAL=1;WKST=MO\nEXDATE;TZID=America/New_York:20250305T090000\nEND:VEVENT";
    let base = hash(series);
    // Same rule written differently; EXDATE in UTC.
    let same = series
        .replace("BYDAY=MO,WE;INTERVAL=1;WKST=MO", "BYDAY=WE,MO")
        .replace(
            "EXDATE;TZID=America/New_York:20250305T090000",
            "EXDATE:20250305T140000Z",
        );
    assert_eq!(hash(&same), base);
    assert_ne!(hash(&series.replace("BYDAY=MO,WE", "BYDAY=MO")), base);
    assert_ne!(
        hash(&series.replace("20250305T090000", "20250310T090000")),
        base
    );
    // The series' zone decides its expansion: a different zone with the same
    // first instant is a different series.
    assert_ne!(
        hash(
            &series
                .replace(
                    "TZID=America/New_York:20250303T090000",
                    "DTSTART:20250303T140000Z"
                )
                .replace("DTSTART;DTSTART", "DTSTART")
        ),
        base
    );
    let with_override = format!(
        "{series}\nBEGIN:VEVENT\nUID:s\nRECURRENCE-ID;TZID=America/New_York:20250310T090000\n\
         DTSTART;TZID=America/New_York:20250310T100000\nDURATION:PT1H\nEND:VEVENT"
    );
    assert_ne!(hash(&with_override), base);
    let moved_further = with_override.replace("20250310T100000", "20250310T110000");
    assert_ne!(hash(&moved_further), hash(&with_override));
}
