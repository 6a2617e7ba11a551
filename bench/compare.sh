#!/usr/bin/env bash
# calmesh vs. icalendar + recurring-ical-events: parse + expand one year.
#
#   bench/compare.sh [--events N] [--seed N] [--runs N] [--from D] [--to D]
#                    [--reuse-python] [--keep]
#
# Environment:
#   CALMESH_BIN              calmesh binary (default: release/calmesh in this
#                            checkout's cargo target dir, as cargo metadata
#                            reports it, so CARGO_TARGET_DIR is honoured)
#   CALMESH_BENCH_VENV       Python venv (default ~/.cache/calmesh/bench-venv)
#   CALMESH_BENCH_DIR        work dir for the generated file and results
#                            (default: a fresh temp dir, removed at exit)
#   CALMESH_BENCH_TARGET     required speed ratio (default 50)
#   CALMESH_BENCH_STRICT=1   exit 1 unless calmesh exists, the instance
#                            counts match and the ratio reaches the target
#   CALMESH_BENCH_SKIP_SETUP=1  do not run bench/setup-python.sh
#
# See bench/README.md for what is measured.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ORIG_PWD="$PWD"

EVENTS=10000
SEED=1
RUNS=3
FROM=2026-01-01
TO=2027-01-01
REUSE_PYTHON=0
KEEP=0

usage() { awk 'NR==1{next} /^#/{sub(/^# ?/,"");print;next} {exit}' "$0"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --from) FROM="$2"; shift 2 ;;
    --to) TO="$2"; shift 2 ;;
    --reuse-python) REUSE_PYTHON=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

