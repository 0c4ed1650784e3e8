// MATMUL and GET_ROWS for every weight type of blocks.cl, plus the activation converters.
//
// MATMUL runs in two steps, as GGUF engines define the product (core/graph.h): each row of x is
// first converted into a contiguous scratch row of the weight's activation type (Q8_0, Q8_1, Q8_K,
// or f32/f16/bf16 for plain weights), then one work-group per output element (n, m) sums block
// dot products over the row, each block an exact integer sum scaled by the block factors.

// ---- activation converters: x rows (any row strides) -> packed scratch rows ----

inline int round_clamp_i8(float r) { return !(r > -128.0f) ? -128 : (r >= 127.0f ? 127 : (int)r); }

// Q8_0 / Q8_1 (one work-item per 32-element block): d = amax / 127, q = round(x / d) with ties
// away from zero; Q8_1 also stores s = d · Σq.
inline void quantize_q8_legacy(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes_mut out,
                               ulong out_row_bytes, int with_sum) {
  const int b = get_global_id(0), m = get_global_id(1);
  gbytes src = x + x_off + row_offset(m, x_ne, x_nb) + (ulong)b * 128;
  gbytes_mut dst = out + (ulong)m * out_row_bytes + (ulong)b * (with_sum ? 36 : 34);
  __global char* qs = (__global char*)(dst + (with_sum ? 4 : 2));
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = fmax(amax, fabs(load_f32(src + 4 * i)));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    const int q = round_clamp_i8(round(load_f32(src + 4 * i) * id));
    qs[i] = (char)q;
    sum += q;
  }
  store_half(d, dst);
  if (with_sum) store_half((float)sum * d, dst + 2);
}

__kernel void quantize_q8_0(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes_mut out,
                            ulong out_row_bytes) {
  quantize_q8_legacy(x, x_off, x_ne, x_nb, out, out_row_bytes, 0);
}

__kernel void quantize_q8_1(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes_mut out,
                            ulong out_row_bytes) {
  quantize_q8_legacy(x, x_off, x_ne, x_nb, out, out_row_bytes, 1);
}

// Q8_K (one work-item per 256-element block): the first element of largest magnitude maps to
// -127 exactly, q = round-half-even(x · iscale), d = 1 / iscale in f32, plus 16-element sums.
__kernel void quantize_q8_k(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes_mut out,
                            ulong out_row_bytes) {
  const int b = get_global_id(0), m = get_global_id(1);
  gbytes src = x + x_off + row_offset(m, x_ne, x_nb) + (ulong)b * 1024;
  gbytes_mut dst = out + (ulong)m * out_row_bytes + (ulong)b * 292;
  __global char* qs = (__global char*)(dst + 4);
  __global short* bsums = (__global short*)(dst + 260);
  float amax = 0.0f, max = 0.0f;
  for (int e = 0; e < 256; ++e) {
    const float v = load_f32(src + 4 * e);
    if (fabs(v) > amax) {
      amax = fabs(v);
      max = v;
    }
  }
  const float iscale = amax > 0.0f ? -127.0f / max : 0.0f;
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int i = 16 * j; i < 16 * j + 16; ++i) {
      const int q = round_clamp_i8(rint(iscale * load_f32(src + 4 * i)));
      qs[i] = (char)q;
      sum += q;
    }
    bsums[j] = (short)sum;
  }
  store_f32(amax > 0.0f ? 1.0f / iscale : 0.0f, dst);
}

// Plain activations (one work-item per element): copied (f32) or rounded to nearest even.
#define DEFINE_CONVERT(NAME, BYTES, STORE)                                                    \
  __kernel void convert_##NAME(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes_mut out, \
                               ulong out_row_bytes) {                                        \
    const int e = get_global_id(0), m = get_global_id(1);                                     \
    const float v = load_f32(x + x_off + row_offset(m, x_ne, x_nb) + (ulong)e * 4);           \
    STORE(v, out + (ulong)m * out_row_bytes + (ulong)e * BYTES);                              \
  }
inline void store_bf16(float v, gbytes_mut p) { *(__global ushort*)p = bf16_bits(v); }
DEFINE_CONVERT(f32, 4, store_f32)
DEFINE_CONVERT(f16, 2, store_half)
DEFINE_CONVERT(bf16, 2, store_bf16)

// ---- block dot products: weight block w against activation block x ----

