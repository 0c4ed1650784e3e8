// In-process A/B of the AVX2 repacked-layout kernels (kernels_avx2_repacked.cc) of two source
// versions, built into one binary by bench/ab-kernels: A = the file at a git revision (its entry
// renamed AddAvx2RepackedKernelsBase), B = the working tree's. Each call of A is followed by one
// of B (the order swapped every iteration), thousands of times, so a slow spell of a shared
// machine hits both; the minimum and the median per call of each, and their ratios, tell a
// difference of a few percent from the noise that separate processes cannot.
//
//   ab_kernels TYPE K ROWS M CALLS
//
// TYPE: q4_0, q5_0, q8_0, q4_K or q6_K; K × ROWS weights with random quants and scales. K is a
// multiple of 32, or of 256 for the K-quants (K = 640: Gemma 3's rows, with their half step).
// M = 1 runs the GEMV (gemv_act + gemv), M > 1 the prompt GEMM (pack + gemm) on M activation rows.
// The outputs of A and B are compared: a layout change that alters the sums shows here too.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/kernels.h"
#include "core/quant_blocks.h"

namespace dizuo::cpu {
void AddAvx2RepackedKernels(Kernels* k);
void AddAvx2RepackedKernelsBase(Kernels* k);
}  // namespace dizuo::cpu

namespace {

using dizuo::BlockQ8_0;
using dizuo::BlockQ8_K;
using dizuo::DType;
using dizuo::cpu::Kernels;
using dizuo::cpu::RepackFns;

struct TypeInfo {
  const char* name;
  DType type;
  size_t block_bytes;
  int block_elems;
  int d_at, dmin_at;  // byte offsets of the f16 scales in a block (−1: none)
};

constexpr TypeInfo kTypes[] = {
    {"q4_0", DType::Q4_0, 18, 32, 0, -1},     {"q5_0", DType::Q5_0, 22, 32, 0, -1},
    {"q8_0", DType::Q8_0, 34, 32, 0, -1},     {"q4_K", DType::Q4_K, 144, 256, 0, 2},
    {"q6_K", DType::Q6_K, 210, 256, 208, -1},
};

uint16_t Half(float f) { return _cvtss_sh(f, 0); }

struct Arm {
  const RepackFns* fns;
  std::vector<uint8_t> weights, scratch;
  std::vector<float> out;
  std::vector<double> seconds;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s TYPE K ROWS M CALLS (see bench/ab-kernels)\n", argv[0]);
    return 2;
  }
  const std::string type_name = argv[1];
  const int64_t k = std::atoll(argv[2]), rows = std::atoll(argv[3]);
  const int m = std::atoi(argv[4]), calls = std::atoi(argv[5]);
  const TypeInfo* ti = nullptr;
  for (const TypeInfo& t : kTypes) {
    if (type_name == t.name) ti = &t;
  }
  if (ti == nullptr) {
    std::fprintf(stderr, "ab_kernels: unknown type '%s' (q4_0, q5_0, q8_0, q4_K, q6_K)\n", argv[1]);
    return 2;
  }
  if (k <= 0 || k % ti->block_elems != 0 || rows <= 0 || m <= 0 || calls <= 0) {
    std::fprintf(stderr,
                 "ab_kernels: K must be a positive multiple of %d for %s; ROWS, M, CALLS > 0\n",
                 ti->block_elems, ti->name);
    return 2;
  }

  Kernels ka{}, kb{};
  dizuo::cpu::AddAvx2RepackedKernelsBase(&ka);
  dizuo::cpu::AddAvx2RepackedKernels(&kb);
  Arm arms[2] = {{&ka.repacked[static_cast<size_t>(ti->type)], {}, {}, {}, {}},
                 {&kb.repacked[static_cast<size_t>(ti->type)], {}, {}, {}, {}}};
  for (const Arm& arm : arms) {
    if (arm.fns->repack == nullptr) {
      std::fprintf(stderr, "ab_kernels: no AVX2 layout for %s in one of the versions\n", ti->name);
      return 2;
    }
  }

