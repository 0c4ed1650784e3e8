// dizuo make-model: writes a synthetic GGUF (random weights, real shapes, working tokenizer).
#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/core.h>

#include "cli/commands.h"
#include "core/error.h"
#include "model/synthetic.h"

namespace dizuo::cli {

Command AddMakeModel(CLI::App& app) {
  struct Options {
    SyntheticOptions synthetic;
    std::string output;
    bool quiet = false;
  };
  auto opt = std::make_shared<Options>();
  app.add_option("--arch", opt->synthetic.arch, "Architecture")
      ->check(CLI::IsMember({"llama", "qwen2", "gemma3"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--preset", opt->synthetic.preset, "Size preset")
      ->check(CLI::IsMember({"tiny", "125m", "1b"}, CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--type", opt->synthetic.type,
                 "Weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k, "
                 "or q4_k_m (llama.cpp's Q4_K/Q6_K mixture)")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k",
                             "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m"},
                            CLI::ignore_case))
      ->capture_default_str();
  app.add_option("--seed", opt->synthetic.seed, "Random seed (same seed, same bytes)")
      ->check(CLI::Validator(
          [](const std::string& v) {
            return v.find_first_not_of("0123456789") == std::string::npos
                       ? std::string()
                       : "must be a non-negative integer, got '" + v + "'";
          },
          "UINT64"))
      ->capture_default_str();
  app.add_option("--vocab", opt->synthetic.n_vocab, "Vocabulary size (default: the preset's)")
      ->check(CLI::Range(512, 1 << 20));
  app.add_option("--ctx", opt->synthetic.n_ctx, "Training context length to record")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--threads", opt->synthetic.threads, "Threads (default: one per core)")
      ->check(CLI::Range(0, 1024));
  app.add_option("-o,--output", opt->output, "Output GGUF file")->required();
  app.add_flag("-q,--quiet", opt->quiet, "No progress on stderr");
  return [opt] {
    const SyntheticShape s = ResolveSyntheticShape(opt->synthetic);
    if (!opt->quiet) {
      fmt::print(stderr,
                 "make-model: {} {}: n_embd {}, {} layers, {} heads / {} kv (head_dim {}), n_ff "
                 "{}, vocab {}, type {}, seed {}\n",
                 s.arch, opt->synthetic.preset, s.n_embd, s.n_layer, s.n_head, s.n_head_kv,
                 s.head_dim, s.n_ff, s.n_vocab, opt->synthetic.type, opt->synthetic.seed);
    }
    const auto start = std::chrono::steady_clock::now();
    SyntheticProgress progress;
    if (!opt->quiet) {
      // One line per second at most, and the last one.
      auto last = std::make_shared<std::chrono::steady_clock::time_point>(start);
      progress = [last](int done, int total, std::string_view name) {
        const auto now = std::chrono::steady_clock::now();
        if (done < total && now - *last < std::chrono::seconds(1)) return;
        *last = now;
        fmt::print(stderr, "make-model: {}/{} tensors ({})\n", done, total, name);
      };
    }
    WriteSyntheticModel(opt->synthetic, opt->output, progress);
    if (!opt->quiet) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print(stderr, "make-model: wrote {} in {:.1f} s\n", opt->output, seconds);
    }
    return 0;
  };
}

}  // namespace dizuo::cli
