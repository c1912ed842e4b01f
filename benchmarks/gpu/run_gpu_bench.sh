#!/usr/bin/env bash
# Run llm_bench and score_bench on a machine with an NVIDIA GPU, llama-cpp-python built with CUDA:
# prompt and generation tokens/s, `score` of 30 candidates of one CodiEsp note (batched vs 30 `choose`
# calls), and the ranked workflow's notes per GPU-hour (its model cost is that one judge call per note).
#
#   bash benchmarks/gpu/run_gpu_bench.sh [build|bench|all]   (default: all)
#
# With network: builds through scripts/install.sh (MEDCODER_CUDA=1) and benches test + default.
# Offline (a lent GPU machine that reaches nothing): reads the bundle that
# benchmarks/gpu/prepare_carry.sh made under .gpu-carry/ (a slimmed llama-cpp-python sdist,
# py3.12 wheels, and a model split in parts), builds into $GPU_ENV, and benches that model.
# Results go to ${OUT:-benchmarks/results}/llm_gpu.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE="${1:-all}"
GPU_ENV="${GPU_ENV:-/root/medcoder-gpu}"
RESULTS_DIR="${OUT:-benchmarks/results}"
CARRY=.gpu-carry
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

build() {
  if [ ! -d "$CARRY/build" ]; then
    MEDCODER_CUDA=1 bash scripts/install.sh
    return
  fi
  # the image's python3 already holds cmake, ninja, scikit-build-core, numpy and jinja2: build with
  # it (no isolation, nothing to fetch) and install what it lacks into $GPU_ENV/site
  mkdir -p "$GPU_ENV/site"
  python3 -m pip install --quiet --no-index --no-deps --target "$GPU_ENV/site" "$CARRY"/build/wheels/*.whl
  rm -rf "$GPU_ENV/src" && mkdir -p "$GPU_ENV/src"
  tar xJf "$CARRY"/build/llama_cpp_python-*-slim.tar.xz -C "$GPU_ENV/src"
  local t0=$(date +%s)
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH:-90} -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip wheel --quiet --no-build-isolation --no-deps -w "$GPU_ENV/wheel" "$GPU_ENV"/src/llama_cpp_python-*
  python3 -m pip install --quiet --no-index --no-deps --target "$GPU_ENV/site" "$GPU_ENV"/wheel/llama_cpp_python-*.whl
  echo "llama-cpp-python CUDA build: $(( $(date +%s) - t0 )) s"
  # keep the first model part outside the work tree, where later calls cannot replace it
  cp "$CARRY"/model-*.part* "$GPU_ENV/" 2>/dev/null || true
}

bench() {
  local py=.venv/bin/python models=(test default)
  if [ -d "$GPU_ENV/site" ]; then
    py=python3
    export PYTHONPATH="$GPU_ENV/site"
    cp "$CARRY"/model-*.part* "$GPU_ENV/" 2>/dev/null || true
    if ls "$GPU_ENV"/model-*.part* >/dev/null 2>&1; then
      cat $(ls "$GPU_ENV"/model-*.part* | sort) > "$GPU_ENV/model.gguf"
      models=("$GPU_ENV/model.gguf")
    fi
  fi
  "$py" -c "import llama_cpp; print('GPU offload:', llama_cpp.llama_supports_gpu_offload())"
  mkdir -p "$RESULTS_DIR"
  PYTHONPATH=".:${PYTHONPATH:-}" MEDCODER_HOME="${MEDCODER_HOME:-$GPU_ENV/home}" \
    "$py" benchmarks/llm_bench.py --models "${models[@]}" --repeats "${REPEATS:-5}" --n-ctx "${N_CTX:-2048}" --out "$RESULTS_DIR/llm_gpu.json"
  # the case (note + 30 questions) is made on the CPU machine: `python benchmarks/score_bench.py --save-case
  # benchmarks/gpu/score_case.json`; on the GPU no retrieval index or ranker is needed
  PYTHONPATH=".:${PYTHONPATH:-}" MEDCODER_HOME="${MEDCODER_HOME:-$GPU_ENV/home}" \
    "$py" benchmarks/score_bench.py --case benchmarks/gpu/score_case.json --models "${models[@]}" \
    --out "$RESULTS_DIR/score_gpu.json"
}

case "$STAGE" in
  build) build ;;
  bench) bench ;;
  all) build; bench ;;
  *) echo "usage: $0 [build|bench|all]" >&2; exit 2 ;;
esac
