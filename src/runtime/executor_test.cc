#include "runtime/executor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "backends/reference/reference_backend.h"

namespace dizuo {
namespace {

constexpr int64_t kWidth = 16, kRows = 3;

// A random graph over [kWidth, kRows] f32 tensors: each node reads tensors made earlier (inputs,
// node outputs, or reshaped views of them) and some outputs are marked. `weight` is external
// (already has storage) and feeds MATMULs.
struct RandomGraph {
  Graph graph;
  Tensor weight;
  std::vector<float> weight_data;
  std::vector<Tensor*> inputs;

  explicit RandomGraph(uint32_t seed, int nodes = 40) {
    std::mt19937 rng(seed);
    weight = MakeTensor(DType::F32, {kWidth, kWidth}, "w");
    weight_data.resize(kWidth * kWidth);
    for (size_t i = 0; i < weight_data.size(); ++i) weight_data[i] = std::sin(0.37f * i) * 0.3f;
    weight.data = weight_data.data();

    std::vector<Tensor*> pool;
    for (int i = 0; i < 3; ++i) {
      inputs.push_back(graph.NewInput(DType::F32, {kWidth, kRows}, "in"));
      pool.push_back(inputs.back());
    }
    auto pick = [&] {
      // Favour recent tensors so lifetimes vary between short and long.
      const size_t n = pool.size();
      const size_t back = std::min<size_t>(n - 1, rng() % 4 == 0 ? rng() % n : rng() % 3);
      return pool[n - 1 - back];
    };
    for (int i = 0; i < nodes; ++i) {
      Tensor* a = pick();
      Tensor* b = pick();
      Tensor* out = nullptr;
      switch (rng() % 7) {
        case 0:
          out = graph.Add(a, b);
          break;
        case 1:
          out = graph.Mul(a, b);
          break;
        case 2:
          out = graph.Scale(a, 0.9f);
          break;
        case 3:
          out = graph.RmsNorm(a, nullptr, 1e-5f);
          break;
        case 4:
          out = graph.Glu(a, b, Activation::kSilu);
          break;
        case 5:
          out = graph.MatMul(a, &weight);
          break;
        case 6: {
          // Normalise over the whole tensor through a flat view, then view it back.
          Tensor* flat = graph.Reshape(a, {kWidth * kRows});
          Tensor* norm = graph.RmsNorm(flat, nullptr, 1e-5f);
          out = graph.Reshape(norm, {kWidth, kRows});
          break;
        }
      }
      pool.push_back(out);
      if (rng() % 8 == 0) graph.MarkOutput(out);
    }
    graph.MarkOutput(pool.back());
  }

  void Upload(Backend& backend) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<float> values(kWidth * kRows);
      for (size_t j = 0; j < values.size(); ++j) values[j] = std::cos(1.3f * j + i);
      backend.Upload(*inputs[i], values.data(), 0, values.size() * sizeof(float));
    }
  }

  std::vector<std::vector<float>> Outputs(Backend& backend) {
    std::vector<std::vector<float>> outs;
    for (Tensor* t : graph.outputs()) {
      outs.emplace_back(t->elements());
      backend.Download(*t, outs.back().data(), 0, t->bytes());
    }
    return outs;
  }
};

// Live interval of every base tensor, computed here independently of PlanArena: from its
// producer (or the start, for inputs) to its last reader (or the end, for inputs and outputs).
std::map<Tensor*, std::pair<int64_t, int64_t>> Lifetimes(Graph& g) {
  const int64_t end = static_cast<int64_t>(g.nodes().size());
  auto base = [](Tensor* t) { return t->view_of ? t->view_of : t; };
  std::map<Tensor*, std::pair<int64_t, int64_t>> live;
  for (Tensor* t : g.inputs()) live[t] = {-1, end};
  for (int64_t i = 0; i < end; ++i) {
    const Node& n = g.nodes()[i];
    if (!live.count(base(n.out))) live[base(n.out)] = {i, i};
    for (Tensor* s : n.src) {
      if (s && live.count(base(s))) live[base(s)].second = std::max(live[base(s)].second, i);
    }
  }
  for (Tensor* t : g.outputs()) live[base(t)].second = end;
  return live;
}

