#include "check/run.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"

namespace dizuo::check {

Report RunCheck(const CheckOptions& options) {
  auto backend = CreateBackend(options.backend, options.backend_options);
  return RunCheckWith(*backend, options);
}

Report RunCheckWith(Backend& backend, const CheckOptions& options) {
  auto log = [&](const std::string& line) {
    if (options.log) options.log(line);
  };
  Report report;
  report.backend = options.backend;
  report.device = backend.device();
  report.precision = options.precision;
  report.strict = options.strict;
  report.case_set = options.case_set == CaseSet::kQuick ? "quick" : "full";
  report.model_thresholds = options.model_thresholds;

  std::vector<CheckCase> cases;
  if (options.builtin_cases) cases = BuiltinCases(options.case_set);
  for (const std::string& path : options.models) {
    const std::string label = std::filesystem::path(path).filename().string();
    MergeCases(cases, ModelFileCases(path, label, options.case_set));
  }
  cases = FilterCases(std::move(cases), options.filter);

  const auto names = BackendNames();
  const bool have_cpu = std::find(names.begin(), names.end(), "cpu") != names.end();
  report.fallback = have_cpu && options.backend != "cpu" ? "cpu" : "reference";
  auto reference = CreateBackend("reference", {});
  std::unique_ptr<Backend> fallback;
  fallback = report.fallback == "reference" ? CreateBackend("reference", {})
                                            : CreateBackend("cpu", options.backend_options);

  OpCheckOptions op_options;
  op_options.precision = options.precision;
  op_options.cache = options.cache;
  if (options.case_set == CaseSet::kQuick) {
    op_options.backend_timing = {1, 1, 0};
    op_options.reference_timing = {1, 1, 0};
  }
  op_options.progress = [&](size_t i, size_t n, const CheckCase& c) {
    log(fmt::format("[{}/{}] {} {}", i + 1, n, OpName(c.spec.op), Name(c.dtype)) + " " + c.shape);
  };
  report.cases = CheckOps(backend, *reference, fallback.get(), cases, op_options);
  reference.reset();
  fallback.reset();

  if (!options.ops_only) {
    ModelCheckOptions m;
    m.backend = options.backend;
    m.backend_options = options.backend_options;
    m.n_tokens = options.n_tokens;
    m.thresholds = options.model_thresholds;
    for (const std::string& path : options.models) {
      log(fmt::format("model {}: {} tokens on {} and the reference", path, options.n_tokens,
                      options.backend));
      report.models.push_back(CheckModel(path, options.text, m));
    }
  }
  report.verdict = Grade(report.cases, report.models, options.strict);
  return report;
}

}  // namespace dizuo::check
