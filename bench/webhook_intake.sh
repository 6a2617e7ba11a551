#!/usr/bin/env bash
# Webhook intake throughput and latency (p50/p99) with durable enqueue, on a
# SQLite file and on PostgreSQL: a release build of the calmesh-server
# example `webhook_intake`, which runs the server over real HTTP on
# 127.0.0.1 and sends Google push notifications at it. Figures are printed,
# never checked.
#
#   bench/webhook_intake.sh [--notifications 10000] [--calendars 10] [--in-flight 32]
#
# CALMESH_TEST_POSTGRES_URL names the PostgreSQL server (default: the local
# one, as scripts/test; empty skips PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/calmesh/target}"
export CALMESH_TEST_POSTGRES_URL="${CALMESH_TEST_POSTGRES_URL-postgres://postgres@127.0.0.1:5432/test}"
exec cargo run --quiet --release --locked -p calmesh-server --example webhook_intake -- "$@"
