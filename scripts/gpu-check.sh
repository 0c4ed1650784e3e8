#!/usr/bin/env bash
# The CUDA backend's checks, for a machine with an NVIDIA GPU. No network is used there.
#
#   scripts/gpu-check.sh --prepare   on a machine with apt (the build machine): downloads dizuo's
#                                    build dependencies as Debian packages into .gpu-deps/debs and
#                                    copies the reference data the tests read into
#                                    .gpu-deps/shared. Carry .gpu-deps to the GPU machine.
#   scripts/gpu-check.sh --pack [BUILD]
#                                    on the build machine, after --prepare: also copies the built
#                                    dizuo, the CUDA tests, the CUDA module and the shared
#                                    libraries they need beyond glibc, libstdc++ and CUDA into
#                                    .gpu-deps/bin and .gpu-deps/lib (BUILD: default build/), so
#                                    the GPU machine runs them without building.
#   scripts/gpu-check.sh             on the GPU machine: runs the packed binaries when they start
#                                    there; otherwise unpacks .gpu-deps/debs under /tmp and builds
#                                    the CUDA tests and dizuo (Release, DIZUO_CUDA=ON, for the GPU
#                                    present) into build-gpu/. Then runs the tests, `dizuo check
#                                    --backend cuda`, and with GPU_BENCH=1 `dizuo bench` on
#                                    synthetic 1b models (cuda, then the host CPU for comparison).
#
# Environment:
#   CUDA_ARCH       build for this architecture (default "native"); JOBS (default: all cores);
#                   BUILD_DIR (default build-gpu)
#   LOG_DIR         where logs go (default $OUT when set, else the build directory)
#   GPU_CHECK_FULL  1: the full case set of dizuo check
#   CHECK_SYNTH     synthetic tiny models dizuo check also grades, as arch:type
#                   (default "gemma3:q4_k_m qwen2:q8_0 llama:q6_k")
#   GPU_BENCH       1: bench; GPU_BENCH_CPU=0 leaves out the CPU rows; BENCH_TYPES (default
#                   "q4_0 q8_0 q4_k_m f16")
#   GPU_SANITIZE    1: compute-sanitizer memcheck over a subset of the op tests (SANITIZE_FILTER)
# Exit status: non-zero when any build step or check fails, or when no CUDA device is usable
# (DIZUO_REQUIRE_CUDA=1 turns the tests' skips into failures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS=$ROOT/.gpu-deps

if [ "${1:-}" = "--prepare" ]; then
  packages=(libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0
            libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libgtest-dev libgmock-dev pkgconf
            pkgconf-bin libpkgconf3)
  mkdir -p "$DEPS/debs" "$DEPS/shared/models" "$DEPS/shared/golden" "$DEPS/shared/testdata/text"
  mkdir -p .git/info
  grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> .git/info/exclude
  (cd "$DEPS/debs" && apt-get download "${packages[@]}")
  shared=${DIZUO_SHARED:-$ROOT/../shared}
  cp "$shared/models/stories260K.gguf" "$DEPS/shared/models/"
  cp "$shared/golden/"* "$DEPS/shared/golden/"
  cp "$shared/testdata/text/tinystories_val.txt" "$DEPS/shared/testdata/text/"
  du -sh "$DEPS"
  exit 0
fi

if [ "${1:-}" = "--pack" ]; then
  from=${2:-build}
  [ -d "$DEPS/shared" ] || { echo "run $0 --prepare first" >&2; exit 1; }
  for f in bin/dizuo bin/cuda_backend_test bin/cuda_decode_test lib/libdizuo_cuda_backend.so; do
    [ -x "$from/$f" ] || { echo "$from/$f is missing: build it first" >&2; exit 1; }
  done
  rm -rf "${DEPS:?}/bin" "${DEPS:?}/lib"
  mkdir -p "$DEPS/bin" "$DEPS/lib"
  cp "$from/bin/dizuo" "$from/bin/cuda_backend_test" "$from/bin/cuda_decode_test" "$DEPS/bin/"
  cp "$from/lib/libdizuo_cuda_backend.so" "$DEPS/lib/"
  # Everything the binaries load except the C and C++ runtimes and CUDA, which the GPU machine has.
  ldd "$DEPS"/bin/* "$DEPS"/lib/*.so | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|/libcu' |
    while read -r lib; do cp -L "$lib" "$DEPS/lib/"; done
  ls "$DEPS/lib"
  du -sh "$DEPS"
  exit 0
fi

JOBS=${JOBS:-$(nproc)}
LOG_DIR=${LOG_DIR:-${OUT:-${BUILD_DIR:-build-gpu}}}
mkdir -p "$LOG_DIR"
command -v nvidia-smi > /dev/null && nvidia-smi -L || echo "nvidia-smi not found"
if [ -d "$DEPS/shared" ] && [ -z "${DIZUO_SHARED:-}" ]; then export DIZUO_SHARED=$DEPS/shared; fi
SHARED=${DIZUO_SHARED:-$ROOT/../shared}

# CUDA's libraries where the GPU machine keeps them (the toolkit, or the pip wheels).
cuda_libs=
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && cuda_libs=$cuda_libs:$d
done
if ! ldconfig -p | grep -q 'libcublasLt.so.13' &&
  [ -z "$(ls /usr/local/cuda/lib*/libcublasLt.so.* 2> /dev/null)" ]; then
  found=$(find / -xdev -name 'libcublasLt.so.1*' -not -path '*/proc/*' 2>/dev/null | head -1)
  [ -n "$found" ] && cuda_libs=$cuda_libs:$(dirname "$found")
