// kbb15 variants of the backward's fixed passes (D pre-pass, converting copy), for the
// microbenchmark ddbench.cu. Included after common.cuh and util.cu.

// D pre-pass, tiled: the CTA's 256 threads serve G = 256 / L pairs per pass (L lanes a pair),
// U passes per tile of G * U consecutive pairs, tiles handed to CTAs round robin (CTA b: tiles
// b, b + grid, ...), so at any time the grid reads one window of the dO / O rows instead of one
// stream per warp. A tile inside one work whose dO, O (and dQ) rows are back to back (stride =
// heads * head_dim, 16-bit dO / O at 16-byte aligned addresses) takes the fast path: one base
// address, U 16-byte loads of dO and of O per lane in flight; any other pair goes through
// dd_pair (one pair, a lane group's partial sum).
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
__device__ __forceinline__ bool dd_flat(const WorkDesc& w, u32 head_dim, u32 elem_dtype) {
  const u32 row = w.q_heads * head_dim;
  return elem_dtype != DT_F32 && w.o_dtype != DT_F32 && ((w.dout | w.o) & 15) == 0 && w.do_stride == row &&
         w.o_stride == row && (!(w.flags & WORK_DQ_ZERO) || (w.dq_stride == row && (w.dq & 15) == 0));
}
template <int U, int MINB>
__global__ void __launch_bounds__(256, MINB) dd_tile(const WorkDesc* works, u32 n_works, float* dd, u32 head_dim,
                                                     u32 elem_dtype, u32* cnt, u32 n_cnt) {
  for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n_cnt; i += gridDim.x * blockDim.x) cnt[i] = 0;
  if (n_works == 0) return;
  const WorkDesc& last = works[n_works - 1];
  const u64 total = (u64)last.dd_off + (u64)last.n_rows * last.q_heads;
  u32 L = 32;
  if ((head_dim & 7) == 0) {
    L = 1;
    while (L < 32 && L * 8 < head_dim) L <<= 1;
  }
  const u32 G = blockDim.x / L, grp = threadIdx.x / L, sub = threadIdx.x & (L - 1);
  const u64 T = (u64)G * U, n_tiles = (total + T - 1) / T;
  u32 lo = 0;
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
    float acc[U];
    if (L < 32 && base >= w.dd_off && base + T <= (u64)w.dd_off + (u64)w.n_rows * w.q_heads &&
        dd_flat(w, head_dim, elem_dtype)) {
      const u64 p0 = (base - w.dd_off + grp) * head_dim;  // element offset of the thread's first pair
      const u64 pstep = (u64)G * head_dim;
      const u32 e = sub * 8;
      uint4 va[U], vb[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        va[u] = vb[u] = make_uint4(0u, 0u, 0u, 0u);
        if (e < head_dim) {
          va[u] = *(const uint4*)((const unsigned short*)w.dout + p0 + u * pstep + e);
          vb[u] = *(const uint4*)((const unsigned short*)w.o + p0 + u * pstep + e);
        }
      }
      if (w.flags & WORK_DQ_ZERO) {
#pragma unroll
        for (int u = 0; u < U; ++u)
          for (u32 x = sub * 4; x < head_dim; x += L * 4)
            *(float4*)((float*)w.dq + p0 + u * pstep + x) = make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
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
      for (int u = 0; u < U; ++u) {
        const u64 gi = base + (u64)u * G + grp;
        acc[u] = gi < total ? dd_pair(works, n_works, lo, gi, sub, L, head_dim, elem_dtype) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 gi = base + (u64)u * G + grp;
      float a = acc[u];
      for (u32 off = L >> 1; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
      if (sub == 0 && gi < total) dd[gi] = a;
    }
  }
}

// Converting copy of flat, 16-byte aligned regions in chunks of 8 elements, U chunks per thread
// in flight (all loads before the stores), chunks interleaved over the grid.
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
template <int U>
__global__ void __launch_bounds__(256) copy8(RegionDesc src, RegionDesc dst) {
  const u64 n = (u64)dst.len * dst.heads * dst.width, n8 = n / 8;
  const u64 step = (u64)gridDim.x * blockDim.x * U;
  for (u64 c0 = (u64)blockIdx.x * blockDim.x * U + threadIdx.x; c0 < n8; c0 += step) {
    float v[U][8];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 c = c0 + (u64)u * blockDim.x;
      if (c < n8) load8_as_f32((const void*)src.ptr, 8 * c, src.dtype, v[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 c = c0 + (u64)u * blockDim.x;
      if (c < n8) store8_from_f32((void*)dst.ptr, 8 * c, dst.dtype, v[u]);
    }
  }
}

// Floors: read two streams (16 B per lane, U in flight) and write one word per CTA.
template <int U>
__global__ void __launch_bounds__(256) read2(const uint4* a, const uint4* b, u64 n16, u32* sink) {
  u32 x = 0;
  const u64 step = (u64)gridDim.x * blockDim.x * U;
  for (u64 c0 = (u64)blockIdx.x * blockDim.x * U + threadIdx.x; c0 < n16; c0 += step) {
    uint4 va[U], vb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 c = c0 + (u64)u * blockDim.x;
      va[u] = vb[u] = make_uint4(0, 0, 0, 0);
      if (c < n16) { va[u] = a[c]; vb[u] = b[c]; }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) x ^= va[u].x ^ va[u].w ^ vb[u].y ^ vb[u].z;
  }
  if (x == 0x12345678u) sink[0] = x;
}
// Read two streams and write a third twice their size (the fused D pass's bytes).
template <int U>
__global__ void __launch_bounds__(256) read2w(const uint4* a, const uint4* b, uint4* z, u64 n16, u32* sink) {
  u32 x = 0;
  const u64 step = (u64)gridDim.x * blockDim.x * U;
  for (u64 c0 = (u64)blockIdx.x * blockDim.x * U + threadIdx.x; c0 < n16; c0 += step) {
    uint4 va[U], vb[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 c = c0 + (u64)u * blockDim.x;
      va[u] = vb[u] = make_uint4(0, 0, 0, 0);
      if (c < n16) { va[u] = a[c]; vb[u] = b[c]; }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 c = c0 + (u64)u * blockDim.x;
      if (c < n16) { z[2 * c] = make_uint4(0, 0, 0, 0); z[2 * c + 1] = make_uint4(0, 0, 0, 0); }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) x ^= va[u].x ^ va[u].w ^ vb[u].y ^ vb[u].z;
  }
  if (x == 0x12345678u) sink[0] = x;
}

// D pre-pass with the tile's dO / O rows moved by cp.async (16 bytes per lane and pass) into
// per-thread shared-memory slots, S stages: S - 1 tiles in flight per CTA without registers.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const u32 s = (u32)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

template <int U, int S, int MINB>
__global__ void __launch_bounds__(256, MINB) dd_async(const WorkDesc* works, u32 n_works, float* dd, u32 head_dim,
                                                      u32 elem_dtype, u32* cnt, u32 n_cnt) {
  extern __shared__ uint4 dd_smem[];  // [S][U][2][256] (dO, O) slots, then u32 meta[S][256]
  u32* meta = (u32*)(dd_smem + S * U * 2 * 256);
  for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n_cnt; i += gridDim.x * blockDim.x) cnt[i] = 0;
  if (n_works == 0) return;
  const WorkDesc& last = works[n_works - 1];
  const u64 total = (u64)last.dd_off + (u64)last.n_rows * last.q_heads;
  u32 L = 32;
  if ((head_dim & 7) == 0) {
    L = 1;
    while (L < 32 && L * 8 < head_dim) L <<= 1;
  }
  const u32 tid = threadIdx.x, G = blockDim.x / L, grp = tid / L, sub = tid & (L - 1), e = sub * 8;
  const u64 T = (u64)G * U, n_tiles = (total + T - 1) / T;
  u32 lo = 0;
  auto issue = [&](u64 tile, int s) {
    u32 m = 0xffffffffu;
    if (tile < n_tiles) {
      const u64 base = tile * T;
      const u64 g0 = base + grp < total ? base + grp : total - 1;
      u32 hi = n_works;
      while (hi - lo > 1) {
        const u32 mid = (lo + hi) >> 1;
        if (works[mid].dd_off <= g0) lo = mid; else hi = mid;
      }
      const WorkDesc& w = works[lo];
      m = lo;
      if (L < 32 && base >= w.dd_off && base + T <= (u64)w.dd_off + (u64)w.n_rows * w.q_heads &&
          dd_flat(w, head_dim, elem_dtype)) {
        m |= 0x80000000u;
        const u64 p0 = (base - w.dd_off + grp) * head_dim, pstep = (u64)G * head_dim;
        if (e < head_dim) {
#pragma unroll
          for (int u = 0; u < U; ++u) {
            cp_async16(&dd_smem[((s * U + u) * 2 + 0) * 256 + tid], (const unsigned short*)w.dout + p0 + u * pstep + e);
            cp_async16(&dd_smem[((s * U + u) * 2 + 1) * 256 + tid], (const unsigned short*)w.o + p0 + u * pstep + e);
          }
        }
      }
    }
    meta[s * 256 + tid] = m;
    cp_async_commit();
  };
  const u64 g = gridDim.x;
#pragma unroll
  for (int s = 0; s < S - 1; ++s) issue(blockIdx.x + s * g, s);
  int s = 0;
  for (u64 tile = blockIdx.x; tile < n_tiles; tile += g) {
    issue(tile + (S - 1) * g, s == 0 ? S - 1 : s - 1);
    cp_async_wait<S - 1>();
    const u32 m = meta[s * 256 + tid];
    const u64 base = tile * T;
    float acc[U];
    if (m & 0x80000000u) {
      const WorkDesc& w = works[m & 0x7fffffffu];
      if (w.flags & WORK_DQ_ZERO) {
        const u64 p0 = (base - w.dd_off + grp) * head_dim, pstep = (u64)G * head_dim;
#pragma unroll
        for (int u = 0; u < U; ++u)
          for (u32 x = sub * 4; x < head_dim; x += L * 4)
            *(float4*)((float*)w.dq + p0 + u * pstep + x) = make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        acc[u] = 0.f;
        if (e >= head_dim) continue;
        const uint4 va = dd_smem[((s * U + u) * 2 + 0) * 256 + tid], vb = dd_smem[((s * U + u) * 2 + 1) * 256 + tid];
        const unsigned short* ha = (const unsigned short*)&va;
        const unsigned short* hb = (const unsigned short*)&vb;
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
      for (int u = 0; u < U; ++u) {
        const u64 gi = base + (u64)u * G + grp;
        acc[u] = gi < total ? dd_pair(works, n_works, m, gi, sub, L, head_dim, elem_dtype) : 0.f;
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 gi = base + (u64)u * G + grp;
      float a = acc[u];
      for (u32 off = L >> 1; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
      if (sub == 0 && gi < total) dd[gi] = a;
    }
    s = s == S - 1 ? 0 : s + 1;
  }
  cp_async_wait<0>();
}
