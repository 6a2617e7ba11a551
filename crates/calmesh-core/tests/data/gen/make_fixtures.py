#!/usr/bin/env python3
"""Write the iCalendar fixtures of tests/data byte-exactly.

Standard library only. Run from anywhere:

    python3 crates/calmesh-core/tests/data/gen/make_fixtures.py

Each fixture is written as a list of *logical* lines; `fold()` folds them the
way a well-behaved producer does (75 octets, CRLF + one space, never inside a
UTF-8 sequence).  `lf_only.ics` is built by hand at the byte level because it
deliberately folds inside multi-byte characters, uses TAB continuations and
bare LF line endings.

The `.window` files are written here too.  The `.expected.json` and
`.problems.json` files are NOT written here: see expand_rules.py and
oracle_ric.py.
"""

from __future__ import annotations

import pathlib

DATA = pathlib.Path(__file__).resolve().parent.parent


def fold(line: str, limit: int = 75) -> list[bytes]:
    """Fold one logical line on UTF-8 character boundaries (RFC 5545 3.1)."""
    raw = line.encode("utf-8")
    out: list[bytes] = []
    first = True
    while raw:
        room = limit if first else limit - 1
        if len(raw) <= room:
            cut = len(raw)
        else:
            cut = room
            # never split a multi-byte sequence: back off over continuation bytes
            while cut > 0 and (raw[cut] & 0xC0) == 0x80:
                cut -= 1
        chunk, raw = raw[:cut], raw[cut:]
        out.append(chunk if first else b" " + chunk)
        first = False
    return out


def write_ics(name: str, lines: list[str], eol: bytes = b"\r\n") -> None:
    physical: list[bytes] = []
    for line in lines:
        physical.extend(fold(line))
    (DATA / f"{name}.ics").write_bytes(eol.join(physical) + eol)


def write_window(name: str, start: str, end: str) -> None:
    (DATA / f"{name}.window").write_text(f"{start} {end}\n")


def block(text: str) -> list[str]:
    """Logical lines from an indented triple-quoted block (blank lines dropped)."""
    return [ln.strip() for ln in text.strip().splitlines() if ln.strip()]


# --------------------------------------------------------------------------
# VTIMEZONE blocks as the respective producers emit them
# --------------------------------------------------------------------------

GOOGLE_TZ_BERLIN = block("""
BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-LIC-LOCATION:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
""")

GOOGLE_TZ_NEW_YORK = block("""
BEGIN:VTIMEZONE
TZID:America/New_York
X-LIC-LOCATION:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE
""")

# Exchange / Outlook: Windows zone ids, rules anchored at 1601-01-01.
EXCHANGE_TZ_W_EUROPE = block("""
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
""")

EXCHANGE_TZ_PACIFIC = block("""
BEGIN:VTIMEZONE
TZID:Pacific Standard Time
BEGIN:STANDARD
DTSTART:16010101T020000
TZOFFSETFROM:-0700
TZOFFSETTO:-0800
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:-0800
TZOFFSETTO:-0700
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
""")

APPLE_TZ_NEW_YORK = block("""
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
DTSTART:20070311T020000
TZNAME:EDT
TZOFFSETTO:-0400
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
DTSTART:20071104T020000
TZNAME:EST
TZOFFSETTO:-0500
END:STANDARD
END:VTIMEZONE
""")

# Nextcloud / Thunderbird style (sabre/vobject, libical) full VTIMEZONEs
LIBICAL_TZ_BERLIN = block("""
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
""")

LIBICAL_TZ_NEW_YORK = block("""
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE
""")

STAMP = "20261121T060000Z"

# --------------------------------------------------------------------------
# google_export
# --------------------------------------------------------------------------

G_STANDUP = "4f0kq8v2m1b7s3c9e5d6h0j2ln@google.com"
G_NYSYNC = "0u7c3sr1fk9b6e2ag4qm8dpt5v@google.com"
G_EASTER = "6b9cimkr3j5sg2h0i8o4d1ln7f@google.com"
G_SKI = "2s5e8k0pq7r1b3ft6jv9d4cmhi@google.com"
G_FLIGHT = "1h8pfiu7v3rq6b0dsk2m9j4cel@google.com"
G_DINNER = "5nsq2de0cl9b4k7vog1tm8ur3j@google.com"


