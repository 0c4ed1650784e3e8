"""End-to-end runs of `dizuo bench` on the shared stories260K model: the JSON, markdown and CSV
outputs carry consistent figures, and bad flags fail with a clear message.

The binary comes from $DIZUO_BIN (CTest passes the built one); shared data from $DIZUO_SHARED or
../shared beside the repository.
"""
import json
import os
import pathlib
import re
import statistics
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("DIZUO_SHARED", ROOT.parent / "shared"))
BIN = os.environ.get("DIZUO_BIN", str(ROOT / "build" / "bin" / "dizuo"))
STORIES = SHARED / "models" / "stories260K.gguf"
FAST = ["-m", STORIES, "-p", "16", "-n", "4", "-r", "2"]


def dizuo(*args, timeout=300):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def ok(*args):
    r = dizuo(*args)
    assert r.returncode == 0, f"dizuo {' '.join(map(str, args))} failed:\n{r.stderr}"
    return r


def fails(*args, message):
    r = dizuo(*args)
    assert r.returncode != 0, f"expected failure, got success:\n{r.stdout}"
    assert 0 < r.returncode < 128, f"exit status {r.returncode} (a crash?):\n{r.stderr}"
    assert message.lower() in r.stderr.lower(), r.stderr
    return r


def stories_params_and_types():
    import gguf
    reader = gguf.GGUFReader(str(STORIES))
    n_params = sum(int(np.prod(t.shape)) for t in reader.tensors)
    return n_params, {t.tensor_type.name.lower() for t in reader.tensors}


@pytest.fixture(scope="module")
def json_run():
    return json.loads(ok("bench", *FAST, "-t", "1", "-o", "json").stdout)


def test_json_has_one_result_per_test(json_run):
    results = json_run["results"]
    assert [r["test"] for r in results] == ["pp16", "tg4"]
    pp, tg = results
    assert (pp["n_prompt"], pp["n_gen"]) == (16, 0)
    assert (tg["n_prompt"], tg["n_gen"]) == (0, 4)
    assert json_run["cores"] >= 1 and json_run["cpu"]


def test_records_the_build_commit(json_run):
    """--version, the JSON (top level and per result, llama-bench's build_commit) and the markdown
    name the commit the binary was built from."""
    m = re.fullmatch(r"dizuo (\d+\.\d+\.\d+) \(([0-9a-f]{12}(-dirty)?|unknown)\)",
                     ok("--version").stdout.strip())
    assert m, ok("--version").stdout
    commit = m[2]
    assert json_run["build_commit"] == commit and json_run["version"] == m[1]
    assert all(r["build_commit"] == commit for r in json_run["results"])
    assert f"\nbuild: {commit}\n" in ok("bench", *FAST, "-t", "1").stdout
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
                         capture_output=True, text=True)
    if git.returncode == 0:  # built from this checkout: the commit is one of its own
        assert commit != "unknown"
        found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e",
                                commit.removesuffix("-dirty") + "^{commit}"])
        assert found.returncode == 0, f"{commit} is not a commit of {ROOT}"


def test_json_describes_the_model(json_run):
    n_params, types = stories_params_and_types()
    for r in json_run["results"]:
        assert r["model_size"] == STORIES.stat().st_size
        assert r["model_n_params"] == n_params
        assert set(r["type_bytes"]) == types
        assert r["weight_bytes"] == sum(r["type_bytes"].values())
        assert r["backend"] == "cpu" and r["n_threads"] == 1 and r["arch"] == "llama"
        assert r["model"].startswith("llama ")


def test_json_speeds_follow_from_the_samples(json_run):
    for r in json_run["results"]:
        n = r["n_prompt"] + r["n_gen"]
        assert r["reps"] == 2 and len(r["samples_ns"]) == 2 and len(r["samples_ts"]) == 2
        for ns, ts in zip(r["samples_ns"], r["samples_ts"]):
            assert ns > 0 and ts == pytest.approx(n / (ns * 1e-9), rel=1e-3)
        assert r["avg_ts"] == pytest.approx(statistics.mean(r["samples_ts"]), rel=1e-9)
        assert r["stddev_ts"] == pytest.approx(statistics.stdev(r["samples_ts"]), rel=1e-6)
        assert r["avg_ns"] == pytest.approx(statistics.mean(r["samples_ns"]), rel=1e-3, abs=2)


