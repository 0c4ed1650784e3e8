// Kernel-level checks of every table the host can run (generic and each ISA):
// - activation conversion is bit-identical to QuantizeRow (the reference's conversion);
// - dot products equal the reference's integer-exact dot (reference::DotRow) up to float
//   summation order;
// - a tile's outputs do not depend on the tile shape, and the generation path (gemv) equals them;
// - weight layouts a table repacks into (RepackFns) give the same results through all three
//   paths (dot tiles, gemv, prompt GEMM);
// - the vectorized activations are accurate;
// - the thread pool's barrier orders phases.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_features.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/thread_pool.h"
#include "backends/reference/reference_kernels.h"
#include "core/gelu.h"
#include "core/quant.h"

namespace dizuo::cpu {
namespace {

std::vector<const Kernels*> Tables() { return AvailableKernels(); }

TEST(CpuKernels, EveryTableTheHostCanRunIsTested) {
  std::vector<std::string> names;
  for (const Kernels* k : Tables()) names.push_back(k->isa);
  std::printf("tables:");
  for (const std::string& n : names) std::printf(" %s", n.c_str());
  std::printf("\n");
  EXPECT_EQ(names.front(), "generic");
#if defined(__x86_64__)
  EXPECT_EQ(HostCpu().avx2, KernelsNamed("avx2") != nullptr);
  EXPECT_EQ(HostCpu().avx2 && HostCpu().avx512_vnni, KernelsNamed("avx512") != nullptr);
#elif defined(__aarch64__)
  EXPECT_NE(KernelsNamed("neon"), nullptr);
  EXPECT_EQ(HostCpu().neon_dotprod, KernelsNamed("neon-dotprod") != nullptr);
#endif
  if (std::getenv("DIZUO_CPU_ISA") == nullptr) {
    EXPECT_EQ(&SelectKernels(), Tables().back()) << "the default is the fastest table";
  }
}

std::vector<float> RandomValues(int64_t n, uint32_t seed, float range = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-range, range);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

const DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0, DType::Q4_1,
                              DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};

TEST(CpuKernels, ActivationConversionIsBitIdenticalToQuantizeRow) {
  const DType types[] = {DType::Q8_0, DType::Q8_1, DType::Q8_K, DType::F16, DType::BF16};
  // Random rows at several magnitudes, plus rows built to hit rounding ties and edge cases.
  std::vector<std::vector<float>> rows;
  for (uint32_t s = 0; s < 20; ++s) {
    rows.push_back(RandomValues(512, s, std::pow(10.0f, static_cast<float>(s % 7) - 3.0f)));
  }
  std::vector<float> ties(512);
  for (int i = 0; i < 512; ++i) ties[i] = 0.5f * static_cast<float>(i % 255 - 127);
  rows.push_back(ties);
  rows.push_back(std::vector<float>(512, 0.0f));
  std::vector<float> mixed = RandomValues(512, 99);
  for (int i = 0; i < 512; i += 37) mixed[i] = -mixed[i] * 100.0f;
  for (int i = 0; i < 64; ++i) mixed[i] = 0.0f;  // an all-zero block
  mixed[300] = 3.0f;
  mixed[301] = -3.0f;  // equal magnitudes of both signs: the first decides the Q8_K scale
  rows.push_back(mixed);
  for (const Kernels* k : Tables()) {
    for (DType t : types) {
      for (size_t r = 0; r < rows.size(); ++r) {
        const auto bytes = static_cast<size_t>(*RowBytes(t, 512));
        std::vector<uint8_t> want(bytes), got(bytes, 0xAB);
        QuantizeRow(t, rows[r].data(), want.data(), 512);
        k->to_activation[static_cast<size_t>(t)](rows[r].data(), got.data(), 512);
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), bytes))
            << k->isa << " " << Name(t) << " row " << r;
      }
    }
  }
}

// Weight rows quantized from random data, activations converted by the table itself.
struct DotCase {
  DType type;
  int64_t k, n, m;
  std::vector<uint8_t> w, a;
  size_t w_stride, a_stride;
};

DotCase MakeCase(const Kernels& kern, DType type, int64_t k, int64_t n, int64_t m, uint32_t seed) {
  DotCase c{type, k, n, m, {}, {}, 0, 0};
  c.w_stride = static_cast<size_t>(*RowBytes(type, static_cast<uint64_t>(k)));
  const DType act = ActivationType(type);
  c.a_stride = static_cast<size_t>(*RowBytes(act, static_cast<uint64_t>(k)));
  c.w.resize(c.w_stride * static_cast<size_t>(n));
  c.a.resize(c.a_stride * static_cast<size_t>(m));
  const std::vector<float> wf = RandomValues(k * n, seed);
  const std::vector<float> af = RandomValues(k * m, seed + 1000, 3.0f);
  for (int64_t r = 0; r < n; ++r)
    QuantizeRow(type, wf.data() + r * k, c.w.data() + r * c.w_stride, k);
  for (int64_t r = 0; r < m; ++r) {
    if (act == DType::F32) {
      std::memcpy(c.a.data() + r * c.a_stride, af.data() + r * k, static_cast<size_t>(k) * 4);
    } else {
      kern.to_activation[static_cast<size_t>(act)](af.data() + r * k, c.a.data() + r * c.a_stride,
                                                   k);
    }
  }
  return c;
}

