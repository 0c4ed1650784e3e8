#!/usr/bin/env bash
# Configures (once) and builds dizuo into build/ with Ninja. Extra arguments go to CMake's configure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ] || [ $# -gt 0 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
ninja -C build