def google_export() -> None:
    L = block("""
    BEGIN:VCALENDAR
    PRODID:-//Google Inc//Google Calendar 70.9054//EN
    VERSION:2.0
    CALSCALE:GREGORIAN
    METHOD:PUBLISH
    X-WR-CALNAME:Team Berlin
    X-WR-TIMEZONE:Europe/Berlin
    X-WR-CALDESC:Shared calendar of the Berlin team
    """)
    L += GOOGLE_TZ_BERLIN + GOOGLE_TZ_NEW_YORK
    # moved instance: exported before its master (Google's export order is not
    # master-first); RECURRENCE-ID 2026-03-16 10:00 -> Tue 2026-03-17 14:00
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=Europe/Berlin:20260317T140000
    DTEND;TZID=Europe/Berlin:20260317T143000
    DTSTAMP:{STAMP}
    ORGANIZER;CN=Lena Vogt:mailto:lena.vogt@example.com
    UID:{G_STANDUP}
    RECURRENCE-ID;TZID=Europe/Berlin:20260316T100000
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Lena Vogt;X-NUM-GUESTS=0:mailto:lena.vogt@example.com
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=Jonas Becker;X-NUM-GUESTS=0:mailto:jonas.becker@example.com
    CREATED:20251211T091512Z
    DESCRIPTION:Moved because of the offsite on Monday.
    LAST-MODIFIED:20260312T170402Z
    LOCATION:Room Spree
    SEQUENCE:1
    STATUS:CONFIRMED
    SUMMARY:Team standup (moved)
    TRANSP:OPAQUE
    END:VEVENT
    """)
    # master: weekly Monday 10:00-10:30 Berlin, crosses 2026-03-29 DST
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=Europe/Berlin:20260112T100000
    DTEND;TZID=Europe/Berlin:20260112T103000
    RRULE:FREQ=WEEKLY;BYDAY=MO
    EXDATE;TZID=Europe/Berlin:20260406T100000
    DTSTAMP:{STAMP}
    ORGANIZER;CN=Lena Vogt:mailto:lena.vogt@example.com
    UID:{G_STANDUP}
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Lena Vogt;X-NUM-GUESTS=0:mailto:lena.vogt@example.com
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Jonas Becker;X-NUM-GUESTS=0:mailto:jonas.becker@example.com
    X-MICROSOFT-CDO-OWNERAPPTID:-1404279118
    CREATED:20251211T091512Z
    DESCRIPTION:Daily sync\\, but weekly. Join with Google Meet: https://meet.google.com/abc-defg-hij\\n\\nLearn more about Meet at: https://support.google.com/a/users/answer/9282720
    LAST-MODIFIED:20260312T170402Z
    LOCATION:Room Spree
    SEQUENCE:0
    STATUS:CONFIRMED
    SUMMARY:Team standup
    TRANSP:OPAQUE
    BEGIN:VALARM
    ACTION:DISPLAY
    DESCRIPTION:This is an event reminder
    TRIGGER:-P0DT0H10M0S
    END:VALARM
    END:VEVENT
    """)
    # instance from before the window moved into it (Mon 02-23 -> Tue 03-03)
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=Europe/Berlin:20260303T160000
    DTEND;TZID=Europe/Berlin:20260303T163000
    DTSTAMP:{STAMP}
    ORGANIZER;CN=Lena Vogt:mailto:lena.vogt@example.com
    UID:{G_STANDUP}
    RECURRENCE-ID;TZID=Europe/Berlin:20260223T100000
    CREATED:20251211T091512Z
    DESCRIPTION:
    LAST-MODIFIED:20260220T081133Z
    LOCATION:Room Spree
    SEQUENCE:1
    STATUS:CONFIRMED
    SUMMARY:Team standup (postponed)
    TRANSP:OPAQUE
    END:VEVENT
    """)
    # cancelled instance
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=Europe/Berlin:20260420T100000
    DTEND;TZID=Europe/Berlin:20260420T103000
    DTSTAMP:{STAMP}
    UID:{G_STANDUP}
    RECURRENCE-ID;TZID=Europe/Berlin:20260420T100000
    CREATED:20251211T091512Z
    DESCRIPTION:
    LAST-MODIFIED:20260415T121500Z
    LOCATION:Room Spree
    SEQUENCE:1
    STATUS:CANCELLED
    SUMMARY:Team standup
    TRANSP:OPAQUE
    END:VEVENT
    """)
    # instance inside the window moved out of it (Mon 04-27 -> Tue 05-05)
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=Europe/Berlin:20260505T100000
    DTEND;TZID=Europe/Berlin:20260505T103000
    DTSTAMP:{STAMP}
    UID:{G_STANDUP}
    RECURRENCE-ID;TZID=Europe/Berlin:20260427T100000
    CREATED:20251211T091512Z
    DESCRIPTION:
    LAST-MODIFIED:20260424T094500Z
    LOCATION:Room Spree
    SEQUENCE:1
    STATUS:CONFIRMED
    SUMMARY:Team standup
    TRANSP:OPAQUE
    END:VEVENT
    """)
    # weekly in another zone (US DST 2026-03-08 vs EU DST 2026-03-29)
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;TZID=America/New_York:20260108T090000
    DTEND;TZID=America/New_York:20260108T094500
    RRULE:FREQ=WEEKLY;WKST=SU;BYDAY=TH
    DTSTAMP:{STAMP}
    ORGANIZER;CN=Maya Chen:mailto:maya.chen@example.com
    UID:{G_NYSYNC}
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Maya Chen;X-NUM-GUESTS=0:mailto:maya.chen@example.com
    ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Lena Vogt;X-NUM-GUESTS=0:mailto:lena.vogt@example.com
    CREATED:20251220T154000Z
    DESCRIPTION:
    LAST-MODIFIED:20251220T154000Z
    LOCATION:
    SEQUENCE:0
    STATUS:CONFIRMED
    SUMMARY:Sync with NY office
    TRANSP:OPAQUE
    END:VEVENT
    """)
    # all-day, multi-day
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;VALUE=DATE:20260403
    DTEND;VALUE=DATE:20260407
    DTSTAMP:{STAMP}
    UID:{G_EASTER}
    CREATED:20260105T100000Z
    DESCRIPTION:
    LAST-MODIFIED:20260105T100000Z
    LOCATION:
    SEQUENCE:0
    STATUS:CONFIRMED
    SUMMARY:Easter holidays
    TRANSP:TRANSPARENT
    END:VEVENT
    """)
    # all-day overlapping the window start but starting before it -> excluded
    L += block(f"""
    BEGIN:VEVENT
    DTSTART;VALUE=DATE:20260227
    DTEND;VALUE=DATE:20260303
    DTSTAMP:{STAMP}
    UID:{G_SKI}
    CREATED:20260110T183000Z
    DESCRIPTION:
    LAST-MODIFIED:20260110T183000Z
    LOCATION:Zermatt
    SEQUENCE:0
    STATUS:CONFIRMED
    SUMMARY:Ski trip
    TRANSP:TRANSPARENT
    END:VEVENT
    """)
    # single events exported in UTC, as Google does for non-recurring events
    L += block(f"""
    BEGIN:VEVENT
    DTSTART:20260315T180000Z
    DTEND:20260315T211500Z
    DTSTAMP:{STAMP}
    UID:{G_FLIGHT}
    CREATED:20260201T101010Z
    DESCRIPTION:LH1168 BER-LIS
    LAST-MODIFIED:20260201T101010Z
    LOCATION:Berlin Brandenburg Airport
    SEQUENCE:0
    STATUS:CONFIRMED
    SUMMARY:Flight to Lisbon
    TRANSP:OPAQUE
    END:VEVENT
    BEGIN:VEVENT
    DTSTART:20260410T173000Z
    DTEND:20260410T200000Z
    DTSTAMP:{STAMP}
    UID:{G_DINNER}
    CREATED:20260330T080000Z
    DESCRIPTION:
    LAST-MODIFIED:20260330T080000Z
    LOCATION:Cafe Einstein\\, Kurfürstenstraße 58\\, 10785 Berlin\\, Germany
    SEQUENCE:0
    STATUS:TENTATIVE
    SUMMARY:Dinner with Anna\\, Ben and Carla
    TRANSP:OPAQUE
    END:VEVENT
    END:VCALENDAR
    """)
    write_ics("google_export", L)
    write_window("google_export", "2026-03-01", "2026-05-01")


# --------------------------------------------------------------------------
# outlook_exchange
# --------------------------------------------------------------------------

def exchange_uid(external: str, stamp_hex: str) -> str:
    """Exchange global object id wrapping an external vCal-Uid (very long)."""
    data = b"vCal-Uid" + b"\x01\x00\x00\x00" + external.encode() + b"\x00"
    return (
        "040000008200E00074C5B7101A82E008"
        + "00000000"
        + stamp_hex
        + "0000000000000000"
        + f"{len(data):02X}000000"
        + data.hex().upper()
    )


X_REVIEW = exchange_uid(
    "{8A3F2C71-5D4E-4B9A-A1C6-0E7D93B2F415}-monthly-architecture-review@corp.example.com",
    "90B1C6D4E56EDC01",
)
X_PACIFIC = "040000008200E00074C5B7101A82E0080000000070E3A1B2C98CDC01000000000000000010000000A7C1E94B0D3F5E4A8E2B6C9D1F0A3B57"
X_ALLDAY = "040000008200E00074C5B7101A82E00800000000F0A1D2C3E4B5DC01000000000000000010000000C3D2E1F00A1B2C3D4E5F60718293A4B5"
X_QUARTER = "040000008200E00074C5B7101A82E00800000000B0C0D0E0F0A0DC01000000000000000010000000112233445566778899AABBCCDDEEFF00"

EXCHANGE_X = """
X-MICROSOFT-CDO-BUSYSTATUS:BUSY
X-MICROSOFT-CDO-IMPORTANCE:1
X-MICROSOFT-DISALLOW-COUNTER:FALSE
X-MS-OLK-AUTOFILLLOCATION:FALSE
X-MS-OLK-CONFTYPE:0
"""


def outlook_exchange() -> None:
    L = block("""
    BEGIN:VCALENDAR
    METHOD:PUBLISH
    PRODID:Microsoft Exchange Server 2010
    VERSION:2.0
    X-WR-CALNAME:Calendar
    """)
    L += EXCHANGE_TZ_W_EUROPE + EXCHANGE_TZ_PACIFIC
    # monthly 2nd Tuesday, 14:00 W. Europe, SEQUENCE 3 on the master
    L += block(f"""
    BEGIN:VEVENT
    DESCRIPTION:Agenda in the team channel.\\n
    RRULE:FREQ=MONTHLY;UNTIL=20261208T130000Z;INTERVAL=1;BYDAY=2TU;WKST=MO
    EXDATE;TZID=W. Europe Standard Time:20260310T140000
    UID:{X_REVIEW}
    SUMMARY:Architecture review
    DTSTART;TZID=W. Europe Standard Time:20260113T140000
    DTEND;TZID=W. Europe Standard Time:20260113T153000
    CLASS:PUBLIC
    PRIORITY:5
    DTSTAMP:{STAMP}
    TRANSP:OPAQUE
    STATUS:CONFIRMED
    SEQUENCE:3
    LOCATION:Conf Room 4.12 (Berlin)
    X-MICROSOFT-CDO-APPT-SEQUENCE:3
    X-MICROSOFT-CDO-OWNERAPPTID:2123456789
    X-MICROSOFT-CDO-BUSYSTATUS:BUSY
    X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY
    X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
    X-MICROSOFT-CDO-IMPORTANCE:1
    X-MICROSOFT-CDO-INSTTYPE:1
    X-MICROSOFT-DONOTFORWARDMEETING:FALSE
    X-MICROSOFT-DISALLOW-COUNTER:FALSE
    X-MICROSOFT-REQUESTEDATTENDANCEMODE:DEFAULT
    X-MICROSOFT-ISRESPONSEREQUESTED:FALSE
    BEGIN:VALARM
    DESCRIPTION:REMINDER
    TRIGGER;RELATED=START:-PT15M
    ACTION:DISPLAY
    END:VALARM
    END:VEVENT
    """)
    # override with an OLDER sequence than the master (must still apply):
    # 2026-04-14 14:00 -> 2026-04-15 16:00-17:00
    L += block(f"""
    BEGIN:VEVENT
    DESCRIPTION:Moved by one day (public holiday follow-up).\\n
    UID:{X_REVIEW}
    RECURRENCE-ID;TZID=W. Europe Standard Time:20260414T140000
    SUMMARY:Architecture review (moved)
    DTSTART;TZID=W. Europe Standard Time:20260415T160000
    DTEND;TZID=W. Europe Standard Time:20260415T170000
    CLASS:PUBLIC
    PRIORITY:5
    DTSTAMP:{STAMP}
    TRANSP:OPAQUE
    STATUS:CONFIRMED
    SEQUENCE:1
    LOCATION:Conf Room 4.12 (Berlin)
    X-MICROSOFT-CDO-APPT-SEQUENCE:1
    X-MICROSOFT-CDO-BUSYSTATUS:BUSY
    X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY
    X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
    X-MICROSOFT-CDO-IMPORTANCE:1
    X-MICROSOFT-CDO-INSTTYPE:3
    X-MICROSOFT-DONOTFORWARDMEETING:FALSE
    X-MICROSOFT-DISALLOW-COUNTER:FALSE
    END:VEVENT
    """)
    # quoted Windows TZID, weekly across the US DST change (2026-03-08)
    L += block(f"""
    BEGIN:VEVENT
    DESCRIPTION:\\n
    RRULE:FREQ=WEEKLY;COUNT=6;INTERVAL=1;BYDAY=TH;WKST=SU
    UID:{X_PACIFIC}
    SUMMARY:Vendor call (Seattle)
    DTSTART;TZID="Pacific Standard Time":20260226T090000
    DTEND;TZID="Pacific Standard Time":20260226T093000
    CLASS:PUBLIC
    PRIORITY:5
    DTSTAMP:{STAMP}
    TRANSP:OPAQUE
    STATUS:CONFIRMED
    SEQUENCE:0
    LOCATION:Microsoft Teams Meeting
    X-MICROSOFT-CDO-APPT-SEQUENCE:0
    X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE
    X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY
    X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
    X-MICROSOFT-CDO-IMPORTANCE:1
    X-MICROSOFT-CDO-INSTTYPE:1
    X-MICROSOFT-DONOTFORWARDMEETING:FALSE
    X-MICROSOFT-DISALLOW-COUNTER:FALSE
    END:VEVENT
    """)
    # single all-day event as Exchange writes it
    L += block(f"""
    BEGIN:VEVENT
    DESCRIPTION:\\n
    UID:{X_ALLDAY}
    SUMMARY:Company holiday
    DTSTART;VALUE=DATE:20260501
    DTEND;VALUE=DATE:20260502
    CLASS:PUBLIC
    PRIORITY:5
    DTSTAMP:{STAMP}
    TRANSP:TRANSPARENT
    STATUS:CONFIRMED
    SEQUENCE:0
    LOCATION:
    X-MICROSOFT-CDO-APPT-SEQUENCE:0
    X-MICROSOFT-CDO-BUSYSTATUS:FREE
    X-MICROSOFT-CDO-INTENDEDSTATUS:FREE
    X-MICROSOFT-CDO-ALLDAYEVENT:TRUE
    X-MICROSOFT-CDO-IMPORTANCE:1
    X-MICROSOFT-CDO-INSTTYPE:0
    X-MICROSOFT-DONOTFORWARDMEETING:FALSE
    X-MICROSOFT-DISALLOW-COUNTER:FALSE
    END:VEVENT
    """)
    # single timed event in the unquoted Windows zone, in summer time
    L += block(f"""
    BEGIN:VEVENT
    DESCRIPTION:\\n
    UID:{X_QUARTER}
    SUMMARY:Quarterly planning
    DTSTART;TZID=W. Europe Standard Time:20260625T093000
    DTEND;TZID=W. Europe Standard Time:20260625T120000
    CLASS:PUBLIC
    PRIORITY:5
    DTSTAMP:{STAMP}
    TRANSP:OPAQUE
    STATUS:CONFIRMED
    SEQUENCE:0
    LOCATION:Conf Room 4.12 (Berlin)
    X-MICROSOFT-CDO-APPT-SEQUENCE:0
    X-MICROSOFT-CDO-BUSYSTATUS:OOF
    X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY
    X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
    X-MICROSOFT-CDO-IMPORTANCE:2
    X-MICROSOFT-CDO-INSTTYPE:0
    X-MICROSOFT-DONOTFORWARDMEETING:FALSE
    X-MICROSOFT-DISALLOW-COUNTER:FALSE
    END:VEVENT
    END:VCALENDAR
    """)
    write_ics("outlook_exchange", L)
    write_window("outlook_exchange", "2026-01-01", "2026-07-01")


# --------------------------------------------------------------------------
# apple_icloud
# --------------------------------------------------------------------------

A_BIRTHDAY = "5E3B7A1C-92D4-4F6B-8C0E-1A2B3C4D5E6F"
A_PIANO = "C0A8F1D2-3B4E-4C5D-9E6F-7A8B9C0D1E2F"
A_YOGA = "9F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A"
A_DENTIST = "2B4D6F80-1A3C-4E5F-8709-AB12CD34EF56"


def apple_alarm(uid: str, trigger: str) -> list[str]:
    return block(f"""
    BEGIN:VALARM
    X-WR-ALARMUID:{uid}
    UID:{uid}
    TRIGGER:{trigger}
    ATTACH;VALUE=URI:Chord
    ACTION:AUDIO
    X-APPLE-DEFAULT-ALARM:TRUE
    ACKNOWLEDGED:20260301T120000Z
    END:VALARM
    """)


def apple_icloud() -> None:
    L = block("""
    BEGIN:VCALENDAR
    METHOD:PUBLISH
    VERSION:2.0
    X-WR-CALNAME:Family
    PRODID:-//Apple Inc.//macOS 15.1//EN
    X-APPLE-CALENDAR-COLOR:#1BADF8
    CALSCALE:GREGORIAN
    """)
    L += APPLE_TZ_NEW_YORK
    # yearly all-day birthday series started long ago
    L += block(f"""
    BEGIN:VEVENT
    TRANSP:TRANSPARENT
    DTEND;VALUE=DATE:19840615
    UID:{A_BIRTHDAY}
    DTSTAMP:{STAMP}
    X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
    SEQUENCE:0
    X-APPLE-SPECIAL-DAY:BIRTHDAY
    SUMMARY:Grandma’s birthday 🎂
    LAST-MODIFIED:20200103T101010Z
    CREATED:20200103T101010Z
    DTSTART;VALUE=DATE:19840614
    RRULE:FREQ=YEARLY
    """)
    L += apple_alarm("0D1E2F3A-4B5C-4D6E-8F90-A1B2C3D4E5F6", "-PT15H")
    L += ["END:VEVENT"]
    # RDATE list (one property with several values plus a second RDATE line)
    L += block(f"""
    BEGIN:VEVENT
    TRANSP:OPAQUE
    DTEND;TZID=America/New_York:20260305T174500
    UID:{A_PIANO}
    DTSTAMP:{STAMP}
    LOCATION:Riverside Music School
    X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
    SEQUENCE:0
    X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="310 Riverside Dr\\nNew York NY 10025\\nUnited States";X-APPLE-RADIUS=70.5;X-TITLE=Riverside Music School:geo:40.803,-73.968
    SUMMARY:Piano lesson
    LAST-MODIFIED:20260301T150000Z
    CREATED:20260301T150000Z
    DTSTART;TZID=America/New_York:20260305T170000
    RDATE;TZID=America/New_York:20260312T170000,20260326T170000,20260409T170000
    RDATE;TZID=America/New_York:20260423T173000
    """)
    L += apple_alarm("6A7B8C9D-0E1F-4A2B-9C3D-4E5F6A7B8C9D", "-PT30M")
    L += ["END:VEVENT"]
    # weekly Saturday 08:00 NY with an exception that moves one instance
    L += block(f"""
    BEGIN:VEVENT
    TRANSP:OPAQUE
    DTEND;TZID=America/New_York:20260221T090000
    UID:{A_YOGA}
    DTSTAMP:{STAMP}
    LOCATION:Prospect Park
    X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
    SEQUENCE:0
    SUMMARY:Yoga in the park
    LAST-MODIFIED:20260215T090000Z
    CREATED:20260215T090000Z
    DTSTART;TZID=America/New_York:20260221T080000
    RRULE:FREQ=WEEKLY;UNTIL=20260411T035959Z
    EXDATE;TZID=America/New_York:20260328T080000
    END:VEVENT
    BEGIN:VEVENT
    TRANSP:OPAQUE
    DTEND;TZID=America/New_York:20260308T110000
    UID:{A_YOGA}
    DTSTAMP:{STAMP}
    LOCATION:Prospect Park
    X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
    SEQUENCE:1
    RECURRENCE-ID;TZID=America/New_York:20260307T080000
    SUMMARY:Yoga in the park (Sunday)
    LAST-MODIFIED:20260304T090000Z
    CREATED:20260215T090000Z
    DTSTART;TZID=America/New_York:20260308T100000
    END:VEVENT
    """)
    # plain single event with an alarm
    L += block(f"""
    BEGIN:VEVENT
    TRANSP:OPAQUE
    DTEND;TZID=America/New_York:20260616T110000
    UID:{A_DENTIST}
    DTSTAMP:{STAMP}
    LOCATION:Dr. Patel
    X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
    SEQUENCE:0
    SUMMARY:Dentist
    LAST-MODIFIED:20260502T120000Z
    CREATED:20260502T120000Z
    DTSTART;TZID=America/New_York:20260616T103000
    """)
    L += apple_alarm("F1E2D3C4-B5A6-4978-8A9B-0C1D2E3F4A5B", "-P1D")
    L += ["END:VEVENT", "END:VCALENDAR"]
    write_ics("apple_icloud", L)
    write_window("apple_icloud", "2026-03-01", "2026-07-01")


# --------------------------------------------------------------------------
# lf_only  (byte-exact: LF endings, TAB continuation, folds inside UTF-8)
# --------------------------------------------------------------------------

def fold_bytes_raw(raw: bytes, cuts: list[int], cont: list[bytes]) -> list[bytes]:
    """Split `raw` at the given octet offsets; continuation i is prefixed with cont[i]."""
    out = []
    prev = 0
    for i, cut in enumerate(cuts):
        piece = raw[prev:cut]
        out.append(piece if i == 0 else cont[i - 1] + piece)
        prev = cut
    out.append(cont[len(cuts) - 1] + raw[prev:])
    return out


def fold75_any(line: str, cont: bytes = b" ") -> list[bytes]:
    """Fold every 75 octets (first line 75, others 74 + lead), ignoring char boundaries."""
    raw = line.encode("utf-8")
    cuts = []
    pos = 75
    while pos < len(raw):
        cuts.append(pos)
        pos += 74
    if not cuts:
        return [raw]
    return fold_bytes_raw(raw, cuts, [cont] * len(cuts))


def split_inside(raw: bytes, char: str) -> int:
    """Octet offset that falls inside the first occurrence of `char`."""
    at = raw.index(char.encode("utf-8"))
    return at + 1


L_MEETUP = "1043-1796558400-1796565600@events.example.org"
L_FEST = "1051-1797444000-1797458400@events.example.org"
L_ATELIER = "1060-1796389200-1796396400@events.example.org"
L_MARCHE = "1077-1798196400-1798221600@events.example.org"

LF_PRODID = "-//Association Les Amis du Quartier - ECPv6.8.1//NONSGML v1.0//EN"


def lf_only() -> list[str]:
    phys: list[bytes] = []

    def plain(*lines: str) -> None:
        for ln in lines:
            phys.extend(fold75_any(ln))

    plain(
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{LF_PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Les Amis du Quartier",
        "X-ORIGINAL-URL:https://events.example.org",
        "X-WR-CALDESC:Évènements pour Les Amis du Quartier",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Paris",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "DTSTART:20260329T010000",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "DTSTART:20261025T010000",
        "END:STANDARD",
        "END:VTIMEZONE",
    )

    # Event 1: SUMMARY folded so that an 'é' (C3 A9) is split across the fold.
    summary1 = "SUMMARY:Assemblée générale de l'association des riverains – réunion plénière annuelle"
    raw = summary1.encode("utf-8")
    # find an 'é' whose first octet is within the first 75 octets and split it
    idx = [i for i in range(len(raw)) if raw[i : i + 2] == "é".encode()]
    cut = max(i for i in idx if i < 75) + 1  # inside the 2-octet sequence
    summary1_lines = fold_bytes_raw(raw, [cut], [b" "])
    plain(
        "BEGIN:VEVENT",
        f"UID:{L_MEETUP}",
        "DTSTART;TZID=Europe/Paris:20261203T190000",
        "DTEND;TZID=Europe/Paris:20261203T210000",
        "DTSTAMP:20261121T060000Z",
        "CREATED:20261015T081500Z",
        "LAST-MODIFIED:20261118T093012Z",
    )
    phys.extend(summary1_lines)
    # DESCRIPTION folded every 75 octets without regard to characters
    plain(
        "DESCRIPTION:Ordre du jour : rapport moral\\, rapport financier\\, élection du "
        "bureau\\, questions diverses. Un pot de l’amitié clôturera la soirée ☕🍰. "
        "Entrée libre\\, adhésion sur place possible.",
        "URL:https://events.example.org/evenement/assemblee-generale-2026/",
        "LOCATION:Salle des fêtes\\, 12 rue de la République\\, 69002 Lyon\\, France",
        "CATEGORIES:Vie associative",
        "END:VEVENT",
    )

    # Event 2: SUMMARY with an emoji (4 octets) split 2+2 across a TAB fold.
    summary2 = "SUMMARY:🎉 Fête de fin d’année du quartier avec concert\\, buffet et animations 🎶"
    raw = summary2.encode("utf-8")
    emoji_at = raw.index("🎶".encode())
    cut = emoji_at + 2
    # make the first physical line at most 75 octets: fold earlier once, then inside the emoji
    first_cut = 60
    while (raw[first_cut] & 0xC0) == 0x80:
        first_cut += 1  # first fold is a clean one ...
    summary2_lines = fold_bytes_raw(raw, [first_cut, cut], [b"\t", b"\t"])
    plain(
        "BEGIN:VEVENT",
        f"UID:{L_FEST}",
        "DTSTART;TZID=Europe/Paris:20261212T180000",
        "DTEND;TZID=Europe/Paris:20261212T220000",
        "DTSTAMP:20261121T060000Z",
        "CREATED:20261020T172000Z",
        "LAST-MODIFIED:20261119T120000Z",
    )
    phys.extend(summary2_lines)
    plain(
        "DESCRIPTION:Venez nombreux ! Chacun apporte un plat à partager. 🥗🍲🥖",
        "LOCATION:Place Sathonay\\, 69001 Lyon\\, France",
        "END:VEVENT",
    )

    # Event 3: weekly series; its UID line and DTSTART line are folded with TAB
    plain("BEGIN:VEVENT")
    uid_line = f"UID:{L_ATELIER}".encode()
    phys.extend(fold_bytes_raw(uid_line, [20], [b"\t"]))
    dt_line = b"DTSTART;TZID=Europe/Paris:20261201T141500"
    phys.extend(fold_bytes_raw(dt_line, [len(b"DTSTART;TZID=Europe/")], [b"\t"]))
    plain(
        "DTEND;TZID=Europe/Paris:20261201T161500",
        "RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=4",
        "DTSTAMP:20261121T060000Z",
        "SUMMARY:Atelier tricot & crochet – débutants bienvenus",
        "LOCATION:Médiathèque du 1er",
        "END:VEVENT",
    )

    # Event 4: all-day, SUMMARY folded inside a 3-octet character (’ = E2 80 99)
    summary4 = "SUMMARY:Marché de Noël des créateurs – stand de l’association (toute la journée)"
    raw = summary4.encode("utf-8")
    apos = raw.index("’".encode())
    cut4 = apos + 1  # after E2, before 80 99
    assert cut4 <= 75
    plain(
        "BEGIN:VEVENT",
        f"UID:{L_MARCHE}",
        "DTSTART;VALUE=DATE:20261219",
        "DTEND;VALUE=DATE:20261221",
        "DTSTAMP:20261121T060000Z",
    )
    phys.extend(fold_bytes_raw(raw, [cut4], [b" "]))
    plain("END:VEVENT", "END:VCALENDAR")

    data = b"\n".join(phys) + b"\n"
    assert b"\r" not in data
    (DATA / "lf_only.ics").write_bytes(data)
    write_window("lf_only", "2026-12-01", "2027-01-01")


# --------------------------------------------------------------------------
# tz_quirks
# --------------------------------------------------------------------------

T_TRAINING = "training-2026-autumn@tsv-mitte.example"
T_CLUBMEET = "club-meeting-20261024@tsv-mitte.example"
T_NIGHTTRAIN = "night-train-20261025@tsv-mitte.example"
T_OPSCALL = "ops-call-weekly@tsv-mitte.example"
T_NYC = "nyc-visit-20261030@tsv-mitte.example"
T_CHICAGO = "chicago-standup@tsv-mitte.example"
T_TOKYO = "tokyo-partner-20261027@tsv-mitte.example"
T_TOURNEY = "tournament-20261031@tsv-mitte.example"
T_REMINDER = "reminder-fees-20261102@tsv-mitte.example"


def tz_quirks() -> None:
    L = block("""
    BEGIN:VCALENDAR
    VERSION:2.0
    PRODID:-//TSV Mitte//Vereinsplaner 3.4//DE
    CALSCALE:GREGORIAN
    METHOD:PUBLISH
    X-WR-CALNAME:TSV Mitte – Handball
    X-WR-TIMEZONE:Europe/Berlin
    """)
    L += LIBICAL_TZ_NEW_YORK
    L += block(f"""
    BEGIN:VEVENT
    UID:{T_TRAINING}
    DTSTAMP:{STAMP}
    DTSTART:20261019T190000
    DTEND:20261019T203000
    RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20261104T235959
    EXDATE:20261104T190000
    SUMMARY:Training
    LOCATION:Sporthalle Mitte
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_TRAINING}
    DTSTAMP:{STAMP}
    RECURRENCE-ID:20261028T190000
    DTSTART:20261028T200000
    DTEND:20261028T213000
    SUMMARY:Training (late slot)
    LOCATION:Sporthalle Mitte
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_CLUBMEET}
    DTSTAMP:{STAMP}
    DTSTART:20261024T180000
    DTEND:20261024T200000
    SUMMARY:Mitgliederversammlung
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_NIGHTTRAIN}
    DTSTAMP:{STAMP}
    DTSTART:20261025T023000
    DTEND:20261025T063000
    SUMMARY:Nachtzug nach Wien
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_OPSCALL}
    DTSTAMP:{STAMP}
    DTSTART:20261007T150000Z
    DTEND:20261007T153000Z
    RRULE:FREQ=WEEKLY;BYDAY=WE
    SUMMARY:Ops call (UTC)
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_NYC}
    DTSTAMP:{STAMP}
    DTSTART;TZID=America/New_York:20261030T090000
    DTEND;TZID=America/New_York:20261030T120000
    SUMMARY:Visit partner club in NYC
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_CHICAGO}
    DTSTAMP:{STAMP}
    DTSTART;TZID=America/Chicago:20261016T080000
    DTEND;TZID=America/Chicago:20261016T081500
    RRULE:FREQ=WEEKLY;BYDAY=FR;COUNT=5
    SUMMARY:Chicago standup
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_TOKYO}
    DTSTAMP:{STAMP}
    DTSTART;TZID="Asia/Tokyo":20261027T090000
    DTEND;TZID="Asia/Tokyo":20261027T100000
    SUMMARY:Call with Tokyo partner
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_TOURNEY}
    DTSTAMP:{STAMP}
    DTSTART;VALUE=DATE:20261031
    DTEND;VALUE=DATE:20261101
    SUMMARY:Herbstturnier
    END:VEVENT
    BEGIN:VEVENT
    UID:{T_REMINDER}
    DTSTAMP:{STAMP}
    DTSTART:20261102T090000
    END:VEVENT
    END:VCALENDAR
    """)
    write_ics("tz_quirks", L)
    write_window("tz_quirks", "2026-10-19", "2026-11-09")


# --------------------------------------------------------------------------
# dst
# --------------------------------------------------------------------------

D_NY_GAP = "7c1e5a2b-3d4f-4e6a-9b8c-0d1e2f3a4b5c"
D_NY_REPEAT = "8d2f6b3c-4e5a-4f7b-8c9d-1e2f3a4b5c6d"
D_BER_GAP = "9e3a7c4d-5f6b-4a8c-9d0e-2f3a4b5c6d7e"
D_BER_REPEAT = "0f4b8d5e-6a7c-4b9d-8e1f-3a4b5c6d7e8f"
D_BER_MONTHLY = "1a5c9e6f-7b8d-4c0e-9f2a-4b5c6d7e8f90"
D_NY_MONTHLY = "2b6d0f7a-8c9e-4d1f-8a3b-5c6d7e8f90a1"


def nextcloud_event(uid: str, body: str) -> list[str]:
    return block(f"""
    BEGIN:VEVENT
    CREATED:20260201T120000Z
    DTSTAMP:{STAMP}
    LAST-MODIFIED:20260201T120000Z
    SEQUENCE:2
    UID:{uid}
    {body}
    END:VEVENT
    """)


def dst() -> None:
    L = block("""
    BEGIN:VCALENDAR
    PRODID:-//IDN nextcloud.com//Calendar app 5.0.4//EN
    CALSCALE:GREGORIAN
    VERSION:2.0
    """)
    L += nextcloud_event(D_NY_GAP, """
    DTSTART;TZID=America/New_York:20260306T023000
    DTEND;TZID=America/New_York:20260306T033000
    STATUS:CONFIRMED
    SUMMARY:NY nightly backup
    RRULE:FREQ=DAILY;COUNT=4
    """)
    # override addressed by a RECURRENCE-ID that names the non-existent 02:30
    L += nextcloud_event(D_NY_GAP, """
    DTSTART;TZID=America/New_York:20260308T040000
    DTEND;TZID=America/New_York:20260308T050000
    STATUS:CONFIRMED
    SUMMARY:NY nightly backup (after the change)
    RECURRENCE-ID;TZID=America/New_York:20260308T023000
    """)
    L += nextcloud_event(D_NY_REPEAT, """
    DTSTART;TZID=America/New_York:20261030T013000
    DURATION:PT1H
    STATUS:CONFIRMED
    SUMMARY:NY shift handover
    RRULE:FREQ=DAILY;COUNT=4
    """)
    L += nextcloud_event(D_BER_GAP, """
    DTSTART;TZID=Europe/Berlin:20260327T023000
    DTEND;TZID=Europe/Berlin:20260327T033000
    STATUS:CONFIRMED
    SUMMARY:Berlin nightly backup (spring)
    RRULE:FREQ=DAILY;COUNT=4
    """)
    L += nextcloud_event(D_BER_REPEAT, """
    DTSTART;TZID=Europe/Berlin:20261023T023000
    DTEND;TZID=Europe/Berlin:20261023T033000
    STATUS:CONFIRMED
    SUMMARY:Berlin nightly backup (autumn)
    RRULE:FREQ=DAILY;COUNT=4
    """)
    # override of the ambiguous 02:30 on 2026-10-25 (= first, CEST instant)
    L += nextcloud_event(D_BER_REPEAT, """
    DTSTART;TZID=Europe/Berlin:20261025T043000
    DTEND;TZID=Europe/Berlin:20261025T053000
    STATUS:CONFIRMED
    SUMMARY:Berlin nightly backup (autumn, after the change)
    RECURRENCE-ID;TZID=Europe/Berlin:20261025T023000
    """)
    # EU changes happen on the last Sunday of March/October: hits both
    L += nextcloud_event(D_BER_MONTHLY, """
    DTSTART;TZID=Europe/Berlin:20260125T023000
    DTEND;TZID=Europe/Berlin:20260125T040000
    STATUS:CONFIRMED
    SUMMARY:Berlin patch window
    RRULE:FREQ=MONTHLY;BYDAY=-1SU
    """)
    # US fall-back is on the first Sunday of November
    L += nextcloud_event(D_NY_MONTHLY, """
    DTSTART;TZID=America/New_York:20260104T013000
    DTEND;TZID=America/New_York:20260104T023000
    STATUS:CONFIRMED
    SUMMARY:NY patch window
    RRULE:FREQ=MONTHLY;BYDAY=1SU
    """)
    L += LIBICAL_TZ_NEW_YORK + LIBICAL_TZ_BERLIN
    L += ["END:VCALENDAR"]
    write_ics("dst", L)
    write_window("dst", "2026-03-01", "2026-11-10")


# --------------------------------------------------------------------------
# recurrence  (Thunderbird / Lightning style)
# --------------------------------------------------------------------------

R = {
    "daily_count": "3b1f4c8e-2a7d-4e90-b6c5-1d2e3f4a5b6c",
    "biweekly": "4c2a5d9f-3b8e-4fa1-87d6-2e3f4a5b6c7d",
    "lastday": "5d3b6eaf-4c9f-40b2-98e7-3f4a5b6c7d8e",
    "lastfri": "6e4c7fb0-5da0-41c3-a9f8-4a5b6c7d8e9f",
    "leapday": "7f5d80c1-6eb1-42d4-bafa-5b6c7d8e9fa0",
    "lastwkday": "806e91d2-7fc2-43e5-8b0b-6c7d8e9fa0b1",
    "period": "917fa2e3-80d3-44f6-9c1c-7d8e9fa0b1c2",
    "exdates": "a280b3f4-91e4-4507-ad2d-8e9fa0b1c2d3",
    "floating": "b391c405-a2f5-4618-be3e-9fa0b1c2d3e4",
    "allday": "c4a2d516-b306-4729-8f4f-a0b1c2d3e4f5",
    "thisfuture": "d5b3e627-c417-483a-9050-b1c2d3e4f506",
    "unsync": "e6c4f738-d528-494b-a161-c2d3e4f50617",
}


def tb_event(uid: str, body: str, created: str = "20271201T101500Z") -> list[str]:
    return block(f"""
    BEGIN:VEVENT
    CREATED:{created}
    LAST-MODIFIED:{created}
    DTSTAMP:{STAMP}
    UID:{uid}
    {body}
    X-MOZ-GENERATION:1
    END:VEVENT
    """)


def recurrence() -> None:
    L = block("""
    BEGIN:VCALENDAR
    PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
    VERSION:2.0
    """)
    L += LIBICAL_TZ_BERLIN
    L += tb_event(R["daily_count"], """
    SUMMARY:Onboarding sessions
    RRULE:FREQ=DAILY;COUNT=5
    DTSTART;TZID=Europe/Berlin:20280110T090000
    DURATION:PT45M
    """)
    # UNTIL equals the instant of the last wanted instance (inclusive)
    L += tb_event(R["biweekly"], """
    SUMMARY:Gym (every other week)
    RRULE:FREQ=WEEKLY;UNTIL=20280204T070000Z;INTERVAL=2;BYDAY=MO,WE,FR
    DTSTART;TZID=Europe/Berlin:20280103T080000
    DTEND;TZID=Europe/Berlin:20280103T090000
    """)
    L += tb_event(R["lastday"], """
    SUMMARY:Month-end close
    RRULE:FREQ=MONTHLY;BYMONTHDAY=-1
    DTSTART;TZID=Europe/Berlin:20271031T170000
    DTEND;TZID=Europe/Berlin:20271031T180000
    """)
    L += tb_event(R["lastfri"], """
    SUMMARY:Last-Friday drinks
    RRULE:FREQ=MONTHLY;BYDAY=-1FR
    DTSTART;TZID=Europe/Berlin:20271126T170000
    DTEND;TZID=Europe/Berlin:20271126T190000
    """)
    # yearly on Feb 29: only leap years; all-day without DTEND (= 1 day)
    L += tb_event(R["leapday"], """
    SUMMARY:Leap day party
    RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29
    DTSTART;VALUE=DATE:20240229
    """, created="20240101T000000Z")
    L += tb_event(R["lastwkday"], """
    SUMMARY:Timesheets due
    RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1
    DTSTART;TZID=Europe/Berlin:20271231T150000
    DTEND;TZID=Europe/Berlin:20271231T153000
    """)
    # RDATE as PERIOD (explicit end and duration form) on a UTC event
    L += tb_event(R["period"], """
    SUMMARY:Lab booking
    DTSTART:20280112T100000Z
    DTEND:20280112T110000Z
    RDATE;VALUE=PERIOD:20280126T140000Z/20280126T170000Z,20280209T090000Z/PT30M
    """)
    L += tb_event(R["exdates"], """
    SUMMARY:Lunch & learn
    RRULE:FREQ=WEEKLY;COUNT=8
    EXDATE;TZID=Europe/Berlin:20280118T120000,20280215T120000
    EXDATE;TZID=Europe/Berlin:20280201T120000
    DTSTART;TZID=Europe/Berlin:20280104T120000
    DTEND;TZID=Europe/Berlin:20280104T130000
    """)
    # floating daily series straddling the 2028-03-26 EU change (no effect)
    L += tb_event(R["floating"], """
    SUMMARY:Morning run
    RRULE:FREQ=DAILY;COUNT=5
    DTSTART:20280324T070000
    DTEND:20280324T074500
    """)
    # all-day weekly series with an extra RDATE;VALUE=DATE
    L += tb_event(R["allday"], """
    SUMMARY:Home office day
    RRULE:FREQ=WEEKLY;UNTIL=20280128;BYDAY=FR
    RDATE;VALUE=DATE:20280201
    DTSTART;VALUE=DATE:20280107
    DTEND;VALUE=DATE:20280108
    TRANSP:TRANSPARENT
    """)
    # THISANDFUTURE: from 2028-02-03 on, +1h later, 90 minutes, new title
    L += tb_event(R["thisfuture"], """
    SUMMARY:Design sync
    RRULE:FREQ=WEEKLY;COUNT=8;BYDAY=TH
    DTSTART;TZID=Europe/Berlin:20280106T090000
    DTEND;TZID=Europe/Berlin:20280106T100000
    SEQUENCE:0
    """)
    L += tb_event(R["thisfuture"], """
    SUMMARY:Design sync (new slot)
    RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20280203T090000
    DTSTART;TZID=Europe/Berlin:20280203T100000
    DTEND;TZID=Europe/Berlin:20280203T113000
    SEQUENCE:1
    """, created="20280115T080000Z")
    # DTSTART (a Tuesday) not matching BYDAY=TH: DTSTART is still an instance
    L += tb_event(R["unsync"], """
    SUMMARY:Reading group
    RRULE:FREQ=WEEKLY;UNTIL=20280224T230000Z;BYDAY=TH
    DTSTART;TZID=Europe/Berlin:20280201T183000
    DTEND;TZID=Europe/Berlin:20280201T200000
    """)
    L += ["END:VCALENDAR"]
    write_ics("recurrence", L)
    write_window("recurrence", "2028-01-01", "2028-04-01")


# --------------------------------------------------------------------------
# broken
# --------------------------------------------------------------------------

B_OK1 = "20260504-room-a-0001@rooms.acme.example"
B_GARBAGE = "20260506-room-b-0002@rooms.acme.example"
B_UNTERM = "20260507-room-a-0003@rooms.acme.example"
B_OK2 = "20260511-room-c-0004@rooms.acme.example"
B_OK3 = "20260520-room-a-0005@rooms.acme.example"


def broken() -> None:
    L = block(f"""
    BEGIN:VCALENDAR
    VERSION:2.0
    PRODID:-//ACME Corp//Room Booking 3.1//EN
    X-WR-CALNAME:Room bookings
    BEGIN:VEVENT
    UID:{B_OK1}
    DTSTAMP:{STAMP}
    DTSTART:20260504T080000Z
    DTEND:20260504T090000Z
    SUMMARY:Room A: sprint planning
    END:VEVENT
    BEGIN:VEVENT
    UID:{B_GARBAGE}
    DTSTAMP:{STAMP}
    DTSTART:garbage
    DTEND:20260506T100000Z
    SUMMARY:Room B: interview
    END:VEVENT
    BEGIN:VEVENT
    UID:{B_UNTERM}
    DTSTAMP:{STAMP}
    DTSTART:20260507T120000Z
    DTEND:20260507T130000Z
    SUMMARY:Room A: lunch talk
    BEGIN:VEVENT
    UID:{B_OK2}
    DTSTAMP:{STAMP}
    DTSTART:20260511T070000Z
    DTEND:20260511T073000Z
    RRULE:FREQ=WEEKLY;COUNT=3
    SUMMARY:Room C: weekly cleaning
    END:VEVENT
    BEGIN:VEVENT
    UID:{B_OK3}
    DTSTAMP:{STAMP}
    DTSTART;VALUE=DATE:20260520
    SUMMARY:Room A: closed for maintenance
    END:VEVENT
    END:VCALENDAR
    """)
    write_ics("broken", L)
    write_window("broken", "2026-05-01", "2026-06-01")


BM_OK = "bm-ok-0001@feeds.example.net"
BM_NODTSTART = "bm-nodtstart-0002@feeds.example.net"
BM_BADDATE = "bm-baddate-0003@feeds.example.net"
BM_OK2 = "bm-ok-0005@feeds.example.net"


def broken_more() -> None:
    L = block(f"""
    BEGIN:VCALENDAR
    VERSION:2.0
    PRODID:-//Example Net//Feed Exporter 0.9//EN
    BEGIN:VEVENT
    UID:{BM_OK}
    DTSTAMP:{STAMP}
    DTSTART;TZID=Europe/Berlin:20260601T100000
    DTEND;TZID=Europe/Berlin:20260601T110000
    RRULE:FREQ=DAILY;COUNT=3
    SUMMARY:Kick-off week
    END:VEVENT
    BEGIN:VEVENT
    UID:{BM_NODTSTART}
    DTSTAMP:{STAMP}
    DTEND:20260603T150000Z
    SUMMARY:No start time
    END:VEVENT
    BEGIN:VEVENT
    UID:{BM_BADDATE}
    DTSTAMP:{STAMP}
    DTSTART:20260230T100000Z
    DTEND:20260230T110000Z
    SUMMARY:Thirtieth of February
    END:VEVENT
    BEGIN:VEVENT
    DTSTAMP:{STAMP}
    DTSTART:2026-06-05 10:00
    SUMMARY:No UID and an unparsable start
    END:VEVENT
    BEGIN:VEVENT
    UID:{BM_OK2}
    DTSTAMP:{STAMP}
    DTSTART;VALUE=DATE:20260610
    DTEND;VALUE=DATE:20260611
    SUMMARY:Offsite
    END:VEVENT
    END:VCALENDAR
    """)
    write_ics("broken_more", L)
    write_window("broken_more", "2026-06-01", "2026-07-01")


ALL = [
    google_export,
    outlook_exchange,
    apple_icloud,
    lf_only,
    tz_quirks,
    dst,
    recurrence,
    broken,
    broken_more,
]

if __name__ == "__main__":
    for fn in ALL:
        fn()
        print("wrote", fn.__name__)
