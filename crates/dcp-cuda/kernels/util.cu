// Elementwise plan instructions: Fill, Copy (with dtype conversion), Sum, Merge (fp32
// log-sum-exp), and the backward pre-pass D = rowsum(dO * O).

// Element index math without 64-bit division (a u64 `/` or `%` by a run-time value is a ~70
// instruction software routine; with four per element it made these memory-bound kernels
// compute-bound: a 131K-token fp32 merge took ~3 ms instead of ~0.4). Contiguous regions (rows
// of `heads * width` elements back to back) index element i at i; others split i in 32 bits
// where it fits.
__device__ __forceinline__ bool region_flat(const RegionDesc& r) { return r.stride == r.heads * r.width; }

// Offset of row th = token * heads + head of region r (its element 0).
__device__ __forceinline__ u64 region_row(const RegionDesc& r, u64 th) {
  if (region_flat(r)) return th * r.width;
  if (th <= 0xffffffffull) {
    const u32 t = (u32)th / r.heads, h = (u32)th - t * r.heads;
    return (u64)t * r.stride + (u64)h * r.width;
  }
  return (th / r.heads) * r.stride + (th % r.heads) * r.width;
}

__device__ __forceinline__ u64 region_index(const RegionDesc& r, u64 i) {
  // i enumerates (token, head, element) of the region in row-major order.
  if (region_flat(r)) return i;
  if (i <= 0xffffffffull) {
    const u32 th = (u32)i / r.width;
    return region_row(r, th) + ((u32)i - th * r.width);
  }
  return region_row(r, i / r.width) + i % r.width;
}

// 16 bytes of `value` in dtype dt.
__device__ __forceinline__ uint4 splat16(float value, u32 dt) {
  u32 b;
  if (dt == DT_F32) b = __float_as_uint(value);
  else if (dt == DT_BF16) {
    const __nv_bfloat16 x = __float2bfloat16(value);
    const u32 h = *(const unsigned short*)&x;
    b = h | (h << 16);
  } else {
    const __half x = __float2half(value);
    const u32 h = *(const unsigned short*)&x;
    b = h | (h << 16);
  }
  return make_uint4(b, b, b, b);
}

__device__ __forceinline__ u32 esize(u32 dt) { return dt == DT_F32 ? 4 : 2; }

// Eight consecutive elements from 16-byte aligned p[i..i + 8) as floats.
__device__ __forceinline__ void load8_as_f32(const void* p, u64 i, u32 dt, float* out) {
  if (dt == DT_F32) {
    const float4* q = (const float4*)((const float*)p + i);
    const float4 x = q[0], y = q[1];
    out[0] = x.x; out[1] = x.y; out[2] = x.z; out[3] = x.w;
    out[4] = y.x; out[5] = y.y; out[6] = y.z; out[7] = y.w;
    return;
  }
  const uint4 v = *(const uint4*)((const unsigned short*)p + i);
  const unsigned short* h = (const unsigned short*)&v;
#pragma unroll
  for (int k = 0; k < 8; ++k)
    out[k] = dt == DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(h[k])) : __half2float(__ushort_as_half(h[k]));
}

// Eight consecutive floats into 16-byte aligned p[i..i + 8) in dtype dt (one 16-byte store for
// 16-bit types, two for fp32).
__device__ __forceinline__ void store8_from_f32(void* p, u64 i, u32 dt, const float* v) {
  if (dt == DT_F32) {
    float4* q = (float4*)((float*)p + i);
    q[0] = make_float4(v[0], v[1], v[2], v[3]);
    q[1] = make_float4(v[4], v[5], v[6], v[7]);
    return;
  }
  uint4 u;
  u32* w = (u32*)&u;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (dt == DT_BF16) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
      w[k] = *(const u32*)&h;
    } else {
      const __half2 h = __floats2half2_rn(v[2 * k], v[2 * k + 1]);
      w[k] = *(const u32*)&h;
    }
  }
  *(uint4*)((unsigned short*)p + i) = u;
}

