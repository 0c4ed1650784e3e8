// In-process A/B of the AVX2 block attention (AttentionF16, src/backends/cpu/kernels_avx2.cc) of
// two source versions, built into one binary by bench/ab-attention: A = the file at a git revision
// (its table renamed Avx2KernelsBase), B = the working tree's (Avx2KernelsTree). Each "token" is
// one generated token's attention as a model runs it: for every layer and KV head, one kernel call
// with the group's query rows over that head's cells of a head-major f16 cache (model/kv_cache.h).
// A's tokens and B's alternate, the order swapped every time, so a slow spell of a shared machine
// hits both; the minimum and median per token of each and their ratios tell a few percent, which
// separate processes cannot. The outputs of A and B are compared too.
//
//   ab_attention CELLS LAYERS GROUP KV D TOKENS
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backends/cpu/kernels.h"

namespace dizuo::cpu {
const Kernels& Avx2KernelsBase();
const Kernels& Avx2KernelsTree();
}  // namespace dizuo::cpu

namespace {

using dizuo::cpu::AttentionRows;
using dizuo::cpu::Kernels;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s CELLS LAYERS GROUP KV D TOKENS (see bench/ab-attention)\n",
                 argv[0]);
    return 2;
  }
  const int64_t nc = std::atoll(argv[1]), layers = std::atoll(argv[2]);
  const int group = std::atoi(argv[3]);
  const int64_t n_kv = std::atoll(argv[4]), d = std::atoll(argv[5]);
  const int tokens = std::atoi(argv[6]);
  if (nc < 1 || layers < 1 || group < 1 || n_kv < 1 || d < 64 || d % 64 != 0 ||
      d > dizuo::cpu::kAttentionMaxHead || tokens < 1) {
    std::fprintf(stderr,
                 "ab_attention: CELLS, LAYERS, GROUP, KV and TOKENS must be positive and D a "
                 "multiple of 64 up to %lld\n",
                 static_cast<long long>(dizuo::cpu::kAttentionMaxHead));
    return 2;
  }
  const Kernels* arms[2] = {&dizuo::cpu::Avx2KernelsBase(), &dizuo::cpu::Avx2KernelsTree()};
  const int64_t nc16 = (nc + 15) / 16 * 16;
  const size_t head = static_cast<size_t>(nc * d), layer = head * static_cast<size_t>(n_kv);
  std::vector<uint16_t> k(layer * static_cast<size_t>(layers)), v(k.size());
  std::mt19937 rng(4);
  std::normal_distribution<float> dist;
  std::vector<float> row(static_cast<size_t>(d));
  for (size_t r = 0; r < k.size(); r += row.size()) {
    for (float& x : row) x = dist(rng) * 0.2f;
    arms[0]->f32_to_f16(row.data(), k.data() + r, d);
    for (float& x : row) x = dist(rng);
    arms[0]->f32_to_f16(row.data(), v.data() + r, d);
  }
  const size_t rows_per_call = static_cast<size_t>(group * d);
  std::vector<float> q(rows_per_call * static_cast<size_t>(n_kv * layers));
  for (float& x : q) x = dist(rng);
  std::vector<float> out[2] = {std::vector<float>(q.size()), std::vector<float>(q.size())};
  std::vector<uint8_t> visible(static_cast<size_t>(nc16), 0);
  std::fill_n(visible.begin(), nc, uint8_t{1});
  std::vector<float> scratch(dizuo::cpu::AttentionRowsScratch(d, group, nc));
  auto token = [&](int arm) {
    AttentionRows t;
    t.d = d;
    t.tokens = 1;
    t.heads = group;
    t.q_token_stride = t.out_token_stride = rows_per_call;
    t.q_head_stride = t.out_head_stride = static_cast<size_t>(d);
    t.nc = nc;
    t.visible = visible.data();
    t.mask_stride = static_cast<size_t>(nc16);
    t.k_stride = t.v_stride = static_cast<size_t>(d);
    t.scale = 1.0f / std::sqrt(static_cast<float>(d));
    t.scratch = scratch.data();
    for (int64_t l = 0; l < layers; ++l) {
      for (int64_t h = 0; h < n_kv; ++h) {
        const size_t at = static_cast<size_t>(l) * layer + static_cast<size_t>(h) * head;
        const size_t call = static_cast<size_t>(l * n_kv + h) * rows_per_call;
        t.k = k.data() + at;
        t.v = v.data() + at;
        t.q = q.data() + call;
        t.out = out[arm].data() + call;
        arms[arm]->attention_f16(t);
      }
    }
  };
  std::vector<double> seconds[2];
  for (int i = 0; i < tokens; ++i) {
    for (int j = 0; j < 2; ++j) {
      const int arm = (i + j) % 2;
      const auto start = std::chrono::steady_clock::now();
      token(arm);
      seconds[arm].push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  double max_diff = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(out[0][i] - out[1][i])));
  }
  const double a_min = *std::min_element(seconds[0].begin(), seconds[0].end());
  const double b_min = *std::min_element(seconds[1].begin(), seconds[1].end());
  const double a_med = Median(seconds[0]), b_med = Median(seconds[1]);
  std::printf(
      "%lld cells, %lld layers x %lld kv heads x %d rows, d %lld, %d tokens each: A min %.0f "
      "median %.0f us, B min %.0f median %.0f us; B speed / A: min %.3f median %.3f; max |A - B| "
      "%g\n",
      static_cast<long long>(nc), static_cast<long long>(layers), static_cast<long long>(n_kv),
      group, static_cast<long long>(d), tokens, a_min * 1e6, a_med * 1e6, b_min * 1e6, b_med * 1e6,
      a_min / b_min, a_med / b_med, max_diff);
  return 0;
}
