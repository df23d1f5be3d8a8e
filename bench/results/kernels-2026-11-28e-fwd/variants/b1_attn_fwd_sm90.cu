// Blockwise attention forward over a work list on Hopper (sm_90a): wgmma + warp specialisation.
//
// Same contract as attn_fwd.cu (work list, per-row key ranges in concatenated-KV coordinates,
// tiles listed per task, partial tiles masked, GQA, O = 0 / LSE = -inf for rows with no key);
// only the tile shape differs: 128 query rows x S90_BC = 128 keys.
//
// One CTA = 3 warpgroups. Warpgroup 0 is the producer: it loads the Q tile once and streams the
// task's K/V tiles into S90_STAGES shared-memory stages with cp.async (each key row through its
// own address, since a work's keys may come from several KV regions), signalling a "full"
// mbarrier per stage when the copies land (cp.async.mbarrier.arrive.noinc). Warpgroups 1 and 2
// are consumers, 64 query rows each: S = Q K^T with wgmma m64n128k16 (Q and K from shared
// memory), mask (partial tiles only) and online softmax in registers (log2 domain), then
// O += P V with wgmma m64nDk16 taking P from registers (the accumulator layout of S is the A
// fragment layout) and V from shared memory (MN-major); then they release the stage ("empty"
// mbarrier). Q, K and V sit in shared memory in the 128-byte swizzled layout: per 64-column
// block, rows of 128 bytes, 16-byte chunk c of row r at r*128 + ((c ^ r%8) * 16).
// setmaxnreg moves registers from the producer to the consumers.

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define S90_BR 128
#define S90_BC 128
#ifndef S90_STAGES
#define S90_STAGES 2
#endif
#define S90_THREADS 384

static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "the sm90 forward takes head dims 64 and 128");

__device__ __forceinline__ float f90_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
// PV for the head dim: N = HEAD_DIM.
__device__ __forceinline__ void wg_pv(float* o, const u32* a, u64 b) {
#if HEAD_DIM == 128
  wgmma_m64n128k16_rs<1>(o, a, b, 1);
#else
  wgmma_m64n64k16_rs<1>(o, a, b, 1);
#endif
}

