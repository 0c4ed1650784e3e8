// The scheduler across a partial "device" (device-style memory, a subset of the ops, the reference
// kernels underneath) and the CPU fallback: stories260K still reproduces llama.cpp's goldens when
// nodes, weights, the KV cache and intermediates are split across the two, and the profile says
// what ran where. The device checks that every tensor of every node it computes is in its own
// memory, so a missing copy fails loudly.
#include "runtime/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "backends/plugin.h"
#include "backends/reference/reference_backend.h"
#include "core/error.h"
#include "runtime/stories_test_util.h"

namespace dizuo {
namespace {

class PartialDevice final : public Backend {
 public:
  PartialDevice(std::string name, std::set<Op> ops, bool host_memory)
      : ops_(std::move(ops)), reference_(CreateReferenceBackend({})) {
    info_.name = std::move(name);
    info_.description = "test device over the reference kernels";
    info_.host_memory = host_memory;
  }

  const DeviceInfo& device() const override { return info_; }
  std::unique_ptr<Buffer> Allocate(uint64_t bytes) override {
    return std::make_unique<DeviceBuffer>(*this, bytes);
  }
  void Upload(const Tensor& t, const void* host, uint64_t offset, uint64_t size) override {
    std::memcpy(Address(t) + offset, host, size);
  }
  void Download(const Tensor& t, void* host, uint64_t offset, uint64_t size) override {
    std::memcpy(host, Address(t) + offset, size);
  }
  bool Supports(const Node& node) const override {
    return ops_.contains(node.op) && reference_->Supports(node);
  }
  void Compute(std::span<const Node> nodes) override {
    for (const Node& node : nodes) {
      // The reference kernels address host memory: alias this device's bytes.
      std::vector<Tensor> local;
      local.reserve(kMaxSrc + 1);
      Node n = node;
      auto alias = [&](Tensor*& t) {
        if (t == nullptr) return;
        Tensor& a = local.emplace_back(*t);
        a.data = Address(*t);
        t = &a;
      };
      alias(n.out);
      for (Tensor*& src : n.src) alias(src);
      reference_->Compute(std::span(&n, 1));
    }
  }

 private:
  class DeviceBuffer final : public Buffer {
   public:
    DeviceBuffer(Backend& backend, uint64_t bytes) : backend_(backend), bytes_(bytes + 1, 0) {}
    Backend& backend() const override { return backend_; }
    uint64_t size() const override { return bytes_.size() - 1; }
    void* host_data() const override {
      return backend_.device().host_memory ? const_cast<uint8_t*>(bytes_.data()) : nullptr;
    }
    uint8_t* bytes() { return bytes_.data(); }

   private:
    Backend& backend_;
    std::vector<uint8_t> bytes_;
  };

  // Every tensor a node touches must be in this device's memory (or, for a host-memory device,
  // host-visible): the scheduler's job.
  uint8_t* Address(const Tensor& t) const {
    if (info_.host_memory && t.data != nullptr) return static_cast<uint8_t*>(t.data);
    if (t.buffer == nullptr || &t.buffer->backend() != this) {
      Fail("{}: tensor '{}' is not in this device's memory", info_.name, t.name);
    }
    return static_cast<DeviceBuffer*>(t.buffer)->bytes() + t.offset;  // device memory
  }

