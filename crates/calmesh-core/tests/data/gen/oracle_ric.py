#!/usr/bin/env python3
"""Expand a fixture with the Python oracle: icalendar + recurring-ical-events
(+ x-wr-timezone for files that carry X-WR-TIMEZONE) and compare the result
with expand_rules.py.

Needs a venv OUTSIDE the repository:

    python3 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install icalendar recurring-ical-events x-wr-timezone
    /tmp/oracle-venv/bin/python oracle_ric.py NAME...

For every instance it prints what the oracle said in two spellings:
`raw` is the oracle's own value (wall clock + the utcoffset() the oracle's
tzinfo reports, UTC as Z), `norm` is the same instant re-expressed in the
instance's zone (astimezone round trip), which is what the expected files
use.  Differences against expand_rules.py are listed per instance; each one
must be explained in ../ORACLE_NOTES.md.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import sys
import traceback

import icalendar
import recurring_ical_events
import x_wr_timezone

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import expand_rules  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parent.parent
UTC = dt.timezone.utc


def is_utc(tz) -> bool:
    if tz is None:
        return False
    return tz is UTC or str(tz) in ("UTC", "Etc/UTC", "utc") or getattr(tz, "key", "") == "UTC"


def fmt_raw(v) -> str:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            return v.strftime("%Y-%m-%dT%H:%M:%S")
        if is_utc(v.tzinfo):
            return v.strftime("%Y-%m-%dT%H:%M:%SZ")
        return v.isoformat(timespec="seconds")
    return v.isoformat()


def fmt_norm(v) -> str:
    if isinstance(v, dt.datetime) and v.tzinfo is not None and not is_utc(v.tzinfo):
        v = v.astimezone(UTC).astimezone(v.tzinfo)
    return fmt_raw(v)


def inst_key(v):
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v.astimezone(UTC)
    return dt.datetime.combine(v, dt.time(), UTC)


def in_window(v, lo: dt.date, hi: dt.date) -> bool:
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            return dt.datetime.combine(lo, dt.time()) <= v < dt.datetime.combine(hi, dt.time())
        return dt.datetime.combine(lo, dt.time(), UTC) <= v.astimezone(UTC) < dt.datetime.combine(hi, dt.time(), UTC)
    return lo <= v < hi


def sanitize(name: str, data: bytes) -> bytes:
    """Drop the components expand_rules.py reports as broken.

    icalendar cannot load the broken fixtures at all, so the oracle is run on
    a copy without the broken VEVENTs: each is cut from its BEGIN:VEVENT line
    to its END:VEVENT, or to the line before the next BEGIN:VEVENT when it is
    unterminated.
    """
    _, problems = expand_rules.expand(name)
    if not problems:
        return data
    lines = data.split(b"\n")
    drop = set()
    for p in problems:
        i = p["line"] - 1
        assert lines[i].rstrip(b"\r") == b"BEGIN:VEVENT"
        drop.add(i)
        j = i + 1
        while True:
            ln = lines[j].rstrip(b"\r")
            if ln == b"BEGIN:VEVENT":
                break
            drop.add(j)
            if ln == b"END:VEVENT":
                break
            j += 1
    return b"\n".join(ln for k, ln in enumerate(lines) if k not in drop)


def oracle(name: str, use_xwr: bool = True, clean: bool = False):
    data = (DATA / f"{name}.ics").read_bytes()
    if clean:
        data = sanitize(name, data)
    lo_s, hi_s = (DATA / f"{name}.window").read_text().split()
    lo, hi = dt.date.fromisoformat(lo_s), dt.date.fromisoformat(hi_s)
    cal = icalendar.Calendar.from_ical(data)
    if use_xwr and cal.get("X-WR-TIMEZONE"):
        cal = x_wr_timezone.to_standard(cal)
    recurring_uids = {
        str(c["UID"])
        for c in cal.walk("VEVENT")
        if "RECURRENCE-ID" not in c and ("RRULE" in c or "RDATE" in c)
    }
    # of() always applies x_wr_timezone.to_standard; CalendarQuery does not
    q = recurring_ical_events.of(cal) if use_xwr else recurring_ical_events.CalendarQuery(cal)
    # wide query: the window is on *start*, the oracle's between() is on overlap
    occ = q.between(lo - dt.timedelta(days=400), hi + dt.timedelta(days=400))
    out = []
    for ev in occ:
        s = ev["DTSTART"].dt
        if not in_window(s, lo, hi):
            continue
        e = ev["DTEND"].dt if "DTEND" in ev else s
        uid = str(ev["UID"])
        rid = ev["RECURRENCE-ID"].dt if (uid in recurring_uids and "RECURRENCE-ID" in ev) else None
        summ = str(ev["SUMMARY"]) if "SUMMARY" in ev else None
        out.append(
            {
                "uid": uid,
                "recurrence_id_raw": fmt_raw(rid) if rid is not None else None,
                "recurrence_id": fmt_norm(rid) if rid is not None else None,
                "start_raw": fmt_raw(s),
                "start": fmt_norm(s),
                "end_raw": fmt_raw(e),
                "end": fmt_norm(e),
                "summary": summ,
                "status": str(ev.get("STATUS")) if ev.get("STATUS") else None,
                "_k": inst_key(s),
            }
        )
    out.sort(key=lambda i: (i["_k"], i["uid"]))
    for i in out:
        del i["_k"]
    return out


def compare(name: str, use_xwr: bool = True) -> int:
    print(f"===== {name} (x_wr_timezone.to_standard: {use_xwr})")
    try:
        ora = oracle(name, use_xwr)
    except Exception as exc:  # noqa: BLE001
        print(f"ORACLE FAILED on the file as stored: {type(exc).__name__}: {str(exc)[:160]}")
        print("  retrying without the components expand_rules.py reports as broken")
        ora = oracle(name, use_xwr, clean=True)
    rules, problems = expand_rules.expand(name)
    rules = rules["instances"]
    print(f"oracle: {len(ora)} instances, rules: {len(rules)} instances, problems: {len(problems)}")

    def key(i):
        return (i["uid"], i["recurrence_id"] or i["start"])

    def index(items):
        out = {}
        for i in items:
            k = key(i)
            while k in out:  # the oracle may repeat a RECURRENCE-ID
                k = (k[0], k[1] + "#dup")
            out[k] = i
        return out

    ok = index(ora)
    rk = index(rules)
    diffs = 0
    for k in sorted(set(ok) | set(rk), key=str):
        o, r = ok.get(k), rk.get(k)
        if o is None:
            print("  ONLY IN RULES:", json.dumps(r, ensure_ascii=False))
            diffs += 1
            continue
        if r is None:
            print("  ONLY IN ORACLE:", json.dumps(o, ensure_ascii=False))
            diffs += 1
            continue
        for f in ("start", "end", "recurrence_id", "summary"):
            raw = o.get(f + "_raw", o[f])
            if r[f] != o[f] or r[f] != raw:
                print(f"  DIFF {k[0][:28]} {k[1]} {f}: oracle raw={raw!r} norm={o[f]!r} rules={r[f]!r}")
                diffs += 1
    # ordering check (the expected files are sorted by instant then uid)
    if [key(i) for i in ora] != [key(i) for i in rules] and set(ok) == set(rk):
        print("  ORDER differs (same set)")
    print(f"  {diffs} differences")
    return diffs


if __name__ == "__main__":
    args = sys.argv[1:]
    use_xwr = "--no-xwr" not in args
    for n in [a for a in args if not a.startswith("--")]:
        compare(n, use_xwr)
