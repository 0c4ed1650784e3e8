// dizuo bench: prompt-processing (pp) and generation (tg) speed in tokens/s, as llama-bench
// measures it, plus load time, peak resident memory and (with --bandwidth) the machine's memory
// read bandwidth. See docs/BENCHMARKS.md.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "bench/memory_bandwidth.h"
#include "bench/model_stats.h"
#include "bench/process_memory.h"
#include "cli/commands.h"
#include "cli/engine_options.h"
#include "core/build_info.h"
#include "core/error.h"

namespace dizuo::cli {
namespace {

constexpr uint64_t kRssSlackBytes = uint64_t{64} << 20;  // the peak-memory target's allowance
constexpr int kMaxTestTokens = 1 << 16;

struct BenchOptions {
  std::vector<std::string> models;
  std::vector<int> n_prompt = {512};
  std::vector<int> n_gen = {128};
  std::vector<int> depth = {0};
  std::vector<int> threads = {0};
  int reps = 5;
  int n_batch = 512;
  std::string backend = "cpu";
  std::string output = "md";
  bool profile = false;
  bool no_repack = false;
  bool bandwidth = false;
  int bandwidth_mib = 512;
};

// One engine (model × thread count) and the tests run on it.
struct EngineRun {
  bench::ModelStats stats;
  std::string backend;
  int threads = 0;
  int n_ctx = 0;
  double load_seconds = 0;
  uint64_t rss_before_load = 0;  // the process before the model (code, libraries, earlier runs)
  uint64_t peak_rss = 0;
  int repacked_tensors = 0;  // weights the backend repacked at load
  uint64_t repacked_bytes = 0;
  // From the start of the load until the repacked copies, made in the background, were all
  // complete (the timed tests start after that); about load_seconds when nothing was repacked.
  double repacked_ready_seconds = 0;
  bool peak_is_per_run = true;  // false: the peak covers the whole process
  std::vector<bench::TestResult> tests;
  uint64_t kv_cache_bytes() const { return stats.kv_bytes_per_cell * static_cast<uint64_t>(n_ctx); }
  uint64_t rss_budget() const { return stats.file_bytes + kv_cache_bytes() + kRssSlackBytes; }
};

struct BandwidthResult {
  int threads = 0;
  double bytes_per_second = 0;
};

int ResolveThreads(int threads) {
  return threads > 0 ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

void Validate(const BenchOptions& o) {
  if (o.models.empty() && !o.bandwidth) Fail("give a model with -m (or --bandwidth alone)");
  for (int p : o.n_prompt) {
    if (p < 0 || p > kMaxTestTokens) Fail("-p must be in 0..{}, not {}", kMaxTestTokens, p);
  }
  for (int n : o.n_gen) {
    if (n < 0 || n > kMaxTestTokens) Fail("-n must be in 0..{}, not {}", kMaxTestTokens, n);
  }
  for (int d : o.depth) {
    if (d < 0 || d > kMaxTestTokens) Fail("-d must be in 0..{}, not {}", kMaxTestTokens, d);
  }
  const bool any_test =
      std::any_of(o.n_prompt.begin(), o.n_prompt.end(), [](int p) { return p > 0; }) ||
      std::any_of(o.n_gen.begin(), o.n_gen.end(), [](int n) { return n > 0; });
  if (!o.models.empty() && !any_test) Fail("nothing to measure: -p and -n are all 0");
  if (o.reps < 1) Fail("-r must be >= 1, not {}", o.reps);
  for (int t : o.threads) {
    if (t < 0 || t > 1024) Fail("--threads must be in 0..1024 (0: one per core), not {}", t);
  }
  if (o.n_batch < 1) Fail("--batch must be positive, not {}", o.n_batch);
  if (o.bandwidth_mib < 16 || o.bandwidth_mib > (1 << 16)) {
    Fail("--bandwidth-mib must be in 16..65536, not {}", o.bandwidth_mib);
  }
}

EngineRun RunEngine(const BenchOptions& o, const bench::ModelStats& stats, int threads) {
  EngineRun run;
  run.stats = stats;
  run.backend = o.backend;
  run.threads = ResolveThreads(threads);
  const int max_p = *std::max_element(o.n_prompt.begin(), o.n_prompt.end());
  const int max_n = *std::max_element(o.n_gen.begin(), o.n_gen.end());
  const int max_d = *std::max_element(o.depth.begin(), o.depth.end());
  run.n_ctx = max_d + std::max(max_p, max_n);

  ModelFlags flags;
  flags.model = stats.path;
  flags.backend = o.backend;
  flags.profile = o.profile;
  flags.threads = run.threads;
  flags.n_ctx = run.n_ctx;
  flags.n_batch = o.n_batch;
  flags.no_repack = o.no_repack;
  run.peak_is_per_run = bench::ResetPeakResident();
  run.rss_before_load = bench::CurrentResidentBytes();
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Engine> engine = LoadEngine(flags);
  run.load_seconds = SecondsSince(start);
  run.repacked_tensors = engine->summary().repacked_tensors;
  run.repacked_bytes = engine->summary().repacked_bytes;
  engine->WaitForRepackedWeights();
  run.repacked_ready_seconds = SecondsSince(start);

  std::vector<bench::TestSpec> specs;
  for (int d : o.depth) {
    for (int p : o.n_prompt) {
      if (p > 0) specs.push_back({bench::TestKind::kPrompt, p, o.reps, d});
    }
    for (int n : o.n_gen) {
      if (n > 0) specs.push_back({bench::TestKind::kGeneration, n, o.reps, d});
    }
  }
  for (const bench::TestSpec& spec : specs) {
    SchedulerProfile profile;
    run.tests.push_back(bench::RunTest(*engine, spec, o.profile ? &profile : nullptr));
    const bench::TestResult& r = run.tests.back();
    fmt::print(stderr, "bench: {}, threads {}, {}: {:.2f} ± {:.2f} t/s\n", run.stats.Label(),
               run.threads, spec.Name(), r.mean_tps(), r.stddev_tps());
    if (o.profile) {
      fmt::print(
          stderr,
          "bench: profile of {} (warm-up and repetitions{}; per-node timing slows every pass):\n{}",
          spec.Name(), spec.depth > 0 ? ", not the depth's passes" : "", profile.Report());
    }
  }
  run.peak_rss = bench::PeakResidentBytes();
  return run;
}

std::string FormatBandwidth(double bytes_per_second) {
  return fmt::format("{:.1f} GB/s", bytes_per_second / 1e9);
}

void PrintMarkdown(const std::vector<EngineRun>& runs, const std::vector<BandwidthResult>& bw) {
  if (!runs.empty()) {
    fmt::print("| model | size | params | backend | threads | test | t/s |\n");
    fmt::print("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    for (const EngineRun& run : runs) {
      for (const bench::TestResult& t : run.tests) {
        fmt::print("| {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} |\n", run.stats.Label(),
                   bench::HumanBytes(run.stats.file_bytes), bench::HumanCount(run.stats.n_params),
                   run.backend, run.threads, t.spec.Name(), t.mean_tps(), t.stddev_tps());
      }
    }
    fmt::print(
        "\n| model | threads | types | repacked at load | load | RSS before load | peak RSS | "
        "file + KV + 64 MiB |\n");
    fmt::print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |\n");
    for (const EngineRun& run : runs) {
      const std::string repacked =
          run.repacked_tensors == 0
              ? std::string("none")
              : fmt::format("{} tensors, {} (done at {:.3f} s)", run.repacked_tensors,
                            bench::HumanBytes(run.repacked_bytes), run.repacked_ready_seconds);
      fmt::print("| {} | {} | {} | {} | {:.3f} s | {} | {}{} | {} |\n", run.stats.Label(),
                 run.threads, run.stats.TypeMix(), repacked, run.load_seconds,
                 bench::HumanBytes(run.rss_before_load), bench::HumanBytes(run.peak_rss),
                 run.peak_is_per_run ? "" : " (process)", bench::HumanBytes(run.rss_budget()));
    }
    fmt::print("\nbuild: {}\n", BuildCommit());  // as llama-bench ends its table
  }
  if (!bw.empty()) {
    if (!runs.empty()) fmt::print("\n");
    fmt::print("memory read bandwidth ({}):", CpuModelName());
    for (const BandwidthResult& b : bw) {
      fmt::print(" {} thread{} {};", b.threads, b.threads == 1 ? "" : "s",
                 FormatBandwidth(b.bytes_per_second));
    }
    fmt::print("\n");
  }
}

nlohmann::json ToJson(const std::vector<EngineRun>& runs, const std::vector<BandwidthResult>& bw) {
  nlohmann::json results = nlohmann::json::array();
  for (const EngineRun& run : runs) {
    const bench::ModelStats& s = run.stats;
    for (const bench::TestResult& t : run.tests) {
      const bool tg = t.spec.kind == bench::TestKind::kGeneration;
      // A generated token at position i reads i + 1 cache cells; the mean over tg<N> after D
      // tokens is D + (N+1)/2.
      const uint64_t kv_per_token =
          tg ? s.kv_bytes_per_cell * static_cast<uint64_t>(2 * t.spec.depth + t.spec.n_tokens + 1) /
                   2
             : 0;
      nlohmann::json samples_ns = nlohmann::json::array();
      for (double sec : t.seconds) samples_ns.push_back(static_cast<int64_t>(sec * 1e9));
      results.push_back({
          {"build_commit", BuildCommit()},
          {"model", s.Label()},
          {"model_filename", s.path},
          {"arch", s.arch},
          {"file_type", s.file_type},
          {"model_size", s.file_bytes},
          {"model_n_params", s.n_params},
          {"weight_bytes", s.weight_bytes},
          {"type_bytes", s.type_bytes},
          {"backend", run.backend},
          {"n_threads", run.threads},
          {"n_ctx", run.n_ctx},
          {"test", t.spec.Name()},
          {"n_prompt", tg ? 0 : t.spec.n_tokens},
          {"n_gen", tg ? t.spec.n_tokens : 0},
          {"n_depth", t.spec.depth},
          {"reps", t.spec.reps},
          {"samples_ns", samples_ns},
          {"samples_ts", t.tokens_per_second()},
          {"avg_ns", static_cast<int64_t>(t.mean_seconds() * 1e9)},
          {"stddev_ns", static_cast<int64_t>(t.stddev_seconds() * 1e9)},
          {"avg_ts", t.mean_tps()},
          {"stddev_ts", t.stddev_tps()},
          {"load_seconds", run.load_seconds},
          {"repacked_tensors", run.repacked_tensors},
          {"repacked_bytes", run.repacked_bytes},
          {"repacked_ready_seconds", run.repacked_ready_seconds},
          {"rss_before_load_bytes", run.rss_before_load},
          {"peak_rss_bytes", run.peak_rss},
          {"peak_rss_per_run", run.peak_is_per_run},
          {"kv_cache_bytes", run.kv_cache_bytes()},
          {"rss_budget_bytes", run.rss_budget()},
          {"weight_bytes_per_token", s.weight_bytes_per_token},
          {"kv_bytes_per_token", kv_per_token},
          {"bytes_per_token", tg ? s.weight_bytes_per_token + kv_per_token : 0},
      });
    }
  }
  nlohmann::json bandwidth = nlohmann::json::array();
  for (const BandwidthResult& b : bw) {
    bandwidth.push_back({{"threads", b.threads}, {"bytes_per_second", b.bytes_per_second}});
  }
  return {{"build_commit", BuildCommit()}, {"version", BuildVersion()},
          {"cpu", CpuModelName()},         {"cores", std::thread::hardware_concurrency()},
          {"bandwidth", bandwidth},        {"results", results}};
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void PrintCsv(const std::vector<EngineRun>& runs) {
  fmt::print(
      "model,model_filename,model_size,model_n_params,backend,n_threads,test,avg_ts,stddev_ts,"
      "load_seconds,peak_rss_bytes\n");
  for (const EngineRun& run : runs) {
    for (const bench::TestResult& t : run.tests) {
      fmt::print("{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{}\n", CsvField(run.stats.Label()),
                 CsvField(run.stats.path), run.stats.file_bytes, run.stats.n_params,
                 CsvField(run.backend), run.threads, t.spec.Name(), t.mean_tps(), t.stddev_tps(),
                 run.load_seconds, run.peak_rss);
    }
  }
}

}  // namespace

Command AddBench(CLI::App& app) {
  auto opt = std::make_shared<BenchOptions>();
  app.description(
      "Measure prompt processing (pp: one batch of P tokens) and generation (tg: N single-token "
      "passes) in tokens/s, as llama-bench does: fixed token ids (no tokenizer, no sampler), one "
      "warm-up, mean ± standard deviation over repetitions, each from an empty cache. Lists "
      "(-m, -p, -n, -d, -t) run every combination.");
  app.add_option("-m,--model", opt->models, "GGUF model file (repeatable)");
  app.add_option("-p,--n-prompt", opt->n_prompt, "Prompt tokens per pp test (list; 0: no pp)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-n,--n-gen", opt->n_gen, "Generated tokens per tg test (list; 0: no tg)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-d,--n-depth", opt->depth,
                 "Tokens already in the cache before each test (list), as llama-bench's -d: "
                 "'tg128 @ d4096' generates 128 tokens after a 4096-token context")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-r,--repetitions", opt->reps, "Timed repetitions of each test")
      ->capture_default_str();
  app.add_option("-t,--threads", opt->threads, "Thread counts (list; 0: one per core)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("-b,--batch", opt->n_batch, "Most tokens per forward pass")->capture_default_str();
  app.add_option("--backend", opt->backend, "Backend to run on")->capture_default_str();
  app.add_option("-o,--output", opt->output, "Output format")
      ->check(CLI::IsMember({"md", "json", "csv"}))
      ->capture_default_str();
  app.add_flag("--profile", opt->profile,
               "Time every node and print a per-op profile of each test to stderr (its own "
               "passes, not those that fill the cache to the depth), with the MATMULs by weight "
               "type and shape (weight GB/s, GFLOP/s); slows the tests: each node is "
               "synchronized");
  app.add_flag("--no-repack", opt->no_repack, kNoRepackHelp);
  app.add_flag("--bandwidth", opt->bandwidth,
               "Also measure the memory read bandwidth for each thread count (alone without -m)");
  app.add_option("--bandwidth-mib", opt->bandwidth_mib,
                 "Buffer the bandwidth probe reads, in MiB (much larger than the last-level cache)")
      ->capture_default_str();

  return [opt] {
    Validate(*opt);
    std::vector<BandwidthResult> bandwidth;
    if (opt->bandwidth) {
      for (int threads : opt->threads) {
        bench::BandwidthOptions b;
        b.threads = ResolveThreads(threads);
        b.bytes = static_cast<size_t>(opt->bandwidth_mib) << 20;
        bandwidth.push_back({b.threads, bench::MeasureReadBandwidth(b)});
        fmt::print(stderr, "bench: memory read bandwidth, threads {}: {}\n", b.threads,
                   FormatBandwidth(bandwidth.back().bytes_per_second));
      }
    }
    // Every file is checked before the first measurement.
    std::vector<bench::ModelStats> models;
    for (const std::string& model : opt->models) models.push_back(bench::InspectModel(model));
    std::vector<EngineRun> runs;
    for (const bench::ModelStats& model : models) {
      for (int threads : opt->threads) runs.push_back(RunEngine(*opt, model, threads));
    }
    if (opt->output == "json") {
      fmt::print("{}\n", ToJson(runs, bandwidth).dump(2));
    } else if (opt->output == "csv") {
      PrintCsv(runs);
    } else {
      PrintMarkdown(runs, bandwidth);
    }
    return 0;
  };
}

}  // namespace dizuo::cli
