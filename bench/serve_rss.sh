#!/usr/bin/env bash
# Idle memory of `calmesh serve`: VmRSS (and the peak, VmHWM) from
# /proc/PID/status of the release binary on an empty database and on one
# seeded with 10k calendars that are not due, with a scheduler tick every
# second (`--tick-seconds 1`) and the default workers. Figures are printed,
# never checked.
#
#   bench/serve_rss.sh [--calendars 10000] [--per-user 10] [--seconds 30]
#
# The seeding is the calmesh-jobs example `scheduler_tick --seed-only
# --mix idle` (the seeding of bench/scheduler_tick.sh): every calendar was
# pulled at the seed time (nothing is due for 15 minutes), 18% have a live
# push channel that expires in 3 days (nothing to renew), no rule has a cron
# schedule, and accounts point at the discard port 127.0.0.1:9 (a job that
# did run would fail at once instead of calling Google). So the process only ticks: each tick reads
# every calendar (`calendar_polls`) and every rule (`all_rules`), and enqueues
# nothing but the hourly renewal and the daily cleanup, which the workers
# run without any provider call. The script prints the pulls the ticks
# enqueued (expected 0) and the jobs left in the queue.
#
# SQLite always; PostgreSQL too when CALMESH_TEST_POSTGRES_URL names a
# server (default: the local one, as scripts/test; empty skips it), in a
# schema of its own that is dropped after. CALMESH_SECRET_KEY is set to a
# fresh key for the seeder and the server alike.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/calmesh/target}"
pg_url="${CALMESH_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"

calendars=10000
per_user=10
seconds=30
while [ $# -gt 0 ]; do
    case "$1" in
        --calendars) calendars="$2"; shift 2 ;;
        --per-user) per_user="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

cargo build --release --locked -q -p calmesh --bin calmesh
cargo build --release --locked -q -p calmesh-jobs --example scheduler_tick
bin="$CARGO_TARGET_DIR/release/calmesh"
seeder="$CARGO_TARGET_DIR/release/examples/scheduler_tick"

dir="$(mktemp -d)"
server=""
schemas=()
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    for schema in "${schemas[@]}"; do
        psql "$pg_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
CALMESH_SECRET_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
export CALMESH_SECRET_KEY

# "VmRSS VmHWM Threads" of a process, in KiB (threads as a count).
status_of() {
    awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} /^Threads:/ {t=$2} END {print r, h, t}' "/proc/$1/status"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
now_ns() { date +%s%N; }

# A fresh PostgreSQL schema; sets `url` to the URL that puts it first on the
# search path.
pg_schema() {
    local schema="calmesh_bench_rss_$$_$1"
    psql "$pg_url" -qc "CREATE SCHEMA $schema" >/dev/null
    schemas+=("$schema")
    case "$pg_url" in
        *\?*) url="$pg_url&options[search_path]=$schema" ;;
        *) url="$pg_url?options[search_path]=$schema" ;;
    esac
}

# Jobs by kind and state, one line.
queue_of() {
    local sql="SELECT kind || ' ' || state || ' ' || COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state"
    case "$1" in
        sqlite://*) sqlite3 "${1#sqlite://}" "$sql" ;;
        *) psql "$pg_url" -qAtc "SET search_path TO ${1##*options\[search_path\]=}; $sql" ;;
    esac | paste -sd, - | sed 's/,/, /g'
}

# The mean time a tick took: the mean gap between the "scheduler tick" log
# lines (each is written when a tick ends) less the 1 s sleep between ticks.
tick_time() {
    grep "scheduler tick" "$1" | grep -o 'T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]*' |
        awk -F'[T:]' '{t = $2 * 3600 + $3 * 60 + $4; if (n++) { d = t - p; if (d < 0) d += 86400; s += d }; p = t}
                      END {if (n > 1) printf "%.3f s", s / (n - 1) - 1; else print "?"}'
}