def test_json_reports_memory_load_time_and_bytes_per_token(json_run):
    pp, tg = json_run["results"]
    for r in (pp, tg):
        assert 0 < r["load_seconds"] < 60
        assert r["peak_rss_bytes"] >= r["rss_before_load_bytes"] > 0
        # stories260K: 5 layers, 4 KV heads of 8 dims, K and V in F16, 16 cells (max of -p, -n).
        assert r["kv_cache_bytes"] == 5 * 2 * 4 * 8 * 2 * 16
        assert r["rss_budget_bytes"] == r["model_size"] + r["kv_cache_bytes"] + (64 << 20)
    # The output projection is stored apart from the embedding table, so a token reads every
    # weight but one embedding row (512 rows).
    assert tg["weight_bytes_per_token"] < tg["weight_bytes"]
    assert tg["kv_bytes_per_token"] == 5 * 2 * 4 * 8 * 2 * (4 + 1) // 2
    assert tg["bytes_per_token"] == tg["weight_bytes_per_token"] + tg["kv_bytes_per_token"]
    assert pp["bytes_per_token"] == 0


def test_markdown_table_like_llama_bench():
    out = ok("bench", *FAST, "-t", "1,2").stdout
    lines = out.splitlines()
    assert lines[0] == "| model | size | params | backend | threads | test | t/s |"
    rows = [l.split("|")[1:-1] for l in lines[2:6]]
    assert [(r[4].strip(), r[5].strip()) for r in rows] == [
        ("1", "pp16"), ("1", "tg4"), ("2", "pp16"), ("2", "tg4")]
    for r in rows:
        mean, sd = r[6].split("±")
        assert float(mean) > 0 and float(sd) >= 0
    assert "peak RSS" in out and "load" in out


def test_csv_has_a_header_and_one_row_per_test():
    lines = ok("bench", *FAST, "-t", "1", "-o", "csv").stdout.strip().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["model", "model_filename"] and "avg_ts" in header
    assert len(lines) == 3
    for line in lines[1:]:
        assert float(line.split(",")[header.index("avg_ts")]) > 0


def test_list_flags_run_every_combination():
    results = json.loads(
        ok("bench", "-m", STORIES, "-p", "8,16", "-n", "0", "-r", "1", "-t", "1", "-o",
           "json").stdout)["results"]
    assert [r["test"] for r in results] == ["pp8", "pp16"]


def test_depth_fills_the_cache_first():
    results = json.loads(
        ok("bench", "-m", STORIES, "-p", "8", "-n", "4", "-d", "0,32", "-r", "1", "-t", "1", "-o",
           "json").stdout)["results"]
    assert [r["test"] for r in results] == ["pp8", "tg4", "pp8 @ d32", "tg4 @ d32"]
    assert [r["n_depth"] for r in results] == [0, 0, 32, 32]
    assert all(r["n_ctx"] == 32 + 8 for r in results)
    # A generated token after 32 cached ones reads 32 + (4 + 1) / 2 cells on average.
    tg0, tgd = results[1], results[3]
    per_cell = tg0["kv_bytes_per_token"] * 2 / 5
    assert tgd["kv_bytes_per_token"] == pytest.approx(per_cell * (32 + 2.5), rel=1e-6)
    md = ok("bench", "-m", STORIES, "-p", "0", "-n", "4", "-d", "16", "-r", "1", "-t", "1").stdout
    assert "| tg4 @ d16 |" in md


def test_profile_leaves_out_the_depth():
    # 4 generated tokens × (warm-up + 2 repetitions) = 12 single-token passes; the passes that fill
    # the 16 cells of depth (one per run) are not the test's.
    err = ok("bench", "-m", STORIES, "-p", "0", "-n", "4", "-d", "16", "-r", "2", "-t", "1",
             "--profile").stderr
    assert "profile of tg4 @ d16 (warm-up and repetitions, not the depth's passes" in err
    assert "dizuo profile: 12 forward passes" in err, err
    err = ok("bench", "-m", STORIES, "-p", "8", "-n", "0", "-r", "1", "-t", "1", "--profile").stderr
    assert "dizuo profile: 2 forward passes" in err, err