// Every element of dst set to value by the grid's threads (g: this thread's index, step: the grid's).
__device__ __forceinline__ void fill_region(const RegionDesc& dst, float value, u64 g, u64 step) {
  const u64 n = (u64)dst.len * dst.heads * dst.width;
  if (region_flat(dst) && (dst.ptr & 15) == 0) {
    // 16-byte stores, then the tail.
    const u64 per = 16 / esize(dst.dtype), nv = n / per;
    const uint4 pat = splat16(value, dst.dtype);
    for (u64 i = g; i < nv; i += step) ((uint4*)dst.ptr)[i] = pat;
    for (u64 i = nv * per + g; i < n; i += step) store_from_f32((void*)dst.ptr, i, dst.dtype, value);
    return;
  }
  for (u64 i = g; i < n; i += step) store_from_f32((void*)dst.ptr, region_index(dst, i), dst.dtype, value);
}

DCP_PDL_KERNEL(dcp_fill)
extern "C" __global__ void dcp_fill(RegionDesc dst, float value) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  fill_region(dst, value, blockIdx.x * (u64)blockDim.x + threadIdx.x, (u64)gridDim.x * blockDim.x);
}

// dst = src (with dtype conversion) by the grid's threads.
__device__ __forceinline__ void copy_region(const RegionDesc& src, const RegionDesc& dst) {
  const u64 n = (u64)dst.len * dst.heads * dst.width;
  const u64 g = blockIdx.x * (u64)blockDim.x + threadIdx.x, step = (u64)gridDim.x * blockDim.x;
  if (region_flat(src) && region_flat(dst) && (src.ptr & 15) == 0 && (dst.ptr & 15) == 0) {
    // Chunks of 8 elements (16-byte accesses: an fp32 -> bf16 chunk is two loads and one store),
    // two chunks per thread and step with both loads before the stores, then the tail. Four
    // elements per step with one load in flight (the store may alias the next load) moved the
    // backward's 32K dQ conversion (192 MB) at 3.9 TB/s, 51.8 us; this 50.1 us, at the
    // device-to-device copy's 4.0 TB/s (bench/results/kernels-2026-11-29-kbb15).
    const u64 n8 = n / 8;
    for (u64 c0 = blockIdx.x * 2ull * blockDim.x + threadIdx.x; c0 < n8; c0 += 2 * step) {
      float v[2][8];
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const u64 c = c0 + (u64)u * blockDim.x;
        if (c < n8) load8_as_f32((const void*)src.ptr, 8 * c, src.dtype, v[u]);
      }
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const u64 c = c0 + (u64)u * blockDim.x;
        if (c < n8) store8_from_f32((void*)dst.ptr, 8 * c, dst.dtype, v[u]);
      }
    }
    for (u64 i = 8 * n8 + g; i < n; i += step)
      store_from_f32((void*)dst.ptr, i, dst.dtype, load_as_f32((const void*)src.ptr, i, src.dtype));
    return;
  }
  for (u64 i = g; i < n; i += step) {
    float v = load_as_f32((const void*)src.ptr, region_index(src, i), src.dtype);
    store_from_f32((void*)dst.ptr, region_index(dst, i), dst.dtype, v);
  }
}

DCP_PDL_KERNEL(dcp_copy)
extern "C" __global__ void dcp_copy(RegionDesc src, RegionDesc dst) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  copy_region(src, dst);
}

// Independent copies in one launch (host: `DCP_CUDA_COPY_BATCH`, adjacent copy launches whose
// regions do not overlap): pairs[2 k] copied into pairs[2 k + 1], one after another by the grid.
DCP_PDL_KERNEL(dcp_copy_multi)
extern "C" __global__ void dcp_copy_multi(const RegionDesc* pairs, u32 n) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  for (u32 k = 0; k < n; ++k) copy_region(pairs[2 * k], pairs[2 * k + 1]);
}

