#!/usr/bin/env bash
# The CUDA backend's checks, for a machine with an NVIDIA GPU. No network is used there.
#
#   scripts/gpu-check.sh --prepare   on a machine with apt (the build machine): downloads dizuo's
#                                    build dependencies as Debian packages into .gpu-deps/debs and
#                                    copies the reference data the tests read into
#                                    .gpu-deps/shared. Carry .gpu-deps to the GPU machine.
#   scripts/gpu-check.sh             on the GPU machine: unpacks .gpu-deps (when present) under
#                                    /tmp, builds the CUDA tests (Release, DIZUO_CUDA=ON, for the
#                                    GPU present) into build-gpu/ and runs them, then
#                                    `dizuo check --backend cuda` when the CLI has that command.
#
# Environment: CUDA_ARCH (default "native"), JOBS (default: all cores), BUILD_DIR (build-gpu),
# LOG_DIR (where logs go; default $OUT when set, else the build directory).
# Exit status: non-zero when any build step or check fails, or when no CUDA device is usable
# (DIZUO_REQUIRE_CUDA=1 turns the tests' skips into failures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS=$ROOT/.gpu-deps

if [ "${1:-}" = "--prepare" ]; then
  packages="libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0
            libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libgtest-dev libgmock-dev pkgconf
            pkgconf-bin libpkgconf3"
  mkdir -p "$DEPS/debs" "$DEPS/shared/models" "$DEPS/shared/golden" "$DEPS/shared/testdata/text"
  mkdir -p .git/info
  grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> .git/info/exclude
  (cd "$DEPS/debs" && apt-get download $packages)
  shared=${DIZUO_SHARED:-$ROOT/../shared}
  cp "$shared/models/stories260K.gguf" "$DEPS/shared/models/"
  cp "$shared/golden/"* "$DEPS/shared/golden/"
  cp "$shared/testdata/text/tinystories_val.txt" "$DEPS/shared/testdata/text/"
  du -sh "$DEPS"
  exit 0
fi

BUILD=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-$(nproc)}
LOG_DIR=${LOG_DIR:-${OUT:-$BUILD}}
mkdir -p "$BUILD" "$LOG_DIR"
command -v nvidia-smi > /dev/null && nvidia-smi -L || echo "nvidia-smi not found"

cmake_args=()
if [ -d "$DEPS/debs" ]; then
  sysroot=/tmp/dizuo-gpu-deps
  mkdir -p "$sysroot"
  for deb in "$DEPS"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
  libdir=$sysroot/usr/lib/x86_64-linux-gnu
  export PATH=$sysroot/usr/bin:$PATH
  export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PKG_CONFIG_PATH=$libdir/pkgconfig:$sysroot/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$sysroot
  cmake_args+=("-DCMAKE_PREFIX_PATH=$sysroot/usr;$libdir/cmake")
fi
if [ -d "$DEPS/shared" ] && [ -z "${DIZUO_SHARED:-}" ]; then export DIZUO_SHARED=$DEPS/shared; fi

start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIZUO_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" "${cmake_args[@]}" 2>&1 | tee "$LOG_DIR/configure.log" | tail -3
targets="dizuo_cuda_backend cuda_decode_test cuda_backend_test reference_backend_test"
has_check=0
if grep -qs '"check"' src/cli/*.cc; then
  has_check=1
  targets="$targets dizuo"
fi
ninja -C "$BUILD" -j"$JOBS" $targets 2>&1 | tee "$LOG_DIR/build.log" | tail -3
echo "build: $(($(date +%s) - start)) s"

status=0
export DIZUO_REQUIRE_CUDA=1
for t in cuda_decode_test cuda_backend_test reference_backend_test; do
  echo "== $t"
  "$BUILD/bin/$t" > "$LOG_DIR/$t.log" 2>&1 || status=1
  if [ "$t" = reference_backend_test ]; then
    tail -n 3 "$LOG_DIR/$t.log"
  else
    grep -E '^\[  (PASSED|FAILED|SKIPPED) |nmse|device:|Failure|Expected|Which is' "$LOG_DIR/$t.log" |
      head -n 300
  fi
done
if [ "$has_check" = 1 ]; then
  echo "== dizuo check --backend cuda"
  "$BUILD/bin/dizuo" check --backend cuda -m "${DIZUO_SHARED:-$ROOT/../shared}/models/stories260K.gguf" \
    2>&1 | tee "$LOG_DIR/check.log" || status=1
else
  echo "== dizuo check: not in this build's CLI yet"
fi
echo "gpu-check: $([ $status = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - start)) s"
exit $status