// Slots live at the same time never share bytes, except a node's output written in place over a
// source whose last reader it is (ArenaSlot::takes_over, core/graph.h InPlaceSource).
TEST(ExecutorTest, LiveTensorsNeverOverlap) {
  int in_place = 0;
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    RandomGraph rg(seed);
    const ArenaPlan plan = PlanArena(rg.graph);
    auto live = Lifetimes(rg.graph);
    ASSERT_EQ(plan.slots.size(), live.size()) << "seed " << seed;
    auto index = [&](const ArenaSlot& s) { return static_cast<int64_t>(&s - plan.slots.data()); };
    for (const ArenaSlot& a : plan.slots) {
      if (a.takes_over >= 0) {
        ++in_place;
        const ArenaSlot& from = plan.slots[static_cast<size_t>(a.takes_over)];
        EXPECT_EQ(a.offset, from.offset);
        EXPECT_EQ(live[a.tensor].first, live[from.tensor].second) << "seed " << seed;
      }
      ASSERT_TRUE(live.count(a.tensor));
      EXPECT_EQ(a.offset % kArenaAlignment, 0u);
      EXPECT_GE(a.bytes, a.tensor->bytes());
      EXPECT_LE(a.offset + a.bytes, plan.bytes);
      for (const ArenaSlot& b : plan.slots) {
        if (&a == &b || a.takes_over == index(b) || b.takes_over == index(a)) continue;
        const auto [a0, a1] = live[a.tensor];
        const auto [b0, b1] = live[b.tensor];
        const bool overlap_in_time = a0 <= b1 && b0 <= a1;
        const bool overlap_in_space =
            a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
        ASSERT_FALSE(overlap_in_time && overlap_in_space)
            << "seed " << seed << ": '" << a.tensor->name << "' [" << a0 << ", " << a1 << "] and '"
            << b.tensor->name << "' [" << b0 << ", " << b1 << "] share bytes";
      }
    }
  }
  EXPECT_GT(in_place, 0) << "no random graph wrote a GLU in place";
}

// The FFN of a prompt batch: gate and up are live together; GLU writes over gate (read by no later
// node), so the arena holds three [n_ff, T] tensors at its peak instead of four.
TEST(ExecutorTest, GluWritesOverItsGateWhenNothingReadsItLater) {
  for (bool gate_read_later : {false, true}) {
    Graph g;
    Tensor w_gate = MakeTensor(DType::F32, {64, 256}, "w_gate");
    Tensor w_up = MakeTensor(DType::F32, {64, 256}, "w_up");
    Tensor w_down = MakeTensor(DType::F32, {256, 64}, "w_down");
    std::vector<float> wg(64 * 256), wu(64 * 256), wd(256 * 64);
    for (size_t i = 0; i < wg.size(); ++i) {
      wg[i] = std::sin(0.1f * i) * 0.1f;
      wu[i] = std::cos(0.3f * i) * 0.1f;
      wd[i] = std::sin(0.7f * i) * 0.1f;
    }
    w_gate.data = wg.data();
    w_up.data = wu.data();
    w_down.data = wd.data();
    Tensor* x = g.NewInput(DType::F32, {64, 8}, "x");
    Tensor* gate = g.MatMul(x, &w_gate);
    Tensor* up = g.MatMul(x, &w_up);
    Tensor* act = g.Glu(gate, up, Activation::kSilu);
    Tensor* out = g.MatMul(act, &w_down);
    if (gate_read_later) out = g.Add(out, g.MatMul(gate, &w_down));
    g.MarkOutput(out);
    const ArenaPlan plan = PlanArena(g);
    const ArenaSlot* glu_slot = nullptr;
    for (const ArenaSlot& s : plan.slots) {
      if (s.tensor == act) glu_slot = &s;
    }
    ASSERT_NE(glu_slot, nullptr);
    EXPECT_EQ(glu_slot->takes_over >= 0, !gate_read_later);

    // The results equal those of a graph whose tensors all have their own memory.
    auto backend = CreateReferenceBackend({});
    Executor executor(*backend);
    executor.Allocate(g);
    EXPECT_EQ(act->data == gate->data, !gate_read_later);
    std::vector<float> in(64 * 8);
    for (size_t i = 0; i < in.size(); ++i) in[i] = std::cos(0.05f * i);
    backend->Upload(*x, in.data(), 0, in.size() * sizeof(float));
    executor.Compute(g);
    std::vector<float> got(out->elements());
    backend->Download(*out, got.data(), 0, out->bytes());

    std::vector<float> expect(out->elements());
    {
      std::vector<float> xg(256 * 8), xu(256 * 8), h(256 * 8);
      for (int t = 0; t < 8; ++t) {
        for (int n = 0; n < 256; ++n) {
          double sg = 0, su = 0;
          for (int k = 0; k < 64; ++k) {
            sg += double{in[t * 64 + k]} * wg[n * 64 + k];
            su += double{in[t * 64 + k]} * wu[n * 64 + k];
          }
          xg[t * 256 + n] = static_cast<float>(sg);
          xu[t * 256 + n] = static_cast<float>(su);
          h[t * 256 + n] = static_cast<float>(sg / (1.0 + std::exp(-sg)) * su);
        }
        for (int e = 0; e < 64; ++e) {
          double s = 0, s2 = 0;
          for (int n = 0; n < 256; ++n) {
            s += double{h[t * 256 + n]} * wd[e * 256 + n];
            s2 += double{xg[t * 256 + n]} * wd[e * 256 + n];
          }
          expect[t * 64 + e] = static_cast<float>(gate_read_later ? s + s2 : s);
        }
      }
    }
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expect[i], 1e-4f)
          << "element " << i << " gate read later " << gate_read_later;
    }
  }
}