// out[c * n + r] via tiles of at most tw × ta.
std::vector<float> RunTiles(const Kernels& kern, const DotCase& c, int tw, int ta) {
  std::vector<float> out(static_cast<size_t>(c.n * c.m));
  for (int64_t r = 0; r < c.n; r += tw) {
    for (int64_t col = 0; col < c.m; col += ta) {
      const int nw = static_cast<int>(std::min<int64_t>(tw, c.n - r));
      const int na = static_cast<int>(std::min<int64_t>(ta, c.m - col));
      kern.dot[static_cast<size_t>(c.type)](c.k, c.w.data() + r * c.w_stride, c.w_stride, nw,
                                            c.a.data() + col * c.a_stride, c.a_stride, na,
                                            out.data() + col * c.n + r, static_cast<size_t>(c.n));
    }
  }
  return out;
}

TEST(CpuKernels, DotProductsMatchReference) {
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      // 172 is stories260K's n_ff (f32 only there); K-quants need multiples of 256. Float
      // weights also get lengths whose tails are shorter and longer than half a 32-step; 32 and
      // 224 (1 and 7 blocks) leave partial steps of the kernels that take 2 or 4 blocks per step.
      const int64_t lengths[] = {
          Traits(type).block_size == 256 ? 256 : 172, 2048, 200, 190, 7, 32, 224};
      for (int64_t len : lengths) {
        if (len % Traits(type).block_size != 0) continue;
        const DotCase c = MakeCase(*k, type, len, 7, 5, 42);
        const std::vector<float> got = RunTiles(*k, c, 4, 4);
        double err = 0, ref = 0;
        for (int64_t r = 0; r < c.n; ++r) {
          for (int64_t col = 0; col < c.m; ++col) {
            const double want = reference::DotRow(type, c.w.data() + r * c.w_stride,
                                                  c.a.data() + col * c.a_stride, len);
            const double diff = got[col * c.n + r] - want;
            err += diff * diff;
            ref += want * want;
          }
        }
        // Same integer sums and block factors; only the f32 vs f64 accumulation differs.
        EXPECT_LT(err / ref, 1e-11) << k->isa << " " << Name(type) << " k=" << len;
      }
    }
  }
}

// Packs c's activation rows into quads and runs the GEMM in calls of at most tw weight rows × ta
// activation rows (ta a multiple of 4: calls start at a quad).
std::vector<float> RunGemm(const GemmFns& g, const DotCase& c, int tw, int ta) {
  const size_t quad = g.pack_bytes(c.k);
  std::vector<uint8_t> packed(quad * static_cast<size_t>((c.m + 3) / 4));
  for (int64_t q = 0; q < (c.m + 3) / 4; ++q) {
    g.pack(c.k, c.a.data() + 4 * q * c.a_stride, c.a_stride,
           static_cast<int>(std::min<int64_t>(4, c.m - 4 * q)), packed.data() + q * quad);
  }
  std::vector<float> out(static_cast<size_t>(c.n * c.m), -1.0f);
  std::vector<uint8_t> wpack(g.pack_weights != nullptr ? g.weight_pack_bytes(c.k) : 0, 0xFF);
  for (int64_t col = 0; col < c.m; col += ta) {
    for (int64_t r = 0; r < c.n; r += tw) {
      const int nw = static_cast<int>(std::min<int64_t>(tw, c.n - r));
      const void* w = c.w.data() + r * c.w_stride;
      size_t ws = c.w_stride;
      if (g.pack_weights != nullptr) {
        g.pack_weights(c.k, w, ws, nw, wpack.data());
        w = wpack.data();
        ws = 0;
      }
      g.gemm(c.k, w, ws, nw, packed.data() + (col / 4) * quad,
             static_cast<int>(std::min<int64_t>(ta, c.m - col)), out.data() + col * c.n + r,
             static_cast<size_t>(c.n));
    }
  }
  return out;
}

// The prompt-batch GEMM (tables that have one): packed activation quads × up to 4 weight rows,
// against the reference's integer-exact dot; every nw ≤ 4 and activation counts that leave partial
// quads and more than one 32-row chunk; float weights also with lengths that are not a multiple
// of 16.
TEST(CpuKernels, PromptGemmMatchesReference) {
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      const GemmFns& g = k->gemm[static_cast<size_t>(type)];
      if (g.gemm == nullptr) continue;
      for (int64_t m : {1, 6, 37, 15}) {
        const bool odd = Traits(type).block_size == 1 && m == 15;
        const DotCase c = MakeCase(*k, type, odd ? 83 : m == 37 ? 1024 : 256, 7, m, 11);
        const std::vector<float> got = RunGemm(g, c, g.rows, 1024);
        double err = 0, ref = 0;
        for (int64_t r = 0; r < c.n; ++r) {
          for (int64_t col = 0; col < m; ++col) {
            const double want = reference::DotRow(type, c.w.data() + r * c.w_stride,
                                                  c.a.data() + col * c.a_stride, c.k);
            const double diff = got[col * c.n + r] - want;
            err += diff * diff;
            ref += want * want;
          }
        }
        EXPECT_LT(err / ref, 1e-11) << k->isa << " " << Name(type) << " m=" << m;
      }
    }
  }
}

// The GEMM's outputs do not depend on how many weight and activation rows a call gets.
TEST(CpuKernels, PromptGemmShapeDoesNotChangeResults) {
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      const GemmFns& g = k->gemm[static_cast<size_t>(type)];
      if (g.gemm == nullptr) continue;
      const int64_t len = Traits(type).block_size == 1 ? 61 : 512;
      const DotCase c = MakeCase(*k, type, len, 9, 43, 5);
      const std::vector<float> one = RunGemm(g, c, 1, 4);
      for (auto [tw, ta] : {std::pair{4, 32},
                            {3, 8},
                            {2, 12},
                            {4, 4},
                            {1, 1024},
                            {4, 1024},
                            {g.rows, 32},
                            {g.rows, 1024},
                            {std::min(g.rows, 9), 8}}) {
        const std::vector<float> got = RunGemm(g, c, tw, ta);
        EXPECT_EQ(0, std::memcmp(one.data(), got.data(), one.size() * sizeof(float)))
            << k->isa << " " << Name(type) << " calls of " << tw << "x" << ta;
      }
    }
  }
}

