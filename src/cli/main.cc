// dizuo: run, grade and serve GGUF language models on any chip.
#include <cstdio>
#include <map>
#include <string>

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "dizuo (底座): an open compute base for generative AI that runs GGUF models on any chip.",
      "dizuo"};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       fmt::format("dizuo {} ({})", dizuo::BuildVersion(), dizuo::BuildCommit()));
  app.footer("Run 'dizuo SUBCOMMAND --help' for the options of a subcommand.");

  std::map<const CLI::App*, dizuo::cli::Command> commands;
  auto add = [&](const char* name, const char* help, auto adder) {
    CLI::App* sub = app.add_subcommand(name, help);
    commands[sub] = adder(*sub);
  };
  add("info", "Print a GGUF file's metadata and tensor table", dizuo::cli::AddInfo);
  add("tokenize", "Tokenize text from stdin with a model's tokenizer", dizuo::cli::AddTokenize);
  add("detokenize", "Turn token ids from stdin back into text", dizuo::cli::AddDetokenize);
  add("run", "Generate text from a prompt", dizuo::cli::AddRun);
  add("chat", "Chat with a model (interactive, or one message per line of stdin)",
      dizuo::cli::AddChat);
  add("perplexity", "Measure perplexity on a text file", dizuo::cli::AddPerplexity);
  add("make-model", "Write a synthetic GGUF model (random weights, real shapes, tokenizer)",
      dizuo::cli::AddMakeModel);
  add("check", "Grade a backend against the reference (ops, then models) and print a verdict",
      dizuo::cli::AddCheck);
  add("bench", "Measure prompt and generation speed (tokens/s), as llama-bench does",
      dizuo::cli::AddBench);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (const CLI::App* sub : app.get_subcommands()) return commands.at(sub)();
  } catch (const dizuo::Error& e) {
    fmt::print(stderr, "dizuo: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "dizuo: error: out of memory\n");
    return 1;
  }
  return 0;
}
