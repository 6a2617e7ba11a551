#!/usr/bin/env python3
"""Second, rule-by-rule expander for the fixtures (standard library only).

This is deliberately independent of both calmesh and the Python oracle
(recurring-ical-events / icalendar / dateutil): it has its own byte-level
unfolder, content-line parser, RRULE engine (the subset the fixtures use) and
time-zone resolution via zoneinfo, and it applies the calmesh rules listed in
../README.md literally:

* DTSTART is always the first instance; RRULE / RDATE (DATE, DATE-TIME,
  PERIOD) / EXDATE;
* overrides matched by UID + RECURRENCE-ID only (SEQUENCE ignored);
  RANGE=THISANDFUTURE shifts later instances by the start delta and gives
  them the override's duration and summary;
* repeated local time -> first instant (fold=0); non-existent local time ->
  moved forward by the gap (zoneinfo fold=0 gives the pre-gap offset, which
  is exactly that);
* X-WR-TIMEZONE applies to floating values only; Windows TZIDs via CLDR;
  IANA TZIDs without VTIMEZONE use the IANA zone (VTIMEZONE rules are never
  read: every TZID used in the fixtures is IANA or CLDR-mapped);
* DTEND-DTSTART is an exact duration; DURATION is nominal for days/weeks
  and exact for hours/minutes/seconds (RFC 5545 3.3.6 / 3.8.2.5).

Usage:  expand_rules.py NAME          -> prints {"instances": ...} JSON
        expand_rules.py --write NAME  -> writes NAME.expected.json (+ problems)
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

DATA = pathlib.Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc

# CLDR windowsZones.xml, territory "001" rows for the ids the corpus uses.
WINDOWS_ZONES = {
    "W. Europe Standard Time": "Europe/Berlin",
    "Pacific Standard Time": "America/Los_Angeles",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Romance Standard Time": "Europe/Paris",
    "GMT Standard Time": "Europe/London",
}


# --------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------

@dataclass
class Prop:
    name: str
    params: dict[str, str]
    value: str


@dataclass
class Comp:
    name: str
    line: int  # physical line of BEGIN
    props: list[Prop] = field(default_factory=list)
    children: list["Comp"] = field(default_factory=list)
    problem: str | None = None

    def get(self, name: str) -> Prop | None:
        for p in self.props:
            if p.name == name:
                return p
        return None

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]


def unfold(data: bytes) -> list[tuple[int, str]]:
    """Logical lines with the physical line number they start on.

    Unfolds on bytes (CRLF or LF, then one SPACE or TAB) *before* decoding,
    so folds inside a UTF-8 sequence are handled.
    """
    phys = data.split(b"\n")
    if phys and phys[-1] == b"":
        phys.pop()
    out: list[tuple[int, bytearray]] = []
    for no, line in enumerate(phys, start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t") and out:
            out[-1][1].extend(line[1:])
        else:
            out.append((no, bytearray(line)))
    return [(no, bytes(b).decode("utf-8")) for no, b in out if b]


def parse_line(line: str) -> Prop:
    # name, then ;param=value (value possibly quoted), then :value
    i = 0
    n = len(line)
    while i < n and line[i] not in ";:":
        i += 1
    name = line[:i].upper()
    params: dict[str, str] = {}
    while i < n and line[i] == ";":
        i += 1
        j = i
        while line[j] != "=":
            j += 1
        pname = line[i:j].upper()
        j += 1
        if line[j] == '"':
            k = line.index('"', j + 1)
            pval = line[j + 1 : k]
            i = k + 1
        else:
            k = j
            while line[k] not in ";:":
                k += 1
            pval = line[j:k]
            i = k
        params[pname] = pval
    assert line[i] == ":", line
    return Prop(name, params, line[i + 1 :])


def parse(data: bytes) -> Comp:
    root = Comp("ROOT", 0)
    stack = [root]
    for no, line in unfold(data):
        p = parse_line(line)
        if p.name == "BEGIN":
            c = Comp(p.value.upper(), no)
            if c.name == "VEVENT" and stack[-1].name == "VEVENT":
                stack[-1].problem = "unterminated VEVENT"
                stack.pop()
            stack[-1].children.append(c)
            stack.append(c)
        elif p.name == "END":
            want = p.value.upper()
            while stack[-1].name != want:
                stack[-1].problem = stack[-1].problem or f"unterminated {stack[-1].name}"
                stack.pop()
            stack.pop()
        else:
            stack[-1].props.append(p)
    (cal,) = root.children
    return cal


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class T:
    """A time value: kind in {'date','floating','utc','zoned'}.

    wall: naive wall-clock datetime (date at 00:00 for dates)
    tz:   zone name for 'zoned'
    """

    kind: str
    wall: dt.datetime
    tz: str | None = None
    fold: int = 0  # only set by from_instant(); parsed values are always fold=0

    def instant(self) -> dt.datetime:
        if self.kind == "utc":
            return self.wall.replace(tzinfo=UTC)
        if self.kind == "zoned":
            return self.wall.replace(tzinfo=ZoneInfo(self.tz), fold=self.fold).astimezone(UTC)
        raise ValueError("no instant for " + self.kind)

    def key(self):
        """Identity key used for EXDATE / RECURRENCE-ID matching and de-dup."""
        if self.kind in ("utc", "zoned"):
            return ("i", self.instant())
        if self.kind == "date":
            return ("d", self.wall.date())
        return ("f", self.wall)

    def sort_key(self) -> dt.datetime:
        # floating and all-day values sort by wall clock read as UTC
        if self.kind in ("utc", "zoned"):
            return self.instant()
        return self.wall.replace(tzinfo=UTC)

    def fmt(self) -> str:
        if self.kind == "date":
            return self.wall.date().isoformat()
        if self.kind == "floating":
            return self.wall.strftime("%Y-%m-%dT%H:%M:%S")
        if self.kind == "utc":
            return self.wall.strftime("%Y-%m-%dT%H:%M:%SZ")
        local = self.instant().astimezone(ZoneInfo(self.tz))
        return local.isoformat(timespec="seconds")

    def plus(self, delta: dt.timedelta, nominal_days: int = 0) -> "T":
        """Add nominal days (wall clock) then an exact delta."""
        wall = self.wall + dt.timedelta(days=nominal_days)
        if self.kind == "zoned":
            # resolve the wall time first, then add exact time
            inst = T("zoned", wall, self.tz, self.fold if not nominal_days else 0).instant() + delta
            return T.from_instant(inst, self.tz)
        return T(self.kind, wall + delta, self.tz)

    @staticmethod
    def from_instant(inst: dt.datetime, tz: str) -> "T":
        local = inst.astimezone(ZoneInfo(tz))
        # keep the *resolved* wall time (after gap shifting) and which of a
        # repeated hour's two instants it is
        return T("zoned", local.replace(tzinfo=None, fold=0), tz, local.fold)


def exact_delta(a: T, b: T) -> dt.timedelta:
    if a.kind in ("utc", "zoned"):
        return b.instant() - a.instant()
    return b.wall - a.wall


DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
DT_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)$")


class Bad(Exception):
    pass


def resolve_tzid(tzid: str) -> str:
    if tzid in WINDOWS_ZONES:
        return WINDOWS_ZONES[tzid]
    try:
        ZoneInfo(tzid)
    except Exception as exc:  # noqa: BLE001
        raise Bad(f"unknown TZID {tzid!r}") from exc
    return tzid


def parse_one(text: str, params: dict[str, str], xwr: str | None) -> T:
    m = DATE_RE.match(text)
    if m and params.get("VALUE", "DATE") == "DATE":
        try:
            d = dt.datetime(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as exc:
            raise Bad(str(exc)) from exc
        return T("date", d)
    m = DT_RE.match(text)
    if not m:
        raise Bad(f"bad date-time {text!r}")
    try:
        wall = dt.datetime(*(int(m[i]) for i in range(1, 7)))
    except ValueError as exc:
        raise Bad(str(exc)) from exc
    if m[7] == "Z":
        return T("utc", wall)
    if "TZID" in params:
        return T("zoned", wall, resolve_tzid(params["TZID"]))
    if xwr:
        return T("zoned", wall, resolve_tzid(xwr))
    return T("floating", wall)


def parse_time_prop(p: Prop, xwr: str | None) -> T:
    return parse_one(p.value, p.params, xwr)


DUR_RE = re.compile(
    r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def parse_duration(text: str) -> tuple[int, dt.timedelta]:
    """(nominal days, exact part)."""
    m = DUR_RE.match(text)
    if not m:
        raise Bad(f"bad duration {text!r}")
    sign = -1 if m[1] == "-" else 1
    days = int(m[2] or 0) * 7 + int(m[3] or 0)
    exact = dt.timedelta(hours=int(m[4] or 0), minutes=int(m[5] or 0), seconds=int(m[6] or 0))
    return sign * days, sign * exact


def unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            out.append("\n" if n in "nN" else n)
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------
# RRULE engine (naive wall clock)
# --------------------------------------------------------------------------

WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def parse_rrule(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if part)


def byday_list(spec: str) -> list[tuple[int | None, int]]:
    out = []
    for item in spec.split(","):
        m = re.match(r"^([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)$", item)
        if not m:
            raise Bad(f"bad BYDAY {item!r}")
        out.append((int(m[1]) if m[1] else None, WEEKDAYS.index(m[2])))
    return out


def month_days(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def rrule_iter(rule: dict[str, str], start: dt.datetime, until_ok, hard_stop: dt.datetime):
    """Yield naive wall-clock instances of the rule (DTSTART only if it matches).

    until_ok(wall) -> bool decides UNTIL (caller knows the value types).
    """
    freq = rule["FREQ"]
    interval = int(rule.get("INTERVAL", "1"))
    count = int(rule["COUNT"]) if "COUNT" in rule else None
    bymonth = [int(x) for x in rule["BYMONTH"].split(",")] if "BYMONTH" in rule else None
    bymday = [int(x) for x in rule["BYMONTHDAY"].split(",")] if "BYMONTHDAY" in rule else None
    byday = byday_list(rule["BYDAY"]) if "BYDAY" in rule else None
    bysetpos = [int(x) for x in rule["BYSETPOS"].split(",")] if "BYSETPOS" in rule else None
    wkst = WEEKDAYS.index(rule.get("WKST", "MO"))
    tod = start.time()
    emitted = 0

    def month_candidates(y: int, m: int) -> list[dt.date]:
        n = month_days(y, m)
        days = set()
        if bymday is not None:
            for d in bymday:
                d2 = d if d > 0 else n + 1 + d
                if 1 <= d2 <= n:
                    days.add(d2)
        if byday is not None:
            bd = set()
            for ordn, wd in byday:
                matching = [d for d in range(1, n + 1) if dt.date(y, m, d).weekday() == wd]
                if ordn is None:
                    bd.update(matching)
                elif 1 <= abs(ordn) <= len(matching):
                    bd.add(matching[ordn - 1] if ordn > 0 else matching[ordn])
            days = bd if bymday is None else days & bd
        if bymday is None and byday is None:
            if start.day <= n:
                days.add(start.day)
        return [dt.date(y, m, d) for d in sorted(days)]

    period = 0
    while True:
        if freq == "DAILY":
            day = start.date() + dt.timedelta(days=period * interval)
            cands = [day]
            if bymonth and day.month not in bymonth:
                cands = []
            if byday and day.weekday() not in [wd for _, wd in byday]:
                cands = []
            if bymday:
                n = month_days(day.year, day.month)
                if not any((d if d > 0 else n + 1 + d) == day.day for d in bymday):
                    cands = []
            first_of_period = dt.datetime.combine(day, tod)
        elif freq == "WEEKLY":
            sd = start.date()
            week0 = sd - dt.timedelta(days=(sd.weekday() - wkst) % 7)
            week = week0 + dt.timedelta(weeks=period * interval)
            wds = [wd for _, wd in byday] if byday else [sd.weekday()]
            cands = sorted(week + dt.timedelta(days=(wd - wkst) % 7) for wd in wds)
            if bymonth:
                cands = [c for c in cands if c.month in bymonth]
            first_of_period = dt.datetime.combine(week, tod)
        elif freq == "MONTHLY":
            mi = start.year * 12 + (start.month - 1) + period * interval
            y, m = divmod(mi, 12)
            m += 1
            cands = month_candidates(y, m) if (not bymonth or m in bymonth) else []
            first_of_period = dt.datetime(y, m, 1, tod.hour, tod.minute, tod.second)
        elif freq == "YEARLY":
            y = start.year + period * interval
            months = bymonth or [start.month]
            cands = []
            for m in months:
                if bymday is None and byday is None:
                    if start.day <= month_days(y, m):
                        cands.append(dt.date(y, m, start.day))
                else:
                    cands.extend(month_candidates(y, m))
            cands.sort()
            first_of_period = dt.datetime(y, 1, 1, tod.hour, tod.minute, tod.second)
        else:
            raise Bad(f"unsupported FREQ {freq}")
        if bysetpos and cands:
            picked = set()
            for pos in bysetpos:
                if 1 <= abs(pos) <= len(cands):
                    picked.add(cands[pos - 1] if pos > 0 else cands[pos])
            cands = sorted(picked)
        for c in cands:
            inst = dt.datetime.combine(c, tod)
            if inst < start:
                continue
            if not until_ok(inst):
                return
            yield inst
            emitted += 1
            if count is not None and emitted >= count:
                return
        if first_of_period > hard_stop:
            return
        period += 1


# --------------------------------------------------------------------------
# expansion
# --------------------------------------------------------------------------

@dataclass
class Inst:
    uid: str
    rid: T | None
    start: T
    end: T
    summary: str | None


def end_of(comp: Comp, start: T, xwr: str | None) -> T:
    if comp.get("DTEND"):
        return parse_time_prop(comp.get("DTEND"), xwr)
    if comp.get("DURATION"):
        days, exact = parse_duration(comp.get("DURATION").value)
        return start.plus(exact, days)
    if start.kind == "date":
        return start.plus(dt.timedelta(0), 1)
    return start


def duration_of(comp: Comp, start: T, xwr: str | None):
    """A function start -> end, applying the component's duration."""
    if comp.get("DTEND"):
        end = parse_time_prop(comp.get("DTEND"), xwr)
        if start.kind == "date":
            days = (end.wall - start.wall).days
            return lambda s: s.plus(dt.timedelta(0), days)
        delta = exact_delta(start, end)
        return lambda s: s.plus(delta)
    if comp.get("DURATION"):
        days, exact = parse_duration(comp.get("DURATION").value)
        return lambda s: s.plus(exact, days)
    if start.kind == "date":
        return lambda s: s.plus(dt.timedelta(0), 1)
    return lambda s: s


