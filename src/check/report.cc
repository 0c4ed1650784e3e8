#include "check/report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace dizuo::check {
namespace {

int Severity(CaseStatus s) {
  switch (s) {
    case CaseStatus::kFail:
      return 3;
    case CaseStatus::kUnsupported:
      return 2;
    case CaseStatus::kFallback:
      return 1;
    case CaseStatus::kPass:
      return 0;
  }
  return 0;
}

bool Ran(const CaseResult& r) { return r.seconds > 0 || r.status == CaseStatus::kPass; }

std::string Sci(double v) {
  if (std::isinf(v)) return "inf";
  if (v == 0) return "0";
  return fmt::format("{:.1e}", v);
}

std::string Speed(double s) { return s > 0 ? fmt::format("{:.2f}x", s) : "-"; }

// JSON has no infinity: non-finite numbers are written as null.
nlohmann::json Number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

std::string ThresholdText(std::string_view what, const ModelThresholds& t) {
  return fmt::format("{} top-1 >= {:g}%, mean KL <= {:.0e}, |dPPL| <= {:g}%", what,
                     100 * t.min_top1, t.max_mean_kl, 100 * t.max_ppl_delta);
}

nlohmann::json ThresholdJson(const ModelThresholds& t) {
  return {
      {"min_top1", t.min_top1}, {"max_mean_kl", t.max_mean_kl}, {"max_ppl_delta", t.max_ppl_delta}};
}

std::string RowStatus(const GradeRow& row) {
  std::string s(StatusName(row.status));
  if (row.status == CaseStatus::kPass) return s;
  const int bad = row.status == CaseStatus::kFail          ? row.failed
                  : row.status == CaseStatus::kUnsupported ? row.unsupported
                                                           : row.fallback;
  return fmt::format("{} {}/{}", s, bad, row.cases);
}

}  // namespace

std::vector<GradeRow> GradeRows(const std::vector<CaseResult>& cases) {
  std::map<std::pair<int, uint32_t>, GradeRow> rows;
  std::map<std::pair<int, uint32_t>, std::pair<double, double>> times;
  for (const CaseResult& r : cases) {
    const auto key =
        std::make_pair(static_cast<int>(r.c.spec.op), static_cast<uint32_t>(r.c.dtype));
    GradeRow& row = rows[key];
    row.op = r.c.spec.op;
    row.dtype = r.c.dtype;
    ++row.cases;
    row.passed += r.status == CaseStatus::kPass;
    row.failed += r.status == CaseStatus::kFail;
    row.fallback += r.status == CaseStatus::kFallback;
    row.unsupported += r.status == CaseStatus::kUnsupported;
    if (Severity(r.status) > Severity(row.status)) row.status = r.status;
    row.threshold = r.threshold;
    if (Ran(r)) {
      row.worst_nmse = std::max(row.worst_nmse, r.nmse);
      if (r.seconds > 0) {
        times[key].first += r.ref_seconds;
        times[key].second += r.seconds;
      }
    }
  }
  std::vector<GradeRow> out;
  for (auto& [key, row] : rows) {
    const auto [ref, own] = times[key];
    row.speedup = own > 0 ? ref / own : 0;
    out.push_back(row);
  }
  return out;
}

std::string FailedOps(const std::vector<CaseResult>& cases) {
  std::string out;
  for (const GradeRow& row : GradeRows(cases)) {
    if (row.failed == 0) continue;
    out += fmt::format("{}{} {} ({} of {} cases)", out.empty() ? "" : ", ", OpName(row.op),
                       Name(row.dtype), row.failed, row.cases);
  }
  return out;
}

std::string VerdictLine(const Report& report) {
  const Verdict& v = report.verdict;
  const std::string counts =
      fmt::format("{} pass, {} fail, {} fallback, {} unsupported; models {} pass, {} fail",
                  v.passed, v.failed, v.fallback, v.unsupported, v.models_passed, v.models_failed);
  if (v.pass) return fmt::format("verdict: PASS ({})", counts);
  std::vector<std::string> why;
  if (v.failed > 0) why.push_back("failing ops: " + FailedOps(report.cases));
  for (const ModelResult& m : report.models) {
    if (!m.pass) why.push_back(fmt::format("model {}: {}", m.name, m.message));
  }
  if (report.strict && v.fallback > 0) {
    why.push_back(fmt::format("{} cases fall back (--strict)", v.fallback));
  }
  std::string reasons;
  for (const std::string& w : why) reasons += (reasons.empty() ? "" : "; ") + w;
  return fmt::format("verdict: FAIL: {} ({})", reasons, counts);
}

