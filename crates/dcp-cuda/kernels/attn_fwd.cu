// Blockwise attention forward over a work list (FlashAttention-2 style).
//
// One CTA = one task: BR = 16 * FWD_WARPS query rows of one head of one work, against the kv
// tiles (BC keys each) listed for that q tile. K/V tiles stream through shared memory double
// buffered with cp.async; S = Q K^T and O += P V run on mma.sync m16n8k16; online softmax in fp32
// registers in the log2 domain. Only tiles flagged partial apply the per-row range mask.
// Rows with no key: O = 0, LSE = -inf.

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef FWD_WARPS
#define FWD_WARPS 4
#endif
#define FWD_BR (16 * FWD_WARPS)
#define FWD_BC 64
#define LDS (HEAD_DIM + 8)

extern "C" __global__ void __launch_bounds__(FWD_WARPS * 32)
dcp_attn_fwd(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
             const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
             const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges, u32 group,
             float scale_log2) {
  constexpr int D = HEAD_DIM;
  constexpr int NT = FWD_WARPS * 32;
  constexpr int CH = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  elem_t* sQ = (elem_t*)smem_raw;
  elem_t* sK = sQ + FWD_BR * LDS;
  elem_t* sV = sK + 2 * FWD_BC * LDS;
  u64* sKp = (u64*)(sV + 2 * FWD_BC * LDS);  // [2][FWD_BC] key row addresses (0: masked)

  const TaskDesc task = tasks[blockIdx.x];
  const WorkDesc& w = works[task.work];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const u32 head = task.head, kvh = head / group;
  const elem_t* qbase = (const elem_t*)w.q;
  const u32 n_tiles = task.tiles_n;
  const u32* my_tiles = tiles + task.tiles_off;

  // Q tile.
  for (int c = tid; c < FWD_BR * CH; c += NT) {
    int r = c / CH, col = (c % CH) * 8;
    u32 row = task.row0 + r;
    bool ok = row < w.n_rows;
    const elem_t* src = qbase + (ok ? ((u64)row * w.q_stride + head * D + col) : 0);
    cp_async16(sQ + r * LDS + col, src, ok);
  }
  cp_async_commit();

  auto key_ptrs = [&](u32 tile, int buf) {
    if (tid < FWD_BC) {
      u32 key = tile * FWD_BC + tid;
      u64 p = 0;
      if (key < w.n_keys) {
        for (u32 s = w.kv_first; s < w.kv_first + w.kv_count; ++s) {
          const KvSeg& sg = segs[s];
          if (key >= sg.key0 && key < sg.key0 + sg.len) {
            p = sg.k + ((u64)(key - sg.key0) * sg.stride + kvh * 2 * D) * sizeof(elem_t);
            break;
          }
        }
      }
      sKp[buf * FWD_BC + tid] = p;
    }
  };
  auto load_kv = [&](int buf) {
    for (int c = tid; c < FWD_BC * CH; c += NT) {
      int r = c / CH, col = (c % CH) * 8;
      u64 p = sKp[buf * FWD_BC + r];
      bool ok = p != 0;
      const elem_t* src = ok ? (const elem_t*)p + col : qbase;
      cp_async16(sK + (buf * FWD_BC + r) * LDS + col, src, ok);
      cp_async16(sV + (buf * FWD_BC + r) * LDS + col, ok ? src + D : qbase, ok);
    }
  };

  // Per-thread rows (within the tile): ra = warp*16 + g, rb = ra + 8.
  const u32 ra = task.row0 + warp * 16 + g, rb = ra + 8;
  u32 ra0 = 0, ra1 = 0, rb0 = 0, rb1 = 0;
  if (ra < w.n_rows) { ra0 = row_ptr[w.row_off + ra]; ra1 = row_ptr[w.row_off + ra + 1]; }
  if (rb < w.n_rows) { rb0 = row_ptr[w.row_off + rb]; rb1 = row_ptr[w.row_off + rb + 1]; }

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;
  u32 qf[D / 16][4];

  if (n_tiles > 0) {
    key_ptrs(my_tiles[0] & 0x7fffffffu, 0);
    __syncthreads();
    load_kv(0);
    cp_async_commit();
  }
  for (u32 it = 0; it < n_tiles; ++it) {
    const int buf = it & 1;
    if (it + 1 < n_tiles) {
      key_ptrs(my_tiles[it + 1] & 0x7fffffffu, buf ^ 1);
      __syncthreads();
      load_kv(buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (it == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const elem_t* p = sQ + (warp * 16 + g) * LDS + kk * 16 + t4 * 2;
        qf[kk][0] = ld_s32(p);
        qf[kk][1] = ld_s32(p + 8 * LDS);
        qf[kk][2] = ld_s32(p + 8);
        qf[kk][3] = ld_s32(p + 8 * LDS + 8);
      }
    }
    const u32 tile_word = my_tiles[it];
    const u32 k0 = (tile_word & 0x7fffffffu) * FWD_BC;
    const bool partial = tile_word >> 31;
    const elem_t* Kb = sK + buf * FWD_BC * LDS;
    const elem_t* Vb = sV + buf * FWD_BC * LDS;

    float s[FWD_BC / 8][4];
#pragma unroll
    for (int nt = 0; nt < FWD_BC / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const elem_t* p = Kb + (nt * 8 + g) * LDS + kk * 16 + t4 * 2;
        u32 b[2] = {ld_s32(p), ld_s32(p + 8)};
        mma16816(s[nt], qf[kk], b);
      }
    }
    if (partial) {
#pragma unroll
      for (int nt = 0; nt < FWD_BC / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          u32 key = k0 + nt * 8 + t4 * 2 + e;
          bool kin = key < w.n_keys;
          if (!(kin && in_ranges(ranges, ra0, ra1, key))) s[nt][e] = -INFINITY;
          if (!(kin && in_ranges(ranges, rb0, rb1, key))) s[nt][2 + e] = -INFINITY;
        }
      }
    }
    // Online softmax (log2 domain).
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < FWD_BC / 8; ++nt) {
      mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
    const float mn_a = fmaxf(m_a, mx_a * scale_log2), mn_b = fmaxf(m_b, mx_b * scale_log2);
    const float mu_a = mn_a == -INFINITY ? 0.f : mn_a, mu_b = mn_b == -INFINITY ? 0.f : mn_b;
    const float al_a = exp2f(m_a - mu_a), al_b = exp2f(m_b - mu_b);
    m_a = mn_a;
    m_b = mn_b;
    float sum_a = 0.f, sum_b = 0.f;
#pragma unroll
    for (int nt = 0; nt < FWD_BC / 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] * scale_log2 - mu_a);
      s[nt][1] = exp2f(s[nt][1] * scale_log2 - mu_a);
      s[nt][2] = exp2f(s[nt][2] * scale_log2 - mu_b);
      s[nt][3] = exp2f(s[nt][3] * scale_log2 - mu_b);
      sum_a += s[nt][0] + s[nt][1];
      sum_b += s[nt][2] + s[nt][3];
    }
    l_a = l_a * al_a + sum_a;
    l_b = l_b * al_b + sum_b;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      o[i][0] *= al_a;
      o[i][1] *= al_a;
      o[i][2] *= al_b;
      o[i][3] *= al_b;
    }
    // O += P V.