def test_bandwidth_probe():
    out = json.loads(ok("bench", "--bandwidth", "--bandwidth-mib", "32", "-t", "1,2", "-o",
                        "json").stdout)
    assert [b["threads"] for b in out["bandwidth"]] == [1, 2]
    for b in out["bandwidth"]:
        assert b["bytes_per_second"] > 1e8  # any machine streams more than 100 MB/s
    assert out["results"] == []


@pytest.mark.parametrize("args,message", [
    (["-r", "0"], "-r must be >= 1"),
    (["-p", "-3"], "-p must be in"),
    (["-n", "70000"], "-n must be in"),
    (["-p", "0", "-n", "0"], "nothing to measure"),
    (["-t", "-1"], "--threads must be"),
    (["-o", "xml"], "--output"),
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["-b", "0"], "--batch must be positive"),
    (["-d", "-1"], "-d must be in"),
])
def test_bad_flags_fail_clearly(args, message):
    fails("bench", "-m", STORIES, *args, message=message)


def test_missing_model_fails_clearly():
    fails("bench", "-m", STORIES, "-m", "/nonexistent/model.gguf",
          message="/nonexistent/model.gguf: cannot open")
    fails("bench", message="give a model with -m")


def test_not_a_gguf_fails_clearly(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    r = fails("bench", "-m", bad, message="bad.gguf")
    assert "error" in r.stderr


def test_compare_llamacpp_names_a_missing_model(tmp_path):
    """--models names a file that is not there: a clear error before any measurement."""
    missing = tmp_path / "nope.gguf"
    r = subprocess.run([str(ROOT / "bench" / "compare-llamacpp"), "--dizuo", BIN, "--models",
                        f"{STORIES},{missing}"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f"no such file: {missing}" in r.stderr
    assert "measuring memory bandwidth" not in r.stderr


def test_compare_llamacpp_on_stories(tmp_path):
    """bench/compare-llamacpp end to end on stories260K (needs llama-cpp-python)."""
    pytest.importorskip("llama_cpp")
    out = tmp_path / "compare.json"
    r = subprocess.run([str(ROOT / "bench" / "compare-llamacpp"), "--dizuo", BIN, "--models",
                        str(STORIES), "-t", "1", "-p", "8", "-n", "4", "--rounds", "2", "-r", "1",
                        "--bandwidth-mib", "32", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "stories260K: read into the page cache in" in r.stderr
    assert "| model | threads | test | dizuo t/s | llama.cpp t/s |" in r.stdout
    data = json.loads(out.read_text())
    table = data["table"]
    assert [(e["test"], e["threads"]) for e in table] == [("pp8", 1), ("tg4", 1)]
    # The engine that goes first flips every round.
    assert [rd["first"] for rd in data["raw"][0]["rounds"]] == ["dizuo", "llama.cpp"]
    # The file is read into the page cache right before each engine's run, in the run order.
    for rd in data["raw"][0]["rounds"]:
        order = ["dizuo", "llama.cpp"] if rd["first"] == "dizuo" else ["llama.cpp", "dizuo"]
        assert list(rd["page_cache_read_s"]) == order
        assert all(s >= 0 for s in rd["page_cache_read_s"].values())
    for e in table:
        assert len(e["dizuo_round_ts"]) == len(e["llamacpp_round_ts"]) == 2
        ratios = [a / b for a, b in zip(e["dizuo_round_ts"], e["llamacpp_round_ts"])]
        assert e["ratio"] == pytest.approx(statistics.median(ratios))
        assert e["round_ratios"] == pytest.approx(ratios)
        spread = f"| {min(ratios):.2f}-{max(ratios):.2f} |"
        assert spread in r.stdout
    tg = table[1]
    bandwidth = data["bandwidth_bytes_per_second"]["1"]
    assert tg["limit_ts"] == pytest.approx(bandwidth / tg["bytes_per_token"])
    assert tg["dizuo_of_limit"] == pytest.approx(tg["dizuo_ts"] / tg["limit_ts"])
    # The row's own probes, before and after its rounds: the better gives its adjacent limit.
    adjacent = tg["adjacent_bandwidth"]
    assert len(adjacent) == 2 and min(adjacent) > 0
    assert tg["adjacent_limit_ts"] == pytest.approx(max(adjacent) / tg["bytes_per_token"])
    assert tg["dizuo_of_adjacent_limit"] == pytest.approx(tg["dizuo_ts"] / tg["adjacent_limit_ts"])
    assert f"({100 * tg['dizuo_of_adjacent_limit']:.0f}%)" in r.stdout
    assert "against the probes adjacent to each row" in r.stdout


@pytest.fixture(scope="module")
def tiny_q4_0(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "llama-tiny-q4_0.gguf"
    ok("make-model", "--arch", "llama", "--preset", "tiny", "--type", "q4_0", "-o", path)
    return path


def test_no_repack_reads_the_file_layout(tiny_q4_0):
    """Weights repacked at load are reported; --no-repack turns repacking off."""
    args = ["bench", "-m", tiny_q4_0, "-p", "8", "-n", "2", "-r", "1", "-t", "1", "-o", "json"]
    default = json.loads(ok(*args).stdout)["results"][0]
    plain = json.loads(ok(*args, "--no-repack").stdout)["results"][0]
    assert plain["repacked_tensors"] == 0 and plain["repacked_bytes"] == 0
    # The CPU backend copies them with every SIMD table (into its own layouts on AVX2 and AVX-512,
    # as they are on ARM), none with the generic one; the tiny llama has 4 layers of 7 MATMUL
    # weights and an untied output layer, all q4_0.
    assert default["repacked_tensors"] in (0, 29)
    assert (default["repacked_bytes"] > 0) == (default["repacked_tensors"] > 0)
    assert default["repacked_bytes"] <= default["weight_bytes"]
    # The copies are made in the background; the timed tests wait for them.
    assert default["repacked_ready_seconds"] >= default["load_seconds"]
    md = ok("bench", "-m", tiny_q4_0, "-p", "8", "-n", "0", "-r", "1", "-t", "1").stdout
    assert "| repacked at load |" in md


def test_ab_dizuo_alternates_and_reports_median_ratios(tiny_q4_0, tmp_path):
    out = tmp_path / "ab.json"
    r = subprocess.run([str(ROOT / "bench" / "ab-dizuo"), "--dizuo", BIN, "-m", str(tiny_q4_0),
                        "-t", "1", "-p", "8", "-n", "2", "--rounds", "2", "-r", "1",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "| model | threads | test | A t/s | B t/s | A ÷ B | rounds min-max |" in r.stdout
    data = json.loads(out.read_text())
    assert data["b"][-1] == "--no-repack"
    rounds = data["runs"][0]["rounds"]
    assert len(rounds) == 2
    assert [x["first"] for x in rounds] == ["a", "b"]  # the order flips every round
    for test in ("pp8", "tg2"):
        ratios = [x["a"][test] / x["b"][test] for x in rounds]
        assert f"| {statistics.median(ratios):.2f}× | {min(ratios):.2f}-{max(ratios):.2f} |" in \
            r.stdout
    # Two binaries: B gets the same (no) flags unless told otherwise.
    two = subprocess.run([str(ROOT / "bench" / "ab-dizuo"), "--dizuo", BIN, "--dizuo-b", BIN,
                          "-m", str(tiny_q4_0), "-t", "1", "-p", "0", "-n", "2", "--rounds", "1",
                          "-r", "1", "--json", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr
    assert json.loads(out.read_text())["b"] == [BIN]
    # The runs themselves go A B, then B A: each side's binary is a wrapper that logs its bench runs.
    log = tmp_path / "order.log"
    wrappers = []
    for side in ("A", "B"):
        w = tmp_path / f"dizuo-{side}"
        w.write_text(f'#!/bin/sh\n[ "$1" = bench ] && echo {side} >> "{log}"\nexec "{BIN}" "$@"\n')
        w.chmod(0o755)
        wrappers.append(str(w))
    ordered = subprocess.run([str(ROOT / "bench" / "ab-dizuo"), "--dizuo", wrappers[0],
                              "--dizuo-b", wrappers[1], "-m", str(tiny_q4_0), "-t", "1", "-p", "0",
                              "-n", "2", "--rounds", "2", "-r", "1", "--json", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert ordered.returncode == 0, ordered.stderr
    assert log.read_text().split() == ["A", "B", "B", "A"]
    assert [x["first"] for x in json.loads(out.read_text())["runs"][0]["rounds"]] == ["a", "b"]
    bad = subprocess.run([str(ROOT / "bench" / "ab-dizuo"), "--dizuo", BIN, "-m",
                          str(tmp_path / "missing.gguf")], capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.gguf: no such model file" in bad.stderr
