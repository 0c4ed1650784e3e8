"""End-to-end runs of the dizuo CLI on the shared reference model and data.

The binary comes from $DIZUO_BIN (CTest passes the built one); shared data from $DIZUO_SHARED or
../shared beside the repository.
"""
import json
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("DIZUO_SHARED", ROOT.parent / "shared"))
BIN = os.environ.get("DIZUO_BIN", str(ROOT / "build" / "bin" / "dizuo"))
STORIES = str(SHARED / "models" / "stories260K.gguf")
GOLDEN = [json.loads(line) for line in (SHARED / "golden" / "stories260K-greedy.jsonl").open()]


def dizuo(*args, stdin=None, timeout=300):
    return subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def ok(*args, **kw):
    r = dizuo(*args, **kw)
    assert r.returncode == 0, f"dizuo {' '.join(map(str, args))} failed:\n{r.stderr}"
    return r


def fails(*args, message, **kw):
    """Runs a command that must fail cleanly: an error status (not a crash), `message` in stderr."""
    r = dizuo(*args, **kw)
    assert r.returncode != 0, f"expected failure, got success:\n{r.stdout}"
    # A signal (negative status) or an abort (134) would be a crash.
    assert 0 < r.returncode < 128, f"exit status {r.returncode} (a crash?):\n{r.stderr}"
    assert message.lower() in r.stderr.lower(), r.stderr
    return r


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_run_greedy_reproduces_first_golden(backend):
    case = GOLDEN[0]
    r = ok("run", "-m", STORIES, "-p", case["prompt"], "--temp", 0, "-n", case["n_predict"],
           "--backend", backend)
    assert r.stdout == case["continuation"]
    assert "prompt:" in r.stderr and "tokens/s" in r.stderr and "generation: 64 tokens" in r.stderr


def test_run_prompt_from_file(tmp_path):
    case = GOLDEN[1]
    path = tmp_path / "prompt.txt"
    path.write_text(case["prompt"])
    r = ok("run", "-m", STORIES, "-f", path, "--temp", 0, "-n", 64)
    assert r.stdout == case["continuation"]


def test_run_json():
    case = GOLDEN[0]
    r = ok("run", "-m", STORIES, "-p", case["prompt"], "--temp", 0, "-n", 16, "--json")
    out = json.loads(r.stdout)
    assert set(out) >= {"text", "prompt_tokens", "tokens", "stop_reason", "timings", "seed"}
    assert set(out["timings"]) >= {"load_ms", "prompt_ms", "prompt_tokens_per_s", "gen_ms",
                                   "gen_tokens_per_s"}
    assert len(out["tokens"]) == 16 and out["stop_reason"] == "length"
    assert case["continuation"].startswith(out["text"])
    # BOS + the prompt's tokens.
    ids = json.loads(ok("tokenize", "-m", STORIES, "--json", stdin=case["prompt"]).stdout)
    assert out["prompt_tokens"] == len(ids) and ids[0] == 1
    # The ids decode to the text.
    assert ok("detokenize", "-m", STORIES, stdin=json.dumps(out["tokens"])).stdout == out["text"]


def test_run_sampling_is_reproducible_with_a_seed():
    args = ["run", "-m", STORIES, "-p", "Once", "-n", 32, "--json", "--temp", 1.0,
            "--repeat-penalty", 1.1, "--presence-penalty", 0.2, "--frequency-penalty", 0.1]
    a = json.loads(ok(*args, "--seed", 42).stdout)
    b = json.loads(ok(*args, "--seed", 42).stdout)
    c = json.loads(ok(*args, "--seed", 43).stdout)
    assert a["tokens"] == b["tokens"] and a["seed"] == 42
    assert a["tokens"] != c["tokens"]


def test_run_stops_at_context_size():
    out = json.loads(ok("run", "-m", STORIES, "-p", "Once", "-c", 16, "-n", 100, "--temp", 0,
                        "--json").stdout)
    assert out["stop_reason"] in ("context", "eos")
    assert out["prompt_tokens"] + len(out["tokens"]) <= 17


def test_perplexity_stories260k():
    r = ok("perplexity", "-m", STORIES, "-f", SHARED / "testdata" / "text" / "tinystories_val.txt",
           "-c", 256, "--chunks", 40)
    line = r.stdout.strip()
    assert line.startswith("PPL = "), line
    ppl, err = float(line.split()[2]), float(line.split()[4])
    assert abs(ppl - 3.8233) / 3.8233 < 0.001, line
    assert abs(err - 0.0969) < 0.002, line
    assert "[40/40]" in r.stderr


