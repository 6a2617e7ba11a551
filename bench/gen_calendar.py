#!/usr/bin/env python3
"""Deterministic generator of a large, realistic iCalendar file for benchmarks.

    python3 bench/gen_calendar.py --events 10000 --seed 1 --out FILE

Standard library only. The same (--events, --seed) always yields the same
bytes, on any machine and Python 3.8+.

The file imitates a Google Calendar export:

* VCALENDAR header with PRODID/VERSION/CALSCALE/METHOD/X-WR-CALNAME
  (no X-WR-TIMEZONE, see bench/README.md),
* one VTIMEZONE block (Google style: STANDARD/DAYLIGHT with yearly RRULEs)
  for every TZID that is used,
* VEVENTs, in shuffled order, with this mix (of --events):
    ~70 %  single timed events, DTSTART;TZID=... (about 1 in 10 in UTC "Z"
           form instead, as Google writes events created without a zone),
    ~10 %  all-day events (VALUE=DATE, 1..5 days),
    ~15 %  recurring masters: DAILY (some BYDAY=MO..FR), WEEKLY with BYDAY
           (some INTERVAL=2), MONTHLY with an nth weekday (BYDAY=2TU, -1FR..),
           YEARLY (some all-day); each ending by COUNT, UNTIL or never;
           about a quarter with EXDATEs; series start from 2024,
    ~ 5 %  overrides: a VEVENT with the UID of a timed master and a
           RECURRENCE-ID equal to one of its real occurrences, moved one hour
           later (SEQUENCE:1),
* SUMMARY/DESCRIPTION/LOCATION with non-ASCII text (accents, Cyrillic, CJK,
  emoji) and escaped commas/semicolons/newlines, long DESCRIPTIONs,
* ORGANIZER and ATTENDEE lines with parameters (CN quoted when needed),
* some VALARM sub-components,
* content lines folded at 75 octets (never inside a UTF-8 sequence),
* CRLF line endings.

Non-recurring events are spread over 2026-01-01 .. 2027-12-31.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys

PRODID = "-//Google Inc//Google Calendar 70.9054//EN"

# ---------------------------------------------------------------------------
# Time zones: (weight, VTIMEZONE body lines after TZID) -- Google style.
# ---------------------------------------------------------------------------


def _tz_dst(std_name, std_off, dst_name, dst_off, dst_start, dst_rule, std_start, std_rule):
    return [
        "BEGIN:DAYLIGHT",
        f"TZOFFSETFROM:{std_off}",
        f"TZOFFSETTO:{dst_off}",
        f"TZNAME:{dst_name}",
        f"DTSTART:{dst_start}",
        f"RRULE:{dst_rule}",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        f"TZOFFSETFROM:{dst_off}",
        f"TZOFFSETTO:{std_off}",
        f"TZNAME:{std_name}",
        f"DTSTART:{std_start}",
        f"RRULE:{std_rule}",
        "END:STANDARD",
    ]


def _tz_fixed(name, off):
    return [
        "BEGIN:STANDARD",
        f"TZOFFSETFROM:{off}",
        f"TZOFFSETTO:{off}",
        f"TZNAME:{name}",
        "DTSTART:19700101T000000",
        "END:STANDARD",
    ]


ZONES = [
    # (tzid, weight, body)
    ("Europe/Berlin", 28, _tz_dst(
        "CET", "+0100", "CEST", "+0200",
        "19700329T020000", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "19701025T030000", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU")),
    ("America/New_York", 20, _tz_dst(
        "EST", "-0500", "EDT", "-0400",
        "19700308T020000", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "19701101T020000", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU")),
    ("America/Los_Angeles", 12, _tz_dst(
        "PST", "-0800", "PDT", "-0700",
        "19700308T020000", "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "19701101T020000", "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU")),
    ("Europe/London", 12, _tz_dst(
        "GMT", "+0000", "BST", "+0100",
        "19700329T010000", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "19701025T020000", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU")),
    ("Asia/Tokyo", 8, _tz_fixed("JST", "+0900")),
    ("Asia/Kolkata", 7, _tz_fixed("IST", "+0530")),
    ("Australia/Sydney", 7, [
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+1100",
        "TZOFFSETTO:+1000",
        "TZNAME:AEST",
        "DTSTART:19700405T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU",
        "END:STANDARD",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+1000",
        "TZOFFSETTO:+1100",
        "TZNAME:AEDT",
        "DTSTART:19701004T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU",
        "END:DAYLIGHT",
    ]),
    ("America/Sao_Paulo", 6, _tz_fixed("-03", "-0300")),
]

# ---------------------------------------------------------------------------
# Text material (mixed ASCII / non-ASCII).
# ---------------------------------------------------------------------------

SUMMARIES = [
    "Team sync", "1:1 with Alex", "Sprint planning", "Sprint review", "Retro",
    "Design review", "Customer call: ACME Corp", "Lunch", "Dentist",
    "Quarterly business review", "Interview – backend engineer",
    "Réunion d'équipe", "Café mit Jürgen", "Übergabe Projekt Größenwahn",
    "Planung Q3; Budget", "Встреча с клиентом", "Созвон по релизу",
    "東京オフィス定例", "週次ミーティング", "产品评审会", "Revisão de código",
    "Reunião semanal", "Yoga 🧘", "Release party 🎉", "Flight ✈ FRA→JFK",
    "Standup", "Architecture deep dive, part 2", "All hands", "Gym",
    "Kinderarzt", "Elternabend", "Board meeting", "Office hours",
    "Pair programming", "Incident post-mortem", "Onboarding: new hires",
]

RECURRING_SUMMARIES = [
    "Daily standup", "Weekly 1:1", "Team sync", "Wöchentliche Abstimmung",
    "Sprint planning", "Monthly all-hands", "Patch Tuesday", "Gym",
    "Yoga 🧘", "週次ミーティング", "Еженедельный созвон", "Office hours",
    "Lunch & learn", "Book club 📚", "Reunião semanal", "Board meeting",
]

YEARLY_SUMMARIES = [
    "Birthday: Anna 🎂", "Geburtstag Jürgen", "Wedding anniversary",
    "День рождения Ольги", "Company anniversary", "Tax deadline",
    "Renew passport", "結婚記念日",
]

ALLDAY_SUMMARIES = [
    "Vacation", "Urlaub 🌴", "Public holiday", "Conference: RustConf",
    "Off-site", "Out of office", "Feiertag", "出張 (大阪)", "Командировка",
    "Moving day", "Hackathon",
]

LOCATIONS = [
    "", "", "Room 4.12", "Konferenzraum München, 3. OG",
    "Zoom", "https://meet.google.com/abc-defg-hij",
    "Café Größenwahn, Berlin", "東京都千代田区丸の内1-1-1",
    "Москва, ул. Тверская, 7", "Rua Augusta 1500; São Paulo",
    "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA", "Home office",
]

WORDS = (
    "agenda review project status budget roadmap release customer feedback "
    "design backend frontend latency migration calendar sync timezone "
    "recurrence invite attendees notes action items follow-up decision "
    "Überblick Änderungen Qualität Straße Größe Prüfung déjà vu café naïve "
    "résumé jalapeño Ελληνικά данные проект релиз 会議 資料 予定 确认 同步 "
    "🚀 ✅ 📅"
).split()

NAMES = [
    ("Alex Smith", "alex.smith"), ("Jürgen Müller", "juergen.mueller"),
    ("Zoë Ångström", "zoe.angstrom"), ("Ольга Иванова", "olga.ivanova"),
    ("田中 太郎", "taro.tanaka"), ("Doe, Jane", "jane.doe"),
    ("François Lefèvre", "francois.lefevre"), ("Priya Natarajan", "priya.n"),
    ("João Silva", "joao.silva"), ("Chris O'Neil", "chris.oneil"),
    ("Meeting Room 4.12", "c_1882a4rrk6f3qiq5m8bnl0n7d1o4e@resource.calendar.google.com"),
    ("Sam Lee", "sam.lee"), ("Fatima Zahra", "fatima.zahra"),
    ("Łukasz Żółć", "lukasz.zolc"),
]

DOMAINS = ["example.com", "example.org", "example.net", "acme.example"]

# ---------------------------------------------------------------------------
# Formatting helpers.
# ---------------------------------------------------------------------------


def esc_text(s: str) -> str:
    """Escape a TEXT value (RFC 5545 3.3.11)."""
    return (s.replace("\\", "\\\\").replace(";", "\\;")
             .replace(",", "\\,").replace("\n", "\\n"))


def param_value(s: str) -> str:
    """Quote a parameter value if it contains ':', ';' or ','."""
    if any(c in s for c in ':;,'):
        return '"' + s.replace('"', "'") + '"'
    return s


def fold(line: str) -> bytes:
    """Fold a content line at 75 octets, never splitting a UTF-8 sequence."""
    raw = line.encode("utf-8")
    if len(raw) <= 75:
        return raw + b"\r\n"
    out = []
    start = 0
    limit = 75
    while start < len(raw):
        end = min(start + limit, len(raw))
        # back off to a character boundary (not a continuation byte)
        while end < len(raw) and (raw[end] & 0xC0) == 0x80:
            end -= 1
        out.append((b"" if start == 0 else b" ") + raw[start:end] + b"\r\n")
        start = end
        limit = 74  # continuation lines carry the leading space
    return b"".join(out)


def fmt_local(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def fmt_date(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def fmt_utc(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]

# ---------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------

RANGE_START = dt.date(2026, 1, 1)
RANGE_DAYS = (dt.date(2027, 12, 31) - RANGE_START).days + 1  # inclusive
SERIES_START = dt.date(2024, 1, 1)
SERIES_START_DAYS = (dt.date(2027, 6, 30) - SERIES_START).days
HORIZON = dt.datetime(2028, 1, 1)  # occurrences beyond it never matter here
DTSTAMP = "20260101T000000Z"


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.used_zones: list[str] = []
        self.uid_counter = 0

    # -- small random helpers ------------------------------------------------

    def zone(self) -> str:
        tz = self.r.choices([z[0] for z in ZONES], weights=[z[1] for z in ZONES])[0]
        if tz not in self.used_zones:
            self.used_zones.append(tz)
        return tz

    def uid(self) -> str:
        self.uid_counter += 1
        return "%016x%08x@google.com" % (self.r.getrandbits(64), self.uid_counter)

    def sentence(self, n_words: int) -> str:
        ws = [self.r.choice(WORDS) for _ in range(n_words)]
        s = " ".join(ws)
        return s[0].upper() + s[1:] + self.r.choice([".", ".", "!", "?", ";", ","])

    def description(self) -> str | None:
        p = self.r.random()
        if p < 0.30:
            return None
        if p < 0.70:
            return self.sentence(self.r.randint(3, 14))
        # long, multi-paragraph description (will be folded many times)
        paras = []
        for _ in range(self.r.randint(2, 6)):
            paras.append(" ".join(self.sentence(self.r.randint(5, 16))
                                  for _ in range(self.r.randint(1, 4))))
        if self.r.random() < 0.5:
            paras.append("Join: https://meet.google.com/%s-%s-%s"
                         % (self._letters(3), self._letters(4), self._letters(3)))
        return "\n\n".join(paras)

    def _letters(self, n: int) -> str:
        return "".join(self.r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    def email(self, local: str) -> str:
        if "@" in local:
            return local
        return f"{local}@{self.r.choice(DOMAINS)}"

    def people_lines(self) -> list[str]:
        if self.r.random() < 0.35:
            return []
        people = self.r.sample(NAMES, self.r.randint(2, 7))
        org_name, org_local = people[0]
        org_mail = self.email(org_local)
        lines = [f"ORGANIZER;CN={param_value(org_name)}:mailto:{org_mail}"]
        for i, (name, local) in enumerate(people):
            mail = org_mail if i == 0 else self.email(local)
            cutype = "RESOURCE" if "resource.calendar" in mail else "INDIVIDUAL"
            role = "REQ-PARTICIPANT" if self.r.random() < 0.8 else "OPT-PARTICIPANT"
            partstat = "ACCEPTED" if i == 0 else self.r.choice(
                ["ACCEPTED", "ACCEPTED", "NEEDS-ACTION", "DECLINED", "TENTATIVE"])
            rsvp = "" if i == 0 else ";RSVP=TRUE"
            lines.append(
                f"ATTENDEE;CUTYPE={cutype};ROLE={role};PARTSTAT={partstat}{rsvp}"
                f";CN={param_value(name)};X-NUM-GUESTS=0:mailto:{mail}")
        return lines

    def meta_lines(self, seq: int = 0) -> list[str]:
        created = dt.datetime(2023, 6, 1) + dt.timedelta(
            seconds=self.r.randrange(0, 900 * 86400))
        modified = created + dt.timedelta(seconds=self.r.randrange(0, 60 * 86400))
        return [
            f"CREATED:{fmt_utc(created)}",
            f"LAST-MODIFIED:{fmt_utc(modified)}",
            f"SEQUENCE:{seq}",
            "STATUS:" + ("CONFIRMED" if self.r.random() < 0.95 else "TENTATIVE"),
        ]

    def text_lines(self, summary: str) -> list[str]:
        lines = []
        desc = self.description()
        if desc is not None:
            lines.append("DESCRIPTION:" + esc_text(desc))
        loc = self.r.choice(LOCATIONS)
        if loc:
            lines.append("LOCATION:" + esc_text(loc))
        lines.append("SUMMARY:" + esc_text(summary))
        lines.append("TRANSP:" + ("OPAQUE" if self.r.random() < 0.85 else "TRANSPARENT"))
        return lines

    def alarm_lines(self) -> list[str]:
        if self.r.random() >= 0.2:
            return []
        minutes = self.r.choice([10, 15, 30, 60, 1440])
        return [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:This is an event reminder",
            f"TRIGGER:-P0DT{minutes // 60}H{minutes % 60}M0S" if minutes < 1440
            else "TRIGGER:-P1D",
            "END:VALARM",
        ]

    def timed_start(self, day: dt.date) -> dt.datetime:
        hour = self.r.choices(range(6, 22), weights=[1, 3, 6, 9, 9, 8, 5, 7, 8, 8, 7, 5, 3, 2, 2, 1])[0]
        return dt.datetime(day.year, day.month, day.day, hour, self.r.choice([0, 0, 15, 30, 30, 45]))

    def duration(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.r.choice([15, 25, 30, 30, 45, 60, 60, 60, 90, 120, 180]))

    # -- components ----------------------------------------------------------

    def single_timed(self) -> list[str]:
        day = RANGE_START + dt.timedelta(days=self.r.randrange(RANGE_DAYS))
        start = self.timed_start(day)
        end = start + self.duration()
        lines = ["BEGIN:VEVENT"]
        if self.r.random() < 0.1:
            # UTC form ("Z"), as Google writes events without an explicit zone
            lines += [f"DTSTART:{fmt_utc(start)}", f"DTEND:{fmt_utc(end)}"]
        else:
            tz = self.zone()
            lines += [f"DTSTART;TZID={tz}:{fmt_local(start)}",
                      f"DTEND;TZID={tz}:{fmt_local(end)}"]
        lines += [f"DTSTAMP:{DTSTAMP}", f"UID:{self.uid()}"]
        lines += self.people_lines()
        lines += self.meta_lines()
        lines += self.text_lines(self.r.choice(SUMMARIES))
        lines += self.alarm_lines()
        lines.append("END:VEVENT")
        return lines

    def all_day(self) -> list[str]:
        day = RANGE_START + dt.timedelta(days=self.r.randrange(RANGE_DAYS))
        days = self.r.choices([1, 2, 3, 5], weights=[80, 8, 7, 5])[0]
        lines = [
            "BEGIN:VEVENT",
            f"DTSTART;VALUE=DATE:{fmt_date(day)}",
            f"DTEND;VALUE=DATE:{fmt_date(day + dt.timedelta(days=days))}",
            f"DTSTAMP:{DTSTAMP}",
            f"UID:{self.uid()}",
        ]
        lines += self.meta_lines()
        lines += self.text_lines(self.r.choice(ALLDAY_SUMMARIES))
        lines.append("END:VEVENT")
        return lines

    def master(self) -> tuple[list[str], dict | None]:
        """A recurring master. Returns (lines, info for overrides or None)."""
        r = self.r
        kind = r.choices(["DAILY", "WEEKDAYS", "WEEKLY", "MONTHLY", "YEARLY"],
                         weights=[10, 10, 45, 20, 15])[0]
        first = SERIES_START + dt.timedelta(days=r.randrange(SERIES_START_DAYS))
        all_day = kind == "YEARLY" and r.random() < 0.6
        rule = [f"FREQ={'DAILY' if kind == 'WEEKDAYS' else kind}"]

        if kind == "DAILY":
            interval = r.choice([1, 1, 1, 2])
            if interval > 1:
                rule.append(f"INTERVAL={interval}")
            occ = _daily(first, interval)
        elif kind == "WEEKDAYS":
            while first.weekday() > 4:
                first += dt.timedelta(days=1)
            rule.append("BYDAY=MO,TU,WE,TH,FR")
            occ = _weekly(first, 1, [0, 1, 2, 3, 4])
        elif kind == "WEEKLY":
            interval = r.choice([1, 1, 1, 2])
            if interval > 1:
                rule.append(f"INTERVAL={interval}")
            days = sorted(r.sample(range(5), r.choice([1, 1, 1, 2, 3])) + ([5] if r.random() < 0.05 else []))
            # DTSTART must be one of the BYDAY days
            while first.weekday() not in days:
                first += dt.timedelta(days=1)
            rule.append("BYDAY=" + ",".join(WEEKDAYS[d] for d in days))
            occ = _weekly(first, interval, days)
        elif kind == "MONTHLY":
            nth = r.choice([1, 2, 2, 3, 4, -1])
            wd = r.choice([0, 1, 1, 2, 3, 4])
            rule.append(f"BYDAY={nth}{WEEKDAYS[wd]}")
            first = _nth_weekday(first.year, first.month, nth, wd)
            if first < SERIES_START:
                first = _nth_weekday(2024, 2, nth, wd)
            occ = _monthly(first, nth, wd)
        else:  # YEARLY
            if first.day > 28:
                first = first.replace(day=28)
            occ = _yearly(first)

        end_kind = r.choices(["COUNT", "UNTIL", "NONE"], weights=[30, 30, 40])[0]
        tz = None if all_day else self.zone()
        start_t = dt.datetime(first.year, first.month, first.day) if all_day else self.timed_start(first)
        tod = start_t.time()
        dur = dt.timedelta(days=1) if all_day else self.duration()

        # enumerate real occurrences (local wall time) up to the horizon
        occ_days: list[dt.date] = []
        for d in occ:
            if dt.datetime(d.year, d.month, d.day) >= HORIZON:
                break
            occ_days.append(d)
        if end_kind == "COUNT":
            count = r.choice([5, 10, 12, 20, 30, 52, 100, 200, 500])
            rule.append(f"COUNT={count}")
            occ_days = occ_days[:count]
        elif end_kind == "UNTIL":
            until = first + dt.timedelta(days=r.randrange(30, 3 * 365))
            if all_day:
                rule.append(f"UNTIL={fmt_date(until)}")
            else:
                # end of that day in UTC; stay 2 days clear when picking
                # EXDATE/override targets below so zone offsets never matter
                rule.append(f"UNTIL={fmt_date(until)}T235959Z")
                until -= dt.timedelta(days=2)
            occ_days = [d for d in occ_days if d <= until]

        def local(d: dt.date) -> dt.datetime:
            return dt.datetime.combine(d, tod)

        def stamp(d: dt.date) -> str:
            if all_day:
                return f";VALUE=DATE:{fmt_date(d)}"
            return f";TZID={tz}:{fmt_local(local(d))}"

        candidates = occ_days[1:]
        exdates: list[dt.date] = []
        if candidates and r.random() < 0.25:
            exdates = sorted(r.sample(candidates, min(len(candidates), r.randint(1, 4))))

        lines = ["BEGIN:VEVENT", "DTSTART" + stamp(first),
                 "DTEND" + (f";VALUE=DATE:{fmt_date(first + dur)}" if all_day
                            else f";TZID={tz}:{fmt_local(local(first) + dur)}"),
                 "RRULE:" + ";".join(rule)]
        if exdates:
            if r.random() < 0.5:
                lines += ["EXDATE" + stamp(d) for d in exdates]
            else:  # one line, comma-separated values
                vals = [fmt_date(d) if all_day else fmt_local(local(d)) for d in exdates]
                lines.append("EXDATE" + (";VALUE=DATE:" if all_day else f";TZID={tz}:") + ",".join(vals))
        uid = self.uid()
        lines += [f"DTSTAMP:{DTSTAMP}", f"UID:{uid}"]
        lines += self.people_lines()
        lines += self.meta_lines()
        summary = r.choice(YEARLY_SUMMARIES if kind == "YEARLY" else RECURRING_SUMMARIES)
        lines += self.text_lines(summary)
        lines += self.alarm_lines()
        lines.append("END:VEVENT")

        info = None
        if not all_day:
            ex = set(exdates)
            targets = [d for d in candidates if d not in ex and d >= dt.date(2025, 12, 1)]
            if targets:
                info = {"uid": uid, "tz": tz, "tod": tod, "dur": dur,
                        "summary": summary, "targets": targets}
        return lines, info

    def override(self, info: dict, day: dt.date) -> list[str]:
        rid = dt.datetime.combine(day, info["tod"])
        start = rid + dt.timedelta(hours=1)
        tz = info["tz"]
        lines = [
            "BEGIN:VEVENT",
            f"DTSTART;TZID={tz}:{fmt_local(start)}",
            f"DTEND;TZID={tz}:{fmt_local(start + info['dur'])}",
            f"DTSTAMP:{DTSTAMP}",
            f"UID:{info['uid']}",
            f"RECURRENCE-ID;TZID={tz}:{fmt_local(rid)}",
        ]
        lines += self.people_lines()
        lines += self.meta_lines(seq=1)
        lines += self.text_lines(info["summary"] + " (moved)")
        lines.append("END:VEVENT")
        return lines

    # -- whole calendar ------------------------------------------------------

    def calendar(self, n_events: int) -> bytes:
        r = self.r
        n_masters = round(n_events * 0.15)
        n_overrides = round(n_events * 0.05)
        n_allday = round(n_events * 0.10)
        n_single = max(0, n_events - n_masters - n_overrides - n_allday)

        events: list[list[str]] = []
        infos: list[dict] = []
        for _ in range(n_masters):
            lines, info = self.master()
            events.append(lines)
            if info is not None:
                infos.append(info)

        used: set[tuple[str, dt.date]] = set()
        made = 0
        attempts = 0
        while made < n_overrides and infos and attempts < n_overrides * 50:
            attempts += 1
            info = r.choice(infos)
            day = r.choice(info["targets"])
            key = (info["uid"], day)
            if key in used:
                continue
            used.add(key)
            events.append(self.override(info, day))
            made += 1
        # top up with single events if overrides could not all be placed
        n_single += n_overrides - made

        for _ in range(n_single):
            events.append(self.single_timed())
        for _ in range(n_allday):
            events.append(self.all_day())

        r.shuffle(events)

        out = [fold(x) for x in [
            "BEGIN:VCALENDAR",
            f"PRODID:{PRODID}",
            "VERSION:2.0",
            "CALSCALE:GREGORIAN",
            "METHOD:PUBLISH",
            "X-WR-CALNAME:calmesh bench – Kalender 📅",
            "X-WR-CALDESC:Generated by bench/gen_calendar.py (seeded\\, synthetic)",
        ]]
        for tzid, _w, body in ZONES:  # fixed order, only zones in use
            if tzid in self.used_zones:
                out += [fold(x) for x in ["BEGIN:VTIMEZONE", f"TZID:{tzid}",
                                          f"X-LIC-LOCATION:{tzid}"] + body + ["END:VTIMEZONE"]]
        for ev in events:
            out += [fold(x) for x in ev]
        out.append(fold("END:VCALENDAR"))
        return b"".join(out)


# -- occurrence enumerators for the rule shapes generated above --------------
# They yield local dates in order, unbounded; the caller cuts them off.


def _daily(first: dt.date, interval: int):
    d = first
    while True:
        yield d
        d += dt.timedelta(days=interval)


def _weekly(first: dt.date, interval: int, days: list[int]):
    week = first - dt.timedelta(days=first.weekday())  # WKST=MO
    while True:
        for wd in days:
            d = week + dt.timedelta(days=wd)
            if d >= first:
                yield d
        week += dt.timedelta(days=7 * interval)


def _nth_weekday(year: int, month: int, nth: int, wd: int) -> dt.date:
    if nth > 0:
        d = dt.date(year, month, 1)
        d += dt.timedelta(days=(wd - d.weekday()) % 7)
        return d + dt.timedelta(days=7 * (nth - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    d = nxt - dt.timedelta(days=1)
    return d - dt.timedelta(days=(d.weekday() - wd) % 7)


def _monthly(first: dt.date, nth: int, wd: int):
    y, m = first.year, first.month
    while True:
        d = _nth_weekday(y, m, nth, wd)
        if d >= first:
            yield d
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


def _yearly(first: dt.date):
    y = first.year
    while True:
        yield first.replace(year=y)
        y += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10000,
                    help="number of VEVENT components (default 10000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--out", default="-", help="output file, '-' for stdout")
    a = ap.parse_args(argv)
    if a.events < 0:
        ap.error("--events must be >= 0")
    data = Gen(a.seed).calendar(a.events)
    if a.out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(a.out, "wb") as f:
            f.write(data)
        print(f"wrote {a.out}: {len(data)} bytes, {a.events} VEVENTs (seed {a.seed})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