TEST(ExecutorTest, PackSlotsHandsASlotsBytesToItsHeir) {
  // a [0, 2] is read last by node 2, whose output b [2, 4] takes its bytes over; c [1, 3] is live
  // beside them and gets other bytes; d [4, 5] is live with b at node 4, so it gets fresh bytes
  // (starting in c's, free since node 3); e [5, 6] gets a's and b's bytes back.
  std::vector<ArenaSlot> slots = {{nullptr, 0, 256, 0, 2},
                                  {nullptr, 0, 256, 2, 4},
                                  {nullptr, 0, 128, 1, 3},
                                  {nullptr, 0, 256, 4, 5},
                                  {nullptr, 0, 256, 5, 6}};
  slots[1].takes_over = 0;
  const uint64_t bytes = PackSlots(slots, 6);
  EXPECT_EQ(slots[1].offset, slots[0].offset);
  EXPECT_NE(slots[2].offset, slots[0].offset);
  EXPECT_NE(slots[3].offset, slots[1].offset);
  EXPECT_EQ(slots[4].offset, slots[1].offset);
  EXPECT_EQ(slots[3].offset, slots[2].offset);
  EXPECT_EQ(bytes, 512u);
}

// A transformer layer's prompt pattern (llama 1b, pp512, in MiB): the residual r [0, 9] and the
// norm n [1, 3] are live when the FFN's up u [2, 4] and gate g [3, 4] start, and a 4 MiB slot p
// [0, 1] left a hole below them. First-fit in node order puts u above that hole (4 + 4 + 4 + 16
// + 16 = 44); by size, u and g go first and the 4 MiB slots fit around them (40).
TEST(ExecutorTest, PackSlotsPlacesLargeSlotsFirstWhenThatIsSmaller) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  std::vector<ArenaSlot> slots = {{nullptr, 0, 4 * kMiB, 0, 1},  {nullptr, 0, 4 * kMiB, 0, 9},
                                  {nullptr, 0, 4 * kMiB, 1, 3},  {nullptr, 0, 16 * kMiB, 2, 4},
                                  {nullptr, 0, 16 * kMiB, 3, 4}, {nullptr, 0, 4 * kMiB, 4, 9}};
  slots[5].takes_over = 4;  // the GLU writes over the gate
  const uint64_t bytes = PackSlots(slots, 10);
  EXPECT_EQ(bytes, 40 * kMiB);
  EXPECT_EQ(slots[5].offset, slots[4].offset);
}

