#!/usr/bin/env bash
# The whole default test suite: installs missing dependencies, builds, runs every test with CTest
# except those labelled `slow` (run them with `scripts/test.sh -L slow`; arguments replace the
# default `-LE slow`). Reference data is read from ../shared (or $DIZUO_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The Gemma 3 270M tests read the default model; install it (cached after the first time).
DIZUO_GEMMA3=${DIZUO_GEMMA3:-$(scripts/get-default-model.sh)}
export DIZUO_GEMMA3
if [ $# -eq 0 ]; then set -- -LE slow; fi
ctest --test-dir build --output-on-failure -j2 "$@"
