// `dizuo check`: grades a backend against the reference backend, op by op and model by model.
// docs/CHECK.md describes the statuses, thresholds, verdict rules and the JSON schema.
//
// Op statuses:
//   pass         the backend ran the case; output finite and NMSE ≤ the op's threshold
//   fail         it ran the case and the output holds NaN/Inf, or NMSE > threshold, or it threw
//   fallback     the backend declines the node (Supports false) and the fallback backend (cpu, or
//                the reference when cpu is the backend under test or absent) runs it, as the
//                scheduler would; not a failure unless `strict`
//   unsupported  neither the backend nor the fallback runs the node; not a failure by itself (a
//                model that needs the node fails at model level)
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "check/cases.h"
#include "check/thresholds.h"

namespace dizuo::check {

inline constexpr int kSchemaVersion = 1;

enum class CaseStatus { kPass, kFail, kFallback, kUnsupported };
std::string_view StatusName(CaseStatus s);

struct CaseResult {
  CheckCase c;
  CaseStatus status = CaseStatus::kUnsupported;
  double nmse = 0;         // vs the reference; +inf for NaN/Inf; 0 when nothing ran
  double threshold = 0;    // the op's NMSE threshold
  int64_t non_finite = 0;  // NaN/Inf values in the graded output
  double seconds = 0;      // median Compute time on the backend (or the fallback)
  double ref_seconds = 0;  // median Compute time on the reference
  std::string message;     // why it failed / fell back, empty on pass
  double speedup() const { return seconds > 0 ? ref_seconds / seconds : 0; }
};

// Repetitions for the medians: after the first (graded) run, more runs until `min_runs` in all
// and then while under `budget_seconds` of extra time and fewer than `max_runs`.
struct TimingPolicy {
  int min_runs = 3;
  int max_runs = 7;
  double budget_seconds = 0.25;
};

// Operands and reference results of cases already graded, so that grading several backends on
// the same cases in one process (the test suite) makes and runs each case on the reference once.
class ReferenceCache {
 public:
  struct Entry {
    harness::Operands operands;
    harness::OpRun reference;
  };
  // The entry of `c`, made by `make` on first use.
  const Entry& Get(const CheckCase& c, const std::function<Entry()>& make);

 private:
  std::map<std::string, Entry> entries_;
};

struct OpCheckOptions {
  Precision precision = Precision::kF32;
  TimingPolicy backend_timing;
  TimingPolicy reference_timing{1, 3, 0.25};
  ReferenceCache* cache = nullptr;  // optional
  // Called before each case: (index, count, case).
  std::function<void(size_t, size_t, const CheckCase&)> progress;
};

// Grades every case of `cases` on `backend` against `reference`. `fallback` may be null (no
// fallback: declined nodes are unsupported).
std::vector<CaseResult> CheckOps(Backend& backend, Backend& reference, Backend* fallback,
                                 const std::vector<CheckCase>& cases,
                                 const OpCheckOptions& options);

// Model-level thresholds (docs/CHECK.md).
struct ModelThresholds {
  double min_top1 = 0.99;        // fraction of positions whose arg max agrees
  double max_mean_kl = 1e-4;     // nats
  double max_ppl_delta = 0.001;  // |PPL_backend / PPL_reference − 1|
};

// Models whose MATMUL weights are all float (f32/f16/bf16) are continuous in their activations:
// correct backends agree to rounding. With quantized weights every MATMUL quantizes its
// activations, so a last-bit difference anywhere can move an activation to the next quantization
// step and the difference grows layer by layer (Gemma 3 270M Q4_K_M: reference vs cpu mean KL
// ~5e-3); op-level grading is the fine net there, the model level the coarse one.
struct ModelThresholdSet {
  ModelThresholds float_weights;
  ModelThresholds quantized_weights{0.90, 0.02, 0.03};
};

struct ModelResult {
  std::string path;
  std::string name;  // file name
  std::string arch;
  int n_tokens = 0;
  bool quantized = false;      // some MATMUL weight is quantized (which thresholds apply)
  ModelThresholds thresholds;  // the thresholds applied
  double top1 = 0;             // agreement of the arg max over all positions
  double mean_kl = 0;          // KL(reference ‖ backend) in nats, mean over positions
  double max_kl = 0;
  double ppl_reference = 0, ppl_backend = 0;
  double ppl_delta = 0;  // PPL_backend / PPL_reference − 1
  int64_t non_finite = 0;
  double seconds = 0, ref_seconds = 0;  // the timed Decode on each (the backend's second)
  bool pass = false;
  std::string message;  // what failed; the error when the model could not run
};

struct ModelCheckOptions {
  std::string backend;
  BackendOptions backend_options;
  int n_tokens = 128;
  ModelThresholdSet thresholds;
};

// Runs the first `n_tokens` tokens of `text` (BOS first, as the tokenizer says) through `path` on
// the backend and on the reference, in one Decode with logits for every token, and compares the
// logits. A model that cannot load or run on the backend gives pass = false with the error as
// the message; a reference failure throws dizuo::Error.
ModelResult CheckModel(const std::string& path, const std::string& text,
                       const ModelCheckOptions& options);

struct Verdict {
  bool pass = false;
  int passed = 0, failed = 0, fallback = 0, unsupported = 0;
  int models_passed = 0, models_failed = 0;
};

// FAIL when any case fails, any model fails, or (strict) any case falls back.
Verdict Grade(const std::vector<CaseResult>& cases, const std::vector<ModelResult>& models,
              bool strict);

}  // namespace dizuo::check