// Tables that repack weights per chunk (GemmFns::pack_weights): weight counts below, at and
// between 16 and 32 per call, lengths that are odd, below 16, not a multiple of 16 and over
// several of the kernel's K-blocks, activation counts that leave partial quads and partial
// micro-tiles; against the reference, and bit for bit across call shapes.
TEST(CpuKernels, PromptGemmPackedWeights) {
  struct Shape {
    int64_t k, n, m;
  };
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      const GemmFns& g = k->gemm[static_cast<size_t>(type)];
      if (g.pack_weights == nullptr) continue;
      for (const Shape s :
           {Shape{1, 45, 5}, Shape{17, 33, 13}, Shape{83, 45, 37}, Shape{2100, 70, 29}}) {
        const DotCase c = MakeCase(*k, type, s.k, s.n, s.m, 17);
        const std::vector<float> got = RunGemm(g, c, g.rows, 1024);
        double err = 0, ref = 0;
        for (int64_t r = 0; r < c.n; ++r) {
          for (int64_t col = 0; col < c.m; ++col) {
            const double want = reference::DotRow(type, c.w.data() + r * c.w_stride,
                                                  c.a.data() + col * c.a_stride, c.k);
            const double diff = got[col * c.n + r] - want;
            err += diff * diff;
            ref += want * want;
          }
        }
        EXPECT_LT(err / ref, 1e-11) << k->isa << " " << Name(type) << " k=" << s.k;
        for (auto [tw, ta] :
             {std::pair{1, 4}, {16, 8}, {17, 12}, {g.rows, 24}, {g.rows, 16}, {5, 1024}}) {
          tw = std::min(tw, g.rows);  // a call takes at most `rows` weight rows
          const std::vector<float> shaped = RunGemm(g, c, tw, ta);
          EXPECT_EQ(0, std::memcmp(got.data(), shaped.data(), got.size() * sizeof(float)))
              << k->isa << " " << Name(type) << " k=" << s.k << " calls of " << tw << "x" << ta;
        }
      }
    }
  }
}

TEST(CpuKernels, TileShapeDoesNotChangeResults) {
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      for (int64_t len :
           {Traits(type).block_size == 256 ? int64_t{512} : int64_t{96}, int64_t{83}}) {
        if (len % Traits(type).block_size != 0) continue;
        const DotCase c = MakeCase(*k, type, len, 9, 7, 7);
        const std::vector<float> one = RunTiles(*k, c, 1, 1);
        for (auto [tw, ta] : {std::pair{4, 4}, {3, 2}, {2, 3}, {4, 1}, {1, 4}}) {
          const std::vector<float> tiled = RunTiles(*k, c, tw, ta);
          EXPECT_EQ(0, std::memcmp(one.data(), tiled.data(), one.size() * sizeof(float)))
              << k->isa << " " << Name(type) << " k=" << len << " tile " << tw << "x" << ta;
        }
      }
    }
  }
}

// The generation path (tables that have one) is bit-identical to one-row dot tiles whatever the
// number of rows per call: lengths with partial last steps, and one past its 64 prepared steps.
TEST(CpuKernels, GemvEqualsDotTiles) {
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      const GemvFn gemv = k->gemv[static_cast<size_t>(type)];
      if (gemv == nullptr) continue;
      // Lengths on both sides of the 64 prepared steps a gemv call keeps (K-quants: 256 per
      // step, others 128 or fewer), and for the others past the 512 blocks whose scales the
      // Zen 4 q8_0 gemv converts up front (16416 = 513 blocks).
      // Float types also take lengths that end in each of their partial steps (AVX2 f16: 32
      // elements per step, then 16, 8 and the scalar tail).
      const int block = Traits(type).block_size;
      std::vector<int64_t> lens = block == 256 ? std::vector<int64_t>{256, 2048, 16384, 16640}
                                               : std::vector<int64_t>{32, 224, 2048, 8320, 16416};
      if (block == 1) lens.insert(lens.end(), {7, 48, 61, 2040});
      for (int64_t len : lens) {
        // 40 rows, in calls of 1 to 40 rows (a generation share is up to 128 rows per call).
        const DotCase c = MakeCase(*k, type, len, 40, 1, 3);
        const std::vector<float> want = RunTiles(*k, c, 1, 1);
        for (int64_t rows : {1, 2, 5, 16, 17, 40}) {
          std::vector<float> got(static_cast<size_t>(c.n), -1.0f);
          for (int64_t r = 0; r < c.n; r += rows) {
            gemv(c.k, c.w.data() + r * c.w_stride, c.w_stride, std::min(rows, c.n - r), c.a.data(),
                 got.data() + r);
          }
          EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
              << k->isa << " " << Name(type) << " k=" << len << " rows per call " << rows;
        }
      }
    }
  }
}

