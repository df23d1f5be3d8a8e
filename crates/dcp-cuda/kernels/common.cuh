// Shared definitions of the DCP kernels: element types, region views, descriptor structs that
// the host builds once per plan (layouts mirrored in src/desc.rs, checked by size asserts there).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

typedef unsigned int u32;
typedef unsigned long long u64;

// Programmatic dependent launch (host: `Gpu::launch`, `DCP_CUDA_PDL`; sm_90 and later). A kernel
// that the host may start before the kernel ahead of it on the stream has completed calls
// pdl_wait() in every thread before it reads or writes memory that earlier work on the stream
// writes or reads, and before it exits (so that its own completion implies its predecessors'),
// and declares that by DCP_PDL_KERNEL(name) (a module symbol the host looks up: kernels without
// it are launched plainly). pdl_launch(): this CTA lets the next such kernel be scheduled (once
// every CTA of the grid has said so or exited; it then waits in its pdl_wait). In a plain launch
// both return at once.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_launch() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }
#define DCP_PDL_KERNEL(name) extern "C" __device__ unsigned dcp_pdl_##name = 1u;
#else
__device__ __forceinline__ void pdl_wait() {}
__device__ __forceinline__ void pdl_launch() {}
#define DCP_PDL_KERNEL(name)
#endif

// DType codes (src/desc.rs DT_*).
#define DT_BF16 0
#define DT_F16 1
#define DT_F32 2

__device__ __forceinline__ float load_as_f32(const void* p, u64 i, u32 dt) {
  if (dt == DT_F32) return ((const float*)p)[i];
  if (dt == DT_BF16) return __bfloat162float(((const __nv_bfloat16*)p)[i]);
  return __half2float(((const __half*)p)[i]);
}

__device__ __forceinline__ void store_from_f32(void* p, u64 i, u32 dt, float v) {
  if (dt == DT_F32) ((float*)p)[i] = v;
  else if (dt == DT_BF16) ((__nv_bfloat16*)p)[i] = __float2bfloat16(v);
  else ((__half*)p)[i] = __float2half(v);
}

// A region of a [tokens][heads][width] buffer: `ptr` points at (tok, head, 0); `stride` is the
// buffer's elements per token (heads_in_buffer * width).
struct RegionDesc {
  u64 ptr;
  u32 stride;
  u32 dtype;
  u32 len;
  u32 heads;
  u32 width;
  u32 pad;
};

// One merge of a batched merge launch: O and LSE outputs, inputs[first .. first + 2n) (O_k,
// LSE_k pairs), and its first row among the launch's rows ((token, head) pairs, back to back).
struct MergeDesc {
  RegionDesc o;
  RegionDesc lse;
  u64 row0;
  u32 first;
  u32 n;
};

// One KV region of a work: keys [key0, key0 + len) of the concatenated coordinates.
// `k` points at K of (token 0 of the region, head 0 of the region); V follows K at +D elements.
// `dk` is the parallel dKV region (backward only).
struct KvSeg {
  u64 k;
  u64 dk;
  u32 key0;
  u32 len;
  u32 stride;
  u32 dstride;
  u32 ddtype;
  u32 pad;
};

// Index of the segment of work `w` holding key `key` (< w.n_keys, kv_count > 0). The segments
// tile [0, n_keys) in order (key0 ascending): binary search for the last one starting at or
// before `key`. A dcp work can read its keys from ~100 segments (one per kv block it holds or
// receives), where a linear scan per key and kv tile made the loads the bottleneck.
__device__ __forceinline__ u32 kv_seg_index(u32 first, u32 count, const KvSeg* segs, u32 key) {
  u32 lo = first, n = count;
  while (n > 1) {
    const u32 half = n >> 1;
    if (segs[lo + half].key0 <= key) lo += half;
    n -= half;
  }
  return lo;
}

// One forward or backward work.
struct WorkDesc {
  u64 q, o, lse, dout, dq;
  u32 q_stride, o_stride, lse_stride, do_stride, dq_stride;
  u32 o_dtype, dq_dtype;
  u32 n_rows, n_keys, q_heads;
  u32 kv_first, kv_count;
  u32 row_off;  // row_ptr[row_off + r] .. row_ptr[row_off + r + 1] index the ranges of row r
  u32 dd_off;   // backward: D = rowsum(dO*O) scratch index of (row 0, head 0)
  u32 flags;   // forward, sm90: bits 1 Q, 2 K/V (one segment), 4 O have TMA maps (tensormaps.rs);
               // backward: 8 = WORK_DQ_ZERO (util.cu, own.rs); sm90: 1 Q, 2 K/V, 16 dO maps
  u32 kv_alt;  // backward, sm90: first of the alternate KV segments (attn_bwd_sm90.cu B90_TASK_DKV_ALT)
};

// One CTA of an attention launch. Forward: query rows [row0, row0 + BR) of head `head` of work
// `work`; kv tiles tiles[tiles_off .. tiles_off + tiles_n] (tile index | 0x80000000 if partial).
// Backward: kv tile `row0` (a tile index) of kv head `head`; the list holds q tiles.
struct TaskDesc {
  u32 work, row0, head, tiles_off, tiles_n, pad;
};

// The dot product of 8 16-bit elements of two 16-byte chunks in fp32 (BF: bf16, else f16), in
// element order: the D pre-pass (util.cu dcp_bwd_dd_flat) and the D CTAs of the clustered
// backward (attn_bwd_cluster_sm90.cu CL_DSM).
template <bool BF>
__device__ __forceinline__ float dd_flat_dot(const uint4& a, const uint4& b) {
  const u32* x = (const u32*)&a;
  const u32* y = (const u32*)&b;
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    float2 fa, fb;
    if (BF) {
      fa = __bfloat1622float2(*(const __nv_bfloat162*)&x[k]);
      fb = __bfloat1622float2(*(const __nv_bfloat162*)&y[k]);
    } else {
      fa = __half22float2(*(const __half2*)&x[k]);
      fb = __half22float2(*(const __half2*)&y[k]);
    }
    s = fmaf(fa.x, fb.x, s);
    s = fmaf(fa.y, fb.y, s);
  }
  return s;
}
