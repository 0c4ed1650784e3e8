"""Cross-checks dizuo's reference codecs (src/core/quant*.cc) against independent implementations.

Runs the quant_dump program named by $DIZUO_QUANT_DUMP (CTest sets it) and checks:
  * gguf-py (the `gguf` package) decodes our bytes, and random block bytes, to exactly our floats;
  * gguf-py quantizes our inputs to exactly our bytes, for every type it can quantize;
  * when llama-cpp-python's libggml-base is installed, ggml's own C reference does the same for
    every type it exports, including Q8_1 and Q8_K that gguf-py lacks.
Exact means bit-identical: both sides evaluate the same float operations in the same order
(e.g. d * q - m, never fused), so any difference is a real disagreement. NaN payloads are the
one exception: they are compared as "both NaN", since the formats give NaN bits no meaning.
"""

import ctypes
import os
import pathlib
import subprocess

import pytest

try:
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf import quants as gguf_quants
except ImportError as error:  # a missing checker must fail the suite, never skip it
    pytest.fail(f"quant_crosscheck needs the numpy and gguf Python packages: {error}", pytrace=False)

# Types gguf-py can decode / encode. The test fails if the dump lacks one of them.
GGUF_DEQUANTIZES = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                    "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]
GGUF_QUANTIZES = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]
# ggml exports dequantize_row_<t> and quantize_row_<t>_ref for these (the K-quant quantizers are
# not compared: ours is a different search, checked for quality in quant_test.cc instead).
GGML_DEQUANTIZES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K",
                    "q6_K", "q8_K"]
GGML_QUANTIZES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q8_K"]


class Dump:
    def __init__(self, directory: pathlib.Path):
        self.dir = directory
        self.types = {}
        for line in (directory / "manifest.tsv").read_text().splitlines():
            name, type_id, n, n_random = line.split("\t")
            self.types[name] = (int(type_id), int(n), int(n_random))

    def qtype(self, name):
        return GGMLQuantizationType(self.types[name][0])

    def bytes(self, name, what):
        return np.fromfile(self.dir / f"{name}.{what}.bin", dtype=np.uint8)

    def floats(self, name, what):
        return np.fromfile(self.dir / f"{name}.{what}.f32", dtype=np.float32)


@pytest.fixture(scope="session")
def dump(tmp_path_factory):
    program = os.environ.get("DIZUO_QUANT_DUMP")
    if not program:
        pytest.fail("set DIZUO_QUANT_DUMP to the quant_dump program (ctest does this)", pytrace=False)
    directory = tmp_path_factory.mktemp("quant_dump")
    subprocess.run([program, str(directory)], check=True)
    return Dump(directory)


def assert_same_floats(ours, theirs, what):
    ours = np.asarray(ours, dtype=np.float32).ravel()
    theirs = np.asarray(theirs, dtype=np.float32).ravel()
    assert ours.shape == theirs.shape, what
    both_nan = np.isnan(ours) & np.isnan(theirs)
    same = (ours.view(np.uint32) == theirs.view(np.uint32)) | both_nan
    if not same.all():
        i = int(np.argmin(same))
        pytest.fail(f"{what}: {int((~same).sum())} of {same.size} floats differ; first at {i}: "
                    f"ours {ours[i]!r} ({ours.view(np.uint32)[i]:#010x}), "
                    f"theirs {theirs[i]!r} ({theirs.view(np.uint32)[i]:#010x})")


def assert_same_bytes(ours, theirs, what, block_bytes):
    ours = np.asarray(ours).view(np.uint8).ravel()
    theirs = np.asarray(theirs).view(np.uint8).ravel()
    assert ours.shape == theirs.shape, what
    diff = np.nonzero(ours != theirs)[0]
    if diff.size:
        block = int(diff[0]) // block_bytes
        pytest.fail(f"{what}: {diff.size} bytes differ; first in block {block}: ours "
                    f"{ours[block * block_bytes:(block + 1) * block_bytes].tobytes().hex()} theirs "
                    f"{theirs[block * block_bytes:(block + 1) * block_bytes].tobytes().hex()}")


def type_size(dump, name):
    return gguf_quants.GGML_QUANT_SIZES[dump.qtype(name)][1]


@pytest.mark.parametrize("name", GGUF_DEQUANTIZES)
@pytest.mark.parametrize("source", ["quant", "random"])
def test_gguf_decodes_our_bytes_to_our_floats(dump, name, source):
    assert name in dump.types, f"quant_dump wrote no {name}"
    data = dump.bytes(name, source)
    theirs = gguf_quants.dequantize(data.reshape(1, -1), dump.qtype(name))
    ours = dump.floats(name, "dequant" if source == "quant" else "random_dequant")
    assert_same_floats(ours, theirs, f"{name} {source}")


@pytest.mark.parametrize("name", GGUF_QUANTIZES)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # f16 inputs beyond 65520
def test_gguf_quantizes_to_our_bytes(dump, name):
    assert name in dump.types, f"quant_dump wrote no {name}"
    x = dump.floats(name, "input")
    theirs = gguf_quants.quantize(x.reshape(1, -1), dump.qtype(name))
    assert_same_bytes(dump.bytes(name, "quant"), theirs, name, type_size(dump, name))


# ---- ggml's C reference, through llama-cpp-python's shared library (optional) ----

def find_libggml():
    try:
        import llama_cpp
    except ImportError:
        return None
    for candidate in sorted(pathlib.Path(llama_cpp.__file__).parent.glob("lib/libggml-base.so*")):
        return ctypes.CDLL(str(candidate))
    return None


@pytest.fixture(scope="session")
def libggml():
    lib = find_libggml()
    if lib is None:
        pytest.skip("llama-cpp-python (libggml-base) is not installed: ggml checks not run")
    return lib


# Block bytes as ggml defines them (gguf-py's table has a stale 40-byte Q8_1).
GGML_BLOCK = {"q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
              "q8_0": (32, 34), "q8_1": (32, 36), "q2_K": (256, 84), "q3_K": (256, 110),
              "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210), "q8_K": (256, 292)}


def ptr(array):
    return ctypes.c_void_p(array.ctypes.data)


@pytest.mark.parametrize("name", GGML_DEQUANTIZES)
@pytest.mark.parametrize("source", ["quant", "random"])
def test_ggml_decodes_our_bytes_to_our_floats(dump, libggml, name, source):
    data = dump.bytes(name, source)
    block, size = GGML_BLOCK[name]
    n = data.size // size * block
    theirs = np.zeros(n, dtype=np.float32)
    getattr(libggml, f"dequantize_row_{name}")(ptr(data), ptr(theirs), ctypes.c_int64(n))
    ours = dump.floats(name, "dequant" if source == "quant" else "random_dequant")
    assert_same_floats(ours, theirs, f"ggml {name} {source}")


@pytest.mark.parametrize("name", GGML_QUANTIZES)
def test_ggml_quantizes_to_our_bytes(dump, libggml, name):
    x = np.ascontiguousarray(dump.floats(name, "input"))
    block, size = GGML_BLOCK[name]
    theirs = np.zeros(x.size // block * size, dtype=np.uint8)  # ggml leaves Q8_K bsums of zero
    getattr(libggml, f"quantize_row_{name}_ref")(ptr(x), ptr(theirs), ctypes.c_int64(x.size))
    assert_same_bytes(dump.bytes(name, "quant"), theirs, f"ggml {name}", size)
