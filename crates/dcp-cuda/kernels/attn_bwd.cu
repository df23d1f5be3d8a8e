// Blockwise attention backward over a work list (FlashAttention-2 style, kv-tile parallel).
//
// One CTA = one task: a tile of BCB = 16 * BWD_WARPS keys of one kv head of one work. It keeps
// dK and dV of its keys in registers (warp w owns keys 16w..16w+15) and loops over the group's
// query heads and over the q tiles (BRB rows) listed for this kv tile: recompute P from Q, K and
// the saved LSE; dV += P^T dO; dP^T = V dO^T; dS = P (dP - D); dK += dS^T Q; dQ += dS K through
// shared memory and fp32 (or bf16x2) atomics. At the end dK, dV are added atomically into the
// work's dKV regions (several works of a launch may share them).

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef BWD_WARPS
#define BWD_WARPS 8
#endif
#ifndef BWD_BR
#define BWD_BR 64
#endif
#define BWD_BC (16 * BWD_WARPS)
#define LDS (HEAD_DIM + 8)
#define LDSS (BWD_BC + 8)

extern "C" __global__ void __launch_bounds__(BWD_WARPS * 32)
dcp_attn_bwd(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
             const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
             const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges,
             const float* __restrict__ dd, u32 group, float scale_log2, float scale) {
  constexpr int D = HEAD_DIM;
  constexpr int NT = BWD_WARPS * 32;
  constexpr int CH = D / 8;
  constexpr int RG = BWD_BR / 16;          // row groups in the dQ phase
  constexpr int DSPLIT = BWD_WARPS / RG;   // d splits in the dQ phase
  constexpr int DW = D / DSPLIT;           // d columns per warp in the dQ phase
  static_assert(BWD_WARPS % RG == 0, "warps must split the dQ tile");
  static_assert(DW % 16 == 0, "dQ d split must be a multiple of 16");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  elem_t* sK = (elem_t*)smem_raw;
  elem_t* sV = sK + BWD_BC * LDS;
  elem_t* sQ = sV + BWD_BC * LDS;
  elem_t* sdO = sQ + BWD_BR * LDS;
  elem_t* sdS = sdO + BWD_BR * LDS;
  float* sLse = (float*)(sdS + BWD_BR * LDSS);
  float* sDd = sLse + BWD_BR;
  uint2* sRp = (uint2*)(sDd + BWD_BR);
  u64* sKp = (u64*)(sRp + BWD_BR);
  u64* sDp = sKp + BWD_BC;
  u32* sDt = (u32*)(sDp + BWD_BC);

  const TaskDesc task = tasks[blockIdx.x];
  const WorkDesc& w = works[task.work];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const u32 kvh = task.head;
  const u32 k0 = task.row0 * BWD_BC;
  const u32* my_tiles = tiles + task.tiles_off;
  const elem_t* qbase = (const elem_t*)w.q;
  const elem_t* dobase = (const elem_t*)w.dout;

  if (tid < BWD_BC) {
    u32 key = k0 + tid;
    u64 p = 0, dp = 0;
    u32 dt = DT_F32;
    if (key < w.n_keys) {
      for (u32 s = w.kv_first; s < w.kv_first + w.kv_count; ++s) {
        const KvSeg& sg = segs[s];
        if (key >= sg.key0 && key < sg.key0 + sg.len) {
          p = sg.k + ((u64)(key - sg.key0) * sg.stride + kvh * 2 * D) * sizeof(elem_t);
          u64 ds = sg.ddtype == DT_F32 ? 4 : 2;
          dp = sg.dk + ((u64)(key - sg.key0) * sg.dstride + kvh * 2 * D) * ds;
          dt = sg.ddtype;
          break;
        }
      }
    }
    sKp[tid] = p;
    sDp[tid] = dp;
    sDt[tid] = dt;
  }
  __syncthreads();
  for (int c = tid; c < BWD_BC * CH; c += NT) {
    int r = c / CH, col = (c % CH) * 8;
    u64 p = sKp[r];
    bool ok = p != 0;
    const elem_t* src = ok ? (const elem_t*)p + col : qbase;
    cp_async16(sK + r * LDS + col, src, ok);
    cp_async16(sV + r * LDS + col, ok ? src + D : qbase, ok);
  }
  cp_async_commit();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;

  const u32 key_a = k0 + warp * 16 + g, key_b = key_a + 8;
  const float LOG2E = 1.4426950408889634f;

  for (u32 jj = 0; jj < group; ++jj) {
    const u32 head = kvh * group + jj;
    for (u32 it = 0; it < task.tiles_n; ++it) {
      const u32 word = my_tiles[it];
      const u32 q0 = (word & 0x7fffffffu) * BWD_BR;
      const bool partial = word >> 31;
      for (int c = tid; c < BWD_BR * CH; c += NT) {
        int r = c / CH, col = (c % CH) * 8;
        u32 row = q0 + r;
        bool ok = row < w.n_rows;
        cp_async16(sQ + r * LDS + col, qbase + (ok ? (u64)row * w.q_stride + head * D + col : 0), ok);
        cp_async16(sdO + r * LDS + col, dobase + (ok ? (u64)row * w.do_stride + head * D + col : 0), ok);
      }
      cp_async_commit();
      if (tid < BWD_BR) {
        u32 row = q0 + tid;
        if (row < w.n_rows) {
          float l = ((const float*)w.lse)[(u64)row * w.lse_stride + head];
          sLse[tid] = l == -INFINITY ? INFINITY : l * LOG2E;
          sDd[tid] = dd[w.dd_off + (u64)row * w.q_heads + head];
          sRp[tid] = make_uint2(row_ptr[w.row_off + row], row_ptr[w.row_off + row + 1]);
        } else {
          sLse[tid] = INFINITY;
          sDd[tid] = 0.f;
          sRp[tid] = make_uint2(0, 0);
        }
      }
      cp_async_wait<0>();
      __syncthreads();

      // S^T = K Q^T (16 keys x BWD_BR q per warp).
      float st[BWD_BR / 8][4];
#pragma unroll
      for (int nt = 0; nt < BWD_BR / 8; ++nt) st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const elem_t* pa = sK + (warp * 16 + g) * LDS + kk * 16 + t4 * 2;
        u32 a[4] = {ld_s32(pa), ld_s32(pa + 8 * LDS), ld_s32(pa + 8), ld_s32(pa + 8 * LDS + 8)};
#pragma unroll
        for (int nt = 0; nt < BWD_BR / 8; ++nt) {
          const elem_t* pb = sQ + (nt * 8 + g) * LDS + kk * 16 + t4 * 2;
          u32 b[2] = {ld_s32(pb), ld_s32(pb + 8)};
          mma16816(st[nt], a, b);
        }
      }
      // P^T (masked on partial tiles; rows past the work have LSE = +inf so P = 0).
#pragma unroll
      for (int nt = 0; nt < BWD_BR / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int ql = nt * 8 + t4 * 2 + (e & 1);
          const u32 key = e < 2 ? key_a : key_b;
          bool ok = true;
          if (partial) {
            const uint2 rp = sRp[ql];
            ok = key < w.n_keys && in_ranges(ranges, rp.x, rp.y, key);
          }
          st[nt][e] = ok ? exp2f(st[nt][e] * scale_log2 - sLse[ql]) : 0.f;
        }
      }
      // dV += P^T dO.
#pragma unroll
      for (int kc = 0; kc < BWD_BR / 16; ++kc) {
        u32 a[4] = {pack2(st[2 * kc][0], st[2 * kc][1]), pack2(st[2 * kc][2], st[2 * kc][3]),
                    pack2(st[2 * kc + 1][0], st[2 * kc + 1][1]),
                    pack2(st[2 * kc + 1][2], st[2 * kc + 1][3])};
#pragma unroll
        for (int dn = 0; dn < D / 16; ++dn) {
          u32 b[4];
          ldmatrix_x4_trans(
              b, sdO + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + dn * 16 + (lane >> 4) * 8);
          mma16816(dv[2 * dn], a, b);
          mma16816(dv[2 * dn + 1], a, b + 2);
        }
      }
      // dP^T = V dO^T.
      float dpt[BWD_BR / 8][4];
#pragma unroll
      for (int nt = 0; nt < BWD_BR / 8; ++nt) dpt[nt][0] = dpt[nt][1] = dpt[nt][2] = dpt[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const elem_t* pa = sV + (warp * 16 + g) * LDS + kk * 16 + t4 * 2;
        u32 a[4] = {ld_s32(pa), ld_s32(pa + 8 * LDS), ld_s32(pa + 8), ld_s32(pa + 8 * LDS + 8)};
#pragma unroll
        for (int nt = 0; nt < BWD_BR / 8; ++nt) {
          const elem_t* pb = sdO + (nt * 8 + g) * LDS + kk * 16 + t4 * 2;
          u32 b[2] = {ld_s32(pb), ld_s32(pb + 8)};
          mma16816(dpt[nt], a, b);
        }
      }
      // dS^T = P^T * (dP^T - D); store dS (q-major) for the dQ phase.
#pragma unroll
      for (int nt = 0; nt < BWD_BR / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int ql = nt * 8 + t4 * 2 + (e & 1);
          st[nt][e] = st[nt][e] * (dpt[nt][e] - sDd[ql]);
          const int kl = warp * 16 + g + (e < 2 ? 0 : 8);
          sdS[ql * LDSS + kl] = (elem_t)st[nt][e];
        }
      }
      // dK += dS^T Q.