// Weights in a table's own layout (RepackFns): the dot tiles, the generation path and the prompt
// GEMM on the repacked copy against the reference's integer-exact dot on the file's layout, and
// bit for bit across tile shapes, rows per gemv call and GEMM call shapes. Lengths: one block,
// partial and whole groups of the layout (q4_0x16: 16 blocks), several groups with a partial
// last one, and past the 64 steps a gemv call prepares.
TEST(CpuKernels, RepackedWeightsMatchReferenceOnEveryPath) {
  int layouts = 0;
  for (const Kernels* k : Tables()) {
    for (DType type : kWeightTypes) {
      const RepackFns& f = k->repacked[static_cast<size_t>(type)];
      if (f.repack == nullptr) continue;
      ++layouts;
      int lengths = 0;
      const GemmFns& g0 = k->gemm[static_cast<size_t>(type)];
      for (int64_t len : {32, 224, 384, 512, 544, 768, 2048, 3072, 33280}) {
        if (len % Traits(type).block_size != 0) continue;
        const size_t stride = f.row_bytes(len);
        if (stride == 0) continue;  // rows of this length stay in the file's layout
        ++lengths;
        const int64_t n = len > 4096 ? 9 : 37, m = len > 4096 ? 2 : 9;
        const DotCase c = MakeCase(*k, type, len, n, m, 23);
        ASSERT_GE(stride, c.w_stride);
        // Rows stored in groups (RepackFns::row_group): calls start at a group's first row and
        // take whole groups (the last one may hold fewer rows: n = 37 and 9 leave 1).
        const int group = f.row_group != nullptr ? f.row_group(len) : 1;
        ASSERT_GE(group, 1);
        auto whole = [&](int rows) { return (rows + group - 1) / group * group; };
        // The repack must write every byte of each row, padding included, and nothing past them:
        // into buffers filled with two different bytes first, it must give the same rows.
        const size_t rows_bytes = stride * static_cast<size_t>(n);
        std::vector<uint8_t> w(rows_bytes + 64, 0xAB), w2(rows_bytes + 64, 0x54);
        f.repack(len, c.w.data(), c.w_stride, n, w.data());
        f.repack(len, c.w.data(), c.w_stride, n, w2.data());
        EXPECT_EQ(w.back(), 0xAB) << "repack wrote past its rows";
        for (size_t i = 0; i < rows_bytes; ++i) {
          if (w[i] != w2[i]) {
            ADD_FAILURE() << f.name << " k=" << len << ": byte " << i << " not written";
            break;
          }
        }
        const std::string what = std::string(f.name) + " (" + k->isa + ") k=" + std::to_string(len);
        // unpack_row gives back each row the repack read, byte for byte (GET_ROWS reads a copied
        // embedding table through it). Every layout has one.
        EXPECT_NE(f.unpack_row, nullptr) << what << ": no unpack_row";
        if (f.unpack_row != nullptr) {
          std::vector<uint8_t> row(c.w_stride + 1, 0xCD);
          for (int64_t r = 0; r < n; ++r) {
            f.unpack_row(len, w.data(), stride, n, r, row.data());
            if (std::memcmp(row.data(), c.w.data() + r * c.w_stride, c.w_stride) != 0) {
              ADD_FAILURE() << what << ": unpack_row differs from the file's row " << r;
              break;
            }
          }
          EXPECT_EQ(row.back(), 0xCD) << what << ": unpack_row wrote past the row";
        }
        auto tiles = [&](int tw, int ta) {
          std::vector<float> out(static_cast<size_t>(n * m));
          for (int64_t r = 0; r < n; r += tw) {
            for (int64_t col = 0; col < m; col += ta) {
              f.dot(len, w.data() + r * stride, stride,
                    static_cast<int>(std::min<int64_t>(tw, n - r)), c.a.data() + col * c.a_stride,
                    c.a_stride, static_cast<int>(std::min<int64_t>(ta, m - col)),
                    out.data() + col * n + r, static_cast<size_t>(n));
            }
          }
          return out;
        };
        const std::vector<float> got = tiles(4, 4);
        double err = 0, ref = 0;
        for (int64_t r = 0; r < n; ++r) {
          for (int64_t col = 0; col < m; ++col) {
            const double want = reference::DotRow(type, c.w.data() + r * c.w_stride,
                                                  c.a.data() + col * c.a_stride, len);
            const double diff = got[col * n + r] - want;
            err += diff * diff;
            ref += want * want;
          }
        }
        EXPECT_LT(err / ref, 1e-11) << what;
        for (auto [tw, ta] : {std::pair{1, 1}, {3, 2}, {4, 1}, {1, 4}}) {
          tw = whole(tw);
          EXPECT_EQ(got, tiles(tw, ta)) << what << " tile " << tw << "x" << ta;
        }
        // gemv: bit for bit the one-row tiles of the first activation row (on the activation
        // prepared by gemv_act, when the layout has one).
        const std::vector<float> one = tiles(whole(1), 1);
        const void* act = c.a.data();
        std::vector<uint8_t> prepared;
        if (f.gemv_act != nullptr) {
          prepared.resize(f.gemv_act_bytes(len) + 64);
          void* p = prepared.data();
          size_t space = prepared.size();
          act = std::align(64, f.gemv_act_bytes(len), p, space);
          f.gemv_act(len, c.a.data(), const_cast<void*>(act));
        }
        for (int64_t rows : {1, 5, 16, 37}) {
          if (f.gemv == nullptr) break;  // generation runs the dot tiles
          rows = whole(static_cast<int>(rows));
          std::vector<float> out(static_cast<size_t>(n), -1.0f);
          for (int64_t r = 0; r < n; r += rows) {
            f.gemv(len, w.data() + r * stride, stride, std::min(rows, n - r), act, out.data() + r);
          }
          EXPECT_EQ(0, std::memcmp(one.data(), out.data(), out.size() * sizeof(float)))
              << what << " gemv, rows per call " << rows;
        }
        // A layout's prompt GEMM where the file's layout has none: the layout's tiles, bit for
        // bit, for every GEMM shape.
        if (g0.gemm == nullptr && f.gemm.gemm != nullptr) {
          DotCase rc = c;
          rc.w = w;
          rc.w_stride = stride;
          for (auto [tw, ta] : {std::pair{f.gemm.rows, 1024}, {1, 4}, {3, 8}, {2, 12}}) {
            tw = std::min(whole(tw), f.gemm.rows);
            EXPECT_EQ(got, RunGemm(f.gemm, rc, tw, ta)) << what << " gemm " << tw << "x" << ta;
          }
        }
        // The prompt GEMM on the copy equals the GEMM on the file's layout bit for bit.
        if (g0.gemm != nullptr && f.gemm.gemm != nullptr) {
          DotCase rc = c;
          rc.w = w;
          rc.w_stride = stride;
          const std::vector<float> want = RunGemm(g0, c, g0.rows, 1024);
          for (auto [tw, ta] : {std::pair{f.gemm.rows, 1024}, {1, 4}, {3, 8}, {17, 256}}) {
            tw = std::min(whole(tw), f.gemm.rows);  // a call takes at most `rows` weight rows
            EXPECT_EQ(want, RunGemm(f.gemm, rc, tw, ta)) << what << " gemm " << tw << "x" << ta;
          }
        }
      }
      EXPECT_GE(lengths, 3) << f.name << ": too few row lengths tested";
    }
  }
  if (layouts == 0) GTEST_SKIP() << "no kernel table on this host repacks weights";
}

