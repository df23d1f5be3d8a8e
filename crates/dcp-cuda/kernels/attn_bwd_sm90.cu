// Blockwise attention backward over a work list on Hopper (sm_90a): wgmma + warp specialisation.
//
// Same contract and task list as attn_bwd.cu: one CTA = 128 keys (kv tile `task.row0`) of one kv
// head; it loops over the GQA group's query heads and the q tiles (64 rows) listed for its kv
// tile, keeps dK, dV in fp32 registers and adds them atomically into the dKV regions at the end;
// dQ goes out through atomics per q tile (fp32 into fp32 buffers).
//
// Warpgroup 0 produces: K and V of the kv tile once, then per step (head, q tile) Q, dO, LSE,
// D = rowsum(dO*O) and the rows' range spans into 2 stages (cp.async, "full"/"empty" mbarriers).
// Warpgroups 1 and 2 consume, 64 keys each (transposed formulation, keys as the M dimension):
//   S^T = K Q^T and dP^T = V dO^T            wgmma m64n64k16, all operands from shared memory
//   P^T = exp(S^T - LSE), dS^T = P^T (dP^T - D)   in registers (partial tiles masked)
//   dV += P^T dO, dK += dS^T Q                wgmma m64nDk16, A (P^T, dS^T) from registers,
//                                             B (dO, Q) MN-major from shared memory
//   dQ = dS K                                  dS^T goes to shared memory (K-major for A);
//                                             D = 128: warpgroup c computes dQ columns
//                                             64c..64c+63 over all 128 keys; D = 64: all
//                                             columns over its own 64 keys
// dS is double buffered, so one named barrier per step between the two consumers suffices.
// Shared tiles use the 128-byte swizzled layout of attn_fwd_sm90.cu.

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define B90_BC 128
#define B90_BR 64
#define B90_THREADS 384

static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "the sm90 backward takes head dims 64 and 128");

__device__ __forceinline__ void wg_rs_d(float* acc, const u32* a, u64 b) {
#if HEAD_DIM == 128
  wgmma_m64n128k16_rs<1>(acc, a, b, 1);
#else
  wgmma_m64n64k16_rs<1>(acc, a, b, 1);
#endif
}

