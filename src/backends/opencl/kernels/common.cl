// Shared helpers for every dizuo OpenCL kernel (OpenCL C 1.2, no extensions).
//
// Tensors reach kernels as (buffer, byte offset, ne, nb): ne/nb are the tensor's shape and byte
// strides in ggml order, rows are numbered over ne[1], ne[2], ne[3]. Contraction into FMA is off
// so that quantization and RoPE angles round exactly as the scalar reference does.
#pragma OPENCL FP_CONTRACT OFF

typedef __global const uchar* gbytes;
typedef __global uchar* gbytes_mut;

// Byte offset of row r of a tensor of shape ne and strides nb.
inline ulong row_offset(int r, int4 ne, ulong4 nb) {
  const int i1 = r % ne.y;
  const int i2 = (r / ne.y) % ne.z;
  const int i3 = r / (ne.y * ne.z);
  return (ulong)i1 * nb.y + (ulong)i2 * nb.z + (ulong)i3 * nb.w;
}

inline float load_half(gbytes p) { return vload_half(0, (__global const half*)p); }
inline void store_half(float v, gbytes_mut p) { vstore_half_rte(v, 0, (__global half*)p); }
// f32 -> f16 bits (round to nearest even), and f32 rounded to f16 and back.
inline ushort half_bits(float v) {
  ushort bits;
  vstore_half_rte(v, 0, (__private half*)&bits);
  return bits;
}
inline float round_half(float v) {
  const ushort bits = half_bits(v);
  return vload_half(0, (__private const half*)&bits);
}
inline float load_bf16(gbytes p) { return as_float(((uint)p[0] << 16) | ((uint)p[1] << 24)); }
inline int load_i32(gbytes p) { return *(__global const int*)p; }
inline float load_f32(gbytes p) { return *(__global const float*)p; }
inline void store_f32(float v, gbytes_mut p) { *(__global float*)p = v; }

// f32 -> bf16 bits, round to nearest even; NaN stays NaN (quiet).
inline ushort bf16_bits(float f) {
  const uint bits = as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (ushort)((bits >> 16) | 0x40u);
  return (ushort)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// Sums `value` over the work-group through `scratch` (one float per work-item); the work-group
// size must be a power of two. Every work-item gets the total.
inline float group_sum(float value, __local float* scratch) {
  const int lid = get_local_id(0);
  const int n = get_local_size(0);
  scratch[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = n / 2; stride > 0; stride /= 2) {
    if (lid < stride) scratch[lid] += scratch[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return total;
}
