#!/usr/bin/env bash
# One command: install everything, then code a sample note with the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV="${MEDCODER_VENV:-.venv}"
echo "coding examples/aci_bench_D2N069.txt with the full workflow (about 10 s; the model is loaded only where a step asks for it)..."
START=$SECONDS
"$VENV/bin/medcoder" code examples/aci_bench_D2N069.txt --workflow full --model default
echo "[quickstart] coding the sample note: $((SECONDS - START)) s"
