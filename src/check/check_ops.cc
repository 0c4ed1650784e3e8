// Op-level grading: each case on the backend (or its fallback) and on the reference.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "check/check.h"
#include "core/error.h"

namespace dizuo::check {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Runs the case once for the grade, then again for timing as `policy` says. Returns the first
// run (whose output is graded) with `seconds` replaced by the median.
harness::OpRun TimedRun(Backend& backend, const CheckCase& c, const harness::Operands& operands,
                        const TimingPolicy& policy) {
  harness::OpRun first = harness::RunOp(backend, c.spec, operands);
  if (!first.supported) return first;
  std::vector<double> times = {first.seconds};
  double extra = 0;
  while (static_cast<int>(times.size()) < policy.max_runs &&
         (static_cast<int>(times.size()) < policy.min_runs || extra < policy.budget_seconds)) {
    const double s = harness::RunOp(backend, c.spec, operands).seconds;
    times.push_back(s);
    extra += s;
  }
  // The first run may include one-time work (kernel compilation, first-touch of memory); it is
  // left out of the median when there are others.
  if (times.size() > 1) times.erase(times.begin());
  first.seconds = Median(times);
  return first;
}

void Grade(CaseResult& r, const harness::OpRun& run, const harness::OpRun& ref) {
  const int64_t n = static_cast<int64_t>(ref.values.size());
  if (static_cast<int64_t>(run.values.size()) != n) {
    r.status = CaseStatus::kFail;
    r.nmse = std::numeric_limits<double>::infinity();
    r.message = fmt::format("output has {} values, the reference {}", run.values.size(), n);
    return;
  }
  r.non_finite = harness::CountNonFinite(run.values.data(), n);
  r.nmse = harness::Nmse(run.values.data(), ref.values.data(), n);
  if (r.non_finite > 0) {
    r.status = CaseStatus::kFail;
    r.message = fmt::format("{} of {} output values are NaN or Inf", r.non_finite, n);
  } else if (!(r.nmse <= r.threshold)) {
    r.status = CaseStatus::kFail;
    r.message = fmt::format("NMSE {:.3g} exceeds the {} threshold {:.0e}", r.nmse,
                            OpName(r.c.spec.op), r.threshold);
  } else {
    r.status = CaseStatus::kPass;
  }
}

}  // namespace

const ReferenceCache::Entry& ReferenceCache::Get(const CheckCase& c,
                                                 const std::function<Entry()>& make) {
  const std::string key = fmt::format("{} #{}", c.spec.Describe(), c.spec.seed);
  auto it = entries_.find(key);
  if (it == entries_.end()) it = entries_.emplace(key, make()).first;
  return it->second;
}

std::string_view StatusName(CaseStatus s) {
  switch (s) {
    case CaseStatus::kPass:
      return "pass";
    case CaseStatus::kFail:
      return "fail";
    case CaseStatus::kFallback:
      return "fallback";
    case CaseStatus::kUnsupported:
      return "unsupported";
  }
  return "?";
}

std::vector<CaseResult> CheckOps(Backend& backend, Backend& reference, Backend* fallback,
                                 const std::vector<CheckCase>& cases,
                                 const OpCheckOptions& options) {
  std::vector<CaseResult> results;
  for (size_t i = 0; i < cases.size(); ++i) {
    const CheckCase& c = cases[i];
    if (options.progress) options.progress(i, cases.size(), c);
    CaseResult r;
    r.c = c;
    r.threshold = OpThreshold(c.spec.op, c.dtype, options.precision).nmse;
    auto make = [&] {
      ReferenceCache::Entry e;
      e.operands = harness::MakeOperands(c.spec);
      e.reference = TimedRun(reference, c, e.operands, options.reference_timing);
      return e;
    };
    ReferenceCache::Entry local;
    const ReferenceCache::Entry& entry =
        options.cache ? options.cache->Get(c, make) : (local = make());
    const harness::Operands& operands = entry.operands;
    const harness::OpRun& ref = entry.reference;
    if (!ref.supported) {
      r.status = CaseStatus::kUnsupported;
      r.message = "the reference backend does not run this case";
      results.push_back(std::move(r));
      continue;
    }
    if (harness::CountNonFinite(ref.values.data(), static_cast<int64_t>(ref.values.size())) > 0) {
      Fail("check case {}: the reference output holds NaN or Inf", c.spec.Describe());
    }
    r.ref_seconds = ref.seconds;

    Backend* runner = &backend;
    harness::OpRun run;
    try {
      run = TimedRun(backend, c, operands, options.backend_timing);
      if (!run.supported && fallback != nullptr) {
        runner = fallback;
        run = TimedRun(*fallback, c, operands, options.backend_timing);
      }
    } catch (const Error& e) {
      r.status = CaseStatus::kFail;
      r.nmse = std::numeric_limits<double>::infinity();
      r.message = fmt::format("{} failed: {}", runner->device().name, e.what());
      results.push_back(std::move(r));
      continue;
    }
    if (!run.supported) {
      r.status = CaseStatus::kUnsupported;
      r.message = fallback ? fmt::format("neither {} nor the {} fallback supports it",
                                         backend.device().name, fallback->device().name)
                           : fmt::format("{} does not support it", backend.device().name);
      results.push_back(std::move(r));
      continue;
    }
    r.seconds = run.seconds;
    Grade(r, run, ref);
    if (runner != &backend) {
      // The fallback's own accuracy is graded when it is the backend under test.
      r.message = r.status == CaseStatus::kPass
                      ? fmt::format("declined by {}; runs on {}", backend.device().name,
                                    runner->device().name)
                      : fmt::format("declined by {}; the {} fallback also fails: {}",
                                    backend.device().name, runner->device().name, r.message);
      r.status = CaseStatus::kFallback;
    }
    results.push_back(std::move(r));
  }
  return results;
}

Verdict Grade(const std::vector<CaseResult>& cases, const std::vector<ModelResult>& models,
              bool strict) {
  Verdict v;
  for (const CaseResult& r : cases) {
    switch (r.status) {
      case CaseStatus::kPass:
        ++v.passed;
        break;
      case CaseStatus::kFail:
        ++v.failed;
        break;
      case CaseStatus::kFallback:
        ++v.fallback;
        break;
      case CaseStatus::kUnsupported:
        ++v.unsupported;
        break;
    }
  }
  for (const ModelResult& m : models) (m.pass ? v.models_passed : v.models_failed)++;
  v.pass = v.failed == 0 && v.models_failed == 0 && !(strict && v.fallback > 0);
  return v;
}

}  // namespace dizuo::check
