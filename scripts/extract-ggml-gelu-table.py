#!/usr/bin/env python3
"""Writes llama.cpp's gelu lookup table (ggml_table_gelu_f16: 65,536 f16 results indexed by the
f16 bits of the input, filled by ggml_cpu_init) from llama-cpp-python's libggml-cpu to
tests/golden/models/ggml-gelu-f16-table.u16 (little-endian uint16). tests/llamacpp_match_test
checks core/gelu.h against it."""
import ctypes
import pathlib
import sys

import llama_cpp
import numpy as np

lib = pathlib.Path(llama_cpp.__file__).parent / "lib"
ctypes.CDLL(str(lib / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(str(lib / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
cpu.ggml_cpu_init()
table = np.frombuffer((ctypes.c_uint16 * 65536).in_dll(cpu, "ggml_table_gelu_f16"), np.uint16)
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                   pathlib.Path(__file__).parent.parent / "tests/golden/models/ggml-gelu-f16-table.u16")
table.astype("<u2").tofile(out)
print(f"{out}: llama-cpp-python {llama_cpp.__version__}")
