#!/usr/bin/env bash
# Installs what dizuo needs to build and test: Debian packages (apt-get) and Python packages (pip).
# Idempotent and quick when everything is already present. Usage: scripts/install-deps.sh [--reference]
#   --reference  also build llama-cpp-python (llama.cpp from source, ~15 min on 2 cores), the reference
#                that goldens and speed comparisons are made with. Tests do not need it.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang python3 python3-pip
  libgtest-dev libgmock-dev libbenchmark-dev
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libpcre2-dev
  libhwy-dev libopenblas-dev
  ocl-icd-opencl-dev opencl-clhpp-headers pocl-opencl-icd
)
PIP_PACKAGES=(numpy gguf pytest openai)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if ! $PY -c "import numpy, gguf, pytest, openai" >/dev/null 2>&1; then
  echo "install-deps: pip install ${PIP_PACKAGES[*]}"
  $PY -m pip install -q "${PIP_PACKAGES[@]}"
fi

if [ "${1:-}" = "--reference" ] && ! $PY -c "import llama_cpp" >/dev/null 2>&1; then
  echo "install-deps: building llama-cpp-python (llama.cpp from source; this takes a while)"
  CMAKE_ARGS="-DGGML_NATIVE=ON" $PY -m pip install -q llama-cpp-python
fi
