// GGUF block decoders (layouts in core/quant_blocks.h). For each weight type T:
//   T_q(block, e)        the integer quant of element e, offset already removed
//   T_d(block)           the block (super-block) factor
// legacy 32-element types also have T_m(block), the additive offset (0 for symmetric types);
// K-quants have T_scale(block, j), T_min(block, j) for sub-block j (T_SUB elements) and
// T_dmin(block). A value decodes as d·q + m (legacy) or d·scale·q − dmin·min (K-quants).

inline int nibble(gbytes qs, int e) { return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4; }
inline int high_bit(gbytes qh, int e) { return (qh[e / 8] >> (e % 8)) & 1; }

// ---- legacy 32-element blocks ----
#define Q4_0_BYTES 18
inline float Q4_0_d(gbytes b) { return load_half(b); }
inline float Q4_0_m(gbytes b) { return 0.0f; }
inline int Q4_0_q(gbytes b, int e) { return nibble(b + 2, e) - 8; }

#define Q4_1_BYTES 20
inline float Q4_1_d(gbytes b) { return load_half(b); }
inline float Q4_1_m(gbytes b) { return load_half(b + 2); }
inline int Q4_1_q(gbytes b, int e) { return nibble(b + 4, e); }

#define Q5_0_BYTES 22
inline float Q5_0_d(gbytes b) { return load_half(b); }
inline float Q5_0_m(gbytes b) { return 0.0f; }
inline int Q5_0_q(gbytes b, int e) { return (nibble(b + 6, e) | high_bit(b + 2, e) << 4) - 16; }

#define Q5_1_BYTES 24
inline float Q5_1_d(gbytes b) { return load_half(b); }
inline float Q5_1_m(gbytes b) { return load_half(b + 2); }
inline int Q5_1_q(gbytes b, int e) { return nibble(b + 8, e) | high_bit(b + 4, e) << 4; }

#define Q8_0_BYTES 34
inline float Q8_0_d(gbytes b) { return load_half(b); }
inline float Q8_0_m(gbytes b) { return 0.0f; }
inline int Q8_0_q(gbytes b, int e) { return ((__global const char*)(b + 2))[e]; }

// ---- K-quants: 256-element super-blocks ----
// Element e = 128·h + 32·k + l for the 2-bit-plane layouts (Q2_K, Q3_K, Q6_K).
#define SPLIT_HKL(e) const int h = (e) / 128, k = ((e) % 128) / 32, l = (e) % 32

#define Q2_K_BYTES 84
#define Q2_K_SUB 16
inline float Q2_K_d(gbytes b) { return load_half(b + 80); }
inline float Q2_K_dmin(gbytes b) { return load_half(b + 82); }
inline int Q2_K_scale(gbytes b, int j) { return b[j] & 15; }
inline int Q2_K_min(gbytes b, int j) { return b[j] >> 4; }
inline int Q2_K_q(gbytes b, int e) {
  SPLIT_HKL(e);
  return (b[16 + 32 * h + l] >> (2 * k)) & 3;
}

#define Q3_K_BYTES 110
#define Q3_K_SUB 16
inline float Q3_K_d(gbytes b) { return load_half(b + 108); }
inline float Q3_K_dmin(gbytes b) { return 0.0f; }
inline int Q3_K_scale(gbytes b, int j) {
  gbytes s = b + 96;
  const int low = (s[j % 8] >> (4 * (j / 8))) & 15;
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | high << 4) - 32;
}
inline int Q3_K_min(gbytes b, int j) { return 0; }
inline int Q3_K_q(gbytes b, int e) {
  SPLIT_HKL(e);
  const int low = (b[32 + 32 * h + l] >> (2 * k)) & 3;
  const int high = (b[l] >> (4 * h + k)) & 1;
  return (low | high << 2) - 4;
}

// The 6-bit scale (want_min = 0) or min (want_min = 1) of sub-block j of Q4_K / Q5_K.
inline int scale_min_k4(gbytes s, int j, int want_min) {
  if (j < 4) return s[j + 4 * want_min] & 63;
  return want_min ? (s[j + 4] >> 4) | ((s[j] >> 6) << 4) : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
}

#define Q4_K_BYTES 144
#define Q4_K_SUB 32
inline float Q4_K_d(gbytes b) { return load_half(b); }
inline float Q4_K_dmin(gbytes b) { return load_half(b + 2); }
inline int Q4_K_scale(gbytes b, int j) { return scale_min_k4(b + 4, j, 0); }
inline int Q4_K_min(gbytes b, int j) { return scale_min_k4(b + 4, j, 1); }
inline int Q4_K_q(gbytes b, int e) {
  return (b[16 + 32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 15;
}

#define Q5_K_BYTES 176
#define Q5_K_SUB 32
inline float Q5_K_d(gbytes b) { return load_half(b); }
inline float Q5_K_dmin(gbytes b) { return load_half(b + 2); }
inline int Q5_K_scale(gbytes b, int j) { return scale_min_k4(b + 4, j, 0); }
inline int Q5_K_min(gbytes b, int j) { return scale_min_k4(b + 4, j, 1); }
inline int Q5_K_q(gbytes b, int e) {
  const int low = (b[48 + 32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 15;
  const int high = (b[16 + e % 32] >> (e / 32)) & 1;
  return low | high << 4;
}

#define Q6_K_BYTES 210
#define Q6_K_SUB 16
inline float Q6_K_d(gbytes b) { return load_half(b + 208); }
inline float Q6_K_dmin(gbytes b) { return 0.0f; }
inline int Q6_K_scale(gbytes b, int j) { return ((__global const char*)(b + 192))[j]; }
inline int Q6_K_min(gbytes b, int j) { return 0; }
inline int Q6_K_q(gbytes b, int e) {
  SPLIT_HKL(e);
  const int low = (b[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 15;
  const int high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
  return (low | high << 4) - 32;
}