format='%-18s %9s %7s %7s %7s %7s %7s %7s %5s %9s %5s %7s  %s\n'
rows=()
# measure LABEL URL CALENDARS
measure() {
    local label="$1" url="$2" n="$3"
    local out="$dir/serve.out" err="$dir/serve.err" samples="$dir/samples"
    : >"$out"; : >"$err"; : >"$samples"
    RUST_LOG="warn,calmesh::service=debug" "$bin" --database "$url" serve \
        --listen 127.0.0.1:0 --tick-seconds 1 >"$out" 2>"$err" &
    server=$!
    for _ in $(seq 1200); do
        [ -s "$out" ] && break
        kill -0 "$server" 2>/dev/null || { cat "$err" >&2; exit 1; }
        sleep 0.05
    done
    [ -s "$out" ] || { echo "calmesh serve did not start" >&2; cat "$err" >&2; exit 1; }
    local end=$(( $(now_ns) + seconds * 1000000000 ))
    local rss0 rss1 hwm threads0 threads2 smin smed smax
    read -r rss0 _ threads0 < <(status_of "$server")
    for _ in $(seq 1200); do
        grep -q "scheduler tick" "$err" && break
        sleep 0.05
    done
    read -r rss1 _ _ < <(status_of "$server")
    while [ "$(now_ns)" -lt "$end" ]; do
        status_of "$server" | cut -d' ' -f1 >>"$samples"
        sleep 0.5
    done
    read -r _ hwm threads2 < <(status_of "$server")
    local ticks pulls stats
    ticks="$(grep -c "scheduler tick" "$err" || true)"
    pulls="$(grep -o 'pulls: [0-9]*' "$err" | awk '{s += $2} END {print s + 0}')"
    kill -TERM "$server"
    wait "$server" || true
    server=""
    if grep -q "WARN\|ERROR" "$err"; then
        echo "warnings from calmesh serve ($label):" >&2
        grep "WARN\|ERROR" "$err" | head -5 >&2
    fi
    # min, median and max of the samples, in MiB.
    stats="$(sort -n "$samples" | awk '{v[NR] = $1} END {printf "%.1f %.1f %.1f", v[1] / 1024, v[int((NR + 1) / 2)] / 1024, v[NR] / 1024}')"
    read -r smin smed smax <<<"$stats"
    # shellcheck disable=SC2059
    rows+=("$(printf "$format" "$label" "$n" "$(mib "$rss0")" "$(mib "$rss1")" "$smin" "$smed" \
        "$smax" "$(mib "$hwm")" "$ticks" "$(tick_time "$err")" "$pulls" "$threads0/$threads2" \
        "$(queue_of "$url")")")
}

echo "calmesh serve, idle, --tick-seconds 1, default workers ($(nproc) cores), ${seconds} s per run"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

measure "SQLite, empty" "sqlite://$dir/empty.db" 0
"$seeder" --seed-only --database "sqlite://$dir/seeded.db" --calendars "$calendars" \
    --per-user "$per_user" --mix idle
measure "SQLite" "sqlite://$dir/seeded.db" "$calendars"
if [ -n "$pg_url" ]; then
    pg_schema empty
    measure "PostgreSQL, empty" "$url" 0
    pg_schema seeded
    "$seeder" --seed-only --database "$url" --calendars "$calendars" --per-user "$per_user" --mix idle
    measure "PostgreSQL" "$url" "$calendars"
else
    echo "PostgreSQL: skipped (CALMESH_TEST_POSTGRES_URL is empty)"
fi

echo
echo "MiB: start = when the URL is printed; tick1 = after the first tick; min/median/max = VmRSS"
echo "samples until ${seconds} s; VmHWM = peak. tick = mean tick time (gap between ticks less the"
echo "1 s sleep). pulls = pulls the ticks enqueued. threads = at start/at the end."
# shellcheck disable=SC2059
printf "$format" "database" "calendars" "start" "tick1" "min" "median" "max" "VmHWM" "ticks" "tick" \
    "pulls" "threads" "jobs at the end"
for row in "${rows[@]}"; do printf '%s\n' "$row"; done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
