#!/usr/bin/env bash
# Build the llama-cpp-python wheel into WHEELS (what install.sh runs in the background).
#   build_llama_wheel.sh VERSION WHEELS PYTHON      (CMAKE_ARGS: the llama.cpp build flags)
# The sdist comes from the package registry; llama.cpp's "common" library (CLI helpers the Python bindings
# never load) is switched off in its CMakeLists, where the sdist forces it on. The wheel lands in WHEELS only
# when it is whole, so an interrupted build leaves nothing that looks finished.
set -euo pipefail
VERSION="$1"; WHEELS="$2"; PY="$3"
WORK="$(mktemp -d -t medcoder-llama.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: -d "$WORK" "llama-cpp-python==$VERSION"
tar xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION"
FORCED='set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)'
if grep -qF "$FORCED" "$SRC/CMakeLists.txt"; then
  sed -i "s/set(LLAMA_BUILD_COMMON ON CACHE BOOL/set(LLAMA_BUILD_COMMON OFF CACHE BOOL/" "$SRC/CMakeLists.txt"
else
  echo "note: llama-cpp-python $VERSION does not force LLAMA_BUILD_COMMON; building it as it comes"
fi
"$PY" -m pip wheel --quiet --no-cache-dir --no-deps -w "$WORK/out" "$SRC"
mkdir -p "$WHEELS"
mv "$WORK"/out/llama_cpp_python-*.whl "$WHEELS"/