// Random slot lists, small (first-fit in node order) and large (the smaller of both packings):
// no two slots live at the same node share a byte, but a slot and its heir, and the returned size
// covers every slot.
TEST(ExecutorTest, PackSlotsNeverOverlapsLiveSlots) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    const int64_t end = 5 + static_cast<int64_t>(rng() % 40);
    const uint64_t unit = seed % 2 == 0 ? 64 : 64 * 1024;
    std::vector<ArenaSlot> slots;
    for (int64_t i = 0; i < end; ++i) {
      const int outputs = 1 + static_cast<int>(rng() % 3);
      for (int o = 0; o < outputs; ++o) {
        const int64_t first = rng() % 8 == 0 ? -1 : i;
        const int64_t last = std::min<int64_t>(end, std::max<int64_t>(first, 0) + rng() % 6);
        slots.push_back({nullptr, 0, unit * (1 + rng() % 64), first, last});
      }
    }
    // Some in-place heirs: a slot that starts where an earlier, larger one ends.
    std::vector<bool> taken(slots.size(), false);
    for (size_t h = 0; h < slots.size(); ++h) {
      for (size_t s = 0; s < h && rng() % 2 == 0; ++s) {
        if (!taken[s] && slots[s].last == slots[h].first && slots[s].first < slots[h].first &&
            slots[s].bytes >= slots[h].bytes && slots[h].first >= 0) {
          slots[h].takes_over = static_cast<int64_t>(s);
          taken[s] = true;
          break;
        }
      }
    }
    const uint64_t bytes = PackSlots(slots, end);
    auto heir_of = [&](size_t a, size_t b) {
      return slots[b].takes_over == static_cast<int64_t>(a) ||
             slots[a].takes_over == static_cast<int64_t>(b);
    };
    for (size_t a = 0; a < slots.size(); ++a) {
      ASSERT_LE(slots[a].offset + slots[a].bytes, bytes) << "seed " << seed;
      for (size_t b = a + 1; b < slots.size(); ++b) {
        const bool live_together =
            slots[a].first <= slots[b].last && slots[b].first <= slots[a].last;
        const bool share = slots[a].offset < slots[b].offset + slots[b].bytes &&
                           slots[b].offset < slots[a].offset + slots[a].bytes;
        if (live_together && share && !heir_of(a, b)) {
          FAIL() << "seed " << seed << ": slots " << a << " and " << b << " overlap";
        }
      }
    }
  }
}

TEST(ExecutorTest, ReuseGivesSameResultsAsPrivateStorage) {
  auto backend = CreateReferenceBackend({});
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    RandomGraph shared(seed);
    Executor executor(*backend);
    executor.Allocate(shared.graph);
    shared.Upload(*backend);
    executor.Compute(shared.graph);

    // The same graph with every tensor in its own memory: the executor leaves it alone.
    RandomGraph isolated(seed);
    std::vector<std::vector<float>> storage;
    for (Tensor& t : isolated.graph.tensors()) {
      if (t.view_of) continue;
      storage.emplace_back(t.elements(), std::nanf(""));
      t.data = storage.back().data();
    }
    for (Tensor& t : isolated.graph.tensors()) {
      if (t.view_of) t.data = t.view_of->data;
    }
    Executor untouched(*backend);
    untouched.Allocate(isolated.graph);
    EXPECT_EQ(untouched.arena_bytes(), 0u);
    isolated.Upload(*backend);
    untouched.Compute(isolated.graph);

    EXPECT_EQ(shared.Outputs(*backend), isolated.Outputs(*backend)) << "seed " << seed;
  }
}

