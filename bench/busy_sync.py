#!/usr/bin/env python3
"""Busy sync against the Google emulator: time and API calls.

Starts `calmesh emulate google` (release build), gives ann@example.com N
timed events (a tenth of them weekly series) over the next 150 days, puts
ann, bob and cat in one busy group on a fresh SQLite file, and measures:

  1. the first sync (2 blocks per busy source item),
  2. a no-change re-sync,
  3. a re-sync after moving 1% of the events,
  4. a re-sync after every sync token expired (full listings, diffed).

API calls come from the emulator's /_emulator/stats. calmesh runs with
CALMESH_RATE_PER_SECOND=100000 so the figures show calmesh, not the
per-account limit (at Google's 600 requests/minute per user, the writes of
step 1 alone would take 2N/600 minutes).

    python3 bench/busy_sync.py [--events N] [--bin PATH]
"""
import argparse, datetime as dt, http.client, json, os, subprocess, sys, tempfile, time, urllib.parse

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/calmesh/target"))
    ap.add_argument("--bin", default=os.path.join(target, "release", "calmesh"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, CALMESH_DATABASE_URL=f"sqlite://{tmp}/calmesh.db", CALMESH_SECRET_KEY="22" * 32,
               CALMESH_RATE_PER_SECOND="100000", CALMESH_RETRY_BASE_MS="5")
    emu = subprocess.Popen([args.bin, "emulate", "google"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = emu.stdout.readline().strip()
        host = urllib.parse.urlparse(base).netloc
        conn = [http.client.HTTPConnection(host)]

        def call(method, path, body=None, token=None, form=False):
            try:
                return call_once(method, path, body, token, form)
            except (BrokenPipeError, ConnectionError, http.client.RemoteDisconnected):
                # The emulator closed the idle keep-alive connection.
                conn[0] = http.client.HTTPConnection(host)
                return call_once(method, path, body, token, form)

        def call_once(method, path, body, token, form):
            headers = {}
            data = None
            if body is not None:
                data = urllib.parse.urlencode(body) if form else json.dumps(body)
                headers["content-type"] = "application/x-www-form-urlencoded" if form else "application/json"
            if token:
                headers["authorization"] = "Bearer " + token
            conn[0].request(method, path, data, headers)
            r = conn[0].getresponse()
            text = r.read()
            if r.status >= 300:
                raise SystemExit(f"{method} {path}: {r.status} {text[:200]}")
            return json.loads(text) if text else None

        people = ["ann@example.com", "bob@example.com", "cat@example.com"]
        creds, tokens = {}, {}
        for p in people:
            creds[p] = call("POST", "/_emulator/accounts", {"email": p})
            tokens[p] = call("POST", "/token", {"grant_type": "refresh_token", "refresh_token": creds[p]["refresh_token"],
                "client_id": creds[p]["client_id"], "client_secret": creds[p]["client_secret"]}, form=True)["access_token"]
        day = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        ids = []
        t0 = time.perf_counter()
        for i in range(args.events):
            start = day + dt.timedelta(days=1 + i % 150, hours=6 + i % 12, minutes=15 * (i % 4))
            ev = {"summary": f"event {i}", "start": {"dateTime": start.isoformat()},
                  "end": {"dateTime": (start + dt.timedelta(minutes=45)).isoformat()}}
            if i % 10 == 0:
                ev["start"]["timeZone"] = ev["end"]["timeZone"] = "UTC"
                ev["recurrence"] = ["RRULE:FREQ=WEEKLY;COUNT=10"]
            ids.append(call("POST", "/calendar/v3/calendars/ann@example.com/events", ev, tokens["ann@example.com"])["id"])
        seeded = time.perf_counter() - t0

        def calmesh(*a):
            out = subprocess.run([args.bin, *a], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"calmesh {a} failed: {out.stdout}\n{out.stderr}")
            return out.stdout

        for p in people:
            c = creds[p]
            calmesh("accounts", "add", "google", "--email", p, "--refresh-token", c["refresh_token"], "--client-id",
                    c["client_id"], "--client-secret", c["client_secret"], "--api-base", base, "--token-url", base + "/token")
        calmesh("rules", "add", "busy", "work", *sum([["--calendar", p + ":primary"] for p in people], []))

        def step(name):
            call("POST", "/_emulator/stats/reset", {})
            t = time.perf_counter()
            report = json.loads(calmesh("sync", "--json"))["rules"][0]
            wall = time.perf_counter() - t
            stats = call("GET", "/_emulator/stats")
            routes = stats["by_route"]
            lists = routes.get("GET /calendar/v3/calendars/{calendarId}/events", 0)
            writes = sum(n for r, n in routes.items() if not r.startswith("GET") and "/token" not in r)
            print(f"{name:<34} {wall:7.2f} s  created {report['created']:>6} updated {report['updated']:>5} "
                  f"deleted {report['deleted']:>4}  API calls {stats['total']:>6} (list {lists}, writes {writes}, "
                  f"token {routes.get('POST /token', 0)})", flush=True)

        print(f"calmesh busy sync, {args.events} events in ann ({args.events // 10} weekly series), group of 3; "
              f"seeding took {seeded:.1f} s", flush=True)
        step("first sync")
        step("no-change re-sync")
        moved = ids[1::100]
        for eid in moved:
            call("PATCH", f"/calendar/v3/calendars/ann@example.com/events/{eid}",
                 {"summary": "moved", "start": {"dateTime": (day + dt.timedelta(days=160, hours=9)).isoformat()},
                  "end": {"dateTime": (day + dt.timedelta(days=160, hours=10)).isoformat()}}, tokens["ann@example.com"])
        step(f"re-sync after moving {len(moved)} events")
        call("POST", "/_emulator/faults", {"expire_sync_tokens_now": True})
        step("re-sync after sync tokens expired")
    finally:
        emu.terminate()

if __name__ == "__main__":
    main()