#pragma unroll
    for (int kc = 0; kc < FWD_BC / 16; ++kc) {
      u32 pa[4] = {pack2(s[2 * kc][0], s[2 * kc][1]), pack2(s[2 * kc][2], s[2 * kc][3]),
                   pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]),
                   pack2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        u32 b[4];
        const elem_t* p =
            Vb + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + dn * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(b, p);
        mma16816(o[2 * dn], pa, b);
        mma16816(o[2 * dn + 1], pa, b + 2);
      }
    }
    __syncthreads();
  }

  // Epilogue.
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
  l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
  l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
  const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
  const float LN2 = 0.6931471805599453f;
  if (ra < w.n_rows) {
    u64 base = (u64)ra * w.o_stride + head * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      u64 i = base + nt * 8 + t4 * 2;
      float x = o[nt][0] * inv_a, y = o[nt][1] * inv_a;
      if (w.o_dtype == DT_F32) *(float2*)((float*)w.o + i) = make_float2(x, y);
      else if (w.o_dtype == DT_BF16) *(__nv_bfloat162*)((__nv_bfloat16*)w.o + i) = __floats2bfloat162_rn(x, y);
      else *(__half2*)((__half*)w.o + i) = __floats2half2_rn(x, y);
    }
    if (t4 == 0)
      ((float*)w.lse)[(u64)ra * w.lse_stride + head] = l_a > 0.f ? (m_a + __log2f(l_a)) * LN2 : -INFINITY;
  }
  if (rb < w.n_rows) {
    u64 base = (u64)rb * w.o_stride + head * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      u64 i = base + nt * 8 + t4 * 2;
      float x = o[nt][2] * inv_b, y = o[nt][3] * inv_b;
      if (w.o_dtype == DT_F32) *(float2*)((float*)w.o + i) = make_float2(x, y);
      else if (w.o_dtype == DT_BF16) *(__nv_bfloat162*)((__nv_bfloat16*)w.o + i) = __floats2bfloat162_rn(x, y);
      else *(__half2*)((__half*)w.o + i) = __floats2half2_rn(x, y);
    }
    if (t4 == 0)
      ((float*)w.lse)[(u64)rb * w.lse_stride + head] = l_b > 0.f ? (m_b + __log2f(l_b)) * LN2 : -INFINITY;
  }
}
