#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/core.h>

#include "cli/commands.h"
#include "cli/engine_options.h"
#include "core/error.h"
#include "runtime/chat_template.h"

namespace dizuo::cli {
namespace {

// Whether `text` is one special token of the vocabulary (e.g. "<|start_header_id|>").
bool IsSingleSpecialToken(const Tokenizer& tokenizer, std::string_view text) {
  const std::vector<TokenId> ids = tokenizer.Encode(text, false, true);
  return ids.size() == 1 && tokenizer.TokenToPiece(ids[0], true) == text;
}

ChatTemplate ChooseTemplate(const Engine& engine, const std::string& override_name) {
  if (!override_name.empty()) return ChatTemplate::FromName(override_name);
  const ModelSummary& summary = engine.summary();
  if (auto recognized = ChatTemplate::Recognize(summary.chat_template)) return *recognized;
  ChatTemplate fallback = ChatTemplate::ForArchitecture(
      summary.arch, IsSingleSpecialToken(engine.tokenizer(), "<|start_header_id|>"));
  if (!summary.chat_template.empty()) {
    fmt::print(stderr,
               "dizuo: warning: the model's chat template is none of the built-in ones; using "
               "'{}' (choose another with --chat-template)\n",
               fallback.name());
  }
  return fallback;
}

size_t CommonPrefix(const std::vector<TokenId>& a, const std::vector<TokenId>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

Command AddChat(CLI::App& app) {
  struct Options {
    ModelFlags model;
    SamplingFlags sampling;
    std::string system;
    std::string chat_template;
    int n_predict = -1;
  };
  auto opt = std::make_shared<Options>();
  app.description(
      "Chat with a model using its chat template. Reads one message per line from stdin (so it "
      "also works with piped input); '/reset' starts over, '/exit' or end of input quits.");
  AddModelFlags(app, opt->model);
  app.add_option("--system", opt->system, "System message");
  app.add_option("--chat-template", opt->chat_template,
                 "Built-in template to use instead of the model's (llama2, llama3, llama3.1, "
                 "chatml, qwen2.5, gemma, zephyr, phi3)");
  app.add_option("-n,--n-predict", opt->n_predict,
                 "Most tokens per reply (-1: until end of generation or the context is full)")
      ->capture_default_str();
  AddSamplingFlags(app, opt->sampling);

  return [opt] {
    if (opt->n_predict < -1) Fail("-n must be >= -1 (-1: no limit), not {}", opt->n_predict);
    const SamplingParams params = ResolveSampling(opt->sampling);
    const auto start = std::chrono::steady_clock::now();
    auto engine = LoadEngine(opt->model);
    const ChatTemplate chat_template = ChooseTemplate(*engine, opt->chat_template);
    const Tokenizer& tokenizer = engine->tokenizer();
    const std::string copies = WaitForCopies(*engine, start);  // reproducible replies
    fmt::print(stderr, "dizuo: loaded {} ({}) in {:.1f} ms{}; chat template '{}', seed {}\n",
               opt->model.model, engine->summary().arch, engine->load_seconds() * 1e3, copies,
               chat_template.name(), params.seed);

    const bool interactive = isatty(STDIN_FILENO);
    Sampler sampler(params);
    std::vector<ChatMessage> messages;
    const auto reset = [&] {
      messages.clear();
      if (!opt->system.empty()) messages.push_back({"system", opt->system});
      sampler.Reset();
    };
    reset();
    std::vector<TokenId> cached;  // tokens of sequence 0 in the KV cache, in order

    std::string line;
    while (true) {
      if (interactive) {
        fmt::print("> ");
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line)) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        reset();
        engine->RemoveSequence(0);
        cached.clear();
        fmt::print(stderr, "dizuo: conversation reset\n");
        continue;
      }
      if (line.empty()) continue;

      messages.push_back({"user", line});
      const std::vector<TokenId> prompt =
          tokenizer.Encode(chat_template.Render(messages, true), true, true);
      // Only what differs from the cache is evaluated; at least one token, for its logits.
      const size_t keep = std::min(CommonPrefix(cached, prompt), prompt.size() - 1);
      engine->RemoveSequence(0, static_cast<int32_t>(keep));
      cached.resize(keep);

      Generation g;
      try {
        g = Generate(*engine, sampler, prompt, keep, opt->n_predict, [](const std::string& s) {
          std::fwrite(s.data(), 1, s.size(), stdout);
          std::fflush(stdout);
        });
      } catch (const Error& e) {
        fmt::print(stderr, "dizuo: error: {}; the message was dropped (try /reset)\n", e.what());
        messages.pop_back();
        engine->RemoveSequence(0, static_cast<int32_t>(keep));
        continue;
      }
      fmt::print("\n");
      std::fflush(stdout);
      cached = prompt;
      cached.insert(cached.end(), g.tokens.begin(),
                    g.tokens.begin() + static_cast<ptrdiff_t>(g.n_cached_generated));
      messages.push_back({"assistant", tokenizer.Decode(g.tokens, false)});
      fmt::print(stderr,
                 "dizuo: [{} new prompt tokens, {:.1f} tokens/s; {} reply tokens, {:.1f} tokens/s; "
                 "stop: {}]\n",
                 g.prompt_tokens, g.prompt_seconds > 0 ? g.prompt_tokens / g.prompt_seconds : 0.0,
                 g.tokens.size(), g.gen_seconds > 0 ? g.tokens.size() / g.gen_seconds : 0.0,
                 StopReasonName(g.stop));
    }
    PrintProfile(*engine, opt->model);
    return 0;
  };
}

}  // namespace dizuo::cli