// Byte copy between contiguous 16-byte aligned ranges is handled by cuMemcpy on the host side;
// this kernel covers strided regions of equal dtype (pack/unpack for NCCL staging).
DCP_PDL_KERNEL(dcp_copy_raw16)
extern "C" __global__ void dcp_copy_raw16(RegionDesc src, RegionDesc dst) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  // width * esize is a multiple of 16 bytes here (host checks).
  const u32 es = esize(src.dtype);
  const u32 cpr = src.width * es / 16;  // 16-byte chunks per (token, head) row
  const u64 n = (u64)src.len * src.heads * cpr;
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    const u64 th = i <= 0xffffffffull ? (u64)((u32)i / cpr) : i / cpr;
    const u64 c = i - th * cpr;
    const uint4* s = (const uint4*)((const char*)src.ptr + region_row(src, th) * es) + c;
    uint4* d = (uint4*)((char*)dst.ptr + region_row(dst, th) * es) + c;
    *d = *s;
  }
}

// dst = sum of inputs (dst may alias an input: each element is read by the thread that writes it).
DCP_PDL_KERNEL(dcp_sum)
extern "C" __global__ void dcp_sum(RegionDesc dst, const RegionDesc* inputs, u32 n_inputs) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  u64 n = (u64)dst.len * dst.heads * dst.width;
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    float acc = 0.f;
    for (u32 k = 0; k < n_inputs; ++k) {
      const RegionDesc& r = inputs[k];
      acc += load_as_f32((const void*)r.ptr, region_index(r, i), r.dtype);
    }
    store_from_f32((void*)dst.ptr, region_index(dst, i), dst.dtype, acc);
  }
}

// Log-sum-exp merge of one (token, head) row by one warp. inputs[2k] = O_k, inputs[2k+1] = LSE_k:
// every lane reads all LSEs before lane 0 writes the merged LSE (in-place safe); the weights and
// row offsets of the first MERGE_REG inputs stay in registers.
#define MERGE_REG 4
__device__ __forceinline__ void merge_row(const RegionDesc& o, const RegionDesc& lse,
                                          const RegionDesc* inputs, u32 n_inputs, u64 row, u32 lane) {
  const u32 w = o.width;
  float mx = -INFINITY;
  for (u32 k = 0; k < n_inputs; ++k) {
    const RegionDesc& l = inputs[2 * k + 1];
    mx = fmaxf(mx, load_as_f32((const void*)l.ptr, region_row(l, row), l.dtype));
  }
  float sum = 0.f;
  if (mx != -INFINITY) {
    for (u32 k = 0; k < n_inputs; ++k) {
      const RegionDesc& l = inputs[2 * k + 1];
      sum += __expf(load_as_f32((const void*)l.ptr, region_row(l, row), l.dtype) - mx);
    }
  }
  const float out_lse = mx == -INFINITY ? -INFINITY : mx + __logf(sum);
  // Weight (0 for an input with LSE -inf or when no input has a key) and row offset per input.
  float wt[MERGE_REG];
  u64 xb[MERGE_REG];
#pragma unroll
  for (u32 k = 0; k < MERGE_REG; ++k) {
    wt[k] = 0.f;
    xb[k] = 0;
    if (k < n_inputs) {
      const RegionDesc& l = inputs[2 * k + 1];
      const float lk = load_as_f32((const void*)l.ptr, region_row(l, row), l.dtype);
      wt[k] = (mx == -INFINITY || lk == -INFINITY) ? 0.f : __expf(lk - out_lse);
      xb[k] = region_row(inputs[2 * k], row);
    }
  }
  const u64 ob = region_row(o, row);
  for (u32 e = lane; e < w; e += 32) {
    float acc = 0.f;
#pragma unroll
    for (u32 k = 0; k < MERGE_REG; ++k) {
      if (k < n_inputs && wt[k] != 0.f) {
        const RegionDesc& x = inputs[2 * k];
        acc += wt[k] * load_as_f32((const void*)x.ptr, xb[k] + e, x.dtype);
      }
    }
    for (u32 k = MERGE_REG; k < n_inputs; ++k) {
      const RegionDesc& l = inputs[2 * k + 1];
      const float lk = load_as_f32((const void*)l.ptr, region_row(l, row), l.dtype);
      if (mx == -INFINITY || lk == -INFINITY) continue;
      const RegionDesc& x = inputs[2 * k];
      acc += __expf(lk - out_lse) * load_as_f32((const void*)x.ptr, region_row(x, row) + e, x.dtype);
    }
    // Reads of element e of every input happen in this thread before this write.
    store_from_f32((void*)o.ptr, ob + e, o.dtype, acc);
  }
  __syncwarp();
  if (lane == 0) store_from_f32((void*)lse.ptr, region_row(lse, row), lse.dtype, out_lse);
  __syncwarp();
}

