#!/usr/bin/env bash
# The README demo: configure and run the main job on the embedded default data (offline).
set -euo pipefail
OUT=${OUT:-out}
VENV=${VENV:-.venv}
T="$VENV/bin/theseus"
mkdir -p "$OUT"
"$T" jobs
