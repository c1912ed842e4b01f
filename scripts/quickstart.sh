#!/usr/bin/env bash
# One command: install everything, then run medcoder's main job on a sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV="${MEDCODER_VENV:-.venv}"
"$VENV/bin/medcoder" kb show E11.65
"$VENV/bin/medcoder" kb index "diabetes, type 2"
