// Blockwise attention backward over a work list (FlashAttention-2 style, kv-tile parallel).
//
// One CTA = one task: a tile of BCB = 16 * BWD_WARPS keys of one kv head of one work. It keeps
// dK and dV of its keys in registers (warp w owns keys 16w..16w+15) and loops over the group's
// query heads and over the q tiles (BRB rows) listed for this kv tile: recompute P from Q, K and
// the saved LSE; dV += P^T dO; dP^T = V dO^T; dS = P (dP - D); dK += dS^T Q; dQ += dS K through
// shared memory and fp32 (or bf16x2) atomics. Q, dO, LSE, D and the rows' range spans are double
// buffered: the next (head, q tile) streams in with cp.async while this one computes. Operands
// come through ldmatrix. At the end dK, dV are added atomically into the work's dKV regions
// (several works of a launch may share them).

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
  static_assert(BWD_BR % 16 == 0 && BWD_BR <= 64, "mask bits of one thread must fit 32 bits");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  elem_t* sK = (elem_t*)smem_raw;
  elem_t* sV = sK + BWD_BC * LDS;
  elem_t* sQ = sV + BWD_BC * LDS;          // [2][BWD_BR][LDS]
  elem_t* sdO = sQ + 2 * BWD_BR * LDS;     // [2][BWD_BR][LDS]
  elem_t* sdS = sdO + 2 * BWD_BR * LDS;
  float* sLse = (float*)(sdS + BWD_BR * LDSS);  // [2][BWD_BR] raw LSE (natural log)
  float* sDd = sLse + 2 * BWD_BR;               // [2][BWD_BR]
  u32* sRp = (u32*)(sDd + 2 * BWD_BR);          // [2][BWD_BR][2] range index span of each row
  u64* sKp = (u64*)(sRp + 4 * BWD_BR);
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

  // Loads (head jj, q tile it) = step t into buffer b: Q, dO rows and per-row LSE, D, range span
  // (rows past the work zero-filled: Q = dO = 0 makes their P harmless, their span empty).
  const u32 n_steps = group * task.tiles_n;
  auto prefetch = [&](u32 t, int b) {
    const u32 jj = t / task.tiles_n, it = t - jj * task.tiles_n;
    const u32 head = kvh * group + jj;
    const u32 q0 = (my_tiles[it] & 0x7fffffffu) * BWD_BR;
    elem_t* q_s = sQ + b * BWD_BR * LDS;
    elem_t* do_s = sdO + b * BWD_BR * LDS;
    for (int c = tid; c < BWD_BR * CH; c += NT) {
      int r = c / CH, col = (c % CH) * 8;
      u32 row = q0 + r;
      bool ok = row < w.n_rows;
      cp_async16(q_s + r * LDS + col, qbase + (ok ? (u64)row * w.q_stride + head * D + col : 0), ok);
      cp_async16(do_s + r * LDS + col, dobase + (ok ? (u64)row * w.do_stride + head * D + col : 0), ok);
    }
    if (tid < BWD_BR) {
      u32 row = q0 + tid;
      bool ok = row < w.n_rows;
      u64 rr = ok ? row : 0;
      cp_async4(sLse + b * BWD_BR + tid, (const float*)w.lse + rr * w.lse_stride + head, ok);
      cp_async4(sDd + b * BWD_BR + tid, dd + w.dd_off + rr * w.q_heads + head, ok);
      cp_async4(sRp + (b * BWD_BR + tid) * 2, row_ptr + w.row_off + rr, ok);
      cp_async4(sRp + (b * BWD_BR + tid) * 2 + 1, row_ptr + w.row_off + rr + 1, ok);
    }
  };

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.f;

  const u32 key_a = k0 + warp * 16 + g, key_b = key_a + 8;
  // Per-lane ldmatrix offsets (bytes). A operand 16x16 (rows r..r+15, k 0..15): `aoff`; B
  // operand from a [n][k] tile, two n8 tiles per x4: `boff`; transposed B from a [k][n] tile:
  // `toff`.
  const u32 aoff = (((lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8) * 2;
  const u32 boff = (((lane & 7) + ((lane >> 4) & 1) * 8) * LDS + ((lane >> 3) & 1) * 8) * 2;
  const u32 toff = aoff;
  const u32 ka = smem_u32(sK) + warp * 16 * LDS * 2 + aoff;
  const u32 va = smem_u32(sV) + warp * 16 * LDS * 2 + aoff;
  const int qr = (warp % RG) * 16, d0 = (warp / RG) * DW;  // dQ phase tile of this warp
  const u32 dsa = smem_u32(sdS) + ((qr + (lane & 7) + ((lane >> 3) & 1) * 8) * LDSS + (lane >> 4) * 8) * 2;
  const u32 kta = smem_u32(sK) + toff + d0 * 2;

  if (n_steps > 0) {
    prefetch(0, 0);
    cp_async_commit();
  }
  for (u32 t = 0; t < n_steps; ++t) {
    const int buf = t & 1;
    if (t + 1 < n_steps) {
      prefetch(t + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u32 jj = t / task.tiles_n, it = t - jj * task.tiles_n;
    const u32 head = kvh * group + jj;
    const u32 word = my_tiles[it];
    const u32 q0 = (word & 0x7fffffffu) * BWD_BR;
    const bool partial = word >> 31;
    const u32 qs = smem_u32(sQ + buf * BWD_BR * LDS), dos = smem_u32(sdO + buf * BWD_BR * LDS);
    const float* lse_b = sLse + buf * BWD_BR;
    const float* dd_b = sDd + buf * BWD_BR;
    const u32* rp_b = sRp + buf * BWD_BR * 2;

    // S^T = K Q^T (16 keys x BWD_BR q per warp).
    float st[BWD_BR / 8][4];
#pragma unroll
    for (int nt = 0; nt < BWD_BR / 8; ++nt) st[nt][0] = st[nt][1] = st[nt][2] = st[nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 a[4];
      ldsm_x4(a, ka + kk * 32);
#pragma unroll
      for (int np = 0; np < BWD_BR / 16; ++np) {
        u32 b[4];
        ldsm_x4(b, qs + boff + (np * 16 * LDS + kk * 16) * 2);
        mma16816(st[2 * np], a, b);
        mma16816(st[2 * np + 1], a, b + 2);
      }
    }
    // Mask bits of this thread's elements (bit nt * 4 + e), one pass on partial tiles only.
    const u32 pbits =
        partial ? bwd_mask_bits<BWD_BR / 8>(ranges, rp_b, key_a, key_b, w.n_keys, t4) : 0xffffffffu;
    // P^T (LSE = -inf rows: P = 0).
    bwd_probs<BWD_BR / 8>(&st[0][0], pbits, lse_b, scale_log2, t4);
    // dV += P^T dO.
#pragma unroll
    for (int kc = 0; kc < BWD_BR / 16; ++kc) {
      u32 a[4] = {pack2(st[2 * kc][0], st[2 * kc][1]), pack2(st[2 * kc][2], st[2 * kc][3]),
                  pack2(st[2 * kc + 1][0], st[2 * kc + 1][1]),
                  pack2(st[2 * kc + 1][2], st[2 * kc + 1][3])};
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        u32 b[4];
        ldsm_x4_t(b, dos + toff + (kc * 16 * LDS + dn * 16) * 2);
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
      u32 a[4];
      ldsm_x4(a, va + kk * 32);
#pragma unroll
      for (int np = 0; np < BWD_BR / 16; ++np) {
        u32 b[4];
        ldsm_x4(b, dos + boff + (np * 16 * LDS + kk * 16) * 2);
        mma16816(dpt[2 * np], a, b);
        mma16816(dpt[2 * np + 1], a, b + 2);
      }
    }
    // dS^T = P^T * (dP^T - D); store dS (q-major) for the dQ phase.
#pragma unroll
    for (int nt = 0; nt < BWD_BR / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int ql = nt * 8 + t4 * 2 + (e & 1);
        st[nt][e] = st[nt][e] * (dpt[nt][e] - dd_b[ql]);
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
        ldsm_x4_t(b, qs + toff + (kc * 16 * LDS + dn * 16) * 2);
        mma16816(dk[2 * dn], a, b);
        mma16816(dk[2 * dn + 1], a, b + 2);
      }
    }
    __syncthreads();
    // dQ = dS K for rows qr..qr+15, d columns d0..d0+DW.
    {
      float dq[DW / 8][4];
#pragma unroll
      for (int i = 0; i < DW / 8; ++i) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < BWD_BC / 16; ++kc) {
        u32 a[4];
        ldsm_x4(a, dsa + kc * 32);
#pragma unroll
        for (int dn = 0; dn < DW / 16; ++dn) {
          u32 b[4];
          ldsm_x4_t(b, kta + (kc * 16 * LDS + dn * 16) * 2);
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
