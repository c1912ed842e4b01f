#!/usr/bin/env bash
# Build the virtual environment from nothing: pinned dependencies, medcoder itself, the test model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MEDCODER_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# constraints.txt pins every package CI tested; llama-cpp-python builds from source (about 5 min on 2 cores, cached afterwards)
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
echo "medcoder installed in $VENV"