// merge_row with the inputs spread over the lanes (at most 32 inputs, fp32 partial O rows of a
// width that is a multiple of 4 at 16-byte aligned rows; returns false, having written nothing,
// for anything else): lane k loads LSE_k, the maximum and the sum of weights are warp
// reductions, and each lane then reads 4 consecutive elements of every input with one 16-byte
// load, all independent. merge_row's loops over the inputs wait for one global load after
// another (LSEs three times over, then the elements): the forward split-K merge of one 32K
// causal-blockwise sequence (2048 rows x 8 pieces) took ~30 us of its 0.31 ms forward.
__device__ __forceinline__ bool merge_row_fast(const RegionDesc& o, const RegionDesc& lse,
                                               const RegionDesc* inputs, u32 n_inputs, u64 row, u32 lane) {
  const u32 w = o.width;
  if (n_inputs > 32 || (w & 3u) != 0) return false;
  bool ok = true;
  float lk = -INFINITY;
  u64 xb = 0;
  if (lane < n_inputs) {
    const RegionDesc& x = inputs[2 * lane];
    const RegionDesc& l = inputs[2 * lane + 1];
    ok = x.dtype == DT_F32 && (x.ptr & 15u) == 0 && (x.stride & 3u) == 0 && (x.width & 3u) == 0;
    lk = load_as_f32((const void*)l.ptr, region_row(l, row), l.dtype);
    xb = region_row(x, row);
  }
  if (!__all_sync(0xffffffffu, ok)) return false;
  float mx = lk;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, d));
  const float wt = (mx == -INFINITY || lk == -INFINITY) ? 0.f : __expf(lk - mx);
  float sum = wt;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, d);
  const float out_lse = mx == -INFINITY ? -INFINITY : mx + __logf(sum);
  // exp(lk - out_lse): 0 for an input with LSE -inf or when no input has a key.
  const float wk = mx == -INFINITY ? 0.f : wt / sum;
  const u64 ob = region_row(o, row);
  for (u32 b = 0; b < w; b += 128) {
    const u32 e0 = b + 4 * lane;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 4
    for (u32 k = 0; k < n_inputs; ++k) {
      const float wkk = __shfl_sync(0xffffffffu, wk, k);
      const u64 xbk = __shfl_sync(0xffffffffu, xb, k);
      if (e0 < w && wkk != 0.f) {
        const float4 v = *(const float4*)((const float*)inputs[2 * k].ptr + xbk + e0);
        acc[0] += wkk * v.x;
        acc[1] += wkk * v.y;
        acc[2] += wkk * v.z;
        acc[3] += wkk * v.w;
      }
    }
    // Reads of elements e0 .. e0 + 3 of every input happen in this thread before these writes.
    if (e0 < w) {
#pragma unroll
      for (int i = 0; i < 4; ++i) store_from_f32((void*)o.ptr, ob + e0 + i, o.dtype, acc[i]);
    }
  }
  __syncwarp();
  if (lane == 0) store_from_f32((void*)lse.ptr, region_row(lse, row), lse.dtype, out_lse);
  __syncwarp();
  return true;
}

