#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ for SECONDS (default 60) and prints, per
# target, the executions, executions per second and crashes found.
#
#   bench/fuzz.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The machine has a stable
# toolchain, so the build runs with RUSTC_BOOTSTRAP=1 and without a
# sanitizer (the targets are safe Rust: a panic, an overflow caught by debug
# assertions, a timeout or running out of memory is what they look for).
#
# Variables:
#   CALMESH_FUZZ_TARGET_DIR  cargo target dir (default ~/.cache/calmesh/target-fuzz)
#   CALMESH_FUZZ_TARGETS     targets to run (default "ical google_event")
#   CALMESH_FUZZ_JOBS        parallel runs per target (default 1)
#
# Corpora grow in fuzz/corpus/TARGET and crashes land in
# fuzz/artifacts/TARGET; both are git-ignored. Logs go to fuzz/artifacts/.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
targets="${CALMESH_FUZZ_TARGETS:-ical google_event}"
jobs="${CALMESH_FUZZ_JOBS:-1}"
export CARGO_TARGET_DIR="${CALMESH_FUZZ_TARGET_DIR:-$HOME/.cache/calmesh/target-fuzz}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 1
fi

cd "$fuzz"
# Seeds: the committed ones, plus the iCalendar fixture corpus.
mkdir -p corpus/ical corpus/google_event artifacts
cp -n seeds/ical/* corpus/ical/
cp -n "$root"/crates/calmesh-core/tests/data/*.ics corpus/ical/
cp -n seeds/google_event/* corpus/google_event/

build=(--sanitizer none -O -a)
cargo fuzz build "${build[@]}" >artifacts/build.log 2>&1 || {
    cat artifacts/build.log >&2
    exit 1
}

printf '%-14s %14s %10s %8s %8s\n' target executions exec/s seconds crashes
status=0
for target in $targets; do
    mkdir -p "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    log="artifacts/$target.log"
    start=$(date +%s)
    # -max_total_time bounds the run; -rss_limit_mb and -timeout turn
    # runaway memory or time on one input into a reported crash.
    cargo fuzz run "${build[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=16384 \
        -jobs="$jobs" -workers="$jobs" -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || true
    elapsed=$(( $(date +%s) - start ))
    # With -jobs, each job writes fuzz-N.log; sum their final stats.
    logs=("$log")
    if [ "$jobs" -gt 1 ]; then
        mapfile -t logs < <(ls fuzz-*.log 2>/dev/null)
    fi
    runs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "${logs[@]}")
    if [ "$runs" -eq 0 ]; then
        # Stopped by a crash before the final stats: the last status line.
        runs=$(grep -ho '#[0-9]*' "${logs[@]}" | tr -d '#' | sort -n | tail -1)
        runs=${runs:-0}
    fi
    if [ "$jobs" -gt 1 ]; then
        cat "${logs[@]}" >>"$log"
        rm -f "${logs[@]}"
    fi
    after=$(find "artifacts/$target" -type f | wc -l)
    crashes=$((after - before))
    rate=$(( elapsed > 0 ? runs / elapsed : runs ))
    printf '%-14s %14s %10s %8s %8s\n' "$target" "$runs" "$rate" "$elapsed" "$crashes"
    if [ "$crashes" -gt 0 ]; then
        status=1
        find "artifacts/$target" -type f -newer "$log" -o -type f -name 'crash-*' | sort -u | sed 's/^/  /'
    fi
done
exit "$status"