  DeviceInfo info_;
  std::set<Op> ops_;
  std::unique_ptr<Backend> reference_;
};

const std::set<Op> kAllOps = {Op::kGetRows, Op::kMatMul, Op::kAdd, Op::kMul,       Op::kScale,
                              Op::kRmsNorm, Op::kRope,   Op::kGlu, Op::kAttention, Op::kStoreKV};

std::set<Op> AllBut(std::initializer_list<Op> missing) {
  std::set<Op> ops = kAllOps;
  for (Op op : missing) ops.erase(op);
  return ops;
}

// Test devices, registered once under their names.
void RegisterDevices() {
  static const bool registered = [] {
    // ATTENTION without STORE_KV: the cache stays on the CPU and is copied in for attention.
    RegisterPluginBackend("dev_no_store", [](const BackendOptions*) -> Backend* {
      return new PartialDevice("dev_no_store", AllBut({Op::kStoreKV, Op::kRope}), false);
    });
    // STORE_KV without ATTENTION: the cache stays on the CPU; the device writes a copy of it,
    // which is copied back.
    RegisterPluginBackend("dev_no_attention", [](const BackendOptions*) -> Backend* {
      return new PartialDevice("dev_no_attention", AllBut({Op::kAttention, Op::kGlu}), false);
    });
    // Only the cache ops: the cache lives on the device; everything around it on the CPU.
    RegisterPluginBackend("dev_cache_only", [](const BackendOptions*) -> Backend* {
      return new PartialDevice("dev_cache_only", {Op::kStoreKV, Op::kAttention}, false);
    });
    // Host memory and half the ops: no copies at all.
    RegisterPluginBackend("host_half", [](const BackendOptions*) -> Backend* {
      return new PartialDevice("host_half", {Op::kMatMul, Op::kAdd, Op::kRope, Op::kStoreKV}, true);
    });
    return true;
  }();
  (void)registered;
}

class SchedulerStoriesTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { RegisterDevices(); }
};

TEST_P(SchedulerStoriesTest, ReproducesGoldensAcrossDeviceAndFallback) {
  for (DType kv_type : {DType::F16, DType::F32}) {
    SCOPED_TRACE(Name(kv_type));
    auto engine = testing::LoadStoriesOn(GetParam(), false, kv_type);
    const auto cases = testing::ReadStoriesGoldens();
    ASSERT_FALSE(cases.empty());
    for (const auto& c : cases) {
      EXPECT_EQ(testing::GreedyText(*engine, c.prompt, c.n_predict), c.continuation)
          << "prompt: " << c.prompt;
    }
    const SchedulerProfile& p = engine->profile();
    EXPECT_EQ(p.selected, GetParam());
    EXPECT_EQ(p.fallback, "cpu");
    EXPECT_GT(p.fallback_nodes, 0);
    EXPECT_LT(p.fallback_nodes, p.nodes);
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, SchedulerStoriesTest,
                         ::testing::Values("dev_no_store", "dev_no_attention", "dev_cache_only",
                                           "host_half"));

TEST(SchedulerTest, ProfileNamesWhatFellBackAndWhy) {
  RegisterDevices();
  auto engine = testing::LoadStoriesOn("dev_no_store", /*profile=*/true);
  testing::GreedyText(*engine, "Once upon a time", 4);
  const SchedulerProfile& p = engine->profile();
  EXPECT_TRUE(p.timed);
  EXPECT_EQ(p.passes, 4);
  std::set<Op> fell_back;
  int64_t runs = 0;
  for (const FallbackGroup& g : p.fallbacks) {
    fell_back.insert(g.op);
    runs += g.count;
    EXPECT_NE(g.reason.find("does not support"), std::string::npos) << g.reason;
  }
  EXPECT_EQ(fell_back, (std::set<Op>{Op::kStoreKV, Op::kRope}));
  EXPECT_EQ(runs, p.fallback_nodes);
  // stories260K: 5 layers, each with 2 STORE_KV and 2 ROPE, per pass.
  EXPECT_EQ(p.fallback_nodes, 4 * 5 * 4);
  int64_t counted = 0;
  for (const auto& [key, t] : p.ops) {
    counted += t.count;
    EXPECT_EQ(key.second,
              AllBut({Op::kStoreKV, Op::kRope}).contains(key.first) ? "dev_no_store" : "cpu");
  }
  EXPECT_EQ(counted, p.nodes);
  EXPECT_GT(p.seconds(), 0);
  EXPECT_GT(p.copies.count, 0);
  const std::string report = p.Report();
  EXPECT_NE(report.find("backend 'dev_no_store' does not support ROPE"), std::string::npos)
      << report;
  EXPECT_NE(report.find("STORE_KV into a f16 cache"), std::string::npos) << report;

  // The per-shape MATMUL table adds up to the MATMUL rows of the op table. stories260K (n_embd 64,
  // vocab 512, 5 layers of 7 MATMULs) ends in the output projection w[64, 512], which every pass
  // runs on one row (the prompt's pass on its last); the prompt's pass runs most of the layers' 35
  // on all its rows (the last layer's FFN only needs the last).
  int64_t matmul_runs = 0;
  double matmul_seconds = 0;
  for (const auto& [key, t] : p.ops) {
    if (key.first != Op::kMatMul) continue;
    matmul_runs += t.count;
    matmul_seconds += t.seconds;
  }
  int64_t shape_runs = 0;
  double shape_seconds = 0;
  int64_t output_m1 = 0, prompt_rows = 0;
  for (const auto& [shape, t] : p.matmuls) {
    shape_runs += t.count;
    shape_seconds += t.seconds;
    EXPECT_GT(t.weight_bytes, 0u);
    if (shape.k == 64 && shape.n == 512) {
      EXPECT_EQ(t.weight_bytes, 512 * RowBytes(shape.type, 64).value());
      if (shape.m == 1) output_m1 += t.count;
    }
    if (shape.m > 1) prompt_rows += t.count;
  }
  EXPECT_EQ(shape_runs, matmul_runs);
  EXPECT_NEAR(shape_seconds, matmul_seconds, 1e-9 * static_cast<double>(matmul_runs));
  EXPECT_EQ(output_m1, 4);
  EXPECT_GE(prompt_rows, 4 * 7);
  EXPECT_LE(prompt_rows, 5 * 7);
  EXPECT_NE(report.find("MATMUL by weight"), std::string::npos) << report;
}

TEST(SchedulerTest, WeightsAreUploadedOnceAndHostBackendsShareMemory) {
  RegisterDevices();
  auto device = testing::LoadStoriesOn("dev_no_store");
  testing::GreedyText(*device, "Once", 1);
  const uint64_t uploaded = device->profile().weight_upload_bytes;
  EXPECT_GT(uploaded, 0u);
  testing::GreedyText(*device, "Once upon a time", 3);
  EXPECT_EQ(device->profile().weight_upload_bytes, uploaded);

  auto host = testing::LoadStoriesOn("host_half");
  testing::GreedyText(*host, "Once upon a time", 3);
  EXPECT_EQ(host->profile().copy_bytes, 0u);
  EXPECT_EQ(host->profile().weight_upload_bytes, 0u);
  EXPECT_GT(host->profile().fallback_nodes, 0);
}

// GLU writes over its gate (core/graph.h InPlaceSource) when it runs on the backend that holds
// both; when it falls back to the CPU while gate lives on the device, each keeps its own bytes.
// The results are the same either way.
TEST(SchedulerTest, GluWritesInPlaceOnlyWhereGateAndOutputLive) {
  std::vector<float> wg(32 * 128), wu(32 * 128), wd(128 * 32), in(32 * 4);
  for (size_t i = 0; i < wg.size(); ++i) {
    wg[i] = std::sin(0.1f * i) * 0.2f;
    wu[i] = std::cos(0.3f * i) * 0.2f;
    wd[i] = std::sin(0.7f * i) * 0.2f;
  }
  for (size_t i = 0; i < in.size(); ++i) in[i] = std::cos(0.05f * i);
  std::vector<std::vector<float>> results;
  for (bool glu_on_device : {true, false}) {
    PartialDevice device("dev", glu_on_device ? kAllOps : AllBut({Op::kGlu}), false);
    Scheduler scheduler(device, [] { return CreateReferenceBackend({}); });
    Tensor w_gate = MakeTensor(DType::F32, {32, 128}, "w_gate");
    Tensor w_up = MakeTensor(DType::F32, {32, 128}, "w_up");
    Tensor w_down = MakeTensor(DType::F32, {128, 32}, "w_down");
    w_gate.data = wg.data();
    w_up.data = wu.data();
    w_down.data = wd.data();
    Graph g;
    Tensor* x = g.NewInput(DType::F32, {32, 4}, "x");
    Tensor* gate = g.MatMul(x, &w_gate);
    Tensor* act = g.Glu(gate, g.MatMul(x, &w_up), Activation::kSilu);
    Tensor* out = g.MatMul(act, &w_down);
    g.MarkOutput(out);
    scheduler.Allocate(g);
    const bool shared = act->buffer == gate->buffer && act->offset == gate->offset;
    EXPECT_EQ(shared, glu_on_device);
    Scheduler::Upload(*x, in.data(), in.size() * sizeof(float));
    scheduler.Compute(g);
    results.emplace_back(out->elements());
    Scheduler::Download(*out, results.back().data(), out->bytes());
  }
  EXPECT_EQ(results[0], results[1]);
}

TEST(SchedulerTest, SelectedCpuRunsEverythingWithoutFallback) {
  auto engine = testing::LoadStoriesOn("cpu");
  testing::GreedyText(*engine, "Once upon a time", 2);
  const SchedulerProfile& p = engine->profile();
  EXPECT_EQ(p.fallback_nodes, 0);
  EXPECT_TRUE(p.fallback.empty());
  EXPECT_EQ(p.copy_bytes, 0u);
  EXPECT_NE(p.Report().find("no node fell back"), std::string::npos);
}

}  // namespace
}  // namespace dizuo
