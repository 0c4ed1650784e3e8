// Subcommands of the `dizuo` CLI. Each Add* registers its options on `app` and returns a callback
// that runs the command once the arguments are parsed (it returns the process exit status).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace dizuo::cli {

using Command = std::function<int()>;

Command AddInfo(CLI::App& app);
Command AddTokenize(CLI::App& app);
Command AddDetokenize(CLI::App& app);
Command AddRun(CLI::App& app);
Command AddChat(CLI::App& app);
Command AddPerplexity(CLI::App& app);
Command AddMakeModel(CLI::App& app);
Command AddCheck(CLI::App& app);
Command AddBench(CLI::App& app);

}  // namespace dizuo::cli
