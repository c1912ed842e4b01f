#!/usr/bin/env bash
# Make the offline bundle for a GPU machine that reaches no registry (see run_gpu_bench.sh):
# .gpu-carry/build (slimmed llama-cpp-python sdist + py3.12 wheels) and the test model in parts
# small enough to travel (each call carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
CARRY=.gpu-carry
rm -rf "$CARRY" && mkdir -p "$CARRY/build/wheels"
V=$(grep -i '^llama[-_]cpp[-_]python==' constraints.txt | cut -d= -f3)
TMP=$(mktemp -d)
"$PY" -m pip download --quiet --no-deps --no-binary :all: -d "$TMP" "llama-cpp-python==$V"
tar xzf "$TMP"/llama_cpp_python-"$V".tar.gz -C "$TMP"
SRC="$TMP/llama_cpp_python-$V"
rm -rf "$SRC/.git" "$SRC/vendor/llama.cpp/.github" "$SRC/vendor/llama.cpp/docs" "$SRC/vendor/llama.cpp/media"
find "$SRC/vendor/llama.cpp/models" -name '*.gguf' -delete
tar cJf "$CARRY/build/llama_cpp_python-$V-slim.tar.xz" -C "$TMP" "llama_cpp_python-$V"
pin() { grep -i "^$1==" constraints.txt | cut -d= -f3; }
"$PY" -m pip download --quiet --only-binary :all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --no-deps \
  -d "$CARRY/build/wheels" "pydantic==$(pin pydantic)" "pydantic-core==$(pin pydantic_core)" \
  "pydantic-settings==$(pin pydantic-settings)" "annotated-types==$(pin annotated-types)" \
  "typing-inspection==$(pin typing-inspection)" "platformdirs==$(pin platformdirs)" \
  "python-dotenv==$(pin python-dotenv)" "diskcache==$(pin diskcache)"
MODEL=$("$PY" -c "from medcoder.llm.registry import resolve_model; print(resolve_model('test')[1])")
split -b 40M -d "$MODEL" "$CARRY/model-test.part"
rm -rf "$TMP"
du -sh "$CARRY"/* "$CARRY"/build/*