#pragma unroll
      for (int kc = 0; kc < BWD_BR / 16; ++kc) {
        u32 a[4] = {pack2(st[2 * kc][0], st[2 * kc][1]), pack2(st[2 * kc][2], st[2 * kc][3]),
                    pack2(st[2 * kc + 1][0], st[2 * kc + 1][1]),
                    pack2(st[2 * kc + 1][2], st[2 * kc + 1][3])};
#pragma unroll
        for (int dn = 0; dn < D / 16; ++dn) {
          u32 b[4];
          ldmatrix_x4_trans(
              b, sQ + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + dn * 16 + (lane >> 4) * 8);
          mma16816(dk[2 * dn], a, b);
          mma16816(dk[2 * dn + 1], a, b + 2);
        }
      }
      __syncthreads();
      // dQ = dS K for rows qr..qr+15, d columns d0..d0+DW.
      {
        const int qr = (warp % RG) * 16, d0 = (warp / RG) * DW;
        float dq[DW / 8][4];
#pragma unroll
        for (int i = 0; i < DW / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
        for (int kc = 0; kc < BWD_BC / 16; ++kc) {
          const elem_t* pa = sdS + (qr + g) * LDSS + kc * 16 + t4 * 2;
          u32 a[4] = {ld_s32(pa), ld_s32(pa + 8 * LDSS), ld_s32(pa + 8), ld_s32(pa + 8 * LDSS + 8)};
#pragma unroll
          for (int dn = 0; dn < DW / 16; ++dn) {
            u32 b[4];
            ldmatrix_x4_trans(b, sK + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + d0 +
                                     dn * 16 + (lane >> 4) * 8);
            mma16816(dq[2 * dn], a, b);
            mma16816(dq[2 * dn + 1], a, b + 2);
          }
        }
        const u32 row_a = q0 + qr + g, row_b = row_a + 8;
        if (row_a < w.n_rows) {
          u64 base = (u64)row_a * w.dq_stride + head * D + d0 + t4 * 2;
#pragma unroll
          for (int nt = 0; nt < DW / 8; ++nt)
            atomic_add_out((void*)w.dq, base + nt * 8, w.dq_dtype, dq[nt][0] * scale, dq[nt][1] * scale);
        }
        if (row_b < w.n_rows) {
          u64 base = (u64)row_b * w.dq_stride + head * D + d0 + t4 * 2;
#pragma unroll
          for (int nt = 0; nt < DW / 8; ++nt)
            atomic_add_out((void*)w.dq, base + nt * 8, w.dq_dtype, dq[nt][2] * scale, dq[nt][3] * scale);
        }
      }
      __syncthreads();
    }
  }
  // dK (scaled) and dV into the dKV regions.
  const int kla = warp * 16 + g, klb = kla + 8;
  if (sDp[kla] != 0) {
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      atomic_add_out((void*)sDp[kla], nt * 8 + t4 * 2, sDt[kla], dk[nt][0] * scale, dk[nt][1] * scale);
      atomic_add_out((void*)sDp[kla], D + nt * 8 + t4 * 2, sDt[kla], dv[nt][0], dv[nt][1]);
    }
  }
  if (sDp[klb] != 0) {
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      atomic_add_out((void*)sDp[klb], nt * 8 + t4 * 2, sDt[klb], dk[nt][2] * scale, dk[nt][3] * scale);
      atomic_add_out((void*)sDp[klb], D + nt * 8 + t4 * 2, sDt[klb], dv[nt][2], dv[nt][3]);
    }
  }
}
