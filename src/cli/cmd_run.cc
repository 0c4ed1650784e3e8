#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "core/error.h"

namespace dizuo::cli {
namespace {

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("{}: cannot open the prompt file", path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

double PerSecond(size_t n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

}  // namespace

Command AddRun(CLI::App& app) {
  struct Options {
    ModelFlags model;
    SamplingFlags sampling;
    std::string prompt;
    std::string prompt_file;
    int n_predict = 128;
    bool no_bos = false;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  app.description(
      "Generate a continuation of a prompt. Streams only the generated text to stdout; statistics "
      "go to stderr.");
  AddModelFlags(app, opt->model);
  CLI::Option* prompt = app.add_option("-p,--prompt", opt->prompt, "Prompt text");
  CLI::Option* file = app.add_option("-f,--file", opt->prompt_file, "Read the prompt from a file");
  prompt->excludes(file);
  app.add_option("-n,--n-predict", opt->n_predict,
                 "Most tokens to generate (-1: until end of generation or the context is full)")
      ->capture_default_str();
  AddSamplingFlags(app, opt->sampling);
  app.add_flag("--no-bos", opt->no_bos, "Do not start the prompt with BOS");
  app.add_flag("--json", opt->json,
               "Print one JSON object (text, token ids, timings) instead of streaming");

  return [opt] {
    if (opt->prompt_file.empty() && opt->prompt.empty()) Fail("give a prompt with -p or -f");
    if (opt->n_predict < -1) Fail("-n must be >= -1 (-1: no limit), not {}", opt->n_predict);
    const SamplingParams params = ResolveSampling(opt->sampling);
    const std::string text =
        opt->prompt_file.empty() ? opt->prompt : ReadTextFile(opt->prompt_file);

    const auto start = std::chrono::steady_clock::now();
    auto engine = LoadEngine(opt->model);
    const Tokenizer& tokenizer = engine->tokenizer();
    const ModelSummary& summary = engine->summary();
    const std::string copies = WaitForCopies(*engine, start);
    fmt::print(stderr,
               "dizuo: loaded {} ({}, {:.1f}M params) on {} with {} threads in {:.1f} ms{}\n",
               opt->model.model, summary.arch, summary.n_params / 1e6, engine->profile().selected,
               ThreadsText(opt->model.threads), engine->load_seconds() * 1e3, copies);

    const std::vector<TokenId> prompt_tokens = tokenizer.Encode(text, !opt->no_bos, true);
    if (prompt_tokens.empty()) Fail("the prompt is empty (no tokens to start from)");

    Sampler sampler(params);
    const bool stream = !opt->json;
    const Generation g = Generate(*engine, sampler, prompt_tokens, 0, opt->n_predict,
                                  [stream](const std::string& piece) {
                                    if (!stream || piece.empty()) return;
                                    std::fwrite(piece.data(), 1, piece.size(), stdout);
                                    std::fflush(stdout);
                                  });

    const double load_ms = engine->load_seconds() * 1e3;
    const double prompt_ms = g.prompt_seconds * 1e3;
    const double gen_ms = g.gen_seconds * 1e3;
    const double prompt_tps = PerSecond(prompt_tokens.size(), g.prompt_seconds);
    const double gen_tps = PerSecond(g.tokens.size(), g.gen_seconds);
    if (opt->json) {
      nlohmann::json out;
      out["text"] = tokenizer.Decode(g.tokens, false);
      out["prompt_tokens"] = prompt_tokens.size();
      out["tokens"] = g.tokens;
      out["n_generated"] = g.tokens.size();
      out["stop_reason"] = StopReasonName(g.stop);
      out["seed"] = params.seed;
      out["timings"] = {{"load_ms", load_ms},
                        {"prompt_ms", prompt_ms},
                        {"prompt_tokens_per_s", prompt_tps},
                        {"gen_ms", gen_ms},
                        {"gen_tokens_per_s", gen_tps}};
      // Invalid UTF-8 (a cut-off character) becomes U+FFFD rather than an exception.
      fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else if (isatty(STDOUT_FILENO)) {
      fmt::print("\n");
    }
    fmt::print(stderr, "dizuo: seed {}\n", params.seed);
    fmt::print(stderr, "dizuo: prompt: {} tokens in {:.1f} ms ({:.1f} tokens/s)\n",
               prompt_tokens.size(), prompt_ms, prompt_tps);
    fmt::print(stderr, "dizuo: generation: {} tokens in {:.1f} ms ({:.1f} tokens/s), stop: {}\n",
               g.tokens.size(), gen_ms, gen_tps, StopReasonName(g.stop));
    PrintProfile(*engine, opt->model);
    return 0;
  };
}

}  // namespace dizuo::cli
