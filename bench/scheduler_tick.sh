#!/usr/bin/env bash
# One scheduler tick over 100k calendars, on a SQLite file and on
# PostgreSQL: a release build of the calmesh-jobs example `scheduler_tick`,
# which seeds a fresh database (10k users x 10 calendars by default: some
# never pulled, some due, some fresh, some with live push channels, some
# users with auto sync off), then per repetition empties the queue and times
# a cold tick (every due calendar enqueued) and a second tick at the same
# instant (nothing new to enqueue). Figures are printed, never checked.
#
#   bench/scheduler_tick.sh [--calendars 100000] [--per-user 10] [--reps 3]
#                           [--backend both|sqlite|postgres]
#
# CALMESH_TEST_POSTGRES_URL names the PostgreSQL server (default: the local
# one, as scripts/test; empty skips PostgreSQL). The example works in a
# schema of its own there and drops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/calmesh/target}"
export CALMESH_TEST_POSTGRES_URL="${CALMESH_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
exec cargo run --quiet --release --locked -p calmesh-jobs --example scheduler_tick -- "$@"
