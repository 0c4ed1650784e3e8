#!/usr/bin/env bash
# The whole default test suite: installs missing dependencies, builds, runs every test with CTest.
# Reference data is read from ../shared (or $DIZUO_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
