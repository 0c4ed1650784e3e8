// Row-wise ops: ADD, MUL, SCALE, GLU, RMS_NORM, ROPE, STORE_KV. Semantics: core/graph.h.

// ADD (op 0) and MUL (op 1): one work-item per element; b is one broadcast row or a's row count.
__kernel void binary(int op, gbytes a, ulong a_off, int4 a_ne, ulong4 a_nb, gbytes b, ulong b_off,
                     int4 b_ne, ulong4 b_nb, int b_broadcast, gbytes_mut out, ulong out_off,
                     int4 out_ne, ulong4 out_nb) {
  const int e = get_global_id(0), r = get_global_id(1);
  const float x = load_f32(a + a_off + row_offset(r, a_ne, a_nb) + (ulong)e * 4);
  const ulong b_row = b_broadcast ? 0 : row_offset(r, b_ne, b_nb);
  const float y = load_f32(b + b_off + b_row + (ulong)e * 4);
  store_f32(op == 0 ? x + y : x * y, out + out_off + row_offset(r, out_ne, out_nb) + (ulong)e * 4);
}

__kernel void scale(gbytes a, ulong a_off, int4 a_ne, ulong4 a_nb, float s, gbytes_mut out,
                    ulong out_off, int4 out_ne, ulong4 out_nb) {
  const int e = get_global_id(0), r = get_global_id(1);
  const float x = load_f32(a + a_off + row_offset(r, a_ne, a_nb) + (ulong)e * 4);
  store_f32(x * s, out + out_off + row_offset(r, out_ne, out_nb) + (ulong)e * 4);
}

// out = act(gate) · up with act silu (0) or gelu_tanh (1). gelu_tanh is the GGUF engines'
// definition (core/gelu.h): 0 for x <= -10, x for x >= 10, else gelu_table (f16 results, indexed
// by the f16 bits of x).
__kernel void glu(int act, gbytes g, ulong g_off, int4 g_ne, ulong4 g_nb, gbytes u, ulong u_off,
                  int4 u_ne, ulong4 u_nb, gbytes_mut out, ulong out_off, int4 out_ne,
                  ulong4 out_nb, __global const half* gelu_table) {
  const int e = get_global_id(0), r = get_global_id(1);
  const float v = load_f32(g + g_off + row_offset(r, g_ne, g_nb) + (ulong)e * 4);
  const float up = load_f32(u + u_off + row_offset(r, u_ne, u_nb) + (ulong)e * 4);
  float a;
  if (act == 0) {
    a = v / (1.0f + exp(-v));
  } else if (v <= -10.0f) {
    a = 0.0f;
  } else if (v >= 10.0f) {
    a = v;
  } else {
    a = vload_half(half_bits(v), gelu_table);
  }
  store_f32(a * up, out + out_off + row_offset(r, out_ne, out_nb) + (ulong)e * 4);
}

// One work-group (power-of-two size) per row; the weight row is used when has_weight is set.
__kernel void rms_norm(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes w, ulong w_off,
                       int has_weight, float eps, gbytes_mut out, ulong out_off, int4 out_ne,
                       ulong4 out_nb, __local float* scratch) {
  const int r = get_group_id(0), n = x_ne.x;
  gbytes src = x + x_off + row_offset(r, x_ne, x_nb);
  gbytes_mut dst = out + out_off + row_offset(r, out_ne, out_nb);
  float sum_sq = 0.0f;
  for (int i = get_local_id(0); i < n; i += get_local_size(0)) {
    const float v = load_f32(src + (ulong)i * 4);
    sum_sq += v * v;
  }
  const float mean = group_sum(sum_sq, scratch) / (float)n;
  const float inv_rms = 1.0f / sqrt(mean + eps);
  for (int i = get_local_id(0); i < n; i += get_local_size(0)) {
    const float weight = has_weight ? load_f32(w + w_off + (ulong)i * 4) : 1.0f;
    store_f32(load_f32(src + (ulong)i * 4) * inv_rms * weight, dst + (ulong)i * 4);
  }
}

// ggml's rope_ext. One work-item per output element (dim j, head, token · ne[3]). theta is formed
// as the reference does (the position times theta_scale once per pair, in f32); the YaRN
// correction range and magnitude scale come from the host.
__kernel void rope(gbytes x, ulong x_off, int4 x_ne, ulong4 x_nb, gbytes pos, ulong pos_off,
                   ulong pos_nb0, gbytes factors, ulong factors_off, int has_factors,
                   gbytes_mut out, ulong out_off, ulong4 out_nb, int n_rot, int neox,
                   float theta_scale, float freq_scale, float ext_factor, float corr_low,
                   float corr_high, float mscale) {
  const int j = get_global_id(0), h = get_global_id(1), z = get_global_id(2);
  const int t = z % x_ne.z, i3 = z / x_ne.z;
  gbytes src = x + x_off + (ulong)h * x_nb.y + (ulong)t * x_nb.z + (ulong)i3 * x_nb.w;
  gbytes_mut dst = out + out_off + (ulong)h * out_nb.y + (ulong)t * out_nb.z + (ulong)i3 * out_nb.w;
  if (j >= n_rot) {
    store_f32(load_f32(src + (ulong)j * 4), dst + (ulong)j * 4);
    return;
  }
  const int half_rot = n_rot / 2;
  const int i = neox ? j % half_rot : j / 2;  // pair index
  const int a = neox ? i : 2 * i;
  const int b = neox ? i + half_rot : 2 * i + 1;

  float theta = (float)load_i32(pos + pos_off + (ulong)t * pos_nb0);
  for (int k = 0; k < i; ++k) theta *= theta_scale;
  const float factor = has_factors ? load_f32(factors + factors_off + (ulong)i * 4) : 1.0f;
  const float extrap = theta / factor;
  const float interp = freq_scale * extrap;
  float angle = interp;
  if (ext_factor != 0.0f) {
    const float y = ((float)i - corr_low) / fmax(0.001f, corr_high - corr_low);
    const float ramp = 1.0f - fmin(1.0f, fmax(0.0f, y));
    const float mix = ramp * ext_factor;
    angle = interp * (1 - mix) + extrap * mix;
  }
  const float c = cos(angle) * mscale, s = sin(angle) * mscale;
  const float x0 = load_f32(src + (ulong)a * 4), x1 = load_f32(src + (ulong)b * 4);
  store_f32(j == a ? x0 * c - x1 * s : x0 * s + x1 * c, dst + (ulong)j * 4);
}

// cache[:, :, cells[t]] <- rows[:, t] (f32 or f16 cache). One work-item per (element of a cell,
// token); a cell index outside the cache is skipped rather than written out of bounds.
__kernel void store_kv(gbytes rows, ulong rows_off, gbytes cells, ulong cells_off,
                       ulong cells_nb0, gbytes_mut cache, ulong cache_off, ulong4 cache_nb,
                       int head_dim, int n_cells, int f16) {
  const int i = get_global_id(0), t = get_global_id(1);
  const int per_cell = get_global_size(0);
  const int cell = load_i32(cells + cells_off + (ulong)t * cells_nb0);
  if (cell < 0 || cell >= n_cells) return;
  const float v = load_f32(rows + rows_off + ((ulong)t * per_cell + i) * 4);
  gbytes_mut dst = cache + cache_off + (ulong)cell * cache_nb.z + (ulong)(i / head_dim) * cache_nb.y +
                   (ulong)(i % head_dim) * cache_nb.x;
  if (f16) {
    store_half(v, dst);
  } else {
    store_f32(v, dst);
  }
}
