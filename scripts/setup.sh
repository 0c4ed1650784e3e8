#!/usr/bin/env bash
# One command for a new user: installs every dependency, builds dizuo, and runs the main job on the
# default model. Pass --reference to also build llama-cpp-python (for goldens and comparisons).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh "$@"
scripts/build.sh
MODEL=${DIZUO_MODEL:-../shared/models/stories260K.gguf}
echo
echo "== build/bin/dizuo info $MODEL (first lines)"
build/bin/dizuo info --no-tensors "$MODEL" | head -n 20
echo
echo "== echo 'Once upon a time, there was a little robot.' | build/bin/dizuo tokenize -m $MODEL"
echo "Once upon a time, there was a little robot." | build/bin/dizuo tokenize -m "$MODEL"