VENV="${CALMESH_BENCH_VENV:-$HOME/.cache/calmesh/bench-venv}"
# CALMESH_BIN: a path (relative to the caller's directory) or a command name
# on PATH; the default is the release build of this checkout.
if [[ -n "${CALMESH_BIN:-}" ]]; then
  BIN="$CALMESH_BIN"
  if [[ "$BIN" != */* ]]; then
    BIN="$(command -v "$BIN" || echo "$BIN")"
  elif [[ "$BIN" != /* ]]; then
    BIN="$ORIG_PWD/$BIN"
  fi
else
  # Ask cargo where the target dir is (honours CARGO_TARGET_DIR and
  # .cargo/config.toml); fall back to ./target.
  TARGET_DIR=""
  if command -v cargo >/dev/null 2>&1 && [[ -f "$ROOT/Cargo.toml" ]]; then
    TARGET_DIR="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || true)"
  fi
  if [[ -z "$TARGET_DIR" ]]; then
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    [[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
  fi
  BIN="$TARGET_DIR/release/calmesh"
fi
TARGET="${CALMESH_BENCH_TARGET:-50}"
STRICT="${CALMESH_BENCH_STRICT:-0}"

if [[ -n "${CALMESH_BENCH_DIR:-}" ]]; then
  WORK="$CALMESH_BENCH_DIR"
  [[ "$WORK" == /* ]] || WORK="$ORIG_PWD/$WORK"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/calmesh-bench.XXXXXX")"
  if [[ "$KEEP" != 1 ]]; then
    trap 'rm -rf "$WORK"' EXIT
  fi
fi

# 1. Python environment (idempotent).
if [[ "${CALMESH_BENCH_SKIP_SETUP:-0}" != 1 ]]; then
  bash "$HERE/setup-python.sh" >&2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "compare.sh: no Python venv at $VENV (run bench/setup-python.sh)" >&2
  exit 1
fi

# 2. The calendar (deterministic, stdlib only).
ICS="$WORK/calendar-e${EVENTS}-s${SEED}.ics"
python3 "$HERE/gen_calendar.py" --events "$EVENTS" --seed "$SEED" --out "$ICS"
ICS_SHA="$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$ICS")"

# 3. Python baseline.
PY_JSON="$WORK/python.json"
PY_KEY="$WORK/python.key"
KEY="$ICS_SHA $FROM $TO $RUNS $(cat "$VENV/.calmesh-bench-pins" 2>/dev/null | tr '\n' ' ')"
if [[ "$REUSE_PYTHON" == 1 && -s "$PY_JSON" && -f "$PY_KEY" && "$(cat "$PY_KEY")" == "$KEY" ]]; then
  echo "reusing Python baseline from $PY_JSON" >&2
else
  echo "running Python baseline (best of $RUNS; this takes a while) ..." >&2
  "$VENV/bin/python" "$HERE/python_baseline.py" "$ICS" --from "$FROM" --to "$TO" --runs "$RUNS" > "$PY_JSON.tmp"
  mv "$PY_JSON.tmp" "$PY_JSON"
  printf '%s' "$KEY" > "$PY_KEY"
fi

# 4. calmesh: one captured run (counts + warm-up), then best-of-N to /dev/null.
RS_JSON="$WORK/calmesh.json"
rm -f "$RS_JSON"
if [[ -x "$BIN" ]]; then
  echo "running calmesh: $BIN (best of $RUNS) ..." >&2
  python3 - "$BIN" "$ICS" "$FROM" "$TO" "$RUNS" "$WORK/calmesh-out.json" "$RS_JSON" <<'PY'
import json, subprocess, sys, time
bin_, ics, frm, to, runs, out_path, res_path = sys.argv[1:]
cmd = [bin_, "ical", "expand", ics, "--from", frm, "--to", to, "--json"]
res = {"command": cmd}
with open(out_path, "wb") as out:
    p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE)
res["exit_code"] = p.returncode
res["stderr_tail"] = p.stderr.decode("utf-8", "replace")[-2000:]
if p.returncode == 0:
    try:
        with open(out_path, "rb") as f:
            doc = json.load(f)
        res["instances"] = len(doc.get("instances", []))
        res["problems"] = len(doc.get("problems", []))
    except Exception as e:  # keep timing even if the output is not valid JSON
        res["json_error"] = f"{type(e).__name__}: {e}"
    times = []
    for _ in range(int(runs)):
        t0 = time.perf_counter()
        q = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        if q.returncode != 0:
            res["exit_code"] = q.returncode
            break
    res["seconds"] = min(times)
    res["all_seconds"] = times
with open(res_path, "w") as f:
    json.dump(res, f)
PY
else
  echo "" >&2
  echo "NOTE: calmesh binary not found at '$BIN' -- showing Python figures only." >&2
  echo "      Build it with 'cargo build --release' or point CALMESH_BIN at it." >&2
  echo "" >&2
fi

# 5. Table.
python3 - "$PY_JSON" "$RS_JSON" "$ICS" "$FROM" "$TO" "$RUNS" "$TARGET" "$STRICT" "$BIN" <<'PY'
import json, os, sys
py_path, rs_path, ics, frm, to, runs, target, strict, bin_ = sys.argv[1:]
target = float(target)
py = json.load(open(py_path))
rs = json.load(open(rs_path)) if os.path.exists(rs_path) else None

v = py.get("versions", {})
print()
print(f"calmesh parse+expand benchmark: window [{frm}, {to}), best of {runs} runs, {os.cpu_count()} CPUs")
print(f"file: {ics}")
print(f"python: {v.get('python','?')}, icalendar {v.get('icalendar','?')}, "
      f"recurring-ical-events {v.get('recurring-ical-events','?')}")
print()
hdr = f"{'side':<10} {'bytes':>10} {'events':>7} {'instances':>10} {'seconds':>9} {'events/s':>11} {'MB/s':>8}"
print(hdr)
print("-" * len(hdr))
def row(name, nbytes, events, inst, secs):
    eps = events / secs if secs else float("nan")
    mbs = nbytes / 1e6 / secs if secs else float("nan")
    print(f"{name:<10} {nbytes:>10} {events:>7} {str(inst):>10} {secs:>9.4f} {eps:>11.1f} {mbs:>8.2f}")
nbytes, events = py["bytes"], py["components"]
row("python", nbytes, events, py["instances"], py["total_seconds"])
print(f"{'':<10} (parse {py['parse_seconds']:.4f} s + expand {py['expand_seconds']:.4f} s, in-process; "
      f"imports {py.get('import_seconds', 0):.3f} s not counted)")

failures = []
if rs is None:
    print(f"{'calmesh':<10} NOT RUN: no binary at {bin_} (cargo build --release, or set CALMESH_BIN)")
    failures.append("calmesh binary missing")
elif rs.get("exit_code") != 0 or "seconds" not in rs:
    print(f"{'calmesh':<10} FAILED: exit code {rs.get('exit_code')}")
    tail = rs.get("stderr_tail", "").strip()
    if tail:
        print("  stderr (tail):")
        for line in tail.splitlines()[-15:]:
            print("    " + line)
    failures.append("calmesh failed")
else:
    inst = rs.get("instances", "?")
    row("calmesh", nbytes, events, inst, rs["seconds"])
    print(f"{'':<10} (whole process wall time incl. start-up and JSON output to /dev/null; "
          f"problems reported: {rs.get('problems', '?')})")
    if "json_error" in rs:
        print(f"  calmesh output was not valid JSON: {rs['json_error']}")
        failures.append("calmesh output not JSON")
    print()
    ratio = py["total_seconds"] / rs["seconds"]
    verdict = "OK" if ratio >= target else "BELOW TARGET"
    if ratio < target:
        failures.append(f"ratio {ratio:.1f}x < {target:g}x")
    print(f"speed ratio (python / calmesh): {ratio:.1f}x   (target {target:g}x: {verdict})")
    rie_n = py["instances"]
    utc_n = py.get("instances_start_in_window_utc")
    print(f"instances: python {rie_n} (recurring-ical-events: overlaps window, bounds in each event's zone)")
    if utc_n is not None:
        print(f"           python {utc_n} (start in [from, to) at UTC midnight: calmesh's --tz UTC semantics)")
    print(f"           calmesh {inst}")
    if inst == rie_n:
        print("           -> match")
    elif utc_n is not None and inst == utc_n:
        print(f"           -> calmesh matches python under calmesh's window semantics; "
              f"vs recurring-ical-events: calmesh - python = {inst - rie_n:+d} (window semantics, see bench/README.md)")
    else:
        d = f"{inst - rie_n:+d}" if isinstance(inst, int) else "?"
        print(f"           -> MISMATCH (calmesh - python = {d})")
        failures.append("instance count mismatch")
print()
if strict == "1" and failures:
    print("STRICT: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
PY

if [[ -n "${CALMESH_BENCH_DIR:-}" || "$KEEP" == 1 ]]; then
  echo "files kept in $WORK" >&2
fi