std::string FormatText(const Report& report, bool all_cases) {
  std::string out =
      fmt::format("dizuo check: backend {} ({}), reference backend, precision {}", report.backend,
                  report.device.description, PrecisionName(report.precision));
  out += report.fallback.empty() ? ", no fallback" : fmt::format(", fallback {}", report.fallback);
  out += fmt::format(", {} case set\n\n", report.case_set);
  if (!report.cases.empty()) {
    out += fmt::format("{:<10} {:<6} {:>5}  {:<16} {:>10} {:>9}  {:>9}\n", "op", "dtype", "cases",
                       "status", "worst NMSE", "threshold", "speed");
    for (const GradeRow& row : GradeRows(report.cases)) {
      out += fmt::format("{:<10} {:<6} {:>5}  {:<16} {:>10} {:>9}  {:>9}\n", OpName(row.op),
                         Name(row.dtype), row.cases, RowStatus(row), Sci(row.worst_nmse),
                         Sci(row.threshold), Speed(row.speedup));
    }
    out += "speed: reference time / backend time (medians per case, summed per row)\n";
    bool header = false;
    for (const CaseResult& r : report.cases) {
      if (r.status == CaseStatus::kPass && !all_cases) continue;
      if (!header) {
        out += all_cases ? "\ncases:\n" : "\ncases that did not pass:\n";
        header = true;
      }
      out +=
          fmt::format("  {:<11} {} {} {}  NMSE {} / {}  {}  [{}] {}\n", StatusName(r.status),
                      OpName(r.c.spec.op), Name(r.c.dtype), r.c.shape, Sci(r.nmse),
                      Sci(r.threshold), Speed(r.speedup()), fmt::join(r.c.sources, ", "), r.c.note);
      if (!r.message.empty() && r.status != CaseStatus::kPass) {
        out += fmt::format("              {}\n", r.message);
      }
    }
  }
  if (!report.models.empty()) {
    out +=
        fmt::format("\nmodels (thresholds: {}; {}):\n",
                    ThresholdText("float weights", report.model_thresholds.float_weights),
                    ThresholdText("quantized weights", report.model_thresholds.quantized_weights));
    out += fmt::format("{:<28} {:<9} {:>6} {:>8} {:>9} {:>9} {:>10} {:>10} {:>9} {:>8}  {}\n",
                       "model", "weights", "tokens", "top-1", "mean KL", "max KL", "PPL ref", "PPL",
                       "dPPL", "speed", "status");
    for (const ModelResult& m : report.models) {
      const double speed = m.seconds > 0 ? m.ref_seconds / m.seconds : 0;
      out += fmt::format(
          "{:<28} {:<9} {:>6} {:>7.2f}% {:>9} {:>9} {:>10.4f} {:>10.4f} {:>+8.4f}% {:>8}  {}\n",
          m.name, m.quantized ? "quantized" : "float", m.n_tokens, 100 * m.top1, Sci(m.mean_kl),
          Sci(m.max_kl), m.ppl_reference, m.ppl_backend, 100 * m.ppl_delta, Speed(speed),
          m.pass ? "pass" : "FAIL");
      if (!m.pass) out += fmt::format("  {}\n", m.message);
    }
  }
  out += fmt::format("\n{}\n", VerdictLine(report));
  return out;
}

nlohmann::json ToJson(const Report& report) {
  using nlohmann::json;
  json cases = json::array();
  for (const CaseResult& r : report.cases) {
    cases.push_back({{"op", OpName(r.c.spec.op)},
                     {"dtype", Name(r.c.dtype)},
                     {"shape", r.c.shape},
                     {"spec", r.c.spec.Describe()},
                     {"sources", r.c.sources},
                     {"note", r.c.note},
                     {"status", StatusName(r.status)},
                     {"nmse", Number(r.nmse)},
                     {"threshold", r.threshold},
                     {"non_finite", r.non_finite},
                     {"seconds", r.seconds},
                     {"reference_seconds", r.ref_seconds},
                     {"speedup", r.speedup()},
                     {"message", r.message}});
  }
  json rows = json::array();
  for (const GradeRow& row : GradeRows(report.cases)) {
    rows.push_back({{"op", OpName(row.op)},
                    {"dtype", Name(row.dtype)},
                    {"cases", row.cases},
                    {"pass", row.passed},
                    {"fail", row.failed},
                    {"fallback", row.fallback},
                    {"unsupported", row.unsupported},
                    {"status", StatusName(row.status)},
                    {"worst_nmse", Number(row.worst_nmse)},
                    {"threshold", row.threshold},
                    {"speedup", row.speedup}});
  }
  json models = json::array();
  for (const ModelResult& m : report.models) {
    models.push_back({{"path", m.path},
                      {"name", m.name},
                      {"arch", m.arch},
                      {"tokens", m.n_tokens},
                      {"weights", m.quantized ? "quantized" : "float"},
                      {"thresholds", ThresholdJson(m.thresholds)},
                      {"top1", m.top1},
                      {"mean_kl", Number(m.mean_kl)},
                      {"max_kl", Number(m.max_kl)},
                      {"ppl_reference", Number(m.ppl_reference)},
                      {"ppl", Number(m.ppl_backend)},
                      {"ppl_delta", Number(m.ppl_delta)},
                      {"non_finite", m.non_finite},
                      {"seconds", m.seconds},
                      {"reference_seconds", m.ref_seconds},
                      {"status", m.pass ? "pass" : "fail"},
                      {"message", m.message}});
  }
  const DeviceInfo& d = report.device;
  const Verdict& v = report.verdict;
  return {
      {"schema_version", kSchemaVersion},
      {"backend", report.backend},
      {"device",
       {{"name", d.name},
        {"description", d.description},
        {"memory_bytes", d.memory_bytes},
        {"peak_flops_f32", d.peak_flops_f32},
        {"peak_flops_f16", d.peak_flops_f16},
        {"memory_bandwidth", d.memory_bandwidth},
        {"host_memory", d.host_memory}}},
      {"reference", "reference"},
      {"fallback", report.fallback.empty() ? json(nullptr) : json(report.fallback)},
      {"precision", PrecisionName(report.precision)},
      {"strict", report.strict},
      {"case_set", report.case_set},
      {"model_thresholds",
       {{"float_weights", ThresholdJson(report.model_thresholds.float_weights)},
        {"quantized_weights", ThresholdJson(report.model_thresholds.quantized_weights)}}},
      {"cases", cases},
      {"rows", rows},
      {"models", models},
      {"verdict",
       {{"result", v.pass ? "PASS" : "FAIL"},
        {"pass", v.passed},
        {"fail", v.failed},
        {"fallback", v.fallback},
        {"unsupported", v.unsupported},
        {"models_pass", v.models_passed},
        {"models_fail", v.models_failed},
        {"line", VerdictLine(report)}}},
  };
}

}  // namespace dizuo::check