  // Weights: random quants, scales in a realistic range.
  std::mt19937 rng(1);
  const size_t file_row = static_cast<size_t>(k / ti->block_elems) * ti->block_bytes;
  std::vector<uint8_t> file(file_row * rows);
  for (size_t b = 0; b < file.size() / ti->block_bytes; ++b) {
    uint8_t* p = file.data() + b * ti->block_bytes;
    for (size_t i = 0; i < ti->block_bytes; ++i) p[i] = static_cast<uint8_t>(rng());
    const uint16_t d = Half(1e-4f * static_cast<float>(1 + rng() % 100));
    std::memcpy(p + ti->d_at, &d, 2);
    if (ti->dmin_at >= 0) {
      const uint16_t dmin = Half(5e-5f * static_cast<float>(1 + rng() % 100));
      std::memcpy(p + ti->dmin_at, &dmin, 2);
    }
  }
  // Activations: Q8_K for the K-quants, Q8_0 for the others.
  const bool k_quant = ti->block_elems == 256;
  const size_t act_row =
      k_quant ? static_cast<size_t>(k / 256) * sizeof(BlockQ8_K) : (k / 32) * sizeof(BlockQ8_0);
  std::vector<uint8_t> act(act_row * m);
  auto q8 = [&] { return static_cast<int8_t>(static_cast<int>(rng() % 255) - 127); };
  if (k_quant) {
    auto* blocks = reinterpret_cast<BlockQ8_K*>(act.data());
    for (int64_t b = 0; b < m * k / 256; ++b) {
      blocks[b].d = 0.02f;
      for (int8_t& q : blocks[b].qs) q = q8();
      for (int j = 0; j < 16; ++j) {
        int sum = 0;
        for (int i = 0; i < 16; ++i) sum += blocks[b].qs[16 * j + i];
        blocks[b].bsums[j] = static_cast<int16_t>(sum);
      }
    }
  } else {
    auto* blocks = reinterpret_cast<BlockQ8_0*>(act.data());
    for (int64_t b = 0; b < m * k / 32; ++b) {
      blocks[b].d = Half(0.02f);
      for (int8_t& q : blocks[b].qs) q = q8();
    }
  }

  const RepackFns& f0 = *arms[0].fns;
  const size_t row_bytes = f0.row_bytes(k);
  for (Arm& arm : arms) {
    if (arm.fns->row_bytes(k) != row_bytes) {
      std::fprintf(stderr, "ab_kernels: the two versions' layouts differ in size\n");
      return 2;
    }
    arm.weights.resize(row_bytes * rows + 64);
    arm.fns->repack(k, file.data(), file_row, rows, arm.weights.data());
    const size_t quad = arm.fns->gemm.pack_bytes(k);
    arm.scratch.resize(std::max(arm.fns->gemv_act_bytes(k), quad * ((m + 3) / 4)) + 64);
    arm.out.assign(static_cast<size_t>(rows) * m, 0.0f);
  }
  auto run = [&](Arm& arm) {
    const RepackFns& f = *arm.fns;
    if (m == 1) {
      f.gemv_act(k, act.data(), arm.scratch.data());
      f.gemv(k, arm.weights.data(), row_bytes, rows, arm.scratch.data(), arm.out.data());
      return;
    }
    const size_t quad = f.gemm.pack_bytes(k);
    for (int q = 0; 4 * q < m; ++q) {
      f.gemm.pack(k, act.data() + 4 * q * act_row, act_row, std::min(4, m - 4 * q),
                  arm.scratch.data() + q * quad);
    }
    for (int64_t r = 0; r < rows; r += f.gemm.rows) {
      const int nw = static_cast<int>(std::min<int64_t>(f.gemm.rows, rows - r));
      f.gemm.gemm(k, arm.weights.data() + r * row_bytes, row_bytes, nw, arm.scratch.data(), m,
                  arm.out.data() + r, static_cast<size_t>(rows));
    }
  };
  for (int i = 0; i < calls; ++i) {
    for (int j = 0; j < 2; ++j) {
      Arm& arm = arms[(i + j) % 2];
      const auto t0 = std::chrono::steady_clock::now();
      run(arm);
      arm.seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }

  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < arms[0].out.size(); ++i) {
    if (!std::isfinite(arms[0].out[i]) || !std::isfinite(arms[1].out[i])) {
      std::fprintf(stderr, "ab_kernels: output %zu is not finite (A %g, B %g)\n", i, arms[0].out[i],
                   arms[1].out[i]);
      return 1;
    }
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(arms[0].out[i] - arms[1].out[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(arms[0].out[i])));
  }
  if (max_abs == 0) {
    std::fprintf(stderr, "ab_kernels: every output of A is zero: the kernels did not run\n");
    return 1;
  }
  double mins[2], medians[2];
  for (int a = 0; a < 2; ++a) {
    std::vector<double>& s = arms[a].seconds;
    std::sort(s.begin(), s.end());
    mins[a] = s.front();
    medians[a] = s[s.size() / 2];
  }
  const double bytes = static_cast<double>(row_bytes) * rows;
  std::printf(
      "%s %s K %lld x %lld rows, M %d, %d calls each\n"
      "  A (base): min %.1f us, median %.1f us (%.2f GB/s of weights at the min)\n"
      "  B (tree): min %.1f us, median %.1f us (%.2f GB/s)\n"
      "  B / A speed: %.3fx at the min, %.3fx at the median\n"
      "  outputs: max |A - B| %.3g (max |A| %.3g)\n",
      ti->name, m == 1 ? "GEMV" : "GEMM", static_cast<long long>(k), static_cast<long long>(rows),
      m, calls, mins[0] * 1e6, medians[0] * 1e6, bytes / mins[0] / 1e9, mins[1] * 1e6,
      medians[1] * 1e6, bytes / mins[1] / 1e9, mins[0] / mins[1], medians[0] / medians[1], max_diff,
      max_abs);
  return 0;
}
