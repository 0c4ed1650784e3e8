#!/usr/bin/env python3
"""Regenerates tests/golden/models/: llama.cpp's outputs (through llama-cpp-python) on
  * synthetic tiny models made by `dizuo make-model` (logits for every position of a fixed token
    sequence, tokenizations of a few strings, the model's sha256), and
  * Gemma 3 270M Q4_K_M (greedy continuations and perplexity on wiki.test.raw).

Usage: scripts/gen-model-goldens.py --dizuo build/bin/dizuo [--only synthetic|gemma3|gemma3-greedy]
(gemma3-greedy redoes only the greedy part of gemma3-270m.json and keeps its perplexity).
llama.cpp's settings are pinned (threads, batch sizes, KV cache type, flash attention off) and
recorded in the golden files; tests/llamacpp_match_test.cc reads them.

Besides the goldens, it records llama.cpp's own noise floor on the same files: how far llama.cpp's
outputs move when only its evaluation strategy changes (flash attention on, one token per batch,
an F32 KV cache; for Gemma 3, the greedy tokens evaluated in one batch instead of one at a time).
A second engine cannot be expected to agree with llama.cpp more closely than that.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "models")
SHARED = os.environ.get("DIZUO_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))

GGML_TYPE_F16 = 1
# Pinned llama.cpp settings (llama-cpp-python would otherwise use n_threads = cores // 2).
LLAMA_SETTINGS = dict(n_threads=2, n_threads_batch=2, flash_attn=False, type_k=GGML_TYPE_F16,
                      type_v=GGML_TYPE_F16, offload_kqv=False, n_gpu_layers=0, seed=0)

SYNTHETIC = [
    # (arch, type, seed): tiny preset with a 1024-token vocabulary (keeps the logits small).
    ("llama", "q8_0", 101), ("llama", "q4_0", 102), ("llama", "q4_k", 103),
    ("qwen2", "q8_0", 201), ("qwen2", "q4_0", 202), ("qwen2", "q4_k", 203),
    ("gemma3", "q8_0", 301),  # sliding window 16 < sequence length: exercises the local layers
]
SYNTHETIC_VOCAB = 1024
N_TOKENS = 128
SEQUENCE_TEXT = ("The children went to school in the old stone house near the church, where a "
                 "teacher named Anna taught them to read. A language model predicts the next word.")
TOKENIZE_STRINGS = [
    "Hello world",
    "The small town stood by the river.",
    " leading space and  two spaces",
    "naïve café, 12345 and 3.14!",
    "line one\nline two\ttab",
    "<s> </s> <|im_start|> <start_of_turn> literal",
    "",
]

GEMMA_PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
    "The three primary colors are",
    "Water boils at a temperature of",
    "The largest planet in our solar system is",
    "To make a cup of tea, first",
    "Photosynthesis is the process by which",
]
GEMMA_N_PREDICT = 48
PPL_CTX = 512
PPL_WINDOWS = 20


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path, n_ctx, logits_all, **overrides):
    """llama.cpp with the pinned settings; `overrides` change them (n_batch applies to n_ubatch
    too) for the noise-floor variants."""
    kw = dict(LLAMA_SETTINGS, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx)
    kw.update(overrides)
    kw["n_ubatch"] = kw["n_batch"]
    return Llama(model_path=path, logits_all=logits_all, verbose=False, **kw)


GGML_TYPE_F32 = 0
# llama.cpp configurations that change only how it evaluates, compared with the pinned one.
NOISE_VARIANTS = {
    "flash_attn": dict(flash_attn=True),
    "n_batch_1": dict(n_batch=1),
    "kv_f32": dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32),
}


def all_logits(path, tokens, **overrides):
    llm = load(path, len(tokens), logits_all=True, **overrides)
    llm.reset()
    llm.eval(tokens)
    logits = np.array(llm.scores[:len(tokens)], dtype=np.float32)
    del llm
    return logits


def compare(a, b):
    """Top-1 agreement and max |Δ| between two [positions, vocab] logit arrays."""
    agree = int((a.argmax(axis=1) == b.argmax(axis=1)).sum())
    diff = np.abs(a.astype(np.float64) - b)
    return {"top1_agree": agree, "positions": int(a.shape[0]), "max_abs": float(diff.max()),
            "positions_over_1e-3": int((diff.max(axis=1) > 1e-3).sum())}


def settings(n_ctx):
    s = dict(LLAMA_SETTINGS, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
             llama_cpp_python=llama_cpp.__version__, kv_type="f16")
    s.pop("type_k"), s.pop("type_v")
    return s


def distribution_stats(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    top2 = np.sort(logits, axis=1)[:, -2:]
    return {
        "entropy_mean_nats": float(-(p * np.log(np.maximum(p, 1e-30))).sum(axis=1).mean()),
        "top1_prob_mean": float(p.max(axis=1).mean()),
        "top1_margin_mean": float((top2[:, 1] - top2[:, 0]).mean()),
        "top1_margin_min": float((top2[:, 1] - top2[:, 0]).min()),
        "logit_std_mean": float(logits.std(axis=1).mean()),
    }


def fixed_sequence(llm, n_vocab):
    """BOS (when the model adds one) + a tokenized sentence, then pseudo-random ids (a fixed LCG)
    up to N_TOKENS, so rare and filler tokens appear too."""
    ids = llm.tokenize(SEQUENCE_TEXT.encode(), add_bos=llm._model.add_bos_token(), special=False)
    state = 12345
    while len(ids) < N_TOKENS:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        ids.append(int((state >> 33) % n_vocab))
    return ids[:N_TOKENS]


def gen_synthetic(dizuo):
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, wtype, seed in SYNTHETIC:
            name = f"{arch}-tiny-{wtype}"
            path = os.path.join(tmp, name + ".gguf")
            subprocess.run([dizuo, "make-model", "--arch", arch, "--preset", "tiny", "--type", wtype,
                            "--seed", str(seed), "--vocab", str(SYNTHETIC_VOCAB), "-q", "-o", path],
                           check=True)
            llm = load(path, N_TOKENS, logits_all=True)
            n_vocab = llm.n_vocab()
            tokens = fixed_sequence(llm, n_vocab)
            llm.reset()
            llm.eval(tokens)
            logits = np.array(llm.scores[:len(tokens)], dtype=np.float32)
            noise = {name: compare(all_logits(path, tokens, **o), logits)
                     for name, o in NOISE_VARIANTS.items()}
            logits_file = name + ".logits.f32"
            logits.astype("<f4").tofile(os.path.join(OUT, logits_file))
            tokenizations = []
            for text in TOKENIZE_STRINGS:
                for special in (False, True):
                    tokenizations.append({
                        "text": text, "add_special": True, "parse_special": special,
                        "ids": llm.tokenize(text.encode(), add_bos=True, special=special)})
            entries.append({
                "name": name, "arch": arch, "preset": "tiny", "type": wtype, "seed": seed,
                "n_vocab": n_vocab, "sha256": sha256(path), "tokens": tokens,
                "logits_file": logits_file, "logits_shape": list(logits.shape),
                "stats": distribution_stats(logits), "llama_cpp_noise": noise,
                "tokenizations": tokenizations})
            print(f"{name}: sha256 {entries[-1]['sha256'][:16]}… {entries[-1]['stats']} "
                  f"noise {noise}", file=sys.stderr)
            del llm
    pooled = {name: {"top1_agree": sum(e["llama_cpp_noise"][name]["top1_agree"] for e in entries),
                     "positions": sum(e["llama_cpp_noise"][name]["positions"] for e in entries),
                     "max_abs": max(e["llama_cpp_noise"][name]["max_abs"] for e in entries)}
              for name in NOISE_VARIANTS}
    print(f"llama.cpp noise floor, pooled: {pooled}", file=sys.stderr)
    golden = {"generator": "scripts/gen-model-goldens.py", "llama_cpp": settings(N_TOKENS),
              "llama_cpp_noise_variants": {k: {kk: str(vv) for kk, vv in v.items()}
                                           for k, v in NOISE_VARIANTS.items()},
              "llama_cpp_noise_pooled": pooled, "models": entries}
    with open(os.path.join(OUT, "synthetic.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


def gemma_path():
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "get-default-model.sh")],
                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]


def top2(row):
    ids = np.argsort(row)[-2:][::-1]
    return [int(i) for i in ids], [float(row[i]) for i in ids]


def greedy(llm, prompt):
    """Greedy continuation as llama.cpp produces it incrementally (the prompt in one batch, then
    one token per batch), with the top-2 logits of every step; then the same tokens evaluated in
    one batch, to measure how much llama.cpp's own logits at those steps depend on batching."""
    prompt_ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    llm.reset()
    llm.eval(prompt_ids)
    out, steps, incremental = [], [], []
    for _ in range(GEMMA_N_PREDICT):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        incremental.append(row)
        ids, values = top2(row)
        out.append(ids[0])
        steps.append({"top2_ids": ids, "top2_logits": values})
        llm.eval([ids[0]])
    llm.reset()
    llm.eval(prompt_ids + out[:-1])
    first = len(prompt_ids) - 1
    for i, step in enumerate(steps):
        row = np.array(llm.scores[first + i], dtype=np.float32)
        step["batch_top2_logits"] = [float(row[j]) for j in step["top2_ids"]]
        step["batch_argmax"] = int(row.argmax())
        step["batch_max_abs_diff"] = float(np.abs(row.astype(np.float64) - incremental[i]).max())
    text = llm.detokenize(out).decode("utf-8", errors="replace")
    return prompt_ids, out, text, steps