def summary_of(comp: Comp) -> str | None:
    p = comp.get("SUMMARY")
    return unescape(p.value) if p else None


def in_window(t: T, lo: dt.date, hi: dt.date) -> bool:
    if t.kind in ("utc", "zoned"):
        a = dt.datetime.combine(lo, dt.time(), UTC)
        b = dt.datetime.combine(hi, dt.time(), UTC)
        return a <= t.instant() < b
    if t.kind == "date":
        return lo <= t.wall.date() < hi
    return dt.datetime.combine(lo, dt.time()) <= t.wall < dt.datetime.combine(hi, dt.time())


def validate(ev: Comp, xwr: str | None) -> str | None:
    if ev.problem:
        return ev.problem
    if ev.get("DTSTART") is None:
        return "missing DTSTART"
    if ev.get("UID") is None:
        # an event without UID is tolerated only if otherwise fine; check below
        pass
    try:
        s = parse_time_prop(ev.get("DTSTART"), xwr)
        if ev.get("DTEND"):
            parse_time_prop(ev.get("DTEND"), xwr)
        if ev.get("RECURRENCE-ID"):
            parse_time_prop(ev.get("RECURRENCE-ID"), xwr)
        del s
    except Bad as exc:
        return str(exc)
    return None


def expand(name: str):
    data = (DATA / f"{name}.ics").read_bytes()
    lo_s, hi_s = (DATA / f"{name}.window").read_text().split()
    lo, hi = dt.date.fromisoformat(lo_s), dt.date.fromisoformat(hi_s)
    cal = parse(data)
    xwr_p = cal.get("X-WR-TIMEZONE")
    xwr = xwr_p.value if xwr_p else None

    problems = []
    by_uid: dict[str, list[Comp]] = {}
    for ev in (c for c in cal.children if c.name == "VEVENT"):
        why = validate(ev, xwr)
        uid_p = ev.get("UID")
        if why:
            problems.append({"uid": uid_p.value if uid_p else None, "line": ev.line, "why": why})
            continue
        by_uid.setdefault(uid_p.value, []).append(ev)

    hard_stop = dt.datetime.combine(hi, dt.time()) + dt.timedelta(days=400)
    out: list[Inst] = []
    for uid, comps in by_uid.items():
        masters = [c for c in comps if c.get("RECURRENCE-ID") is None]
        overrides = [c for c in comps if c.get("RECURRENCE-ID") is not None]
        assert len(masters) == 1, (uid, len(masters))
        master = masters[0]
        start0 = parse_time_prop(master.get("DTSTART"), xwr)
        recurring = any(master.get(k) for k in ("RRULE", "RDATE"))
        dur = duration_of(master, start0, xwr)

        # instance starts (original), keyed for dedup
        starts: dict[tuple, T] = {start0.key(): start0}
        period_end: dict[tuple, T] = {}
        for rp in master.all("RRULE"):
            rule = parse_rrule(rp.value)
            until_ok = lambda w: True  # noqa: E731
            if "UNTIL" in rule:
                # a floating UNTIL takes X-WR-TIMEZONE like any floating value
                u = parse_one(rule["UNTIL"], {}, xwr)
                if start0.kind == "date":
                    until_ok = lambda w, u=u: w.date() <= u.wall.date()  # noqa: E731
                elif start0.kind == "floating":
                    until_ok = lambda w, u=u: w <= u.wall  # noqa: E731
                else:
                    assert u.kind in ("utc", "zoned"), "UNTIL must be UTC for zoned/UTC DTSTART"
                    until_ok = (  # noqa: E731
                        lambda w, u=u: T(start0.kind, w, start0.tz).instant() <= u.instant()
                    )
            for w in rrule_iter(rule, start0.wall, until_ok, hard_stop):
                t = T(start0.kind, w, start0.tz)
                starts.setdefault(t.key(), t)
        for rp in master.all("RDATE"):
            for v in rp.value.split(","):
                if rp.params.get("VALUE") == "PERIOD" or "/" in v:
                    a, b = v.split("/")
                    ts = parse_one(a, rp.params, xwr)
                    if b.startswith(("P", "+P", "-P")):
                        days, exact = parse_duration(b)
                        te = ts.plus(exact, days)
                    else:
                        te = parse_one(b, rp.params, xwr)
                    starts.setdefault(ts.key(), ts)
                    period_end[ts.key()] = te
                else:
                    t = parse_one(v, rp.params, xwr)
                    starts.setdefault(t.key(), t)
        for xp in master.all("EXDATE"):
            for v in xp.value.split(","):
                t = parse_one(v, xp.params, xwr)
                starts.pop(t.key(), None)

        ov_by_key = {}
        thisandfuture = []
        for ov in overrides:
            rp = ov.get("RECURRENCE-ID")
            rid = parse_time_prop(rp, xwr)
            ov_by_key[rid.key()] = ov
            if rp.params.get("RANGE", "").upper() == "THISANDFUTURE":
                thisandfuture.append((rid, ov))
        for k in ov_by_key:
            assert k in starts, (uid, "override of a non-instance", k)

        for k, orig in sorted(starts.items(), key=lambda kv: kv[1].sort_key()):
            rid = orig if recurring else None
            if k in ov_by_key:
                ov = ov_by_key[k]
                s = parse_time_prop(ov.get("DTSTART"), xwr)
                e = end_of(ov, s, xwr)
                out.append(Inst(uid, rid, s, e, summary_of(ov)))
                continue
            # latest THISANDFUTURE override whose RECURRENCE-ID is earlier
            tf = None
            for r, ov in thisandfuture:
                if r.sort_key() < orig.sort_key() and (tf is None or r.sort_key() > tf[0].sort_key()):
                    tf = (r, ov)
            if tf:
                r, ov = tf
                os_ = parse_time_prop(ov.get("DTSTART"), xwr)
                delta = exact_delta(r, os_)
                s = orig.plus(delta)
                e = duration_of(ov, os_, xwr)(s)
                out.append(Inst(uid, rid, s, e, summary_of(ov)))
                continue
            e = period_end[k] if k in period_end else dur(orig)
            out.append(Inst(uid, rid, orig, e, summary_of(master)))

    out = [i for i in out if in_window(i.start, lo, hi)]
    out.sort(key=lambda i: (i.start.sort_key(), i.uid, i.rid.sort_key() if i.rid else dt.datetime.min.replace(tzinfo=UTC)))
    instances = [
        {
            "uid": i.uid,
            "recurrence_id": i.rid.fmt() if i.rid else None,
            "start": i.start.fmt(),
            "end": i.end.fmt(),
            "summary": i.summary,
        }
        for i in out
    ]
    return {"instances": instances}, problems


def dump(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    write = "--write" in argv
    names = [a for a in argv if not a.startswith("--")]
    for name in names:
        result, problems = expand(name)
        if write:
            (DATA / f"{name}.expected.json").write_text(dump(result))
            pj = DATA / f"{name}.problems.json"
            if problems:
                pj.write_text(dump([{"uid": p["uid"], "line": p["line"]} for p in problems]))
            elif pj.exists():
                pj.unlink()
        else:
            print(dump(result), end="")
            for p in problems:
                print("PROBLEM", p, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