extern "C" __global__ void __launch_bounds__(S90_THREADS, 1)
dcp_attn_fwd_sm90(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
                  const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
                  const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges, u32 group,
                  float scale_log2) {
  constexpr int D = HEAD_DIM;
  constexpr u32 QBYTES = S90_BR * D * 2;
  constexpr u32 TBYTES = S90_BC * D * 2;  // one K (or V) stage
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Shared-space addresses, 1024-byte aligned (the swizzle atoms must be).
  const u32 base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const u32 sQ = base;
  const u32 sK = sQ + QBYTES;                       // [STAGES][D/64][BC][128 B]
  const u32 sV = sK + S90_STAGES * TBYTES;          // same
  const u32 bars = sV + S90_STAGES * TBYTES;        // full[STAGES], empty[STAGES], q
  auto full_bar = [&](int s) { return bars + 8u * s; };
  auto empty_bar = [&](int s) { return bars + 8u * (S90_STAGES + s); };
  const u32 q_bar = bars + 8u * (2 * S90_STAGES);

  const TaskDesc task = tasks[blockIdx.x];
  const WorkDesc& w = works[task.work];
  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
  const u32 head = task.head, kvh = head / group;
  const u32 n_tiles = task.tiles_n;
  const u32* my_tiles = tiles + task.tiles_off;

  if (tid == 0) {
    for (int s = 0; s < S90_STAGES; ++s) {
      mbar_init(full_bar(s), 128);
      mbar_init(empty_bar(s), 256);
    }
    mbar_init(q_bar, 128);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<SM90_PROD_REGS>();
    const int pt = tid;              // 0..127
    const int pw = pt >> 5;          // producer warp: rows / keys 32*pw .. 32*pw+31
    const elem_t* qbase = (const elem_t*)w.q;
    {
      const u32 row = task.row0 + pt;
      const u64 myp = row < w.n_rows ? (u64)(qbase + (u64)row * w.q_stride + head * D) : 0;
      warp_rows_async<D, false>(myp, lane, 32 * pw, sQ, 0, S90_BR * 128, qbase);
      mbar_arrive_cp_async(q_bar);
    }
    for (u32 it = 0; it < n_tiles; ++it) {
      const int s = it % S90_STAGES;
      if (it >= S90_STAGES) mbar_wait_guarded(empty_bar(s), ((it / S90_STAGES) - 1) & 1);
      const u32 key = (my_tiles[it] & 0x7fffffffu) * S90_BC + pt;
      warp_rows_async<D, true>(kv_key_ptr<D>(w, segs, key, kvh), lane, 32 * pw, sK + s * TBYTES,
                               sV + s * TBYTES, S90_BC * 128, qbase);
      mbar_arrive_cp_async(full_bar(s));
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---------------- consumers ----------------
  setmaxnreg_inc<SM90_CONS_REGS>();
  const int cw = wg - 1;                   // consumer warpgroup: rows 64*cw .. 64*cw+63
  const int wq = (tid >> 5) & 3;           // warp within the warpgroup: 16 rows each
  const int g = lane >> 2, t4 = lane & 3;
  const int r_lo = 64 * cw + 16 * wq + g;  // this thread's rows: r_lo, r_lo + 8 (in the tile)
  uint2 span[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const u32 row = task.row0 + r_lo + 8 * h;
    span[h] = row < w.n_rows ? make_uint2(row_ptr[w.row_off + row], row_ptr[w.row_off + row + 1])
                             : make_uint2(0, 0);
  }

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float mm[2] = {-INFINITY, -INFINITY}, ll[2] = {0.f, 0.f};

  // Descriptor bases: Q rows of this warpgroup (K-major, SBO = 8 rows of 128 B), K (K-major),
  // V (MN-major: LBO = next 64-column block, SBO = next 8 keys).
  const u32 q_lo = sQ + 64 * cw * 128;
  mbar_wait(q_bar, 0);
  fence_proxy_async();

  for (u32 it = 0; it < n_tiles; ++it) {
    const int s = it % S90_STAGES;
    mbar_wait(full_bar(s), (it / S90_STAGES) & 1);
    fence_proxy_async();
    const u32 tile_word = my_tiles[it];
    const u32 k0 = (tile_word & 0x7fffffffu) * S90_BC;
    const bool partial = tile_word >> 31;
    const u32 kst = sK + s * TBYTES, vst = sV + s * TBYTES;

    float sc[S90_BC / 2];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const u64 da = wg_desc(q_lo + (kk >> 2) * (S90_BR * 128) + (kk & 3) * 32, 16, 1024);
      const u64 db = wg_desc(kst + (kk >> 2) * (S90_BC * 128) + (kk & 3) * 32, 16, 1024);
      wgmma_m64n128k16_ss<0>(sc, da, db, kk > 0);
    }
    wg_commit();
    wg_wait<0>();
    reg_fence<S90_BC / 2>(sc);

    if (partial) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        u32 bits = 0;
        for (u32 i = span[h].x; i < span[h].y; ++i) {
          const uint2 r = ranges[i];
          if (r.y <= k0 || r.x >= k0 + S90_BC) continue;
#pragma unroll
          for (int nt = 0; nt < S90_BC / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const u32 key = k0 + nt * 8 + t4 * 2 + e;
              if (key >= r.x && key < r.y) bits |= 1u << (nt * 2 + e);
            }
        }
#pragma unroll
        for (int nt = 0; nt < S90_BC / 8; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const u32 key = k0 + nt * 8 + t4 * 2 + e;
            if (!((bits >> (nt * 2 + e)) & 1u) || key >= w.n_keys) sc[nt * 4 + 2 * h + e] = -INFINITY;
          }
      }
    }
    // Online softmax (log2 domain); P overwrites S.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < S90_BC / 8; ++nt)
        mx = fmaxf(mx, fmaxf(sc[nt * 4 + 2 * h], sc[nt * 4 + 2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(mm[h], mx * scale_log2);
      const float mu = mn == -INFINITY ? 0.f : mn;
      const float al = f90_ex2(mm[h] - mu);
      mm[h] = mn;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < S90_BC / 8; ++nt) {
        sc[nt * 4 + 2 * h] = f90_ex2(fmaf(sc[nt * 4 + 2 * h], scale_log2, -mu));
        sc[nt * 4 + 2 * h + 1] = f90_ex2(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -mu));
        sum += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
      }
      ll[h] = ll[h] * al + sum;
#pragma unroll
      for (int i = 0; i < D / 8; ++i) {
        o[i * 4 + 2 * h] *= al;
        o[i * 4 + 2 * h + 1] *= al;
      }
    }
    // O += P V: 16 keys per step, P as the register A operand.
    u32 pa[S90_BC / 16][4];
    acc_to_a<S90_BC>(sc, pa);
    reg_fence<D / 2>(o);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < S90_BC / 16; ++kc) {
      const u64 db = wg_desc(vst + kc * 16 * 128, S90_BC * 128, 1024);
      wg_pv(o, pa[kc], db);
    }
    wg_commit();
    wg_wait<0>();
    reg_fence<D / 2>(o);
    mbar_arrive(empty_bar(s));
  }

  // Epilogue.
  const float LN2 = 0.6931471805599453f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = ll[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const u32 row = task.row0 + r_lo + 8 * h;
    if (row < w.n_rows) {
      const u64 rb = (u64)row * w.o_stride + head * D;
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        const u64 i = rb + nt * 8 + t4 * 2;
        const float x = o[nt * 4 + 2 * h] * inv, y = o[nt * 4 + 2 * h + 1] * inv;
        if (w.o_dtype == DT_F32) *(float2*)((float*)w.o + i) = make_float2(x, y);
        else if (w.o_dtype == DT_BF16) *(__nv_bfloat162*)((__nv_bfloat16*)w.o + i) = __floats2bfloat162_rn(x, y);
        else *(__half2*)((__half*)w.o + i) = __floats2half2_rn(x, y);
      }
      if (t4 == 0)
        ((float*)w.lse)[(u64)row * w.lse_stride + head] =
            l > 0.f ? (mm[h] + __log2f(l)) * LN2 : -INFINITY;
    }
  }
}