def perplexity(llm, text_path):
    """llama.cpp's method (../shared/golden/perplexity.md)."""
    with open(text_path, "rb") as f:
        data = f.read()
    add_bos = llm._model.add_bos_token()
    tokens = llm.tokenize(data, add_bos=add_bos, special=False)
    bos = llm.token_bos()
    n_windows = min(PPL_WINDOWS, len(tokens) // PPL_CTX)
    first = PPL_CTX // 2
    window_nll = []
    all_nll = []
    for w in range(n_windows):
        window = tokens[w * PPL_CTX:(w + 1) * PPL_CTX]
        if add_bos:
            window[0] = bos
        llm.reset()
        llm.eval(window)
        logits = np.array(llm.scores[first:PPL_CTX - 1], dtype=np.float64)
        m = logits.max(axis=1, keepdims=True)
        logprobs = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        targets = np.array(window[first + 1:PPL_CTX])
        nll = -logprobs[np.arange(len(targets)), targets]
        window_nll.append(float(nll.mean()))
        all_nll.extend(nll.tolist())
        print(f"  window {w + 1}/{n_windows}: running PPL {math.exp(np.mean(all_nll)):.4f}",
              file=sys.stderr)
    nll = np.array(all_nll)
    mean = nll.mean()
    err = math.sqrt(max((nll ** 2).mean() - mean ** 2, 0.0) / (len(nll) - 1))
    return {"n_ctx": PPL_CTX, "windows": n_windows, "n_tokens_file": len(tokens),
            "scored_per_window": PPL_CTX - first - 1, "ppl": math.exp(mean),
            "ppl_error": math.exp(mean) * err, "window_mean_nll": window_nll}


def gen_gemma3_greedy(path):
    llm = load(path, 256, logits_all=True)
    cases = []
    start = time.time()
    for prompt in GEMMA_PROMPTS:
        prompt_ids, ids, text, steps = greedy(llm, prompt)
        cases.append({"prompt": prompt, "prompt_ids": prompt_ids, "ids": ids, "text": text,
                      "steps": steps})
        gaps = [s["top2_logits"][0] - s["top2_logits"][1] for s in steps]
        moved = [abs((s["batch_top2_logits"][0] - s["batch_top2_logits"][1]) - g)
                 for s, g in zip(steps, gaps)]
        print(f"{prompt!r} -> {text!r}\n  smallest top-2 gap {min(gaps):.4f}; batch vs "
              f"incremental: gap moves up to {max(moved):.4f}, max |Δ| "
              f"{max(s['batch_max_abs_diff'] for s in steps):.4f}, argmax differs at "
              f"{sum(s['batch_argmax'] != i for s, i in zip(steps, ids))} steps", file=sys.stderr)
    seconds = time.time() - start
    del llm
    return {"llama_cpp": settings(256), "n_predict": GEMMA_N_PREDICT, "add_bos": True,
            "seconds": seconds, "cases": cases}


def gen_gemma3(greedy_only):
    path = gemma_path()
    golden_path = os.path.join(OUT, "gemma3-270m.json")
    if greedy_only:
        with open(golden_path) as f:
            golden = json.load(f)
        if golden["sha256"] != sha256(path):
            sys.exit(f"{path} is not the file {golden_path} describes: regenerate all of it")
        golden["greedy"] = gen_gemma3_greedy(path)
        with open(golden_path, "w") as f:
            json.dump(golden, f, indent=1, ensure_ascii=False)
            f.write("\n")
        return
    greedy_golden = gen_gemma3_greedy(path)
    llm = load(path, PPL_CTX, logits_all=True)
    start = time.time()
    ppl = perplexity(llm, os.path.join(SHARED, "testdata", "text", "wiki.test.raw"))
    ppl["seconds"] = time.time() - start
    print(f"PPL {ppl['ppl']:.4f} ± {ppl['ppl_error']:.4f} in {ppl['seconds']:.0f} s", file=sys.stderr)
    golden = {
        "generator": "scripts/gen-model-goldens.py", "model": os.path.basename(path),
        "sha256": sha256(path), "greedy": greedy_golden,
        "perplexity": dict(ppl, text="testdata/text/wiki.test.raw", llama_cpp=settings(PPL_CTX))}
    with open(golden_path, "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dizuo", default=os.path.join(ROOT, "build", "bin", "dizuo"))
    parser.add_argument("--only", choices=["synthetic", "gemma3", "gemma3-greedy"])
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.only in (None, "synthetic"):
        gen_synthetic(args.dizuo)
    if args.only in (None, "gemma3", "gemma3-greedy"):
        gen_gemma3(greedy_only=args.only == "gemma3-greedy")


if __name__ == "__main__":
    main()