TEST(ExecutorTest, ChainReusesMemoryAndKeepsOutputs) {
  Graph g;
  Tensor* x = g.NewInput(DType::F32, {1024}, "x");
  Tensor* early = g.Scale(x, 2.0f);
  g.MarkOutput(early);
  Tensor* t = early;
  for (int i = 0; i < 10; ++i) t = g.Scale(t, 0.5f);
  g.MarkOutput(t);
  auto backend = CreateReferenceBackend({});
  Executor executor(*backend);
  executor.Allocate(g);
  // x and early are pinned; the chain alternates between two slots, and the final output takes
  // whichever one is free when it is produced: 4 slots instead of 12.
  EXPECT_EQ(executor.arena_bytes(), 4u * 4096);
  std::vector<float> in(1024, 3.0f);
  backend->Upload(*x, in.data(), 0, 4096);
  executor.Compute(g);
  std::vector<float> out(1024), first(1024), input(1024);
  backend->Download(*t, out.data(), 0, 4096);
  backend->Download(*early, first.data(), 0, 4096);
  backend->Download(*x, input.data(), 0, 4096);
  EXPECT_EQ(out[1023], 6.0f / 1024);
  EXPECT_EQ(first[0], 6.0f);
  EXPECT_EQ(input[5], 3.0f);
}

TEST(ExecutorTest, ViewsResolveToTheirBase) {
  Graph g;
  Tensor* x = g.NewInput(DType::F32, {4, 2}, "x");
  Tensor* y = g.Scale(x, 1.0f);
  Tensor* flat = g.Reshape(y, {8});
  Tensor* flat2 = g.Reshape(flat, {2, 4});
  Tensor* out = g.Scale(flat2, 3.0f);
  g.MarkOutput(out);
  auto backend = CreateReferenceBackend({});
  Executor executor(*backend);
  executor.Allocate(g);
  EXPECT_EQ(flat->data, y->data);
  EXPECT_EQ(flat2->data, y->data);
  EXPECT_EQ(flat2->buffer, y->buffer);
  EXPECT_EQ(flat2->offset, y->offset);
  const std::vector<float> in = {1, 2, 3, 4, 5, 6, 7, 8};
  backend->Upload(*x, in.data(), 0, 32);
  executor.Compute(g);
  std::vector<float> got(8);
  backend->Download(*out, got.data(), 0, 32);
  EXPECT_EQ(got, (std::vector<float>{3, 6, 9, 12, 15, 18, 21, 24}));
}

TEST(ExecutorTest, ExternalTensorsAreLeftAlone) {
  Graph g;
  std::vector<float> cache_data(8 * 4, 0.0f);
  Tensor cache = MakeTensor(DType::F32, {4, 2, 4}, "cache");
  cache.data = cache_data.data();
  Tensor* rows = g.NewInput(DType::F32, {8, 1}, "rows");
  Tensor* cells = g.NewInput(DType::I32, {1}, "cells");
  g.StoreKV(&cache, rows, cells);
  auto backend = CreateReferenceBackend({});
  Executor executor(*backend);
  executor.Allocate(g);
  EXPECT_EQ(cache.data, cache_data.data());
  EXPECT_EQ(cache.buffer, nullptr);
  std::vector<float> r(8, 1.5f);
  const int32_t cell = 2;
  backend->Upload(*rows, r.data(), 0, 32);
  backend->Upload(*cells, &cell, 0, 4);
  executor.Compute(g);
  EXPECT_EQ(cache_data[2 * 8 + 7], 1.5f);
  EXPECT_EQ(cache_data[3 * 8], 0.0f);
}

TEST(ExecutorTest, BufferGrowsOnlyWhenNeeded) {
  auto backend = CreateReferenceBackend({});
  Executor executor(*backend);
  auto graph_of = [](int64_t n) {
    auto g = std::make_unique<Graph>();
    g->MarkOutput(g->Scale(g->NewInput(DType::F32, {n}, "x"), 2.0f));
    return g;
  };
  auto small = graph_of(16);
  executor.Allocate(*small);
  EXPECT_EQ(executor.capacity_bytes(), 128u);
  auto big = graph_of(4096);
  executor.Allocate(*big);
  EXPECT_EQ(executor.capacity_bytes(), 2u * 16384);
  auto small_again = graph_of(16);
  executor.Allocate(*small_again);
  EXPECT_EQ(executor.arena_bytes(), 128u);
  EXPECT_EQ(executor.capacity_bytes(), 2u * 16384);
}

}  // namespace
}  // namespace dizuo