double SiluExact(double x) { return x / (1.0 + std::exp(-x)); }

TEST(CpuKernels, GluActivationsAreAccurate) {
  // x over [-12, 12] in steps of 1e-4, up = 1 so out = act(x). silu: where |act(x)| >= 1e-4 the
  // relative error must be below 5e-7; below that (the far negative tail, where the f32 argument
  // of exp alone carries a relative error of |x|·2^-24) the absolute error must be below 1e-9.
  // gelu_tanh is defined through an f16 table (core/gelu.h): every kernel must give exactly
  // GeluTanhGguf(x), which tests/llamacpp_match_test checks against llama.cpp's own table.
  std::vector<float> x, up;
  for (int i = -120000; i <= 120000; ++i) x.push_back(static_cast<float>(i) * 1e-4f);
  for (float v : {-100.0f, -50.0f, -10.0f, 10.0f, 50.0f, 100.0f, 0.0f, 1e-6f, -1e-6f}) {
    x.push_back(v);
  }
  up.assign(x.size(), 1.0f);
  std::vector<float> out(x.size());
  for (const Kernels* k : Tables()) {
    k->glu(Activation::kSilu, x.data(), up.data(), out.data(), static_cast<int64_t>(x.size()));
    double worst_rel = 0, worst_abs = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = SiluExact(x[i]);
      const double err = std::fabs(out[i] - want);
      if (std::fabs(want) >= 1e-4) {
        worst_rel = std::max(worst_rel, err / std::fabs(want));
      } else {
        worst_abs = std::max(worst_abs, err);
      }
    }
    EXPECT_LT(worst_rel, 5e-7) << k->isa << " silu";
    EXPECT_LT(worst_abs, 1e-9) << k->isa << " silu";
    std::printf("%s silu: max relative error %.2e, max absolute error in the tail %.2e\n", k->isa,
                worst_rel, worst_abs);

    k->glu(Activation::kGeluTanh, x.data(), up.data(), out.data(), static_cast<int64_t>(x.size()));
    int64_t mismatches = 0;
    for (size_t i = 0; i < x.size(); ++i) mismatches += out[i] != GeluTanhGguf(x[i]);
    EXPECT_EQ(mismatches, 0) << k->isa << " gelu_tanh";
  }
}

TEST(CpuKernels, GluGivesEachElementTheSameInAnyPart) {
  // ForEachRowPart splits a generated token's row across threads at multiples of 16: every part
  // (with or without a vector tail) must give what the whole row gives, bit for bit.
  const std::vector<float> gate = RandomValues(1037, 5), up = RandomValues(1037, 6);
  const auto n = static_cast<int64_t>(gate.size());
  for (const Kernels* k : Tables()) {
    for (Activation act : {Activation::kSilu, Activation::kGeluTanh}) {
      std::vector<float> whole(gate.size()), parts(gate.size());
      k->glu(act, gate.data(), up.data(), whole.data(), n);
      const int64_t cuts[] = {0, 16, 528, 1024, n};
      for (size_t c = 0; c + 1 < std::size(cuts); ++c) {
        k->glu(act, gate.data() + cuts[c], up.data() + cuts[c], parts.data() + cuts[c],
               cuts[c + 1] - cuts[c]);
      }
      EXPECT_EQ(parts, whole) << k->isa << (act == Activation::kSilu ? " silu" : " gelu_tanh");
    }
  }
}

TEST(CpuKernels, VectorPrimitivesMatchScalar) {
  const std::vector<float> a = RandomValues(259, 3), b = RandomValues(259, 4);
  std::vector<uint16_t> bh(b.size());
  for (size_t i = 0; i < b.size(); ++i) bh[i] = F32ToF16(b[i]);
  for (const Kernels* k : Tables()) {
    std::vector<uint16_t> h(b.size());
    k->f32_to_f16(b.data(), h.data(), 259);
    EXPECT_EQ(h, bh) << k->isa;
    std::vector<float> y(a), yh(a);
    k->axpy_f32(0.5f, b.data(), y.data(), 259);
    k->axpy_f16(0.5f, bh.data(), yh.data(), 259);
    k->scale_f32(2.0f, y.data(), 259);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_FLOAT_EQ(y[i], 2.0f * (a[i] + 0.5f * b[i])) << k->isa;
      EXPECT_FLOAT_EQ(yh[i], a[i] + 0.5f * F16ToF32(bh[i])) << k->isa;
    }
  }
}

