#!/usr/bin/env python3
"""Tokenizer throughput, dizuo vs llama.cpp (through llama-cpp-python), on the same text.

  python3 bench/tokenizer-throughput.py [--bin build/bin/tokenizer_throughput] [--runs 5]

For each vocabulary, alternates runs of dizuo's Encode (the tokenizer_throughput binary, which
times only the Encode call) and llama.cpp's tokenize (timed around the tokenize call only), both
without BOS and without parsing special tokens. Reports the median wall-clock MB/s of each (and
CPU-time MB/s, steadier on a shared machine) with the ratio, and checks that the ids are equal.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("DIZUO_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
VOCABS = {
    "gpt-2": "testdata/tokenizer/ggml-vocab-gpt-2.gguf",
    "llama-spm": "testdata/tokenizer/ggml-vocab-llama-spm.gguf",
    "deepseek-llm": "testdata/tokenizer-extra/ggml-vocab-deepseek-llm.gguf",
}


def run_dizuo(binary, vocab, text_path, ids_path=None):
    args = [binary, vocab, text_path, "1"] + ([ids_path] if ids_path else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["seconds"][0], result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build/bin/tokenizer_throughput"))
    ap.add_argument("--text", default=os.path.join(SHARED, "testdata/text/wiki.test.raw"))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import llama_cpp

    data = open(args.text, "rb").read()
    mb = len(data) / 1e6
    print(f"text: {args.text} ({len(data)} bytes), {args.runs} alternating runs, median")
    print(f"{'vocab':<14}{'dizuo MB/s':>12}{'llama.cpp MB/s':>16}{'ratio':>8}"
          f"{'  (cpu: dizuo':>14}{'llama.cpp':>11}{'ratio)':>8}  ids")
    for name, rel in VOCABS.items():
        vocab = os.path.join(SHARED, rel)
        llm = llama_cpp.Llama(model_path=vocab, vocab_only=True, verbose=False)
        ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            ids_path = os.path.join(tmp, "ids.txt")
            for run in range(args.runs):
                seconds, _ = run_dizuo(args.bin, vocab, args.text, ids_path if run == 0 else None)
                ours.append(seconds)
                t0, c0 = time.perf_counter(), time.thread_time()
                ids = llm.tokenize(data, add_bos=False, special=False)
                t1, c1 = time.perf_counter(), time.thread_time()
                theirs.append(t1 - t0)
                theirs_cpu.append(c1 - c0)
                if run == 0:
                    mine = [int(x) for x in open(ids_path).read().split()]
                    same = "equal" if mine == ids else f"DIFFER ({len(mine)} vs {len(ids)})"
            # CPU time of dizuo's Encode: child CPU of a 1+k-iteration run minus a 1-iteration run.
            for _ in range(2):
                c_before = os.times()
                run_dizuo(args.bin, vocab, args.text)
                c_mid = os.times()
                subprocess.run([args.bin, vocab, args.text, "4"], check=True, capture_output=True)
                c_after = os.times()
                one = c_mid.children_user - c_before.children_user
                four = c_after.children_user - c_mid.children_user
                ours_cpu.append(max(1e-9, (four - one) / 3))
        o, t = statistics.median(ours), statistics.median(theirs)
        oc, tc = statistics.median(ours_cpu), statistics.median(theirs_cpu)
        print(f"{name:<14}{mb / o:>12.2f}{mb / t:>16.2f}{t / o:>8.2f}"
              f"{mb / oc:>14.2f}{mb / tc:>11.2f}{tc / oc:>8.2f}  {same}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
