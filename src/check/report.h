// The grade of `dizuo check` as a text table or one JSON document (schema: docs/CHECK.md).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "check/check.h"

namespace dizuo::check {

struct Report {
  std::string backend;
  DeviceInfo device;
  std::string fallback;  // empty: none
  Precision precision = Precision::kF32;
  bool strict = false;
  std::string case_set;  // "full" or "quick"
  ModelThresholdSet model_thresholds;
  std::vector<CaseResult> cases;
  std::vector<ModelResult> models;
  Verdict verdict;
};

// One row of the grade table: the cases of one op and dtype.
struct GradeRow {
  Op op = Op::kAdd;
  DType dtype = DType::F32;
  int cases = 0, passed = 0, failed = 0, fallback = 0, unsupported = 0;
  CaseStatus status = CaseStatus::kPass;  // the worst: fail, unsupported, fallback, pass
  double worst_nmse = 0;                  // of the cases that ran
  double threshold = 0;
  double speedup = 0;  // Σ reference seconds / Σ seconds over the cases that ran; 0 if none
};

std::vector<GradeRow> GradeRows(const std::vector<CaseResult>& cases);

// The ops with failing cases, "ROPE f32, MATMUL q4_K", for the verdict line.
std::string FailedOps(const std::vector<CaseResult>& cases);
// "PASS (... )" or "FAIL: ..." — one line, naming what failed.
std::string VerdictLine(const Report& report);

// The grade table, the cases that did not pass, the model rows and the verdict line.
std::string FormatText(const Report& report, bool all_cases);

nlohmann::json ToJson(const Report& report);

}  // namespace dizuo::check
