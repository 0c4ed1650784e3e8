#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "core/error.h"
#include "runtime/perplexity.h"

namespace dizuo::cli {

Command AddPerplexity(CLI::App& app) {
  struct Options {
    ModelFlags model;
    std::string file;
    int chunks = -1;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  opt->model.n_ctx = 512;
  app.description(
      "Measure perplexity on a text file as llama.cpp's perplexity tool does: windows of N_CTX "
      "tokens, each from an empty cache, the second half of each scored. Prints 'PPL = x ± y'.");
  AddModelFlags(app, opt->model);
  app.add_option("-f,--file", opt->file, "Text file")->required();
  app.add_option("--chunks", opt->chunks, "Windows to evaluate (-1: all whole windows)")
      ->capture_default_str();
  app.add_flag("--json", opt->json, "Print one JSON object instead of 'PPL = x ± y'");

  return [opt] {
    const int n_ctx = opt->model.n_ctx;
    if (n_ctx < 4 || n_ctx % 2 != 0) Fail("-c must be an even number >= 4, not {}", n_ctx);
    if (opt->chunks == 0 || opt->chunks < -1) {
      Fail("--chunks must be positive (or -1 for all), not {}", opt->chunks);
    }
    std::ifstream in(opt->file, std::ios::binary);
    if (!in) Fail("{}: cannot open the text file", opt->file);
    std::stringstream text;
    text << in.rdbuf();

    ModelFlags model = opt->model;
    auto engine = LoadEngine(model);
    const int n_ctx_train = engine->summary().n_ctx_train;
    if (n_ctx_train > 0 && n_ctx > n_ctx_train) {
      fmt::print(stderr,
                 "dizuo: warning: -c {} is larger than the model's training context {}; "
                 "figures past it are not meaningful\n",
                 n_ctx, n_ctx_train);
    }
    const auto start = std::chrono::steady_clock::now();
    const std::vector<TokenId> tokens = engine->tokenizer().Encode(text.str(), true, false);
    fmt::print(stderr, "dizuo: {} tokens in {:.0f} ms; {} windows of {} available\n", tokens.size(),
               SecondsSince(start) * 1e3, tokens.size() / n_ctx, n_ctx);
    if (tokens.size() < static_cast<size_t>(n_ctx)) {
      Fail("{}: the text has {} tokens, fewer than one window of {} (lower -c)", opt->file,
           tokens.size(), n_ctx);
    }

    const auto eval_start = std::chrono::steady_clock::now();
    const PerplexityResult r =
        Perplexity(*engine, tokens, n_ctx, opt->chunks, [&](int done, int total, double running) {
          const double elapsed = SecondsSince(eval_start);
          const double eta = elapsed / done * (total - done);
          fmt::print(stderr, "[{}/{}] PPL = {:.4f}  ({:.2f} s/window, ETA {:.0f}:{:02.0f})\n", done,
                     total, running, elapsed / done, std::floor(eta / 60), std::fmod(eta, 60.0));
        });
    const double seconds = SecondsSince(eval_start);
    if (opt->json) {
      nlohmann::json out = {
          {"ppl", r.ppl},           {"stderr", r.ppl_stderr}, {"n_tokens", tokens.size()},
          {"n_scored", r.n_scored}, {"windows", r.n_windows}, {"n_ctx", n_ctx},
          {"seconds", seconds}};
      fmt::print("{}\n", out.dump());
    } else {
      fmt::print("PPL = {:.4f} ± {:.4f}\n", r.ppl, r.ppl_stderr);
    }
    fmt::print(stderr, "dizuo: {} windows, {} scored tokens in {:.2f} s ({:.1f} tokens/s)\n",
               r.n_windows, r.n_scored, seconds,
               seconds > 0 ? r.n_windows * static_cast<double>(n_ctx) / seconds : 0.0);
    PrintProfile(*engine, model);
    return 0;
  };
}

}  // namespace dizuo::cli
