#!/usr/bin/env bash
# Cross-builds dizuo for 64-bit ARM Linux (AArch64) into build-arm64/ and runs its GoogleTest
# suites there under QEMU's user-mode emulator: every kernel table the emulated CPU runs (generic,
# neon, neon-dotprod) against the scalar reference, the CPU backend's op suite on each forced
# table, and the models end to end (stories260K and the synthetic files against llama.cpp's
# goldens, Gemma 3 270M when $DIZUO_GEMMA3 names it). Installs the cross compiler, QEMU and the
# arm64 builds of the libraries (Debian multiarch) when they are missing.
#
# Emulation checks results, not speed: the binaries run 10-100x slower than on ARM hardware.
# Left out: the Python suites that start the dizuo binary (cli_test, bench_test,
# quant_crosscheck) and the tests labelled slow. Arguments replace ctest's default selection,
# e.g. scripts/test-arm64.sh -R CpuKernels.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
for p in libfmt-dev libpcre2-dev libgtest-dev libgmock-dev; do
  dpkg -s "$p:arm64" >/dev/null 2>&1 || missing+=("$p:arm64")
done
for p in nlohmann-json3-dev libcli11-dev pkg-config; do  # headers and tools of any architecture
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-arm64: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f build-arm64/build.ninja ]; then
  cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
fi
ninja -C build-arm64

if [ -z "${DIZUO_GEMMA3:-}" ] && [ -x scripts/get-default-model.sh ]; then
  DIZUO_GEMMA3=$(scripts/get-default-model.sh 2>/dev/null || true)
fi
export DIZUO_GEMMA3
qemu-aarch64 build-arm64/bin/cpu_kernels_test --gtest_filter=CpuKernels.EveryTableTheHostCanRunIsTested |
  grep '^tables:' | sed 's/^/test-arm64: emulated CPU runs the kernel /'
if [ $# -eq 0 ]; then set -- -LE slow -E '^(cli_test|bench_test|quant_crosscheck)$'; fi
ctest --test-dir build-arm64 --output-on-failure -j2 --timeout 1800 "$@"
