#!/usr/bin/env bash
# The README's first command from nothing: a fresh clone, an empty user cache (pip, compiled wheel, model,
# vector index) and an empty MEDCODER_HOME; writes each stage's seconds to benchmarks/results/first_install.json.
#   bash benchmarks/first_install.sh          (about 10 minutes on 2 cores; the registry must be reachable)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d -t medcoder-first.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
git clone -q "$REPO" "$WORK/repo"
mkdir -p "$WORK/cache" "$WORK/home"
START=$SECONDS
( cd "$WORK/repo" && env -u MEDCODER_CACHE_DIR -u MEDCODER_MODELS_DIR XDG_CACHE_HOME="$WORK/cache" \
    MEDCODER_HOME="$WORK/home" bash scripts/quickstart.sh ) 2>&1 | grep -v '^WARNING: Location' | tee "$WORK/log"
TOTAL=$((SECONDS - START))
python3 - "$WORK/log" "$TOTAL" "$(nproc)" >"$REPO/benchmarks/results/first_install.json" <<'PY'
import json, re, sys
stages = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\[(?:install|quickstart)\] (.+): (\d+) s$", open(sys.argv[1]).read(), re.M)}
print(json.dumps({"total_s": int(sys.argv[2]), "cores": int(sys.argv[3]), "stages_s": stages,
                  "target_s": 600}, indent=2))
PY
cat "$REPO/benchmarks/results/first_install.json"