// exp_sum: within a few ulp of std::exp over the softmax range, exact zeros for hidden entries,
// and the sum of what it wrote; n covers the vector bodies and tails.
TEST(CpuKernels, ExpSumMatchesStdExp) {
  constexpr float kHidden = -std::numeric_limits<float>::infinity();
  for (const int64_t n : {1, 7, 8, 9, 64, 301}) {
    std::vector<float> x = RandomValues(n, 11, 30.0f);
    for (int64_t i = 0; i < n; i += 5) x[static_cast<size_t>(i)] = kHidden;
    x.back() = 2.0f;      // the maximum of the visible entries below
    x.front() = -150.0f;  // far below the maximum: underflows
    const float max = 30.0f;
    for (const Kernels* k : Tables()) {
      std::vector<float> got = x;
      const float sum = k->exp_sum(got.data(), n, max);
      double total = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float xi = x[static_cast<size_t>(i)], gi = got[static_cast<size_t>(i)];
        total += gi;
        if (xi == kHidden) {
          EXPECT_EQ(gi, 0.0f) << k->isa << " n=" << n << " i=" << i;
          continue;
        }
        const float want = std::exp(xi - max);
        EXPECT_NEAR(gi, want, 4 * std::numeric_limits<float>::epsilon() * want + 1e-37f)
            << k->isa << " n=" << n << " x=" << xi;
      }
      EXPECT_NEAR(sum, total, 1e-6 * total + 1e-30) << k->isa << " n=" << n;
    }
  }
}

// weighted_rows equals the axpy sequence it replaces (bit for bit on the table's own axpy, as
// both use one multiply-add per element in cell order), for f16 and f32 V rows, 1-4 rows, head
// sizes with and without vector tails, and cell counts around its chunk size.
TEST(CpuKernels, WeightedRowsEqualAxpySequence) {
  for (const Kernels* k : Tables()) {
    for (const DType v_type : {DType::F16, DType::F32}) {
      for (const int64_t d : {64, 80, 13}) {
        for (const int64_t n : {1, 63, 64, 130}) {
          for (int nr = 1; nr <= 4; ++nr) {
            const size_t v_elems = static_cast<size_t>(d + 3);  // rows padded: a real stride
            const std::vector<float> vf = RandomValues(n * static_cast<int64_t>(v_elems), 21);
            std::vector<uint16_t> vh(vf.size());
            for (size_t i = 0; i < vf.size(); ++i) vh[i] = F32ToF16(vf[i]);
            const size_t s_stride = static_cast<size_t>(n + 5);
            std::vector<float> s = RandomValues(nr * static_cast<int64_t>(s_stride), 22);
            for (float& x : s) x = std::abs(x);
            const float scale[4] = {0.5f, 1.25f, 0.75f, 2.0f};
            const bool round = v_type == DType::F16;
            std::vector<float> got = RandomValues(nr * d, 23), want = got;
            const void* v = v_type == DType::F16 ? static_cast<const void*>(vh.data()) : vf.data();
            const size_t v_stride = v_elems * (v_type == DType::F16 ? 2 : 4);
            k->weighted_rows(d, n, s.data(), s_stride, scale, nr, round, v_type, v, v_stride,
                             got.data());
            for (int64_t c = 0; c < n; ++c) {
              for (int r = 0; r < nr; ++r) {
                float w = s[static_cast<size_t>(r) * s_stride + static_cast<size_t>(c)] * scale[r];
                if (round) w = F16ToF32(F32ToF16(w));
                if (v_type == DType::F16) {
                  k->axpy_f16(w, vh.data() + c * static_cast<int64_t>(v_elems), want.data() + r * d,
                              d);
                } else {
                  k->axpy_f32(w, vf.data() + c * static_cast<int64_t>(v_elems), want.data() + r * d,
                              d);
                }
              }
            }
            for (size_t i = 0; i < got.size(); ++i) {
              // Vector bodies are bit-identical; scalar tails may contract differently.
              ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::abs(want[i])))
                  << k->isa << " " << Name(v_type) << " d=" << d << " n=" << n << " nr=" << nr
                  << " i=" << i;
              if (d % 8 == 0) {
                ASSERT_EQ(got[i], want[i]) << k->isa << " d=" << d << " i=" << i;
              }
            }
          }
        }
      }
    }
  }
}

// A table that replaces the block attention it inherits must replace its parts too: the parts
// are bit-identical only to their own table's whole call. The AVX-512 table once kept the AVX2
// parts beside its own AttentionF16, and Gemma 3's results then depended on the thread count
// (CpuVsReference.Attention caught it on a Zen 4; this test's data did not).
TEST(CpuKernels, AttentionPartsBelongToTheTablesWholeCall) {
  for (const Kernels* a : Tables()) {
    for (const Kernels* b : Tables()) {
      if (a->attention_f16_part == nullptr) continue;
      EXPECT_EQ(a->attention_f16 == b->attention_f16,
                a->attention_f16_part == b->attention_f16_part)
          << a->isa << " and " << b->isa;
    }
  }
}

