// dizuo check: grade a backend against the reference (docs/CHECK.md).
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "backends/plugin.h"
#include "check/run.h"
#include "cli/commands.h"
#include "core/error.h"

namespace dizuo::cli {
namespace {

// The model-level text is read only up to this many bytes: far more than --tokens ever needs.
constexpr std::streamsize kMaxTextBytes = 4 << 20;

std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("DIZUO_SHARED")) return env;
  return "../shared";
}

std::string ReadPrefix(const std::string& path, std::streamsize max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("{}: cannot open the text file", path);
  std::string text(static_cast<size_t>(max_bytes), '\0');
  in.read(text.data(), max_bytes);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.empty()) Fail("{}: the text file is empty", path);
  return text;
}

}  // namespace

Command AddCheck(CLI::App& app) {
  struct Options {
    check::CheckOptions check;
    std::string text_file;
    std::string precision = "f32";
    std::string json_file;
    std::string backend_lib;
    bool quick = false, json = false, all_cases = false, models_only = false;
  };
  auto opt = std::make_shared<Options>();
  opt->check.n_tokens = 128;
  app.description(
      "Grade a backend against the reference: every op over the shapes and dtypes real models "
      "use (NMSE vs per-op thresholds), then whole models (top-1 agreement, KL divergence, "
      "perplexity delta). Prints a grade table and a verdict; exits 1 on any failure.");
  app.add_option("--backend", opt->check.backend,
                 "Backend to grade (default: the --backend-lib plug-in's)");
  app.add_option("--backend-lib", opt->backend_lib,
                 "Load a backend plug-in (shared library) first, to grade an out-of-tree backend");
  app.add_option("-m,--model", opt->check.models,
                 "GGUF model(s) to grade; each also contributes its own op cases (default: "
                 "../shared/models/stories260K.gguf when present)");
  app.add_option("--text", opt->text_file,
                 "Text for the model level (default: ../shared/testdata/text/tinystories_val.txt)");
  app.add_option("--tokens", opt->check.n_tokens, "Tokens of the text per model")
      ->capture_default_str();
  app.add_option("--filter", opt->check.filter, "Only ops whose name contains this (e.g. MATMUL)");
  app.add_option("--precision", opt->precision,
                 "Threshold class: f32, or f16 for backends that keep intermediates in f16")
      ->check(CLI::IsMember({"f32", "f16"}))
      ->capture_default_str();
  app.add_option("-t,--threads", opt->check.backend_options.threads,
                 "Threads for host backends (0: one per core)")
      ->capture_default_str();
  app.add_flag("--ops-only", opt->check.ops_only, "Skip the model level");
  app.add_flag("--models-only", opt->models_only,
               "Only the models' own op cases (no built-in profiles)");
  app.add_flag("--quick", opt->quick, "The smaller case set (one timing run per case)");
  app.add_flag("--strict", opt->check.strict, "Count fallback cases as failures");
  app.add_flag("--all", opt->all_cases, "List every case, not only those that did not pass");
  app.add_flag("--json", opt->json, "Print one JSON document (schema: docs/CHECK.md)");
  app.add_option("--json-file", opt->json_file,
                 "Also write the JSON document to this file (the table still goes to stdout)");

  return [opt] {
    check::CheckOptions o = opt->check;
    if (!opt->backend_lib.empty()) {
      const std::string plugin = LoadBackendPlugin(opt->backend_lib);
      if (o.backend.empty()) o.backend = plugin;
    }
    if (o.backend.empty()) Fail("--backend NAME (or --backend-lib PATH) is required");
    if (o.n_tokens < 2) Fail("--tokens must be at least 2, not {}", o.n_tokens);
    if (o.backend_options.threads < 0) Fail("--threads must be >= 0");
    o.precision = opt->precision == "f16" ? check::Precision::kF16 : check::Precision::kF32;
    o.case_set = opt->quick ? check::CaseSet::kQuick : check::CaseSet::kFull;
    o.builtin_cases = !opt->models_only;
    if (o.models.empty()) {
      const auto stories = SharedDir() / "models" / "stories260K.gguf";
      if (std::filesystem::exists(stories)) o.models.push_back(stories.string());
    }
    for (const std::string& m : o.models) {
      if (!std::filesystem::is_regular_file(m)) Fail("{}: no such model file", m);
    }
    if (!o.ops_only && !o.models.empty()) {
      const std::string text_file =
          opt->text_file.empty()
              ? (SharedDir() / "testdata" / "text" / "tinystories_val.txt").string()
              : opt->text_file;
      o.text = ReadPrefix(text_file, kMaxTextBytes);
    }
    o.log = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };

    std::ofstream json_out;
    if (!opt->json_file.empty()) {
      json_out.open(opt->json_file, std::ios::binary);
      if (!json_out) Fail("{}: cannot write the JSON file", opt->json_file);
    }
    const check::Report report = check::RunCheck(o);
    if (json_out.is_open()) {
      json_out << check::ToJson(report).dump(2) << "\n";
      if (!json_out.flush()) Fail("{}: cannot write the JSON file", opt->json_file);
    }
    if (opt->json) {
      fmt::print("{}\n", check::ToJson(report).dump(2));
    } else {
      fmt::print("{}", check::FormatText(report, opt->all_cases));
    }
    return report.verdict.pass ? 0 : 1;
  };
}

}  // namespace dizuo::cli