// A batch of independent merges (no merge reads or writes what another one writes) in one
// launch: `total_rows` rows over all of them, one warp per row, the row's merge found by binary
// search over `row0`. One launch per run of merges instead of one each: a dcp plan's forward ends
// with one Merge per block, and each launch of ~1024 rows took ~32 us, mostly ramp-up and tail.
DCP_PDL_KERNEL(dcp_merge)
extern "C" __global__ void dcp_merge(const MergeDesc* merges, u32 n_merges, const RegionDesc* inputs,
                                     u32 rows_lo, u32 rows_hi) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  const u32 lane = threadIdx.x & 31;
  const u64 warp = (blockIdx.x * (u64)blockDim.x + threadIdx.x) >> 5;
  const u64 n_warps = ((u64)gridDim.x * blockDim.x) >> 5;
  const u64 total_rows = ((u64)rows_hi << 32) | rows_lo;
  for (u64 g = warp; g < total_rows; g += n_warps) {
    u32 lo = 0, hi = n_merges;
    while (hi - lo > 1) {
      const u32 mid = (lo + hi) >> 1;
      if (merges[mid].row0 <= g) lo = mid; else hi = mid;
    }
    const MergeDesc& m = merges[lo];
    if (!merge_row_fast(m.o, m.lse, inputs + m.first, m.n, g - m.row0, lane))
      merge_row(m.o, m.lse, inputs + m.first, m.n, g - m.row0, lane);
  }
}