inline float dot_F32(gbytes w, gbytes x) { return load_f32(w) * load_f32(x); }
inline float dot_F16(gbytes w, gbytes x) { return load_half(w) * load_half(x); }
inline float dot_BF16(gbytes w, gbytes x) { return load_bf16(w) * load_bf16(x); }

// Symmetric legacy types against Q8_0.
#define DEFINE_DOT_Q8_0(T)                                                 \
  inline float dot_##T(gbytes w, gbytes x) {                               \
    __global const char* xq = (__global const char*)(x + 2);              \
    int sum = 0;                                                           \
    for (int e = 0; e < 32; ++e) sum += T##_q(w, e) * xq[e];               \
    return T##_d(w) * load_half(x) * (float)sum;                           \
  }
// Offset legacy types against Q8_1, whose s = d·Σq meets the weight's offset m.
#define DEFINE_DOT_Q8_1(T)                                                 \
  inline float dot_##T(gbytes w, gbytes x) {                               \
    __global const char* xq = (__global const char*)(x + 4);              \
    int sum = 0;                                                           \
    for (int e = 0; e < 32; ++e) sum += T##_q(w, e) * xq[e];               \
    return T##_d(w) * load_half(x) * (float)sum + T##_m(w) * load_half(x + 2); \
  }
// K-quants against Q8_K: integer sums per sub-block weighted by the integer scales, and the mins
// against the activation's sub-block sums.
#define DEFINE_DOT_Q8_K(T)                                                      \
  inline float dot_##T(gbytes w, gbytes x) {                                    \
    __global const char* xq = (__global const char*)(x + 4);                   \
    int scaled = 0, mins = 0;                                                   \
    for (int j = 0; j < 256 / T##_SUB; ++j) {                                   \
      int qsum = 0, xsum = 0;                                                   \
      for (int e = j * T##_SUB; e < (j + 1) * T##_SUB; ++e) {                   \
        const int xv = xq[e];                                                   \
        qsum += T##_q(w, e) * xv;                                               \
        xsum += xv;                                                             \
      }                                                                         \
      scaled += T##_scale(w, j) * qsum;                                         \
      mins += T##_min(w, j) * xsum;                                             \
    }                                                                           \
    const float xd = load_f32(x);                                               \
    return xd * T##_d(w) * (float)scaled - xd * T##_dmin(w) * (float)mins;      \
  }

DEFINE_DOT_Q8_0(Q4_0)
DEFINE_DOT_Q8_0(Q5_0)
DEFINE_DOT_Q8_0(Q8_0)
DEFINE_DOT_Q8_1(Q4_1)
DEFINE_DOT_Q8_1(Q5_1)
DEFINE_DOT_Q8_K(Q2_K)
DEFINE_DOT_Q8_K(Q3_K)
DEFINE_DOT_Q8_K(Q4_K)
DEFINE_DOT_Q8_K(Q5_K)
DEFINE_DOT_Q8_K(Q6_K)

// out[n, m] = Σ_b dot(w row n block b, x row m block b). One work-group (power-of-two size, with
// `scratch` one float per work-item) per (n, m); work-items stride over the row's blocks.
#define DEFINE_MATMUL(T, W_BYTES, X_BYTES)                                                       \
  __kernel void matmul_##T(gbytes w, ulong w_off, ulong w_nb1, gbytes x, ulong x_row_bytes,      \
                           gbytes_mut out, ulong out_off, int4 out_ne, ulong4 out_nb,            \
                           int blocks, __local float* scratch) {                                 \
    const int n = get_group_id(0), m = get_group_id(1);                                          \
    gbytes w_row = w + w_off + (ulong)n * w_nb1;                                                 \
    gbytes x_row = x + (ulong)m * x_row_bytes;                                                   \
    float acc = 0.0f;                                                                            \
    for (int b = get_local_id(0); b < blocks; b += get_local_size(0)) {                          \
      acc += dot_##T(w_row + (ulong)b * W_BYTES, x_row + (ulong)b * X_BYTES);                    \
    }                                                                                            \
    acc = group_sum(acc, scratch);                                                               \
    if (get_local_id(0) == 0) {                                                                  \
      store_f32(acc, out + out_off + row_offset(m, out_ne, out_nb) + (ulong)n * 4);              \
    }                                                                                            \
  }

