// ATTENTION over the KV cache (semantics: core/graph.h).
//
// One work-group (power-of-two size L) per (query head, token). Work-item l visits cells l, l + L,
// ... twice. The first pass finds its cells' max score and exp-sum (online); the work-group
// combines them into the softmax's max and sum. The second pass recomputes each score and adds
// weight · V with the normalized weight (rounded to f16 for an f16 V cache, as the op prescribes;
// the rounding needs the final sum, hence two passes); the work-group then adds up the partial
// sums, ATTN_CHUNK dims at a time through local memory. For an f16 K cache the query is rounded to
// f16 first. Head size is at most ATTN_MAX_DIM.
#define ATTN_MAX_DIM 256
#define ATTN_CHUNK 64

inline float cache_at(gbytes p, int i, int f16) {
  return f16 ? load_half(p + (ulong)i * 2) : load_f32(p + (ulong)i * 4);
}

inline float attention_score(const float* qv, gbytes k_row, int k_f16, int head_dim, float scale,
                             float softcap) {
  float s = 0.0f;
  for (int i = 0; i < head_dim; ++i) s += qv[i] * cache_at(k_row, i, k_f16);
  s *= scale;
  if (softcap > 0.0f) s = softcap * tanh(s / softcap);
  return s;
}

__kernel void attention(gbytes q, ulong q_off, ulong4 q_nb, gbytes kc, ulong k_off, ulong4 k_nb,
                        int k_f16, gbytes vc, ulong v_off, ulong4 v_nb, int v_f16, gbytes tokens,
                        ulong tok_off, ulong4 tok_nb, gbytes cells, ulong cell_off,
                        ulong4 cell_nb, int head_dim, int group, int n_cells, float scale,
                        float softcap, int window, gbytes_mut out, ulong out_off, ulong4 out_nb,
                        __local float* part_max, __local float* part_sum,
                        __local float* part_acc) {
  const int h = get_group_id(0), t = get_group_id(1);
  const int lid = get_local_id(0), n_items = get_local_size(0);
  const int kv_head = h / group;
  gbytes token = tokens + tok_off + (ulong)t * tok_nb.y;
  const int token_pos = load_i32(token), token_seq = load_i32(token + tok_nb.x);

  float qv[ATTN_MAX_DIM], acc[ATTN_MAX_DIM];
  gbytes q_row = q + q_off + (ulong)h * q_nb.y + (ulong)t * q_nb.z;
  for (int i = 0; i < head_dim; ++i) {
    const float x = load_f32(q_row + (ulong)i * 4);
    qv[i] = k_f16 ? round_half(x) : x;
    acc[i] = 0.0f;
  }
  gbytes k_head = kc + k_off + (ulong)kv_head * k_nb.y;
  gbytes v_head = vc + v_off + (ulong)kv_head * v_nb.y;

  float max_score = -INFINITY, sum = 0.0f;
  for (int c = lid; c < n_cells; c += n_items) {
    gbytes cell = cells + cell_off + (ulong)c * cell_nb.y;
    const int cell_pos = load_i32(cell), cell_seq = load_i32(cell + cell_nb.x);
    if (cell_seq < 0 || cell_seq != token_seq || cell_pos > token_pos) continue;
    if (window != 0 && token_pos - cell_pos >= window) continue;
    const float s =
        attention_score(qv, k_head + (ulong)c * k_nb.z, k_f16, head_dim, scale, softcap);
    if (s > max_score) {
      sum *= exp(max_score - s);  // 0 for the first visible cell
      max_score = s;
    }
    sum += exp(s - max_score);
  }

  part_max[lid] = max_score;
  barrier(CLK_LOCAL_MEM_FENCE);
  float group_max = -INFINITY;
  for (int j = 0; j < n_items; ++j) group_max = fmax(group_max, part_max[j]);
  part_sum[lid] = max_score == -INFINITY ? 0.0f : sum * exp(max_score - group_max);
  barrier(CLK_LOCAL_MEM_FENCE);
  float total = 0.0f;
  for (int j = 0; j < n_items; ++j) total += part_sum[j];

  // A token that sees no cell gets zeros, as in the reference (this work-item then visits none).
  const float inv_total = group_max == -INFINITY ? 0.0f : 1.0f / total;
  if (max_score != -INFINITY) {
    for (int c = lid; c < n_cells; c += n_items) {
      gbytes cell = cells + cell_off + (ulong)c * cell_nb.y;
      const int cell_pos = load_i32(cell), cell_seq = load_i32(cell + cell_nb.x);
      if (cell_seq < 0 || cell_seq != token_seq || cell_pos > token_pos) continue;
      if (window != 0 && token_pos - cell_pos >= window) continue;
      const float s =
          attention_score(qv, k_head + (ulong)c * k_nb.z, k_f16, head_dim, scale, softcap);
      float p = exp(s - group_max) * inv_total;
      if (v_f16) p = round_half(p);
      gbytes v_row = v_head + (ulong)c * v_nb.z;
      for (int i = 0; i < head_dim; ++i) acc[i] += p * cache_at(v_row, i, v_f16);
    }
  }

  gbytes_mut out_row = out + out_off + (ulong)t * out_nb.y + (ulong)h * head_dim * 4;
  for (int base = 0; base < head_dim; base += ATTN_CHUNK) {
    const int width = min(ATTN_CHUNK, head_dim - base);
    for (int i = 0; i < width; ++i) part_acc[lid * ATTN_CHUNK + i] = acc[base + i];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int i = lid; i < width; i += n_items) {
      float v = 0.0f;
      for (int j = 0; j < n_items; ++j) v += part_acc[j * ATTN_CHUNK + i];
      store_f32(v, out_row + (ulong)(base + i) * 4);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
}
