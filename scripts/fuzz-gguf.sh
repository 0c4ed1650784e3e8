#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer (clang, ASan + UBSan). Not part of the test suite.
#   scripts/fuzz-gguf.sh [SECONDS=600] [extra libFuzzer flags...]
# Builds build-fuzz/ (clang, -DDIZUO_FUZZ=ON), seeds fuzz-corpus/gguf/ (gitignored) with the shared
# GGUF files and small generated ones, then runs bin/gguf_fuzz. Crash inputs land in
# fuzz-corpus/gguf-crashes/. Environment: DIZUO_SHARED (default ../shared), FUZZ_SOURCE (the CMake
# source dir, default the repository), FUZZ_JOBS (ninja -j, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN=${1:-600}
shift || true
SHARED=${DIZUO_SHARED:-$ROOT/../shared}
BUILD=$ROOT/build-fuzz
CORPUS=$ROOT/fuzz-corpus/gguf
CRASHES=$ROOT/fuzz-corpus/gguf-crashes

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S "${FUZZ_SOURCE:-$ROOT}" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIZUO_FUZZ=ON -DDIZUO_BUILD_TESTS=OFF \
    -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined"
fi
ninja -C "$BUILD" -j"${FUZZ_JOBS:-2}" gguf_fuzz

mkdir -p "$CORPUS" "$CRASHES"
cp -f "$SHARED"/models/stories260K.gguf "$SHARED"/testdata/tokenizer*/*.gguf "$CORPUS"/
# Small files covering every value type, nested arrays, several tensor types, both versions and a
# non-default alignment: mutations of these reach every branch far more often than of the big ones.
python3 - "$CORPUS" <<'PY'
import sys, numpy as np, gguf
out = sys.argv[1]
def write(name, version=3, alignment=None, tensors=True, extra=None):
    w = gguf.GGUFWriter(f"{out}/gen-{name}.gguf", "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("u8", 255); w.add_int8("i8", -128); w.add_uint16("u16", 65535)
    w.add_int16("i16", -32768); w.add_uint32("u32", 7); w.add_int32("i32", -7)
    w.add_float32("f32", 1e-5); w.add_bool("b", True); w.add_string("s", "héllo")
    w.add_uint64("u64", 2**64 - 1); w.add_int64("i64", -2**63); w.add_float64("f64", 0.5)
    w.add_array("a.str", ["", "a", "▁b"]); w.add_array("a.i32", [1, -2, 3])
    w.add_array("a.f32", [0.5, 1.5]); w.add_array("a.nested", [[1, 2], [3]])
    if extra:
        extra(w)
    if tensors:
        w.add_tensor("f32", np.arange(8, dtype=np.float32))
        w.add_tensor("f16", np.ones((2, 4), dtype=np.float16))
        q8 = np.zeros((2, 34), dtype=np.uint8)
        w.add_tensor("q8_0", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        q4k = np.zeros((1, 144), dtype=np.uint8)
        w.add_tensor("q4_K", q4k, raw_dtype=gguf.GGMLQuantizationType.Q4_K)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    if version == 2:  # v2 and v3 share the layout; only the version field differs
        path = f"{out}/gen-{name}.gguf"
        data = bytearray(open(path, "rb").read()); data[4:8] = (2).to_bytes(4, "little")
        open(path, "wb").write(data)
write("v3")
write("v2", version=2)
write("align64", alignment=64)
write("align8", alignment=8)
write("vocab", tensors=False)
PY
echo "fuzz-gguf: corpus $(ls "$CORPUS" | wc -l) files; running ${SECONDS_TO_RUN}s" >&2
"$BUILD/bin/gguf_fuzz" "$CORPUS" -dict="$ROOT/src/gguf/gguf_fuzz.dict" \
  -max_total_time="$SECONDS_TO_RUN" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
  -artifact_prefix="$CRASHES/" -print_final_stats=1 "$@"