fi

start=$(date +%s)
BIN=
if [ -x "$DEPS/bin/dizuo" ]; then
  export LD_LIBRARY_PATH=$DEPS/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if "$DEPS/bin/dizuo" --version > /dev/null 2>&1; then
    BIN=$DEPS/bin
    echo "using the packed binaries ($("$BIN/dizuo" --version))"
  else
    echo "the packed binaries do not start here:"
    ldd "$DEPS/bin/dizuo" "$DEPS/lib/libdizuo_cuda_backend.so" | grep -E 'not found|=>' | head -20
  fi
fi
if [ -z "$BIN" ]; then
  BUILD=${BUILD_DIR:-build-gpu}
  cmake_args=()
  if [ -d "$DEPS/debs" ]; then
    sysroot=/tmp/dizuo-gpu-deps
    mkdir -p "$sysroot"
    for deb in "$DEPS"/debs/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    libdir=$sysroot/usr/lib/x86_64-linux-gnu
    export PATH=$sysroot/usr/bin:$PATH
    export LD_LIBRARY_PATH=$libdir$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PKG_CONFIG_PATH=$libdir/pkgconfig:$sysroot/usr/share/pkgconfig
    export PKG_CONFIG_SYSROOT_DIR=$sysroot
    cmake_args+=("-DCMAKE_PREFIX_PATH=$sysroot/usr;$libdir/cmake")
  fi
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIZUO_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" "${cmake_args[@]}" 2>&1 |
    tee "$LOG_DIR/configure.log" | tail -3
  ninja -C "$BUILD" -j"$JOBS" dizuo_cuda_backend cuda_decode_test cuda_backend_test dizuo 2>&1 |
    tee "$LOG_DIR/build.log" | tail -3
  echo "build: $(($(date +%s) - start)) s"
  BIN=$BUILD/bin
fi

status=0
export DIZUO_REQUIRE_CUDA=1
for t in cuda_decode_test cuda_backend_test; do
  echo "== $t"
  t0=$(date +%s)
  timeout 150 "$BIN/$t" > "$LOG_DIR/$t.log" 2>&1 || status=1
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |nmse|device:|Failure|Expected|Which is|tests ran' \
    "$LOG_DIR/$t.log" | head -n 200 || true
  echo "$t: $(($(date +%s) - t0)) s"
done

# The quick case set unless GPU_CHECK_FULL=1: the full one spends minutes in the scalar reference.
check_args=(--quick)
[ "${GPU_CHECK_FULL:-0}" = 1 ] && check_args=()
echo "== dizuo check --backend cuda ${check_args[*]}"
t0=$(date +%s)
check_models=(-m "$SHARED/models/stories260K.gguf")
for spec in ${CHECK_SYNTH-gemma3:q4_k_m qwen2:q8_0 llama:q6_k}; do  # synthetic tiny models
  m=/tmp/dizuo-check-${spec%%:*}-${spec##*:}.gguf
  "$BIN/dizuo" make-model --arch "${spec%%:*}" --preset tiny --type "${spec##*:}" -q -o "$m" &&
    check_models+=(-m "$m")
done
timeout 300 "$BIN/dizuo" check --backend cuda "${check_args[@]}" "${check_models[@]}" \
  --text "$SHARED/testdata/text/tinystories_val.txt" --json-file "$LOG_DIR/check.json" \
  > "$LOG_DIR/check.log" 2>&1 || status=1
tail -n 40 "$LOG_DIR/check.log"
echo "check: $(($(date +%s) - t0)) s"

if [ "${GPU_BENCH:-0}" = 1 ]; then
  models=()
  for type in ${BENCH_TYPES:-q4_0 q8_0 q4_k_m f16}; do
    m=/tmp/dizuo-bench-llama-1b-$type.gguf
    [ -f "$m" ] || timeout 120 "$BIN/dizuo" make-model --preset 1b --type "$type" -q -o "$m" ||
      { echo "make-model $type failed"; status=1; continue; }
    models+=(-m "$m")
  done
  echo "== dizuo bench --backend cuda (synthetic llama 1b)"
  timeout 300 "$BIN/dizuo" bench --backend cuda "${models[@]}" -p 512 -n 128 -r 3 \
    2>&1 | tee "$LOG_DIR/bench-cuda.log" || status=1
  if [ "${GPU_BENCH_CPU:-1}" = 1 ]; then
    echo "== dizuo bench --backend cpu -t $JOBS (the same machine's host, for comparison)"
    timeout 180 "$BIN/dizuo" bench --backend cpu "${models[@]:0:2}" -t "$JOBS" -p 512 -n 32 -r 2 \
      2>&1 | tee "$LOG_DIR/bench-cpu.log" || status=1
  fi
fi
if [ "${GPU_SANITIZE:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  echo "== compute-sanitizer memcheck (a subset of cuda_backend_test)"
  default_filter="CudaVsReference.MatMulStories260K:CudaVsReference.GetRows*"
  default_filter+=":CudaVsReference.Attention:CudaVsReference.StoreKV:CudaVsReference.Rope"
  default_filter+=":CudaVsReference.BadRowIdIsAnError"
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$BIN/cuda_backend_test" \
    --gtest_filter="${SANITIZE_FILTER:-$default_filter}" \
    > "$LOG_DIR/sanitizer.log" 2>&1 || status=1
  grep -E 'ERROR SUMMARY|Invalid|PASSED|FAILED' "$LOG_DIR/sanitizer.log" | head -20 || true
fi
echo "gpu-check: $([ $status = 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - start)) s"
exit $status