def test_perplexity_json(tmp_path):
    r = ok("perplexity", "-m", STORIES, "-f", SHARED / "testdata" / "text" / "tinystories_val.txt",
           "-c", 128, "--chunks", 3, "--json")
    out = json.loads(r.stdout)
    assert out["windows"] == 3 and out["n_scored"] == 3 * 63 and out["ppl"] > 1
    assert {"stderr", "n_tokens", "seconds"} <= set(out)


def test_chat_with_piped_input():
    r = ok("chat", "-m", STORIES, "--temp", 0, "-n", 24, "--system", "Be kind.",
           stdin="Tell me a story.\nAnd another one.\n/reset\nHello\n/exit\nnot read\n")
    replies = r.stdout.split("\n")
    assert len([x for x in replies if x.strip()]) >= 2, r.stdout
    assert "chat template 'llama2'" in r.stderr
    assert r.stderr.count("reply tokens") == 3  # the line after /exit is not read
    assert "conversation reset" in r.stderr


def test_chat_second_turn_reuses_the_cache():
    r = ok("chat", "-m", STORIES, "--temp", 0, "-n", 8, stdin="Hi\nHow are you?\n")
    turns = [line for line in r.stderr.splitlines() if "new prompt tokens" in line]
    assert len(turns) == 2, r.stderr
    evaluated = [int(t.split("[")[1].split()[0]) for t in turns]
    reply = r.stdout.split("\n")[0]
    # stories260K has no chat template: the llama2 format. The whole second prompt:
    second = f"[INST] Hi [/INST] {reply.strip()} </s><s>[INST] How are you? [/INST]"
    n_second = len(json.loads(ok("tokenize", "-m", STORIES, "--json", "--special",
                                 stdin=second).stdout))
    assert evaluated[0] == len(json.loads(ok("tokenize", "-m", STORIES, "--json", "--special",
                                             stdin="[INST] Hi [/INST]").stdout))
    # Only the part after the cached first turn is evaluated again.
    assert 1 <= evaluated[1] <= n_second - evaluated[0] + 1, (evaluated, n_second)


def test_tokenize_detokenize_round_trip():
    text = "Once upon a time, there was a little dog named Max.\nHe liked to run!"
    ids = json.loads(ok("tokenize", "-m", STORIES, "--json", "--no-bos", stdin=text).stdout)
    assert len(ids) > 5
    assert ok("detokenize", "-m", STORIES, stdin=json.dumps(ids)).stdout == text


def test_info_lists_48_tensors():
    r = ok("info", STORIES)
    assert "tensors (48):" in r.stdout, r.stdout[:2000]
    table = r.stdout.split("tensors (48):")[1].splitlines()
    rows = [line for line in table if ".weight" in line]
    assert len(rows) == 48 and "token_embd.weight" in rows[0]


# Bad input: a clear message and a non-zero exit status, never a crash.

def test_missing_model_file():
    fails("run", "-m", "/nonexistent/model.gguf", "-p", "x", message="no such model file")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "bogus.gguf"
    path.write_bytes(b"this is not a gguf file at all, just some text" * 10)
    fails("run", "-m", path, "-p", "x", message=str(path))


@pytest.mark.parametrize("flags,message", [
    (["--top-p", 2], "top-p"),
    (["--top-p", 0], "top-p"),
    (["--min-p", -0.5], "min-p"),
    (["--top-k", -3], "top-k"),
    (["--repeat-penalty", 0], "repeat penalty"),
    (["-n", -5], "-n"),
    (["--threads", -2], "--threads"),
    (["--backend", "tpu9000"], "available: cpu"),
    (["--temp", "warm"], "--temp"),
    (["-c", -1], "--ctx-size"),
])
def test_bad_flag_values(flags, message):
    fails("run", "-m", STORIES, "-p", "Once", *flags, message=message)


def test_negative_temperature_is_greedy():
    a = ok("run", "-m", STORIES, "-p", GOLDEN[0]["prompt"], "--temp", -1, "-n", 64)
    assert a.stdout == GOLDEN[0]["continuation"]


def test_prompt_longer_than_context():
    fails("run", "-m", STORIES, "-p", "Once upon a time " * 20, "-c", 16,
          message="more than the context size")


def test_missing_prompt():
    fails("run", "-m", STORIES, message="prompt")


def test_perplexity_bad_inputs(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time.")
    fails("perplexity", "-m", STORIES, "-f", short, "-c", 256, message="fewer than one window")
    fails("perplexity", "-m", STORIES, "-f", short, "-c", 2, message="-c must be")
    fails("perplexity", "-m", STORIES, "-f", tmp_path / "none.txt", "-c", 256,
          message="cannot open")
    fails("perplexity", "-m", STORIES, "-f", short, "--chunks", 0, message="--chunks")


def test_chat_bad_template_name():
    fails("chat", "-m", STORIES, "--chat-template", "vicuna", stdin="hi\n",
          message="unknown chat template")