// D[work row r, head j] = sum_e dO * O, for every work of one backward launch, in one pass over
// all works' (row, head) pairs (the works' `dd_off` are increasing and contiguous). A pair is
// served by L lanes (a power of two, L * 8 >= head_dim; 32 when head_dim is not a multiple of 8),
// so a CTA of 256 threads serves G = 256 / L pairs per pass (16 at head dim 128); a tile is
// DD_U = 4 passes of G consecutive pairs, and tiles go to the CTAs round robin (CTA b: tiles b,
// b + grid, ...): at any time the grid reads one window of the dO / O rows. A tile inside one
// work with 16-bit dO and O rows at 16-byte aligned addresses (and, if zeroed, 16-byte aligned
// fp32 dQ rows; `dd_vec`) takes a fast path: DD_U 16-byte loads of dO and of O per lane issued
// before the first product, the dQ zero as 16-byte stores; with the rows back to back (stride =
// heads * head_dim) from one base address, else per pair from its row and head. Any other pair
// goes through dd_pair (element by element). The grid: one wave (4 CTAs per SM,
// src/exec.rs `DD_CTAS_PER_SM`) before a chained launch, the elementwise cap otherwise.
// Measured alone (bench/results/kernels-2026-11-29-kbb15, standalone microbenchmark, 1x H200):
// 1000 works of 256 rows (1.05 GB read) 334 -> 290 us (3.1 -> 3.6 TB/s; reading two streams alone
// reaches 4.5; in the backward's op times 351 -> 302 us), one 32K sequence with the dQ zero
// (256 MB) 75.8 -> 72-74 us (the floor of its mixed reads and writes is ~74 us, 3.6 TB/s). The form it replaces gave each warp one
// contiguous chunk of pairs (3 168-16 896 separate streams). Measured and dropped there: the
// tile's rows moved by cp.async into per-thread shared-memory slots (1-3 CTAs per SM, up to 5
// tiles in flight): works1000 450-830 us; the dQ zero as a separate memset / fill before a D
// pass alone: 77-82 us against 72-74 fused. (Earlier forms: one pair per warp and step ran at
// ~15 % of HBM bandwidth; looping over the works with the whole grid cost ~2.8 us per work; a
// binary search per pair made 1000 works latency-bound, 0.72 ms.)
//
// `cnt[0 .. n_cnt)`: the backward launch's dQ arrival counters (attn_bwd_sm90.cu
// `B90_TASK_DQ_CONV`), zeroed here, in the pass that runs before every backward launch anyway.
// A work with WORK_DQ_ZERO in `flags` (src/own.rs, the host dropped the plan's zero fill of its
// fp32 dQ rows) gets each (row, head) of its dQ zeroed by the lanes that read the pair's dO and
// O: one pass over the rows instead of two launches.
#define WORK_DQ_ZERO 8u
__device__ __forceinline__ void dq_zero_pair(const WorkDesc& w, u64 r, u64 j, u32 sub, u32 L, u32 head_dim) {
  if (!(w.flags & WORK_DQ_ZERO)) return;
  float* p = (float*)w.dq + r * w.dq_stride + j * head_dim;
  if ((((u64)p) & 15) == 0 && (head_dim & 3) == 0) {
    for (u32 e = sub * 4; e < head_dim; e += L * 4) *(float4*)(p + e) = make_float4(0.f, 0.f, 0.f, 0.f);
  } else {
    for (u32 e = sub; e < head_dim; e += L) p[e] = 0.f;
  }
}
// One pair gi (work k or a later one) by element: zeroes its dQ if flagged, returns this lane's
// part of the dot product.
__device__ __noinline__ float dd_pair(const WorkDesc* works, u32 n_works, u32 k, u64 gi, u32 sub, u32 L,
                                      u32 head_dim, u32 elem_dtype) {
  while (k + 1 < n_works && works[k + 1].dd_off <= gi) ++k;
  const WorkDesc& w = works[k];
  const u64 i = gi - w.dd_off;
  const u64 r = i <= 0xffffffffull ? (u64)((u32)i / w.q_heads) : i / w.q_heads;
  const u64 j = i - r * w.q_heads;
  const u64 d0 = r * w.do_stride + j * head_dim, o0 = r * w.o_stride + j * head_dim;
  dq_zero_pair(w, r, j, sub, L, head_dim);
  float acc = 0.f;
  for (u32 x = sub; x < head_dim; x += L)
    acc += load_as_f32((const void*)w.dout, d0 + x, elem_dtype) * load_as_f32((const void*)w.o, o0 + x, w.o_dtype);
  return acc;
}
// Whether a work's pairs take dcp_bwd_dd's fast path: 16-bit dO and O with 16-byte aligned
// rows (and, if zeroed, fp32 dQ rows 16-byte aligned).
__device__ __forceinline__ bool dd_vec(const WorkDesc& w, u32 elem_dtype) {
  return elem_dtype != DT_F32 && w.o_dtype != DT_F32 && ((w.dout | w.o) & 15) == 0 && (w.do_stride & 7) == 0 &&
         (w.o_stride & 7) == 0 && (!(w.flags & WORK_DQ_ZERO) || ((w.dq & 15) == 0 && (w.dq_stride & 3) == 0));
}
#define DD_U 4
// Both D passes first zero the launch's dQ arrival counters `cnt[0 .. n_cnt)` and the fills
// they took over, `zeros[0 .. n_zeros)` (host `DCP_CUDA_BWD_DD_ZERO`), over the whole grid.
__device__ __forceinline__ void dd_zero_first(u32* cnt, u32 n_cnt, const RegionDesc* zeros, u32 n_zeros) {
  for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n_cnt; i += gridDim.x * blockDim.x) cnt[i] = 0;
  for (u32 k = 0; k < n_zeros; ++k)
    fill_region(zeros[k], 0.f, blockIdx.x * (u64)blockDim.x + threadIdx.x, (u64)gridDim.x * blockDim.x);
}
DCP_PDL_KERNEL(dcp_bwd_dd)
// zeros[0 .. n_zeros): zero fills the pass took over from the plan (host `DCP_CUDA_BWD_DD_ZERO`:
// the rows of the launch's dK/dV that the kernel adds into), zeroed first.
extern "C" __global__ void __launch_bounds__(256, 4) dcp_bwd_dd(const WorkDesc* works, u32 n_works, float* dd, u32 head_dim,
                                      u32 elem_dtype, u32* cnt, u32 n_cnt, const RegionDesc* zeros, u32 n_zeros) {
  pdl_wait();  // DCP_PDL_KERNEL: everything below may depend on the launches before
  pdl_launch();
  dd_zero_first(cnt, n_cnt, zeros, n_zeros);
  if (n_works == 0) return;
  const WorkDesc& last = works[n_works - 1];
  const u64 total = (u64)last.dd_off + (u64)last.n_rows * last.q_heads;
  u32 L = 32;
  if ((head_dim & 7) == 0) {
    L = 1;
    while (L < 32 && L * 8 < head_dim) L <<= 1;
  }
  const u32 G = blockDim.x / L, grp = threadIdx.x / L, sub = threadIdx.x & (L - 1);
  const u64 T = (u64)G * DD_U, n_tiles = (total + T - 1) / T;
  u32 lo = 0;  // the work of the thread's current pair: only moves forward
  for (u64 tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
    const u64 base = tile * T;
    {
      const u64 g0 = base + grp < total ? base + grp : total - 1;
      u32 hi = n_works;
      while (hi - lo > 1) {
        const u32 mid = (lo + hi) >> 1;
        if (works[mid].dd_off <= g0) lo = mid; else hi = mid;
      }
    }
    const WorkDesc& w = works[lo];
    float acc[DD_U];
    if (L < 32 && base >= w.dd_off && base + T <= (u64)w.dd_off + (u64)w.n_rows * w.q_heads && dd_vec(w, elem_dtype)) {
      const u32 e = sub * 8;
      const bool zero = w.flags & WORK_DQ_ZERO;
      const u32 row = w.q_heads * head_dim;
      uint4 va[DD_U], vb[DD_U];
      if (w.do_stride == row && w.o_stride == row && (!zero || w.dq_stride == row)) {
        // Rows back to back: pair i of the work at element i * head_dim of dO, O and dQ.
        const u64 p0 = (base - w.dd_off + grp) * head_dim, pstep = (u64)G * head_dim;
#pragma unroll
        for (int u = 0; u < DD_U; ++u) {
          va[u] = vb[u] = make_uint4(0u, 0u, 0u, 0u);
          if (e < head_dim) {
            va[u] = *(const uint4*)((const unsigned short*)w.dout + p0 + u * pstep + e);
            vb[u] = *(const uint4*)((const unsigned short*)w.o + p0 + u * pstep + e);
          }
        }
        if (zero) {
#pragma unroll
          for (int u = 0; u < DD_U; ++u)
            for (u32 x = sub * 4; x < head_dim; x += L * 4)
              *(float4*)((float*)w.dq + p0 + u * pstep + x) = make_float4(0.f, 0.f, 0.f, 0.f);
        }
      } else {
        // Strided rows (a work of some of the buffer's heads): each pair's row and head. (This
        // form on back-to-back rows: 1000 works of 256 rows 357 us against 290, the divisions.)
#pragma unroll
        for (int u = 0; u < DD_U; ++u) {
          const u64 i = base - w.dd_off + (u64)u * G + grp;
          const u64 r = i <= 0xffffffffull ? (u64)((u32)i / w.q_heads) : i / w.q_heads;
          const u64 j = i - r * w.q_heads;
          va[u] = vb[u] = make_uint4(0u, 0u, 0u, 0u);
          if (e < head_dim) {
            va[u] = *(const uint4*)((const unsigned short*)w.dout + r * w.do_stride + j * head_dim + e);
            vb[u] = *(const uint4*)((const unsigned short*)w.o + r * w.o_stride + j * head_dim + e);
          }
          if (zero) {
            float* q = (float*)w.dq + r * w.dq_stride + j * head_dim;
            for (u32 x = sub * 4; x < head_dim; x += L * 4) *(float4*)(q + x) = make_float4(0.f, 0.f, 0.f, 0.f);
          }
        }
      }
#pragma unroll
      for (int u = 0; u < DD_U; ++u) {
        const unsigned short* ha = (const unsigned short*)&va[u];
        const unsigned short* hb = (const unsigned short*)&vb[u];
        acc[u] = 0.f;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const float a = elem_dtype == DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(ha[k]))
                                                : __half2float(__ushort_as_half(ha[k]));
          const float b = w.o_dtype == DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(hb[k]))
                                               : __half2float(__ushort_as_half(hb[k]));
          acc[u] += a * b;
        }
      }
    } else {
#pragma unroll
      for (int u = 0; u < DD_U; ++u) {
        const u64 gi = base + (u64)u * G + grp;
        acc[u] = gi < total ? dd_pair(works, n_works, lo, gi, sub, L, head_dim, elem_dtype) : 0.f;
      }
    }
    // Sum over the pair's L lanes (xor offsets below L stay inside the aligned group).
