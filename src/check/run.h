// The whole of `dizuo check`: case list, op grading, model grading and verdict, for the CLI and
// the tests.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "check/report.h"

namespace dizuo::check {

struct CheckOptions {
  std::string backend;  // the backend under test, by registry name
  BackendOptions backend_options;
  std::vector<std::string> models;  // GGUF files: model-level rows and their own op cases
  std::string text;                 // the model-level text (its first n_tokens tokens are used)
  int n_tokens = 128;
  bool ops_only = false;
  CaseSet case_set = CaseSet::kFull;
  bool builtin_cases = true;  // false: only the models' own cases
  bool strict = false;        // fallback counts as failure
  std::string filter;         // keep ops whose name contains this (case-insensitive)
  Precision precision = Precision::kF32;
  ModelThresholdSet model_thresholds;
  std::function<void(const std::string&)> log;  // progress lines (stderr in the CLI)
  ReferenceCache* cache = nullptr;              // optional: reuse reference results across calls
};

// Creates the backend (dizuo::Error when it cannot be created, naming the available ones) and
// grades it.
Report RunCheck(const CheckOptions& options);

// Grades `backend` at op level, and `options.backend` (by name, through the Engine) at model
// level unless ops_only. The fallback backend is cpu, or the reference when the backend under
// test is cpu or cpu is not built.
Report RunCheckWith(Backend& backend, const CheckOptions& options);

}  // namespace dizuo::check
