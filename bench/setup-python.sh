#!/usr/bin/env bash
# Create (or reuse) the Python venv used by the calmesh benchmark baseline.
#
# The venv lives OUTSIDE the repository:
#   ${CALMESH_BENCH_VENV:-$HOME/.cache/calmesh/bench-venv}
#
# Idempotent: re-running it only (re)installs when the pinned set is missing
# or differs; a stamp file records what was installed.
set -euo pipefail

VENV="${CALMESH_BENCH_VENV:-$HOME/.cache/calmesh/bench-venv}"
PYTHON="${PYTHON:-python3}"

# Pinned baseline: the two libraries under comparison plus their runtime
# dependencies, so that every machine measures the same code.
PINS=(
  "icalendar==7.3.0"
  "recurring-ical-events==3.8.2"
  "x-wr-timezone==2.0.1"
  "python-dateutil==2.9.0.post0"
  "six==1.17.0"
  "tzdata==2026.6"
  "click==8.5.1"
  "typing_extensions==4.16.0"
)

STAMP="$VENV/.calmesh-bench-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$WANT" ]] \
   && "$VENV/bin/python" -c 'import icalendar, recurring_ical_events' 2>/dev/null; then
  echo "bench venv up to date: $VENV"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating bench venv: $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
"$VENV/bin/python" -c 'import icalendar, recurring_ical_events' >/dev/null
printf '%s\n' "$WANT" > "$STAMP"

echo "bench venv ready: $VENV"
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null \
  | grep -Ei '^(icalendar|recurring-ical-events|recurring_ical_events|x-wr-timezone|x_wr_timezone|python-dateutil|tzdata|six) ' || true