#pragma unroll
    for (int u = 0; u < DD_U; ++u) {
      const u64 gi = base + (u64)u * G + grp;
      float a = acc[u];
      for (u32 off = L >> 1; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
      if (sub == 0 && gi < total) dd[gi] = a;
    }
  }
}

// dcp_bwd_dd_flat (session 43): the D pre-pass of a launch whose works' dO and O rows are one
// flat run each (src/own.rs `dd_flat`): pair i's dO at dout + i * head_dim, its O at o + i *
// head_dim, for i in [0, n_pairs); dO and O of one 16-bit dtype, 16-byte aligned; no dQ rows
// to zero; head_dim a power of two from 8 to 128. No tile needs its work then, and the
// addressing is the plain stream's: with L = head_dim / 8 lanes a pair (16 bytes each), thread t
// of a CTA reads bytes 16 t + 4096 u of its tile's 16 KiB (DD_FLAT_U = 4 passes of 256 / L
// pairs) of each tensor. Tiles go to the CTAs round robin, one wave of 4 CTAs per SM (host
// `DD_FLAT_CTAS_PER_SM`), as in dcp_bwd_dd. Measured on works1000 (bench/results/
// gpu-x1-2026-12-03s43): 305 -> 256 us at D 128, 167 -> 135 us at D 64 against dcp_bwd_dd, the
// backward +3.2 % / +3.6 %. DD_FLAT_MINB 5 (48 registers, 56 bytes of spills) measured 274 /
// 143 us, 6 and 8 slower still: the spills cost more than the extra CTAs bring.
#define DD_FLAT_U 4
#ifndef DD_FLAT_MINB
#define DD_FLAT_MINB 4
#endif
template <bool BF>
__device__ __forceinline__ void dd_flat_run(const char* dout, const char* o, u64 n_pairs, float* dd, u32 L) {
  const u32 G = 256 / L, grp = threadIdx.x / L, sub = threadIdx.x & (L - 1);
  const u64 T = (u64)G * DD_FLAT_U, n_tiles = (n_pairs + T - 1) / T;
  for (u64 tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
    const u64 off = tile * (256u * 16u * DD_FLAT_U) + threadIdx.x * 16u;  // bytes
    const u64 p0 = tile * T + grp;
    uint4 va[DD_FLAT_U], vb[DD_FLAT_U];
#pragma unroll
    for (int u = 0; u < DD_FLAT_U; ++u) {
      va[u] = vb[u] = make_uint4(0u, 0u, 0u, 0u);
      if (p0 + (u64)u * G < n_pairs) {
        va[u] = *(const uint4*)(dout + off + 4096 * u);
        vb[u] = *(const uint4*)(o + off + 4096 * u);
      }
    }
#pragma unroll
    for (int u = 0; u < DD_FLAT_U; ++u) {
      float a = dd_flat_dot<BF>(va[u], vb[u]);
#pragma unroll
      for (u32 s = 8; s > 0; s >>= 1)
        if (s < L) a += __shfl_xor_sync(0xffffffffu, a, s);
      const u64 p = p0 + (u64)u * G;
      if (sub == 0 && p < n_pairs) dd[p] = a;
    }
  }
}
DCP_PDL_KERNEL(dcp_bwd_dd_flat)
extern "C" __global__ void __launch_bounds__(256, DD_FLAT_MINB)
    dcp_bwd_dd_flat(u64 dout, u64 o, u64 n_pairs, float* dd, u32 head_dim, u32 elem_dtype, u32* cnt, u32 n_cnt,
                    const RegionDesc* zeros, u32 n_zeros) {
  pdl_wait();
  pdl_launch();
  dd_zero_first(cnt, n_cnt, zeros, n_zeros);
  // The host's conditions (own.rs `dd_flat`); anything else is a bug there.
  if (blockDim.x != 256 || head_dim < 8 || head_dim > 128 || (head_dim & (head_dim - 1)) || elem_dtype == DT_F32)
    __trap();
  if (elem_dtype == DT_BF16)
    dd_flat_run<true>((const char*)dout, (const char*)o, n_pairs, dd, head_dim / 8);
  else
    dd_flat_run<false>((const char*)dout, (const char*)o, n_pairs, dd, head_dim / 8);
}
