#!/usr/bin/env python3
"""Regenerates tests/golden/models/: llama.cpp's outputs (through llama-cpp-python) on
  * synthetic tiny models made by `dizuo make-model` (logits for every position of a fixed token
    sequence, tokenizations of a few strings, the model's sha256), and
  * Gemma 3 270M Q4_K_M (greedy continuations and perplexity on wiki.test.raw).

Usage: scripts/gen-model-goldens.py --dizuo build/bin/dizuo [--only synthetic|gemma3]
llama.cpp's settings are pinned (threads, batch sizes, KV cache type, flash attention off) and
recorded in the golden files; tests/llamacpp_match_test.cc reads them.
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
N_TOKENS = 64
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


def load(path, n_ctx, logits_all):
    return Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                 logits_all=logits_all, verbose=False, **LLAMA_SETTINGS)


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
                "stats": distribution_stats(logits), "tokenizations": tokenizations})
            print(f"{name}: sha256 {entries[-1]['sha256'][:16]}… {entries[-1]['stats']}",
                  file=sys.stderr)
            del llm
    golden = {"generator": "scripts/gen-model-goldens.py", "llama_cpp": settings(N_TOKENS),
              "models": entries}
    with open(os.path.join(OUT, "synthetic.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


def gemma_path():
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "get-default-model.sh")],
                          check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]


def greedy(llm, prompt):
    prompt_ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    for _ in range(GEMMA_N_PREDICT):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    text = llm.detokenize(out).decode("utf-8", errors="replace")
    return prompt_ids, out, text


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


def gen_gemma3():
    path = gemma_path()
    llm = load(path, 256, logits_all=True)
    cases = []
    start = time.time()
    for prompt in GEMMA_PROMPTS:
        prompt_ids, ids, text = greedy(llm, prompt)
        cases.append({"prompt": prompt, "prompt_ids": prompt_ids, "ids": ids, "text": text})
        print(f"{prompt!r} -> {text!r}", file=sys.stderr)
    greedy_seconds = time.time() - start
    del llm
    llm = load(path, PPL_CTX, logits_all=True)
    start = time.time()
    ppl = perplexity(llm, os.path.join(SHARED, "testdata", "text", "wiki.test.raw"))
    ppl["seconds"] = time.time() - start
    print(f"PPL {ppl['ppl']:.4f} ± {ppl['ppl_error']:.4f} in {ppl['seconds']:.0f} s", file=sys.stderr)
    golden = {
        "generator": "scripts/gen-model-goldens.py", "model": os.path.basename(path),
        "sha256": sha256(path), "greedy": {"llama_cpp": settings(256), "n_predict": GEMMA_N_PREDICT,
                                           "add_bos": True, "seconds": greedy_seconds,
                                           "cases": cases},
        "perplexity": dict(ppl, text="testdata/text/wiki.test.raw", llama_cpp=settings(PPL_CTX))}
    with open(os.path.join(OUT, "gemma3-270m.json"), "w") as f:
        json.dump(golden, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dizuo", default=os.path.join(ROOT, "build", "bin", "dizuo"))
    parser.add_argument("--only", choices=["synthetic", "gemma3"])
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.only in (None, "synthetic"):
        gen_synthetic(args.dizuo)
    if args.only in (None, "gemma3"):
        gen_gemma3()


if __name__ == "__main__":
    main()