// The f16 block attention (kernels.h AttentionRows) of tables that have one, against a scalar
// reference in f64 on the same f16-rounded operands (query rows and softmax weights rounded to f16
// as core/graph.h defines the op): 3 tokens × 3 heads of one kv head over 37 cells, each token
// seeing a different prefix, and cells no token sees holding NaN (stale or unwritten rows must not
// reach the output). Each output row must also come out bit for bit the same when the rows are
// split over separate calls (per token, per token and head), as the CPU backend's work split
// assumes, and when a table runs the calls in parts (attention_f16_part).
TEST(CpuKernels, AttentionF16MatchesReferenceWhateverTheSplit) {
  for (const Kernels* k : Tables()) {
    if (k->attention_f16 == nullptr) continue;
    for (const int64_t d : {64, 128, 256}) {
      constexpr int kTokens = 3, kHeads = 3;
      constexpr int64_t kCells = 37;
      const int64_t nc16 = (kCells + 15) / 16 * 16;
      const std::vector<float> q = RandomValues(kTokens * kHeads * d, 31);
      std::vector<float> kf = RandomValues(kCells * d, 32), vf = RandomValues(kCells * d, 33);
      std::vector<uint8_t> visible(static_cast<size_t>(kTokens * nc16), 0);
      for (int t = 0; t < kTokens; ++t) {
        for (int64_t c = 0; c <= 30 + 2 * t; ++c) visible[static_cast<size_t>(t * nc16 + c)] = 1;
        visible[static_cast<size_t>(t * nc16 + 4)] = 0;  // a hole no token sees
      }
      std::vector<uint16_t> kh(kf.size()), vh(vf.size());
      for (size_t i = 0; i < kf.size(); ++i) {
        kh[i] = F32ToF16(0.25f * kf[i]);
        vh[i] = F32ToF16(vf[i]);
      }
      for (int64_t c : {int64_t{4}, int64_t{35}, int64_t{36}}) {  // no token sees them
        std::fill_n(kh.begin() + c * d, d, uint16_t{0x7e00});
        std::fill_n(vh.begin() + c * d, d, uint16_t{0x7e00});
      }
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
      // out[t][h][·] for a call on tokens [t0, t0 + nt) and heads [h0, h0 + nh).
      std::vector<float> scratch(AttentionRowsScratch(d, kTokens * kHeads, kCells));
      auto make = [&](int t0, int nt, int h0, int nh, std::vector<float>& out) {
        AttentionRows task;
        task.d = d;
        task.tokens = nt;
        task.heads = nh;
        task.q = q.data() + (t0 * kHeads + h0) * d;
        task.q_token_stride = task.out_token_stride = static_cast<size_t>(kHeads * d);
        task.q_head_stride = task.out_head_stride = static_cast<size_t>(d);
        task.out = out.data() + (t0 * kHeads + h0) * d;
        task.nc = kCells;
        task.visible = visible.data() + t0 * nc16;
        task.mask_stride = static_cast<size_t>(nc16);
        task.k = kh.data();
        task.v = vh.data();
        task.k_stride = task.v_stride = static_cast<size_t>(d);
        task.scale = scale;
        task.scratch = scratch.data();
        return task;
      };
      auto run = [&](int t0, int nt, int h0, int nh, std::vector<float>& out) {
        k->attention_f16(make(t0, nt, h0, nh, out));
      };
      // The same call in parts (kernels.h AttentionPart), in another order than a single call's:
      // the cells 16 at a time from the last, the rows and the 32-element ranges in reverse. The
      // shared area starts as NaNs, so a part that read what no earlier part wrote would show.
      std::vector<float> shared(AttentionPartsShared(kTokens * kHeads, kCells));
      auto run_parts = [&](int t0, int nt, std::vector<float>& out) {
        std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
        AttentionRows task = make(t0, nt, 0, kHeads, out);
        task.shared = shared.data();
        for (int64_t c = (kCells - 1) / 16 * 16; c >= 0; c -= 16) {
          k->attention_f16_part(task, AttentionPart::kScores, c, std::min(kCells, c + 16));
        }
        for (int64_t i = nt * kHeads - 1; i >= 0; --i) {
          k->attention_f16_part(task, AttentionPart::kSoftmax, i, i + 1);
        }
        for (int64_t j = d - 32; j >= 0; j -= 32) {
          k->attention_f16_part(task, AttentionPart::kValues, j, j + 32);
        }
      };
      const size_t n_out = static_cast<size_t>(kTokens * kHeads * d);
      // Calls of 9 rows; 3; 1; 2 and 1; 4, 2 and 3 (generation runs 1-4 rows per call, prompts
      // more, through different code).
      std::vector<float> whole(n_out, -1.0f), per_token(n_out, -2.0f), per_row(n_out, -3.0f);
      std::vector<float> pairs(n_out, -4.0f), blocks(n_out, -5.0f);
      run(0, kTokens, 0, kHeads, whole);
      for (int t = 0; t < kTokens; ++t) {
        run(t, 1, 0, kHeads, per_token);
        for (int h = 0; h < kHeads; ++h) run(t, 1, h, 1, per_row);
        run(t, 1, 0, 2, pairs);
        run(t, 1, 2, 1, pairs);
      }
      run(0, 2, 0, 2, blocks);
      run(0, 2, 2, 1, blocks);
      run(2, 1, 0, kHeads, blocks);
      // In parts: the 9 rows at once (the prompt's score pass) and 3 per token (generation's).
      std::vector<float> parts_whole(n_out, -6.0f), parts_token(n_out, -7.0f);
      if (k->attention_f16_part != nullptr) {
        run_parts(0, kTokens, parts_whole);
        for (int t = 0; t < kTokens; ++t) run_parts(t, 1, parts_token);
      }
      for (size_t i = 0; i < n_out; ++i) {
        ASSERT_TRUE(std::isfinite(whole[i])) << k->isa << " d=" << d << " i=" << i;
        ASSERT_EQ(whole[i], per_token[i]) << k->isa << " d=" << d << " i=" << i;
        ASSERT_EQ(whole[i], per_row[i]) << k->isa << " d=" << d << " i=" << i;
        ASSERT_EQ(whole[i], pairs[i]) << k->isa << " d=" << d << " i=" << i;
        ASSERT_EQ(whole[i], blocks[i]) << k->isa << " d=" << d << " i=" << i;
        if (k->attention_f16_part != nullptr) {
          ASSERT_EQ(whole[i], parts_whole[i]) << k->isa << " d=" << d << " i=" << i;
          ASSERT_EQ(whole[i], parts_token[i]) << k->isa << " d=" << d << " i=" << i;
        }
      }
      // The scores alone (kScores leaves row i's at shared[i · nc16 + c]), before the softmax
      // rounds the weights to f16, which hides most last-bit differences: the same bits whatever
      // rows the call has (a table may score few-row calls and larger ones through different
      // code, as the AVX-512 one does).
      if (k->attention_f16_part != nullptr) {
        const size_t n_scores = static_cast<size_t>(kTokens * kHeads * kCells);
        std::vector<float> unused(n_out);
        auto scores = [&](int t0, int nt, int h0, int nh, std::vector<float>& all) {
          std::fill(shared.begin(), shared.end(), std::numeric_limits<float>::quiet_NaN());
          AttentionRows task = make(t0, nt, h0, nh, unused);
          task.shared = shared.data();
          k->attention_f16_part(task, AttentionPart::kScores, 0, kCells);
          for (int r = 0; r < nt * nh; ++r) {
            const int row = (t0 + r / nh) * kHeads + h0 + r % nh;
            std::copy_n(shared.begin() + r * nc16, kCells, all.begin() + row * kCells);
          }
        };
        std::vector<float> s_whole(n_scores, -1.0f), s_token(n_scores, -2.0f);
        std::vector<float> s_row(n_scores, -3.0f), s_blocks(n_scores, -4.0f);
        scores(0, kTokens, 0, kHeads, s_whole);
        for (int t = 0; t < kTokens; ++t) {
          scores(t, 1, 0, kHeads, s_token);
          for (int h = 0; h < kHeads; ++h) scores(t, 1, h, 1, s_row);
        }
        scores(0, 2, 0, 2, s_blocks);
        scores(0, 2, 2, 1, s_blocks);
        scores(2, 1, 0, kHeads, s_blocks);
        auto same = [](float a, float b) {
          return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
        };
        for (size_t i = 0; i < n_scores; ++i) {
          ASSERT_TRUE(same(s_whole[i], s_token[i])) << k->isa << " d=" << d << " score " << i;
          ASSERT_TRUE(same(s_whole[i], s_row[i])) << k->isa << " d=" << d << " score " << i;
          ASSERT_TRUE(same(s_whole[i], s_blocks[i])) << k->isa << " d=" << d << " score " << i;
        }
      }
      auto seen = [&](int t, int64_t c) { return visible[static_cast<size_t>(t * nc16 + c)] != 0; };
      double err = 0, norm = 0;
      for (int t = 0; t < kTokens; ++t) {
        for (int h = 0; h < kHeads; ++h) {
          const float* qr = q.data() + (t * kHeads + h) * d;
          std::vector<double> p(static_cast<size_t>(kCells), 0.0);  // scores, then exponentials
          double max = -std::numeric_limits<double>::infinity(), sum = 0;
          for (int64_t c = 0; c < kCells; ++c) {
            if (!seen(t, c)) continue;
            double dot = 0;
            for (int64_t j = 0; j < d; ++j) {
              dot += static_cast<double>(F16ToF32(F32ToF16(qr[j]))) * F16ToF32(kh[c * d + j]);
            }
            p[c] = dot * scale;
            max = std::max(max, p[c]);
          }
          for (int64_t c = 0; c < kCells; ++c) {
            if (!seen(t, c)) continue;
            p[c] = std::exp(p[c] - max);
            sum += p[c];
          }
          for (int64_t j = 0; j < d; ++j) {
            double want = 0;
            for (int64_t c = 0; c < kCells; ++c) {
              if (!seen(t, c)) continue;
              want += F16ToF32(F32ToF16(static_cast<float>(p[c] / sum))) * F16ToF32(vh[c * d + j]);
            }
            const double got = whole[static_cast<size_t>((t * kHeads + h) * d + j)];
            err += (got - want) * (got - want);
            norm += want * want;
          }
        }
      }
      EXPECT_LT(err / norm, 1e-8) << k->isa << " d=" << d;
    }
  }
}

TEST(CpuThreadPool, BarrierSeparatesPhases) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int run = 0; run < 10; ++run) {
      std::vector<int> slots(static_cast<size_t>(threads), 0);
      std::atomic<int> bad{0};
      pool.Run([&](int ith) {
        for (int phase = 1; phase <= 20; ++phase) {
          slots[static_cast<size_t>(ith)] = phase;
          pool.Barrier();
          for (int v : slots) {
            if (v != phase) bad.fetch_add(1);
          }
          pool.Barrier();
        }
      });
      ASSERT_EQ(bad.load(), 0) << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace dizuo::cpu
