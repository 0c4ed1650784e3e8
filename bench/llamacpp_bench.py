#!/usr/bin/env python3
"""llama.cpp's side of bench/compare-llamacpp: the tests `dizuo bench` runs, on llama.cpp through
llama-cpp-python's low-level API, printed as one JSON object.

pp<P>: one llama_decode of P tokens (n_batch = P, n_ubatch = min(P, --ubatch)) into an empty
cache, logits for the last token; tg<N>: N single-token llama_decode calls from an empty cache.
The token ids are dizuo's (splitmix64(i + 1) mod n_vocab, see src/bench/bench.h). Each test runs
once untimed, then --reps times; only llama_decode + llama_synchronize are timed. The KV cache is
F16; flash attention and everything else are llama.cpp's defaults.
"""
import argparse
import ctypes
import json
import statistics
import sys
import time

MASK64 = (1 << 64) - 1


def bench_token_id(i, n_vocab):
    z = ((i + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return z % n_vocab


def status_bytes(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", "--threads", type=int, required=True)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("-d", "--n-depth", type=int, default=0,
                    help="tokens in the cache before each test (untimed), as llama-bench's -d")
    ap.add_argument("--ubatch", type=int, default=512, help="llama.cpp n_ubatch (dizuo's -b)")
    a = ap.parse_args()
    if a.threads < 1 or a.reps < 1 or a.n_prompt < 0 or a.n_gen < 0 or a.n_depth < 0:
        sys.exit("llamacpp_bench: bad arguments")

    import llama_cpp as L

    L.llama_backend_init()
    rss_before = status_bytes("VmRSS")
    start = time.perf_counter()
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = L.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        sys.exit(f"llamacpp_bench: llama.cpp cannot load {a.model}")
    cp = L.llama_context_default_params()
    d = a.n_depth
    cp.n_ctx = d + max(a.n_prompt, a.n_gen, 1)
    cp.n_batch = max(a.n_prompt, d, 1)
    cp.n_ubatch = max(1, min(a.n_prompt if a.n_prompt > 0 else d, a.ubatch))
    cp.n_seq_max = 1
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.type_k = cp.type_v = 1  # GGML_TYPE_F16
    cp.no_perf = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("llamacpp_bench: cannot create a llama.cpp context")
    load_seconds = time.perf_counter() - start
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    memory = L.llama_get_memory(ctx)

    def make_batch(first, count, last_logits_only):
        b = L.llama_batch_init(count, 0, 1)
        b.n_tokens = count
        for k in range(count):
            i = first + k
            b.token[k] = bench_token_id(i, n_vocab)
            b.pos[k] = i
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = 0
            b.logits[k] = (k == count - 1) if last_logits_only else True
        return b

    def decode(b):
        rc = L.llama_decode(ctx, b)
        if rc != 0:
            sys.exit(f"llamacpp_bench: llama_decode returned {rc}")
        L.llama_synchronize(ctx)

    context = make_batch(0, d, True) if d > 0 else None

    def reset():
        # An empty cache, then the untimed context of the depth (dizuo bench -d feeds the same ids).
        L.llama_memory_clear(memory, True)
        if context is not None:
            decode(context)

    suffix = f" @ d{d}" if d > 0 else ""
    tests = []
    if a.n_prompt > 0:
        prompt = make_batch(d, a.n_prompt, True)

        def run_pp():
            reset()
            t0 = time.perf_counter_ns()
            decode(prompt)
            return time.perf_counter_ns() - t0
        tests.append((f"pp{a.n_prompt}{suffix}", a.n_prompt, run_pp))
    if a.n_gen > 0:
        steps = [make_batch(d + i, 1, True) for i in range(a.n_gen)]

        def run_tg():
            reset()
            t0 = time.perf_counter_ns()
            for b in steps:
                decode(b)
            return time.perf_counter_ns() - t0
        tests.append((f"tg{a.n_gen}{suffix}", a.n_gen, run_tg))

    results = []
    for name, n_tokens, run in tests:
        run()  # warm-up
        ns = [run() for _ in range(a.reps)]
        ts = [n_tokens / (x * 1e-9) for x in ns]
        results.append({
            "test": name, "samples_ns": ns, "samples_ts": ts, "avg_ts": statistics.mean(ts),
            "stddev_ts": statistics.stdev(ts) if len(ts) > 1 else 0.0})
    print(json.dumps({
        "engine": "llama.cpp", "version": L.__version__,
        "system_info": L.llama_print_system_info().decode(errors="replace").strip(),
        "flash_attn_type": cp.flash_attn_type, "n_threads": a.threads, "n_vocab": n_vocab,
        "load_seconds": load_seconds, "rss_before_load_bytes": rss_before,
        "peak_rss_bytes": status_bytes("VmHWM"), "results": results}))
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