extern "C" __global__ void __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_sm90(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
                  const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
                  const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges,
                  const float* __restrict__ dd, u32 group, float scale_log2, float scale) {
  constexpr int D = HEAD_DIM;
  constexpr int CH = D / 8;
  constexpr u32 KVBYTES = B90_BC * D * 2;   // K (or V) tile
  constexpr u32 QBYTES = B90_BR * D * 2;    // one Q (or dO) stage
  constexpr u32 DSBYTES = B90_BR * B90_BC * 2;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const u32 raw = smem_u32(smem_raw);
  const u32 base = (raw + 1023u) & ~1023u;
  unsigned char* gbase = smem_raw + (base - raw);  // generic pointer of `base`
  const u32 sK = base;
  const u32 sV = sK + KVBYTES;
  const u32 sQ = sV + KVBYTES;                 // [2][D/64][64 rows][128 B]
  const u32 sdO = sQ + 2 * QBYTES;             // same
  const u32 sdS = sdO + 2 * QBYTES;            // [2][2 key blocks][64 rows][128 B]
  const u32 small = sdS + 2 * DSBYTES;         // per stage: lse[64], dd[64], span[64][2]
  constexpr u32 SMALL = B90_BR * 16;
  const u32 bars = small + 2 * SMALL;          // full[2], empty[2], kv
  auto full_bar = [&](int s) { return bars + 8u * s; };
  auto empty_bar = [&](int s) { return bars + 8u * (2 + s); };
  const u32 kv_bar = bars + 32;

  const TaskDesc task = tasks[blockIdx.x];
  const WorkDesc& w = works[task.work];
  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
  const u32 kvh = task.head;
  const u32 k0 = task.row0 * B90_BC;
  const u32* my_tiles = tiles + task.tiles_off;
  const u32 n_steps = group * task.tiles_n;

  if (tid == 0) {
    for (int s = 0; s < 2; ++s) {
      mbar_init(full_bar(s), 128);
      mbar_init(empty_bar(s), 256);
    }
    mbar_init(kv_bar, 128);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<SM90_PROD_REGS>();
    const int pt = tid, pw = pt >> 5;
    const elem_t* qbase = (const elem_t*)w.q;
    const elem_t* dobase = (const elem_t*)w.dout;
    warp_rows_async<D, true>(kv_key_ptr<D>(w, segs, k0 + pt, kvh), lane, 32 * pw, sK, sV,
                             B90_BC * 128, qbase);
    mbar_arrive_cp_async(kv_bar);
    for (u32 t = 0; t < n_steps; ++t) {
      const int s = t & 1;
      if (t >= 2) mbar_wait_guarded(empty_bar(s), ((t >> 1) - 1) & 1);
      const u32 jj = t / task.tiles_n, it = t - jj * task.tiles_n;
      const u32 head = kvh * group + jj;
      const u32 q0 = (my_tiles[it] & 0x7fffffffu) * B90_BR;
      const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
#pragma unroll
      for (int j = 0; j < B90_BR * CH / 128; ++j) {
        const int idx = j * 128 + pt;
        const int r = idx / CH, c = idx % CH;
        const u32 row = q0 + r;
        const bool ok = row < w.n_rows;
        const u32 off = (c >> 3) * (B90_BR * 128) + sw128(r, c);
        cp_async16_s(qs + off, qbase + (ok ? (u64)row * w.q_stride + head * D + c * 8 : 0), ok);
        cp_async16_s(dos + off, dobase + (ok ? (u64)row * w.do_stride + head * D + c * 8 : 0), ok);
      }
      if (pt < B90_BR) {
        const u32 row = q0 + pt;
        const bool ok = row < w.n_rows;
        const u64 rr = ok ? row : 0;
        const u32 sm = small + s * SMALL;
        cp_async4_s(sm + pt * 4, (const float*)w.lse + rr * w.lse_stride + head, ok);
        cp_async4_s(sm + B90_BR * 4 + pt * 4, dd + w.dd_off + rr * w.q_heads + head, ok);
        cp_async4_s(sm + B90_BR * 8 + pt * 8, row_ptr + w.row_off + rr, ok);
        cp_async4_s(sm + B90_BR * 8 + pt * 8 + 4, row_ptr + w.row_off + rr + 1, ok);
      }
      mbar_arrive_cp_async(full_bar(s));
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---------------- consumers ----------------
  setmaxnreg_inc<SM90_CONS_REGS>();
  const int cw = wg - 1;                 // keys 64*cw .. 64*cw+63 of the kv tile
  const int wq = (tid >> 5) & 3;
  const int g = lane >> 2, t4 = lane & 3;
  const u32 kl_a = 64 * cw + 16 * wq + g;  // this thread's keys (in the tile): kl_a, kl_a + 8
  const u32 key_a = k0 + kl_a, key_b = key_a + 8;

  float dk[D / 2], dv[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

  // dQ phase: columns and keys of this warpgroup.
  constexpr int DQ_KSTEPS = D == 128 ? B90_BC / 16 : 64 / 16;
  const u32 dq_col0 = D == 128 ? 64 * cw : 0;
  const u32 dq_kstep0 = D == 128 ? 0 : 4 * cw;

  mbar_wait(kv_bar, 0);
  fence_proxy_async();

  for (u32 t = 0; t < n_steps; ++t) {
    const int s = t & 1;
    mbar_wait(full_bar(s), (t >> 1) & 1);
    fence_proxy_async();
    const u32 jj = t / task.tiles_n, it = t - jj * task.tiles_n;
    const u32 head = kvh * group + jj;
    const u32 word = my_tiles[it];
    const u32 q0 = (word & 0x7fffffffu) * B90_BR;
    const bool partial = word >> 31;
    const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
    const float* lse_s = (const float*)(gbase + (small + s * SMALL - base));
    const float* dd_s = lse_s + B90_BR;
    const u32* rp_s = (const u32*)(dd_s + B90_BR);

    // S^T = K Q^T and dP^T = V dO^T (two groups).
    float st[B90_BR / 2], dpt[B90_BR / 2];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const u64 da = wg_desc(sK + (kk >> 2) * (B90_BC * 128) + 64 * cw * 128 + (kk & 3) * 32, 16, 1024);
      const u64 db = wg_desc(qs + (kk >> 2) * (B90_BR * 128) + (kk & 3) * 32, 16, 1024);
      wgmma_m64n64k16_ss<0>(st, da, db, kk > 0);
    }
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const u64 da = wg_desc(sV + (kk >> 2) * (B90_BC * 128) + 64 * cw * 128 + (kk & 3) * 32, 16, 1024);
      const u64 db = wg_desc(dos + (kk >> 2) * (B90_BR * 128) + (kk & 3) * 32, 16, 1024);
      wgmma_m64n64k16_ss<0>(dpt, da, db, kk > 0);
    }
    wg_commit();
    wg_wait<1>();
    reg_fence<B90_BR / 2>(st);

    // Mask bits (bit nt * 4 + e), partial tiles only; P^T (LSE = -inf rows: P = 0).
    const u32 pbits = partial ? bwd_mask_bits<B90_BR / 8>(ranges, rp_s, key_a, key_b, w.n_keys, t4)
                              : 0xffffffffu;
    bwd_probs<B90_BR / 8>(st, pbits, lse_s, scale_log2, t4);
    u32 pa[B90_BR / 16][4];
    acc_to_a<B90_BR>(st, pa);
    wg_wait<0>();
    reg_fence<B90_BR / 2>(dpt);
    // dS^T = P^T (dP^T - D), into registers (A of dK) and shared memory (A of dQ, K-major:
    // element (row ql, key kl) of key block kl / 64).
    const u32 dsb = sdS + (t & 1) * DSBYTES + cw * (B90_BR * 128);
    unsigned char* dsg = gbase + (dsb - base);
#pragma unroll
    for (int nt = 0; nt < B90_BR / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int ql = nt * 8 + t4 * 2 + (e & 1);
        const float v = st[nt * 4 + e] * (dpt[nt * 4 + e] - dd_s[ql]);
        st[nt * 4 + e] = v;
        const u32 kk = 16 * wq + g + (e < 2 ? 0 : 8);  // key within this warpgroup's block
        *(elem_t*)(dsg + sw128(ql, kk >> 3) + (kk & 7) * 2) = (elem_t)v;
      }
    }
    u32 da_[B90_BR / 16][4];
    acc_to_a<B90_BR>(st, da_);
    fence_proxy_async();  // dS stores -> wgmma reads (async proxy)
    // dV += P^T dO, dK += dS^T Q (B: MN-major, 16 q rows per step).
    reg_fence<D / 2>(dv);
    reg_fence<D / 2>(dk);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < B90_BR / 16; ++kc)
      wg_rs_d(dv, pa[kc], wg_desc(dos + kc * 16 * 128, B90_BR * 128, 1024));
#pragma unroll
    for (int kc = 0; kc < B90_BR / 16; ++kc)
      wg_rs_d(dk, da_[kc], wg_desc(qs + kc * 16 * 128, B90_BR * 128, 1024));
    wg_commit();
    named_bar(1, 256);  // both warpgroups' dS are in shared memory
    wg_wait<0>();
    reg_fence<D / 2>(dv);
    reg_fence<D / 2>(dk);
    // dQ = dS K (A: dS K-major; B: K MN-major, keys x d).
    float dq[32];
    wg_fence();
    const u32 dsall = sdS + (t & 1) * DSBYTES;
#pragma unroll
    for (int i = 0; i < DQ_KSTEPS; ++i) {
      const u32 kc = dq_kstep0 + i;
      const u64 a = wg_desc(dsall + (kc >> 2) * (B90_BR * 128) + (kc & 3) * 32, 16, 1024);
      const u64 b = wg_desc(sK + kc * 16 * 128 + (dq_col0 >> 6) * (B90_BC * 128), B90_BC * 128, 1024);
      wgmma_m64n64k16_ss<1>(dq, a, b, i > 0);
    }
    wg_commit();
    wg_wait<0>();
    reg_fence<32>(dq);
    mbar_arrive(empty_bar(s));
    // dQ rows 16 wq + g (+8) of the tile, columns dq_col0 + nt * 8 + 2 t4.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const u32 row = q0 + 16 * wq + g + 8 * h;
      if (row < w.n_rows) {
        const u64 rb = (u64)row * w.dq_stride + head * D + dq_col0 + t4 * 2;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          atomic_add_out((void*)w.dq, rb + nt * 8, w.dq_dtype, dq[nt * 4 + 2 * h] * scale,
                         dq[nt * 4 + 2 * h + 1] * scale);
      }
    }
  }

  // dK (scaled) and dV into the dKV regions.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const u32 key = h ? key_b : key_a;
    if (key >= w.n_keys) continue;
    u64 dp = 0;
    u32 dt = DT_F32;
    for (u32 sg_i = w.kv_first; sg_i < w.kv_first + w.kv_count; ++sg_i) {
      const KvSeg& sg = segs[sg_i];
      if (key >= sg.key0 && key < sg.key0 + sg.len) {
        const u64 ds = sg.ddtype == DT_F32 ? 4 : 2;
        dp = sg.dk + ((u64)(key - sg.key0) * sg.dstride + kvh * 2 * D) * ds;
        dt = sg.ddtype;
        break;
      }
    }
    if (dp == 0) continue;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) {
      atomic_add_out((void*)dp, nt * 8 + t4 * 2, dt, dk[nt * 4 + 2 * h] * scale, dk[nt * 4 + 2 * h + 1] * scale);
      atomic_add_out((void*)dp, D + nt * 8 + t4 * 2, dt, dv[nt * 4 + 2 * h], dv[nt * 4 + 2 * h + 1]);
    }
  }
}