DEFINE_MATMUL(F32, 4, 4)
DEFINE_MATMUL(F16, 2, 2)
DEFINE_MATMUL(BF16, 2, 2)
DEFINE_MATMUL(Q4_0, Q4_0_BYTES, 34)
DEFINE_MATMUL(Q5_0, Q5_0_BYTES, 34)
DEFINE_MATMUL(Q8_0, Q8_0_BYTES, 34)
DEFINE_MATMUL(Q4_1, Q4_1_BYTES, 36)
DEFINE_MATMUL(Q5_1, Q5_1_BYTES, 36)
DEFINE_MATMUL(Q2_K, Q2_K_BYTES, 292)
DEFINE_MATMUL(Q3_K, Q3_K_BYTES, 292)
DEFINE_MATMUL(Q4_K, Q4_K_BYTES, 292)
DEFINE_MATMUL(Q5_K, Q5_K_BYTES, 292)
DEFINE_MATMUL(Q6_K, Q6_K_BYTES, 292)

// ---- GET_ROWS: out[e, t] = table[e, ids[t]] as f32 ----

inline float value_F32(gbytes b, int e) { return load_f32(b); }
inline float value_F16(gbytes b, int e) { return load_half(b); }
inline float value_BF16(gbytes b, int e) { return load_bf16(b); }
#define DEFINE_VALUE_LEGACY(T) \
  inline float value_##T(gbytes b, int e) { return T##_d(b) * (float)T##_q(b, e) + T##_m(b); }
#define DEFINE_VALUE_K(T)                                                  \
  inline float value_##T(gbytes b, int e) {                                \
    const int j = e / T##_SUB;                                             \
    return T##_d(b) * (float)T##_scale(b, j) * (float)T##_q(b, e) -        \
           T##_dmin(b) * (float)T##_min(b, j);                             \
  }
DEFINE_VALUE_LEGACY(Q4_0)
DEFINE_VALUE_LEGACY(Q4_1)
DEFINE_VALUE_LEGACY(Q5_0)
DEFINE_VALUE_LEGACY(Q5_1)
DEFINE_VALUE_LEGACY(Q8_0)
DEFINE_VALUE_K(Q2_K)
DEFINE_VALUE_K(Q3_K)
DEFINE_VALUE_K(Q4_K)
DEFINE_VALUE_K(Q5_K)
DEFINE_VALUE_K(Q6_K)

// One work-item per output element. An id outside the table yields NaN, so that a bad id shows up
// in any NaN check instead of reading out of bounds.
#define DEFINE_GET_ROWS(T, BLOCK, BYTES)                                                       \
  __kernel void get_rows_##T(gbytes table, ulong table_off, ulong table_nb1, int vocab,         \
                             gbytes ids, ulong ids_off, ulong ids_nb0, gbytes_mut out,          \
                             ulong out_off, ulong out_nb1) {                                    \
    const int e = get_global_id(0), t = get_global_id(1);                                       \
    const int id = load_i32(ids + ids_off + (ulong)t * ids_nb0);                                \
    float v = NAN;                                                                              \
    if (id >= 0 && id < vocab) {                                                                \
      v = value_##T(table + table_off + (ulong)id * table_nb1 + (ulong)(e / BLOCK) * BYTES,      \
                    e % BLOCK);                                                                 \
    }                                                                                           \
    store_f32(v, out + out_off + (ulong)t * out_nb1 + (ulong)e * 4);                            \
  }

DEFINE_GET_ROWS(F32, 1, 4)
DEFINE_GET_ROWS(F16, 1, 2)
DEFINE_GET_ROWS(BF16, 1, 2)
DEFINE_GET_ROWS(Q4_0, 32, Q4_0_BYTES)
DEFINE_GET_ROWS(Q4_1, 32, Q4_1_BYTES)
DEFINE_GET_ROWS(Q5_0, 32, Q5_0_BYTES)
DEFINE_GET_ROWS(Q5_1, 32, Q5_1_BYTES)
DEFINE_GET_ROWS(Q8_0, 32, Q8_0_BYTES)
DEFINE_GET_ROWS(Q2_K, 256, Q2_K_BYTES)
DEFINE_GET_ROWS(Q3_K, 256, Q3_K_BYTES)
DEFINE_GET_ROWS(Q4_K, 256, Q4_K_BYTES)
DEFINE_GET_ROWS(Q5_K, 256, Q5_K_BYTES)
DEFINE_GET_ROWS(Q6_K, 256, Q6_K_BYTES)
