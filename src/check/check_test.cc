// `dizuo check` library tests: the case list covers every op and matches a real model's graph,
// every backend of this build passes, the JSON has the documented fields, and a wrong kernel
// fails with a message naming its op.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "backends/backend.h"
#include "check/run.h"
#include "core/error.h"
#include "test_paths.h"

namespace dizuo::check {
namespace {

std::string StoriesPath() {
  return (dizuo::testing::SharedDir() / "models" / "stories260K.gguf").string();
}

std::string ReadText() {
  std::ifstream in(dizuo::testing::SharedDir() / "testdata" / "text" / "tinystories_val.txt");
  std::string text(64 * 1024, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

// The quick cases' operands and reference results, made once for all the tests here.
ReferenceCache& SharedCache() {
  static ReferenceCache cache;
  return cache;
}

CheckOptions QuickOptions(const std::string& backend) {
  CheckOptions o;
  o.cache = &SharedCache();
  o.backend = backend;
  o.case_set = CaseSet::kQuick;
  o.ops_only = true;
  return o;
}

TEST(CheckCases, CoverEveryOpAndTheProfiles) {
  const std::vector<CheckCase> cases = BuiltinCases(CaseSet::kQuick);
  std::set<Op> ops;
  std::set<std::string> sources;
  std::set<DType> matmul_types;
  for (const CheckCase& c : cases) {
    ops.insert(c.spec.op);
    for (const std::string& s : c.sources) sources.insert(s);
    if (c.spec.op == Op::kMatMul) matmul_types.insert(c.dtype);
    EXPECT_FALSE(c.sources.empty());
  }
  EXPECT_EQ(ops.size(), static_cast<size_t>(kOpCount));
  for (const char* s : {"stories260K", "gemma3-270m", "llama-1b", "qwen2-1b"}) {
    EXPECT_TRUE(sources.count(s)) << s;
  }
  for (DType t :
       {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q5_0, DType::Q4_K, DType::Q6_K}) {
    EXPECT_TRUE(matmul_types.count(t)) << Name(t);
  }
  // Gemma's output matrix is graded on a subset of its 262144 rows, and says so.
  EXPECT_TRUE(std::any_of(cases.begin(), cases.end(), [](const CheckCase& c) {
    return c.note.find("of 262144 vocab rows") != std::string::npos;
  }));
  EXPECT_GT(BuiltinCases(CaseSet::kFull).size(), cases.size());
}

// The stories260K profile is the model's real graph: walking its forward graphs adds no case.
TEST(CheckCases, StoriesProfileMatchesTheModelGraph) {
  if (!std::filesystem::exists(StoriesPath())) GTEST_SKIP() << StoriesPath() << " not found";
  std::vector<CheckCase> builtin = BuiltinCases(CaseSet::kQuick);
  const size_t before = builtin.size();
  std::vector<CheckCase> from_file =
      ModelFileCases(StoriesPath(), "stories260K.gguf", CaseSet::kQuick);
  EXPECT_GE(from_file.size(), 20u);
  MergeCases(builtin, from_file);
  for (size_t i = before; i < builtin.size(); ++i) {
    ADD_FAILURE() << "not in the stories260K profile: " << builtin[i].spec.Describe();
  }
  const auto stories_cases = std::count_if(builtin.begin(), builtin.end(), [](const CheckCase& c) {
    return std::find(c.sources.begin(), c.sources.end(), "stories260K.gguf") != c.sources.end();
  });
  EXPECT_EQ(static_cast<size_t>(stories_cases), from_file.size());
}

TEST(CheckCases, FilterKeepsOneOp) {
  const auto cases = FilterCases(BuiltinCases(CaseSet::kQuick), "rope");
  ASSERT_FALSE(cases.empty());
  for (const CheckCase& c : cases) EXPECT_EQ(c.spec.op, Op::kRope);
}

// Every backend this build lists passes the quick op set, and the model level on stories260K:
// with no fallback at all (--strict), except the skeleton, which implements no op and must run
// everything through the CPU fallback. A backend whose device is missing here (CUDA without a
// GPU) is reported and skipped.
TEST(Check, EveryBackendPasses) {
  const bool have_stories = std::filesystem::exists(StoriesPath());
  for (const std::string& name : BackendNames()) {
    std::unique_ptr<Backend> backend;
    try {
      backend = CreateBackend(name, {});
    } catch (const Error& e) {
      fmt::print("[ SKIPPED  ] backend {}: {}\n", name, e.what());
      EXPECT_NE(std::string(e.what()).find("available"), std::string::npos) << e.what();
      continue;
    }
    const bool skeleton = name == "skeleton";
    CheckOptions o = QuickOptions(name);
    o.strict = !skeleton;
    if (have_stories) {
      o.ops_only = false;
      o.models = {StoriesPath()};
      o.text = ReadText();
      o.n_tokens = 64;
    }
    const Report r = RunCheckWith(*backend, o);
    if (std::getenv("DIZUO_CHECK_VERBOSE")) fmt::print("{}\n", FormatText(r, true));
    EXPECT_TRUE(r.verdict.pass) << name << ":\n" << FormatText(r, false);
    EXPECT_EQ(r.verdict.failed, 0) << name;
    EXPECT_EQ(r.verdict.fallback, skeleton ? static_cast<int>(r.cases.size()) : 0) << name;
    EXPECT_EQ(r.verdict.unsupported, 0) << name;
    if (have_stories) {
      ASSERT_EQ(r.models.size(), 1u);
      EXPECT_TRUE(r.models[0].pass) << name << ": " << r.models[0].message;
      EXPECT_GT(r.models[0].ppl_reference, 1.0);
    }
  }
}

TEST(Check, UnknownBackendIsAClearError) {
  CheckOptions o = QuickOptions("no-such-chip");
  try {
    RunCheck(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-chip"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("reference"), std::string::npos) << e.what();
  }
}

TEST(Check, JsonHasTheDocumentedFields) {
  CheckOptions o = QuickOptions("reference");
  o.filter = "add";
  if (std::filesystem::exists(StoriesPath())) {
    o.ops_only = false;
    o.models = {StoriesPath()};
    o.text = ReadText();
    o.n_tokens = 16;
  }
  const Report r = RunCheck(o);
  const nlohmann::json j = nlohmann::json::parse(ToJson(r).dump());
  EXPECT_EQ(j.at("schema_version"), kSchemaVersion);
  EXPECT_EQ(j.at("backend"), "reference");
  for (const char* k : {"name", "description", "memory_bytes", "peak_flops_f32", "peak_flops_f16",
                        "memory_bandwidth", "host_memory"}) {
    EXPECT_TRUE(j.at("device").contains(k)) << k;
  }
  for (const char* k : {"reference", "fallback", "precision", "strict", "case_set",
                        "model_thresholds", "cases", "rows", "models", "verdict"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* tier : {"float_weights", "quantized_weights"}) {
    for (const char* k : {"min_top1", "max_mean_kl", "max_ppl_delta"}) {
      EXPECT_TRUE(j.at("model_thresholds").at(tier).contains(k)) << tier << "." << k;
    }
  }
  ASSERT_FALSE(j.at("cases").empty());
  for (const auto& c : j.at("cases")) {
    for (const char* k :
         {"op", "dtype", "shape", "spec", "sources", "note", "status", "nmse", "threshold",
          "non_finite", "seconds", "reference_seconds", "speedup", "message"}) {
      EXPECT_TRUE(c.contains(k)) << k;
    }
    EXPECT_EQ(c.at("op"), "ADD");
    EXPECT_EQ(c.at("status"), "pass");
  }
  for (const auto& row : j.at("rows")) {
    for (const char* k : {"op", "dtype", "cases", "pass", "fail", "fallback", "unsupported",
                          "status", "worst_nmse", "threshold", "speedup"}) {
      EXPECT_TRUE(row.contains(k)) << k;
    }
  }
  for (const auto& m : j.at("models")) {
    for (const char* k : {"path", "name", "arch", "tokens", "weights", "thresholds", "top1",
                          "mean_kl", "max_kl", "ppl_reference", "ppl", "ppl_delta", "non_finite",
                          "seconds", "reference_seconds", "status", "message"}) {
      EXPECT_TRUE(m.contains(k)) << k;
    }
    EXPECT_EQ(m.at("top1"), 1.0);
    EXPECT_EQ(m.at("weights"), "float");  // stories260K is all f32
  }
  const auto& v = j.at("verdict");
  EXPECT_EQ(v.at("result"), "PASS");
  for (const char* k :
       {"pass", "fail", "fallback", "unsupported", "models_pass", "models_fail", "line"}) {
    EXPECT_TRUE(v.contains(k)) << k;
  }
}

// ---- The grader can fail -----------------------------------------------------------------------

enum class Fault {
  kRopeWrongPairing,      // normal and neox pairs swapped
  kMatMulDropsLastBlock,  // the last 32 inner elements of every row ignored
  kGluNaN,                // one NaN in the output
  kGluClearsOutputFirst,  // right with its own output, wrong when it is placed over gate
};

// The reference backend with one deliberately wrong kernel.
class FaultyBackend final : public Backend {
 public:
  explicit FaultyBackend(Fault fault) : inner_(CreateBackend("reference", {})), fault_(fault) {
    info_ = inner_->device();
    info_.name = "faulty";
  }
  const DeviceInfo& device() const override { return info_; }
  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override { return inner_->Allocate(bytes); }
  void Upload(const Tensor& t, const void* host, uint64_t offset, uint64_t size) override {
    inner_->Upload(t, host, offset, size);
  }
  void Download(const Tensor& t, void* host, uint64_t offset, uint64_t size) override {
    inner_->Download(t, host, offset, size);
  }
  bool Supports(const Node& node) const override { return inner_->Supports(node); }
  void Compute(std::span<const Node> nodes) override {
    for (const Node& node : nodes) ComputeOne(node);
  }

 private:
  void ComputeOne(const Node& node) {
    Node n = node;
    if (fault_ == Fault::kRopeWrongPairing && n.op == Op::kRope) {
      n.params.rope.mode =
          n.params.rope.mode == RopeMode::kNormal ? RopeMode::kNeox : RopeMode::kNormal;
    }
    if (fault_ == Fault::kMatMulDropsLastBlock && n.op == Op::kMatMul) {
      Tensor& x = *n.src[0];
      const int64_t k = x.ne[0], tail = std::min<int64_t>(32, k);
      std::vector<float> saved;
      for (int64_t r = 0; r < x.rows(); ++r) {
        float* row = x.host<float>(r);
        saved.insert(saved.end(), row + k - tail, row + k);
        std::fill(row + k - tail, row + k, 0.0f);
      }
      inner_->Compute({&n, 1});
      for (int64_t r = 0; r < x.rows(); ++r) {
        std::copy_n(saved.begin() + r * tail, tail, x.host<float>(r) + k - tail);
      }
      return;
    }
    if (fault_ == Fault::kGluClearsOutputFirst && n.op == Op::kGlu) {
      std::memset(n.out->data, 0, n.out->bytes());
    }
    inner_->Compute({&n, 1});
    if (fault_ == Fault::kGluNaN && n.op == Op::kGlu) *n.out->host<float>() = std::nanf("");
  }

  std::unique_ptr<Backend> inner_;
  Fault fault_;
  DeviceInfo info_;
};

Report CheckFaulty(Fault fault) {
  FaultyBackend backend(fault);
  CheckOptions o = QuickOptions("faulty");
  return RunCheckWith(backend, o);
}

void ExpectOnlyOpFails(const Report& r, Op op) {
  EXPECT_FALSE(r.verdict.pass);
  EXPECT_GT(r.verdict.failed, 0);
  for (const CaseResult& c : r.cases) {
    if (c.c.spec.op == op) {
      EXPECT_EQ(c.status, CaseStatus::kFail) << c.c.spec.Describe();
      EXPECT_FALSE(c.message.empty());
    } else {
      EXPECT_EQ(c.status, CaseStatus::kPass) << c.c.spec.Describe() << ": " << c.message;
    }
  }
  const std::string line = VerdictLine(r);
  EXPECT_EQ(line.rfind("verdict: FAIL: failing ops: " + std::string(OpName(op)), 0), 0u) << line;
  EXPECT_EQ(ToJson(r).at("verdict").at("result"), "FAIL");
}

TEST(CheckCatchesWrongKernels, RopeWithTheWrongPairing) {
  const Report r = CheckFaulty(Fault::kRopeWrongPairing);
  ExpectOnlyOpFails(r, Op::kRope);
  for (const CaseResult& c : r.cases) {
    if (c.c.spec.op == Op::kRope) {
      EXPECT_NE(c.message.find("exceeds the ROPE threshold"), std::string::npos) << c.message;
    }
  }
}

TEST(CheckCatchesWrongKernels, MatMulDroppingTheLastBlock) {
  ExpectOnlyOpFails(CheckFaulty(Fault::kMatMulDropsLastBlock), Op::kMatMul);
}

TEST(CheckCatchesWrongKernels, GluWritingNaN) {
  const Report r = CheckFaulty(Fault::kGluNaN);
  ExpectOnlyOpFails(r, Op::kGlu);
  for (const CaseResult& c : r.cases) {
    if (c.c.spec.op == Op::kGlu) {
      EXPECT_EQ(c.non_finite, 1);
      EXPECT_NE(c.message.find("NaN or Inf"), std::string::npos) << c.message;
    }
  }
}

// A kernel that is right out of place but wrong over its gate (core/graph.h InPlaceSource) fails
// exactly the in-place cases, which models run.
TEST(CheckCatchesWrongKernels, GluThatIsWrongInPlace) {
  const Report r = CheckFaulty(Fault::kGluClearsOutputFirst);
  EXPECT_FALSE(r.verdict.pass);
  int in_place = 0;
  for (const CaseResult& c : r.cases) {
    const bool should_fail = c.c.spec.op == Op::kGlu && c.c.spec.in_place;
    in_place += should_fail;
    EXPECT_EQ(c.status, should_fail ? CaseStatus::kFail : CaseStatus::kPass)
        << c.c.spec.Describe() << ": " << c.message;
  }
  EXPECT_GT(in_place, 0);
}

}  // namespace
}  // namespace dizuo::check
