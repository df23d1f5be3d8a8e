// Backward of many short works on Hopper (sm_90a): a 2-CTA thread-block cluster per (work, kv
// head) of a work exactly two kv tiles wide (issue 10, works1000: 1000 works of 256 x 256).
// Opt-in (DCP_CUDA_BWD_CLUSTER=1, src/cluster.rs): measured equal to the chain kernel it replaces
// for such launches (works1000 kernel 1 746.8 vs 1 747.8 us; bench/results/kernels-2026-11-29-kb14).
//
// The same tasks, step loop and epilogues as attn_bwd_sm90.cu (D 128 only; copied, not shared:
// that file's owner edits it at the same time), launched with __cluster_dims__(2, 1, 1). The
// host (src/cluster.rs `pairs_ok` / `order_pairs`, src/exec.rs) lists the tasks in pairs: task
// 2 p + r = kv tile r of pair p, both with the same (query head, q tile) list in the same order
// (every work of the launch has exactly two kv tiles whose lists name the same q tiles). CTA
// rank r of a cluster runs task 2 p + r; the two CTAs walk the same steps. Tile words carry no
// chain visit flags.
//
// dQ: no fp32 partial goes through global memory. At each step, consumer warpgroup cw of rank 1
// writes its 64 x 64 fp32 dQ block (columns 64 cw ..) straight from registers into rank 0's dQ
// staging block of warpgroup cw (the staging block's 128-byte swizzled layout; each rank-1
// thread writes where the same thread of rank 0 holds the same fragment) with
// `st.async.shared::cluster.mbarrier::complete_tx::bytes`, completing on rank 0's `xfull[cw]`,
// whose phases rank 0 arms with `arrive.expect_tx` of 16 KiB (no fence or arrival by the writer:
// the waiter that sees the phase complete sees the data, like a TMA load). Rank 0's warpgroup
// waits for it, adds its own block, writes the fp32 sum back into the staging block, and after
// the warpgroup's named barrier converts 8 columns of a row per thread into the 16-bit
// destination of the plan's converting dQ copy (16-byte stores; the host dropped that copy and
// the fp32 scratch's zero fill): fp32 accumulation, one rounding. Then every thread of rank 0's
// warpgroup fences (generic -> async proxy) and arrives on rank 1's `xempty[cw]` (a plain,
// CTA-scope release: a write-after-read hand-back), which rank 1 waits for before writing the
// next block. So the pair runs in step with at most a step of slack; the D pre-pass
// (`dcp_bwd_dd`) stays. (Release/acquire at cluster scope for these hand-offs compiled to a
// MEMBAR.ALL.GPU per arrival and a CCTL.IVALL per wait: +28 % kernel time.)
// Scheduling: persistent, one cluster per pair of SMs; rank 0's producer thread 0 claims the
// next pair (`sched[2]` = pairs) and hands it to rank 1 by st.async into rank 1's slot,
// completing on rank 1's `claim` mbarrier (armed by rank 1 for 4 bytes per phase). Both CTAs meet
// at a cluster barrier after the mbarrier init (before any remote access) and before exit (no
// CTA's shared memory goes while the peer may still write or arrive on it).
// Q and dO are loaded by each CTA (TMA; the second read of a tile hits L2: the two CTAs are in
// step; the DRAM bytes were measured not to be the limiter).

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define B90_BC 128
#define B90_BR 64
#define B90_THREADS 384
// q tiles (of B90_BR rows, the task list's unit) per consumer step: 2 at D 64, where a step of
// 128 q rows halves the per-step overhead per FLOP and gives each consumer warpgroup the dQ of
// one whole q tile over all 128 keys (one 64-key half each would add two partial dQ of the same
// rows into global memory); 1 at D 128.
#ifndef BWD_QT
#define BWD_QT (HEAD_DIM == 64 ? 2 : 1)
#endif
#define B90_SR (B90_BR * BWD_QT)  // q rows per step

static_assert(HEAD_DIM == 128, "the cluster backward is written for head dim 128");
static_assert(BWD_QT == 1 || (BWD_QT == 2 && HEAD_DIM == 64), "two q tiles per step only at D 64");

// Order of a step's elementwise work: 0 = dV issued as soon as P^T exists (before dP^T is waited
// for; the D 128 default until bench/results/kernels-2026-11-28l); 1 = S^T and dP^T both waited
// for, then P^T and dS^T formed in one pass and dV issued after (fewer live registers).
#ifndef BWD_ORDER
#define BWD_ORDER 1
#endif
// BWD_FASTDESC 1: the wgmma descriptors of a step are fixed base descriptors (computed once, in
// uniform registers: the consumer warpgroup index comes from a warp shuffle) plus constant
// offsets, instead of ~10 instructions each from the shared address per wgmma (and the step's
// query head is counted, not divided out). 0: the session-7 kernel's per-wgmma descriptors.
#ifndef BWD_FASTDESC
#define BWD_FASTDESC 1
#endif
// BWD_DV_NOWAIT 1 (D 128): dQ (of the step before) and dK are issued behind dV without waiting
// for it (the P^T registers live on until the wait for dQ); 0: dV is waited for first.
#ifndef BWD_DV_NOWAIT
#define BWD_DV_NOWAIT (HEAD_DIM == 128)
#endif

// A descriptor moved by `bytes` (the 14-bit start-address field never carries: shared-memory
// addresses are below 256 KiB).
__device__ __forceinline__ u64 desc_off(u64 d, u32 bytes) { return d + (bytes >> 4); }

// dQ staging: per consumer warpgroup 2 boxes of 64 rows x 32 fp32 (128 B, swizzled).
#define B90_DQ_WG_BYTES (2 * B90_BR * 128)

// exp2 with no range fix-up (ex2.approx: -inf -> 0).
__device__ __forceinline__ float ex2_fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// BWD_PSCALE 1 (D 128): P^T is formed times the softmax scale (log2 of it folded into each row's
// exponent offset, no extra instruction), so dS^T, and with it dQ and dK, come out scaled: no
// multiply per dQ element a step; dV is divided by the scale once per task instead. 0: P^T
// unscaled.
#ifndef BWD_PSCALE
#define BWD_PSCALE (HEAD_DIM == 128)
#endif
// BWD_LSE_GUARD 1 (D 64): a row whose LSE is -inf (no key) gets P = 0 through its exponent offset
// (+inf) as well as through the mask; 0: through the mask alone (such a row has no attended
// element, so all of its elements are masked in every tile that lists it, and full tiles have
// none).
#ifndef BWD_LSE_GUARD
#define BWD_LSE_GUARD (HEAD_DIM != 128)
#endif
// BWD_MASK_BRANCH 1 (D 128): the exponent arguments are formed first and the mask selects them
// only for partial (or absent) tiles, behind a warp-uniform branch (ptxas predicates it; the
// instruction count is 0's, the schedule measured better); 0: one select per element before its
// ex2 (full tiles with all bits set).
#ifndef BWD_MASK_BRANCH
#define BWD_MASK_BRANCH (HEAD_DIM == 128)
#endif

// P^T = exp(S^T * scale - LSE) (times `scale` with BWD_PSCALE: `loff` = -log2(scale), else 0)
// where `bits` says attended, 0 elsewhere and for rows whose LSE is -inf (no key): the masked
// argument is -inf, so one ex2 and no branch per element. `partial`: warp-uniform, some bit of
// `bits` may be clear (BWD_MASK_BRANCH).
template <int NT>
__device__ __forceinline__ void bwd_probs_fast(float* st, const u32* bits, const float* lse,
                                               float scale_log2, float loff, bool partial, int t4) {
  const float LOG2E = 1.4426950408889634f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const float2 l2 = *(const float2*)(lse + nt * 8 + t4 * 2);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float l = h ? l2.y : l2.x;
#if BWD_PSCALE
      const float lv = fmaf(l, LOG2E, loff);
#else
      const float lv = l * LOG2E;
#endif
#if BWD_LSE_GUARD
      const float L = l == -INFINITY ? INFINITY : lv;
#else
      const float L = lv;
#endif
#pragma unroll
      for (int e = h; e < 4; e += 2) {
        const float a = fmaf(st[nt * 4 + e], scale_log2, -L);
#if BWD_MASK_BRANCH
        st[nt * 4 + e] = a;
#else
        st[nt * 4 + e] = ex2_fast(((bits[nt >> 3] >> ((nt & 7) * 4 + e)) & 1u) ? a : -INFINITY);
#endif
      }
    }
  }
#if BWD_MASK_BRANCH
  if (partial) {
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (!((bits[nt >> 3] >> ((nt & 7) * 4 + e)) & 1u)) st[nt * 4 + e] = -INFINITY;
  }
#pragma unroll
  for (int i = 0; i < NT * 4; ++i) st[i] = ex2_fast(st[i]);
#endif
}

// Mask bits (bit nt * 4 + e: key_a for e < 2, key_b otherwise, row nt * 8 + 2 t4 + (e & 1)) of
// a partial tile: `rg` holds the first two ranges of each row (empty [0, 0) where the row has
// fewer), the rest are read from `ranges`.
template <int NT>
__device__ __forceinline__ u32 bwd_mask_bits_s(const uint2* ranges, const u32* rp, const uint4* rg,
                                               u32 key_a, u32 key_b, u32 n_keys, int t4) {
  u32 bits = 0;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int ql = nt * 8 + t4 * 2 + h;
      const uint4 r = rg[ql];
      bool ia = (key_a >= r.x && key_a < r.y) || (key_a >= r.z && key_a < r.w);
      bool ib = (key_b >= r.x && key_b < r.y) || (key_b >= r.z && key_b < r.w);
      const u32 b = rp[2 * ql + 1];
      for (u32 i = rp[2 * ql] + 2; i < b; ++i) {
        const uint2 x = ranges[i];
        ia |= key_a >= x.x && key_a < x.y;
        ib |= key_b >= x.x && key_b < x.y;
      }
      bits |= (u32)(ia && key_a < n_keys) << (nt * 4 + h);
      bits |= (u32)(ib && key_b < n_keys) << (nt * 4 + 2 + h);
    }
  }
  return bits;
}

__device__ __forceinline__ void cp_async8_s(u32 saddr, const void* gmem, bool valid) {
  int n = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(saddr), "l"(gmem), "r"(n) : "memory");
}

__device__ __forceinline__ void stsm_x4_trans(u32 saddr, const u32* r) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(saddr),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Adds a box of fp32 (shared memory at `ssrc`, in the map's swizzled box layout) into the
// global tensor of `tmap` (a CUtensorMap in global memory) at element coordinates (c0, c1).
__device__ __forceinline__ void tma_reduce_add_2d(const void* tmap, u32 ssrc, u32 c0, u32 c1) {
  asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.tile.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(
                   tmap),
               "r"(c0), "r"(c1), "r"(ssrc)
               : "memory");
}
__device__ __forceinline__ void tma_store_2d(const void* tmap, u32 ssrc, u32 c0, u32 c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];\n" ::"l"(tmap), "r"(c0),
               "r"(c1), "r"(ssrc)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void bulk_wait_read0() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void bulk_wait0() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }

// S^T or dP^T of one step: m64 x (q rows of the step) x k16, both operands from shared memory.
__device__ __forceinline__ void wg_ss_sr(float* acc, u64 a, u64 b, int accumulate) {
#if BWD_QT == 2
  wgmma_m64n128k16_ss<0>(acc, a, b, accumulate);
#else
  wgmma_m64n64k16_ss<0>(acc, a, b, accumulate);
#endif
}

__device__ __forceinline__ void wg_rs_d(float* acc, const u32* a, u64 b) {
#if HEAD_DIM == 128
  wgmma_m64n128k16_rs<1>(acc, a, b, 1);
#else
  wgmma_m64n64k16_rs<1>(acc, a, b, 1);
#endif
}

// dK/dV epilogue: 16-byte vector reductions (sm_90 `red.global.add.v4.f32`) at D 128; BWD_EPI_V4
// 0: the float2 atomics of the one-CTA-per-task kernel, the default at D 64, where the v4 form
// cost 5 % of the whole backward (causal 32K: 325 -> 309 TFLOP/s; 1x H200, session 6).
#ifndef BWD_EPI_V4
#define BWD_EPI_V4 (HEAD_DIM == 128)
#endif
// BWD_EPI_B16V4 1 (with BWD_EPI_V4): dK/dV stored converted into a 16-bit destination
// (B90_TASK_DKV_STORE into the plan's copy destination) as 16-byte stores, 8 consecutive columns
// per lane (lanes t4, t4 ^ 2 of one key swap 4 columns per 16), where the warp agrees (one vote
// per task: every lane's key 16-bit, stored, 16-byte aligned, or past the work's keys); 0: 8-byte
// stores, 4 columns per lane per 8 (half a 32-byte sector per row per instruction): with split
// ownership's 16-bit stores they cost causal-blockwise 32K +20 us of kernel time, and 1 gained
// blockwise +1.8 % over them, works1000 (chains) +3.3 % (bench/results/kernels-2026-11-29-kb12).
#ifndef BWD_EPI_B16V4
#define BWD_EPI_B16V4 1
#endif

__device__ __forceinline__ void red_add_v4(float* p, float a, float b, float c, float d) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d)
               : "memory");
}
__device__ __forceinline__ void st_v4(float* p, float a, float b, float c, float d) {
  asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d) : "memory");
}

// TaskDesc.pad bit 31 (src/own.rs, D 128): the task is the only one adding into its kv tile's
// dK/dV rows, which are zero (a fill the host tracked; no other work of the launch writes them,
// the tile's q-tile list is not split): it stores them instead (no read of the zeros from memory
// by the reductions, and the host drops the fill where such stores cover it).
#define B90_TASK_DKV_STORE 0x80000000u
// TaskDesc.pad bit 29 (src/own.rs `TASK_DKV_ALT`, D 128): the task adds its dK/dV into the work's
// alternate KV segments (`WorkDesc.kv_alt`: the same keys, dK/dV in the fp32 scratch) instead of
// the work's own (pointed by the host at the 16-bit destination of the plan's converting copy,
// which the tasks that store their rows write converted): a kv tile whose q-tile list is split
// over several tasks adds into fp32 rows that the host zeroes and converts (rows of those tiles
// only), so the work's other rows need neither the zero fill nor the conversion pass.
#define B90_TASK_DKV_ALT 0x20000000u


// A tile word's q tile index (bit 31: partial tile).
#define B90_TILE_INDEX 0x7fffffffu

// ---- clusters ----
__device__ __forceinline__ u32 cluster_rank() {
  u32 r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
// The shared::cluster address of shared::cta address `a` in CTA `rank` of the cluster.
__device__ __forceinline__ u32 peer_addr(u32 a, u32 rank) {
  u32 r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(a), "r"(rank));
  return r;
}
// Every thread of the cluster: release its earlier accesses, acquire the others'.
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;\n" ::: "memory");
}
// Arrival on an mbarrier of the other CTA (shared::cluster address). Release at CTA scope only
// (the default): it orders this thread's earlier shared-memory reads of a block the peer
// overwrites next (a write-after-read hand-off, no data to publish). With .release.cluster
// ptxas put a MEMBAR.ALL.GPU before every arrival (waiting for the thread's global stores), and
// .acquire.cluster waits a CCTL.IVALL after: the first version of this kernel, works1000's
// cluster kernel 2.24 ms against the chain kernel's 1.75.
__device__ __forceinline__ void mbar_arrive_remote(u32 caddr) {
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(caddr) : "memory");
}
// One arrival on `bar` (this CTA's) that also expects `bytes` more transaction bytes in the
// current phase (from the peer's st.async).
__device__ __forceinline__ void mbar_arm(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// Asynchronous stores into the other CTA's shared memory, completing their bytes on its mbarrier
// `cbar` (both shared::cluster addresses): the waiter that sees the phase complete sees the data
// (no fence, no arrival by the writer).
__device__ __forceinline__ void st_async_f2(u32 caddr, float a, float b, u32 cbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v2.f32 [%0], {%1, %2}, [%3];\n" ::"r"(caddr),
               "f"(a), "f"(b), "r"(cbar)
               : "memory");
}
__device__ __forceinline__ void st_async_u32(u32 caddr, u32 v, u32 cbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(caddr), "r"(v),
               "r"(cbar)
               : "memory");
}

// dKV row of key `key` of kv head `kvh` (concatenated KV coordinates of work `w`): its address
// (dK, dV at +D elements) and dtype; 0 past the work's keys.
// `first`: the work's first KV segment (w->kv_first, or w->kv_alt for B90_TASK_DKV_ALT tasks).
template <int D>
__device__ __forceinline__ u64 dkv_key_ptr(const WorkDesc* w, const KvSeg* segs, u32 key, u32 kvh, u32* dt,
                                           u32 first) {
  if (key >= w->n_keys || w->kv_count == 0) return 0;
  const KvSeg& sg = segs[kv_seg_index(first, w->kv_count, segs, key)];
  if (key < sg.key0 || key >= sg.key0 + sg.len) return 0;
  *dt = sg.ddtype;
  return sg.dk + ((u64)(key - sg.key0) * sg.dstride + kvh * 2 * D) * (sg.ddtype == DT_F32 ? 4 : 2);
}

// BWD_TMA 1: a one-KV-region work's K and V tile (once per task) comes by TMA tensor copies (host
// maps per work, `tensormaps.rs` `bwd_tensor_maps`: Q, the KV region, dO): producer thread 0
// announces the 2 x KVBYTES on `kv_full` (`mbarrier.expect_tx`) and issues one
// `cp.async.bulk.tensor.3d` per 64-column half of K and V (box 64 columns x 1 K/V slot x 128
// keys, 128-byte swizzle: the layout the wgmma descriptors read; keys past the region
// zero-filled) instead of 128 threads' per-row 16-byte cp.async. BWD_TMA 2: also each step's Q
// and dO q tiles (box 64 columns x 1 head x 64 rows, rows past the work's end zero-filled; at D 64
// an absent second q tile of the step keeps its cp.async zero rows). The task info, LSE, D, spans,
// tile words and masks stay cp.async, so the barriers keep their 128 arrivals plus the bytes.
// Works without maps (several KV regions, strides TMA cannot take) keep the cp.async rows. The
// consumers read these buffers only with wgmma (async proxy), so no proxy fence is needed.
// Default 2 (bench/results/kernels-2026-11-29-btma, two calls, over 0 = the cp.async kernel): D 128 BWD_TMA 2 causal 32K / 128K +3.1..3.6 / +2.0..2.5 %, causal-blockwise
// +1.2 %, onework +1.7..2.1 %, lambda +1.5..1.8 %, packed -0.3..+2.8 %, but works1000 -3.2 %
// (BWD_TMA 1 there -1.9 %; the BWD_TMA 2 kernel with no maps at all, DCP_CUDA_BWD_TMA_MIN_KEYS,
// -1.8 %: its producer code alone costs the 4-task works, not the copies); D 64 causal 32K
// +1.8 %, works1000 +-0. At D 128 the lead took the dense and packed gains over works1000's loss
// (that shape's goal is far off either way: its time is in passes over tokens).
#ifndef BWD_TMA
#define BWD_TMA 2
#endif
// Bytes of tensor maps per work (tensormaps.rs: Q, KV, dO maps of 128 bytes) and the WorkDesc.flags
// bits saying which exist.
#define BWD_MAPS 384
// BWD_TMA_PF 1: producer thread 0 prefetches the next task's maps when it claims that task (about
// two steps before their first use) instead of at the task's start. Measured with BWD_TMA 2:
// within noise of it on every shape, works1000 included (so the works1000 loss is not the tensor
// maps' first fetch). Off.
#ifndef BWD_TMA_PF
#define BWD_TMA_PF 0
#endif
static_assert(!BWD_TMA_PF, "attn_bwd_sm90.cu's map prefetch indexes tasks, not pairs: BWD_KV_PF here");
// BWD_KV_PF 1: when the producer has the next pair's index (about two steps before the task's
// end), thread 0 prefetches that task's K and V tiles into L2 (`cp.async.bulk.prefetch.tensor`)
// and its tensor maps, so the K/V load after the consumers release K/V (not double buffered)
// finds them in L2.
#ifndef BWD_KV_PF
#define BWD_KV_PF 0
#endif
#define B90_TMA_Q 1u
#define B90_TMA_KV 2u
#define B90_TMA_DO 16u

// BWD_TMA: transaction bytes the current phase of `bar` waits for (no arrival).
__device__ __forceinline__ void b90_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// BWD_TMA: box (c0, c1, c2) of the 3-D tensor of map `tmap` (a CUtensorMap in global memory)
// into shared memory at `dst`, completing its bytes on `bar`.
__device__ __forceinline__ void b90_tma_3d(u32 dst, u64 tmap, int c0, int c1, int c2, u32 bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(tmap), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void b90_prefetch_map(u64 tmap) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
}

// Registers per producer / consumer thread after setmaxnreg (sm90.cuh's split unless set).
// D 64 (two q tiles per step): 24 / 240 (+5 % over 56 / 224 on causal 32K; the producer spills
// 48 bytes of its loop state, off the critical path).
#ifndef BWD_PROD_REGS
#define BWD_PROD_REGS (BWD_QT == 2 ? 24 : SM90_PROD_REGS)
#endif
#ifndef BWD_CONS_REGS
#define BWD_CONS_REGS (BWD_QT == 2 ? 240 : SM90_CONS_REGS)
#endif
static_assert(128 * BWD_PROD_REGS + 256 * BWD_CONS_REGS <= 384 * 168,
              "setmaxnreg split exceeds the registers the CTA is launched with");

// Per-task info slot in shared memory (two, alternating by task): the TaskDesc at 0 (tiles_n =
// ~0: no task left), the WorkDesc at 32. (128 bytes until session 10: the WorkDesc's last 8
// bytes, pad0/pad1, landed on the next slot's task and work index, or on the first mbarrier.)
#define B90_INFO 160
static_assert(32 + sizeof(WorkDesc) <= B90_INFO, "the per-task info slot holds the WorkDesc");

// TaskDesc.pad bit 30 (src/own.rs `TASK_DQ_CONV`, D 128): the work's dQ is converted by its

// The converting dQ copy's destination per work (src/exec.rs DqConv; the counters are unused).
struct DqConv {
  u64 dst;      // (row 0, head 0) of the work's rows in the copy's destination
  u32 stride;   // elements per row of the destination
  u32 dtype;
  u32 cnt_off;  // counters: cnt_off + (q tile * q_heads + head) * 2 + half
  u32 exp_off;  // expected arrivals per q tile: dq_expect[exp_off + q tile]
};

// Two consecutive elements (element index i, even) of a buffer of dtype dt.
__device__ __forceinline__ void st2_dt(void* p, u64 i, u32 dt, float a, float b) {
  if (dt == DT_F32) {
    asm volatile("st.global.v2.f32 [%0], {%1, %2};\n" ::"l"((float*)p + i), "f"(a), "f"(b) : "memory");
    return;
  }
  u32 x;
  if (dt == DT_BF16) {
    const __nv_bfloat162 u = __floats2bfloat162_rn(a, b);
    x = *(const u32*)&u;
  } else {
    const __half2 u = __floats2half2_rn(a, b);
    x = *(const u32*)&u;
  }
  asm volatile("st.global.b32 [%0], %1;\n" ::"l"((unsigned short*)p + i), "r"(x) : "memory");
}

// Four consecutive elements (element index i, a multiple of 4) of a buffer of dtype dt.
__device__ __forceinline__ void st4_dt(void* p, u64 i, u32 dt, float a, float b, float c, float d) {
  if (dt == DT_F32) {
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"((float*)p + i), "f"(a), "f"(b), "f"(c), "f"(d)
                 : "memory");
    return;
  }
  u32 x, y;
  if (dt == DT_BF16) {
    const __nv_bfloat162 u = __floats2bfloat162_rn(a, b), v = __floats2bfloat162_rn(c, d);
    x = *(const u32*)&u;
    y = *(const u32*)&v;
  } else {
    const __half2 u = __floats2half2_rn(a, b), v = __floats2half2_rn(c, d);
    x = *(const u32*)&u;
    y = *(const u32*)&v;
  }
  asm volatile("st.global.v2.b32 [%0], {%1, %2};\n" ::"l"((unsigned short*)p + i), "r"(x), "r"(y) : "memory");
}

extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_cluster_sm90(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
                  const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
                  const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges,
                  const float* __restrict__ dd, u32 group, float scale_log2, float scale,
                  const unsigned char* __restrict__ dq_maps, u32* sched, const u32* __restrict__ tmask,
                  const u32* __restrict__ masks, const DqConv* __restrict__ dq_conv, u32* dq_cnt,
                  const u32* __restrict__ dq_expect, const unsigned char* __restrict__ bmaps) {
  constexpr int D = HEAD_DIM;
  constexpr int CH = D / 8;
  constexpr u32 KVBYTES = B90_BC * D * 2;   // K (or V) tile
  constexpr int QT = BWD_QT, SR = B90_SR;
  constexpr u32 QBYTES = SR * D * 2;        // one Q (or dO) stage
  constexpr u32 DSBYTES = SR * B90_BC * 2;
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const u32 raw = smem_u32(smem_raw);
  const u32 base = (raw + 1023u) & ~1023u;
  unsigned char* gbase = smem_raw + (base - raw);  // generic pointer of `base`
  const u32 sK = base;
  const u32 sV = sK + KVBYTES;
  const u32 sQ = sV + KVBYTES;                 // [2][D/64][SR rows][128 B]
  const u32 sdO = sQ + 2 * QBYTES;             // same
  const u32 sdS = sdO + 2 * QBYTES;            // [2][2 key blocks][SR rows][128 B]
  // dQ staging: [2 consumer wgs][2 column blocks of 32][64 rows][128 B], 128-byte swizzled (the
  // layout of the tensor maps' boxes; 1024-byte aligned like every tile above).
  const u32 sdq = sdS + 2 * DSBYTES;
  // Per stage: lse[SR], dd[SR], span[SR][2], the first two ranges of each row [SR][16 B] (partial
  // tiles; empty [0, 0) where a row has fewer; or the tile's precomputed mask, 1 KiB per q tile)
  // and per q tile its tile word and mask index (8 bytes each).
  const u32 small = sdq + 2 * B90_DQ_WG_BYTES;
  constexpr u32 SMALL = SR * 32 + 16;
  constexpr u32 RG_OFF = SR * 16, WORD_OFF = SR * 32;
  const u32 sinfo = small + 2 * SMALL;         // [2][B90_INFO]
  // full[2], empty[2], kv_full, ds_full[2], ds_empty[2], kv_empty, 2 task-index slots, xfull[2],
  // xempty[2], claim (128 bytes: the host's layout).
  const u32 bars = sinfo + 2 * B90_INFO;
  auto full_bar = [&](int s) { return bars + 8u * s; };
  auto empty_bar = [&](int s) { return bars + 8u * (2 + s); };
  const u32 kv_full = bars + 32;
  auto ds_full = [&](u32 b) { return bars + 40 + 8u * b; };
  auto ds_empty = [&](u32 b) { return bars + 56 + 8u * b; };
  const u32 kv_empty = bars + 72;
  volatile u32* slot = (volatile u32*)(gbase + (bars + 80u - base));
  // Cluster: rank 1's dQ blocks in rank 0's staging (xfull, rank 0's barrier), rank 0 done
  // reading them (xempty, rank 1's), the next pair's index in rank 1's slot (claim, rank 1's).
  auto xfull = [&](u32 c) { return bars + 88 + 8u * c; };
  auto xempty = [&](u32 c) { return bars + 104 + 8u * c; };
  const u32 claim_bar = bars + 120;
  const u32 rank = cluster_rank();

  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;

  if (tid == 0) {
    for (int s = 0; s < 2; ++s) {
      mbar_init(full_bar(s), 128);
      mbar_init(empty_bar(s), 256);
      mbar_init(ds_full(s), 256);   // every consumer thread, after its dS stores
      mbar_init(ds_empty(s), 256);  // every consumer thread, after its dQ wgmma read the buffer
    }
    mbar_init(kv_full, 128);   // every producer thread, once its K/V rows (and the info) landed
    mbar_init(kv_empty, 256);  // every consumer thread, after the task's last wgmma read K/V
    for (int c = 0; c < 2; ++c) {
      mbar_init(xfull(c), 1);     // rank 0: its own warpgroup c's arming + rank 1's st.async bytes
      mbar_init(xempty(c), 128);  // rank 1: every thread of rank 0's warpgroup c, after its reads
    }
    mbar_init(claim_bar, 1);  // rank 1: its own arming + rank 0's st.async of the pair index
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    // Phase 0 armed: a 64 x 64 fp32 block per warpgroup (rank 0), one index (rank 1).
    if (rank == 0) {
      for (int c = 0; c < 2; ++c) mbar_arm(xfull(c), B90_BR * 64 * 4);
    } else {
      mbar_arm(claim_bar, 4);
    }
  }
  // Both CTAs' barriers initialised before either touches the other's shared memory.
  cluster_sync_all();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<BWD_PROD_REGS>();
    const int pt = tid, pw = pt >> 5;
    const u32 n_tasks = sched[2];
    // cur: pair index (`n_tasks` counts pairs; this CTA runs task 2 cur + rank).
    u32 cur = blockIdx.x >> 1, sg = 0;
    for (u32 tq = 0;; ++tq) {
      u32 nxt = 0;
      constexpr bool linked = false;
      const u32 info = sinfo + (tq & 1) * B90_INFO;
      if (!linked && cur >= n_tasks) {
        // No task left: once the consumers are done with the last one, tell them (tiles_n = ~0).
        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);
        if (pt == 0) *(volatile u32*)(gbase + (info + 16u - base)) = 0xffffffffu;
        mbar_arrive(kv_full);
        break;
      }
      const TaskDesc task = tasks[2 * cur + rank];
      const WorkDesc& w = works[task.work];
      const u32 kvh = task.head;
      const u32 k0 = task.row0 * B90_BC;
      const u32* my_tiles = tiles + task.tiles_off;
      const u32 n_steps = group * task.tiles_n;
      const u32 n_pairs = (n_steps + QT - 1) / QT;  // consumer steps (QT q tiles each)
      constexpr bool rev = false;
      const elem_t* qbase = (const elem_t*)w.q;
      const elem_t* dobase = (const elem_t*)w.dout;
#if BWD_TMA
      // This work's maps: Q at bmaps + BWD_MAPS work, its KV region 128 bytes further, dO 256.
      const u32 wtma = w.flags;
      const u64 qmap = (u64)(bmaps + (u64)task.work * BWD_MAPS), kvmap = qmap + 128;
      const bool kv_tma = w.kv_count == 1 && (wtma & B90_TMA_KV);
#if BWD_TMA >= 2
      const u64 domap = qmap + 256;
      const bool qdo_tma = (wtma & (B90_TMA_Q | B90_TMA_DO)) == (B90_TMA_Q | B90_TMA_DO);
      if (pt == 0 && qdo_tma) {
        b90_prefetch_map(qmap);
        b90_prefetch_map(domap);
      }
#endif
      if (pt == 0 && kv_tma) b90_prefetch_map(kvmap);
#endif
      // K, V and the task's info, once the consumers' last wgmma of the task before has read K/V
      // (after this task's first Q/dO stage is on its way).
      auto load_kv = [&]() {
        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);
        if (pt < 3) cp_async8_s(info + 8 * pt, (const char*)(tasks + 2 * cur + rank) + 8 * pt, true);
        else if (pt < 3 + (int)sizeof(WorkDesc) / 8)
          cp_async8_s(info + 32 + 8 * (pt - 3), (const char*)&w + 8 * (pt - 3), true);
#if BWD_TMA
        if (kv_tma) {
          if (pt == 0) {
            b90_expect_tx(kv_full, 2 * KVBYTES);
#pragma unroll
            for (int h = 0; h < D / 64; ++h) {
              b90_tma_3d(sK + h * (B90_BC * 128), kvmap, 64 * h, 2 * kvh, k0, kv_full);
              b90_tma_3d(sV + h * (B90_BC * 128), kvmap, 64 * h, 2 * kvh + 1, k0, kv_full);
            }
          }
        } else
#endif
          warp_rows_async<D, true>(kv_key_ptr<D>(w, segs, k0 + pt, kvh), lane, 32 * pw, sK, sV,
                                   B90_BC * 128, qbase);
        mbar_arrive_cp_async(kv_full);
      };
      // Q, dO, LSE, D, spans, tile words (and the first two ranges per row of partial tiles) of
      // step p (q tiles QT p .. QT p + QT - 1 of the list; past its end zero rows) into stage
      // sg % 2.
      auto load_step = [&](u32 p) {
        const int s = sg & 1;
        if (sg >= 2) mbar_wait_guarded(empty_bar(s), ((sg >> 1) - 1) & 1);
        const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
        constexpr bool dd_here = false;
#if BWD_TMA >= 2
        // Q and dO of each present q tile of the step: 2 x 64 rows x D, by tensor copies (a D
        // step: Q only).
        if (qdo_tma && pt == 0)
          b90_expect_tx(full_bar(s), ((QT == 1 || QT * p + 1 < n_steps) ? QT : 1) * (dd_here ? 2u : 4u) * B90_BR * D);
#endif
#pragma unroll
        for (int h = 0; h < QT; ++h) {
          const u32 t = rev ? n_steps - 1 - (QT * p + h) : QT * p + h;
          const bool tv = QT == 1 || t < n_steps;
          const u32 tt = tv ? t : 0;
          const u32 jj = tt / task.tiles_n, it = tt - jj * task.tiles_n;
          const u32 head = kvh * group + jj;
          const u32 q0 = (my_tiles[it] & B90_TILE_INDEX) * B90_BR;
#if BWD_TMA >= 2
          if (qdo_tma && tv) {
            if (pt == 0) {
#pragma unroll
              for (int c = 0; c < D / 64; ++c) {
                const u32 o = c * (SR * 128) + h * (B90_BR * 128);
                b90_tma_3d(qs + o, qmap, 64 * c, head, q0, full_bar(s));
                b90_tma_3d(dos + o, domap, 64 * c, head, q0, full_bar(s));
              }
            }
            continue;
          }
#endif
          // Thread pt: chunk c of rows r0 + RPJ j (RPJ a multiple of 8: one swizzle phase).
          constexpr int RPJ = 128 / CH;
          const int r0 = pt / CH, c = pt % CH;
          const u32 off = (c >> 3) * (SR * 128) + sw128(r0, c) + h * (B90_BR * 128);
          const u32 nr = w.n_rows, qst = w.q_stride, dst = w.do_stride;
          const elem_t* qp = qbase + (u64)(q0 + r0) * qst + head * D + c * 8;
          const elem_t* dp = dobase + (u64)(q0 + r0) * dst + head * D + c * 8;
#pragma unroll
          for (int j = 0; j < B90_BR / RPJ; ++j) {
            const bool ok = tv && q0 + r0 + RPJ * j < nr;
            cp_async16_s(qs + off + j * RPJ * 128, ok ? qp : qbase, ok);
            if (!dd_here) cp_async16_s(dos + off + j * RPJ * 128, ok ? dp : dobase, ok);
            qp += (u64)RPJ * qst;
            dp += (u64)RPJ * dst;
          }
        }
        if (pt < SR) {
          // Row pt of the step: row pt % 64 of q tile pt / 64.
          const u32 h = QT == 2 ? (u32)pt >> 6 : 0u, pr = (u32)pt & (B90_BR - 1);
          const u32 t = rev ? n_steps - 1 - (QT * p + h) : QT * p + h;
          const bool tv = QT == 1 || t < n_steps;
          const u32 tt = tv ? t : 0;
          const u32 jj = tt / task.tiles_n, it = tt - jj * task.tiles_n;
          const u32 head = kvh * group + jj;
          const u32 q0 = (my_tiles[it] & B90_TILE_INDEX) * B90_BR;
          const u32 row = q0 + pr;
          const bool ok = tv && row < w.n_rows;
          const u64 rr = ok ? row : 0;
          const u32 sm = small + s * SMALL;
          cp_async4_s(sm + pt * 4, (const float*)w.lse + rr * w.lse_stride + head, ok);
          cp_async4_s(sm + SR * 4 + pt * 4, dd + w.dd_off + rr * w.q_heads + head, ok);
          cp_async4_s(sm + SR * 8 + pt * 8, row_ptr + w.row_off + rr, ok);
          cp_async4_s(sm + SR * 8 + pt * 8 + 4, row_ptr + w.row_off + rr + 1, ok);
          if (pr == 0) {
            cp_async4_s(sm + WORD_OFF + 8 * h, my_tiles + it, true);
            cp_async4_s(sm + WORD_OFF + 8 * h + 4, tmask + task.tiles_off + it, true);
          }
          if (tv && (my_tiles[it] >> 31)) {
            // The tile's precomputed mask (1 KiB, the consumers' bit order), else the first two
            // ranges of each row.
            const u32 mi = tmask[task.tiles_off + it];
            if (mi != NO_TILE_MASK) {
              cp_async16_s(sm + RG_OFF + pt * 16, masks + (u64)mi * 256 + 4 * pr, true);
            } else {
              const u32 a = ok ? row_ptr[w.row_off + rr] : 0, b = ok ? row_ptr[w.row_off + rr + 1] : 0;
              cp_async8_s(sm + RG_OFF + pt * 16, ranges + (a < b ? a : 0), a < b);
              cp_async8_s(sm + RG_OFF + pt * 16 + 8, ranges + (a + 1 < b ? a + 1 : 0), a + 1 < b);
            }
          }
        }
        mbar_arrive_cp_async(full_bar(s));
        ++sg;
      };
      if (n_pairs > 0) load_step(0);
      load_kv();
      for (u32 p = 1; p < n_pairs; ++p) load_step(p);
      // The next pair is claimed only now, with the consumers about two steps from the end of
      // this one (attn_bwd_sm90.cu: longest-first balancing), by rank 0, and handed to rank 1
      // through its slot (the one sched_share_next fills next) and its claim barrier.
      if (pt == 0) {
        if (rank == 0) {
          nxt = (gridDim.x >> 1) + atomicAdd(sched, 1u);
          st_async_u32(peer_addr(bars + 80u + 4u * ((tq + 1) & 1), 1), nxt, peer_addr(claim_bar, 1));
          slot[(tq + 1) & 1] = nxt;
        } else {
          mbar_wait_guarded(claim_bar, tq & 1);
          mbar_arm(claim_bar, 4);  // the next phase
        }
      }
      // The pair index for all producer threads (rank 0: thread 0 wrote it above; rank 1: rank 0's
      // st.async, which thread 0 saw land): the slot is rewritten two tasks later at the earliest.
      named_bar(1, 128);
      cur = slot[(tq + 1) & 1];
#if BWD_KV_PF
      // The next task's K and V tiles into L2 (and its maps), about two steps before its load_kv.
      if (pt == 0 && cur < n_tasks) {
        const TaskDesc& nt = tasks[2 * cur + rank];
        const WorkDesc& nw = works[nt.work];
        const u64 nm = (u64)(bmaps + (u64)nt.work * BWD_MAPS);
        if (nw.kv_count == 1 && (nw.flags & B90_TMA_KV)) {
          b90_prefetch_map(nm + 128);
#pragma unroll
          for (int h = 0; h < D / 64; ++h)
#pragma unroll
            for (int m = 0; m < 2; ++m)
              asm volatile("cp.async.bulk.prefetch.tensor.3d.L2.global.tile [%0, {%1, %2, %3}];\n" ::"l"(nm + 128),
                           "r"(64 * h), "r"(2 * nt.head + m), "r"(nt.row0 * B90_BC)
                           : "memory");
        }
        if ((nw.flags & (B90_TMA_Q | B90_TMA_DO)) == (B90_TMA_Q | B90_TMA_DO)) {
          b90_prefetch_map(nm);
          b90_prefetch_map(nm + 256);
        }
      }
#endif
    }
    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else {
  // ---------------- consumers ----------------
  setmaxnreg_inc<BWD_CONS_REGS>();
#if BWD_FASTDESC
  const int cw = __shfl_sync(0xffffffffu, wg - 1, 0);  // keys 64*cw .. 64*cw+63 of the kv tile
#else
  const int cw = wg - 1;                 // keys 64*cw .. 64*cw+63 of the kv tile
#endif
  const int wq = (tid >> 5) & 3;
  const int g = lane >> 2, t4 = lane & 3;
  const u32 kl_a = 64 * cw + 16 * wq + g;  // this thread's keys (in the tile): kl_a, kl_a + 8
  // BWD_PSCALE: P^T (and so dS^T, dQ, dK) carries the softmax scale, dV is divided by it at the end.
#if BWD_PSCALE
  const float loff = -log2f(scale), dk_f = 1.f, dv_f = 1.f / scale;
#define DQ_SCALED(x) (x)
#else
  const float loff = 0.f, dk_f = scale, dv_f = 1.f;
#define DQ_SCALED(x) ((x) * scale)
#endif

  // dQ phase: rows, columns and keys of this warpgroup (D 128: columns 64 cw.. over all keys;
  // D 64 with two q tiles per step: all columns of q tile cw over all keys; D 64 with one: all
  // columns over its own 64 keys).
  constexpr bool DQ_ALL_KEYS = D == 128 || QT == 2;
  constexpr int DQ_KSTEPS = DQ_ALL_KEYS ? B90_BC / 16 : 64 / 16;
  const u32 dq_col0 = D == 128 ? 64 * cw : 0;
  const u32 dq_kstep0 = DQ_ALL_KEYS ? 0 : 4 * cw;
  const u32 dq_row0 = QT == 2 ? B90_BR * cw : 0;
// B of dV += P^T dO and dK += dS^T Q (dO, Q of stage s, MN-major), k step kc.
#if BWD_FASTDESC
#define DESC_DV(kc) desc_off(do_bt0, s * QBYTES + (kc) * 16 * 128)
#define DESC_DK(kc) desc_off(q_bt0, s * QBYTES + (kc) * 16 * 128)
#else
#define DESC_DV(kc) wg_desc(dos + (kc) * 16 * 128, SR * 128, 1024)
#define DESC_DK(kc) wg_desc(qs + (kc) * 16 * 128, SR * 128, 1024)
#endif
#if BWD_FASTDESC
  // Base descriptors: S^T, dP^T A (K, V rows of this warpgroup, K-major); their B (Q, dO stage
  // 0, K-major); dV, dK B (dO, Q stage 0, MN-major); dQ A (dS buffer 0, K-major) and B (K,
  // MN-major).
  const u64 k_a0 = wg_desc(sK + 64 * cw * 128, 16, 1024), v_a0 = wg_desc(sV + 64 * cw * 128, 16, 1024);
  const u64 q_b0 = wg_desc(sQ, 16, 1024), do_b0 = wg_desc(sdO, 16, 1024);
  const u64 q_bt0 = wg_desc(sQ, SR * 128, 1024), do_bt0 = wg_desc(sdO, SR * 128, 1024);
  const u64 ds_a0 = wg_desc(sdS + dq_row0 * 128 + (dq_kstep0 >> 2) * (SR * 128), 16, 1024);
  const u64 k_bt0 =
      wg_desc(sK + dq_kstep0 * 16 * 128 + (dq_col0 >> 6) * (B90_BC * 128), B90_BC * 128, 1024);
#endif
  // dQ = dS K of the dS in buffer `buf` (A: dS K-major; B: K MN-major, keys x d); one group.
  auto dq_mma = [&](float* dq, u32 buf) {
    wg_fence();
#if !BWD_FASTDESC
    const u32 dsall = sdS + buf * DSBYTES + dq_row0 * 128;
#endif
#pragma unroll
    for (int i = 0; i < DQ_KSTEPS; ++i) {
#if BWD_FASTDESC
      const u64 a = desc_off(ds_a0, buf * DSBYTES + (i >> 2) * (SR * 128) + (i & 3) * 32);
      const u64 b = desc_off(k_bt0, i * 16 * 128);
#else
      const u32 kc = dq_kstep0 + i;
      const u64 a = wg_desc(dsall + (kc >> 2) * (SR * 128) + (kc & 3) * 32, 16, 1024);
      const u64 b = wg_desc(sK + kc * 16 * 128 + (dq_col0 >> 6) * (B90_BC * 128), B90_BC * 128, 1024);
#endif
      wgmma_m64n64k16_ss<1>(dq, a, b, i > 0);
    }
    wg_commit();
  };

  u32 gt = 0;  // steps of this CTA so far (stages, dS buffers and their barrier phases)
  u32 n_x = 0;  // dQ blocks of this warpgroup exchanged so far (xfull / xempty phases)
  for (u32 tq = 0;; ++tq) {
    mbar_wait(kv_full, tq & 1);
    const unsigned char* info_g = gbase + (sinfo + (tq & 1) * B90_INFO - base);
    const TaskDesc* tk = (const TaskDesc*)info_g;
    const u32 tiles_n = tk->tiles_n;
    if (tiles_n == 0xffffffffu) break;
    fence_proxy_async();
    const WorkDesc* wk = (const WorkDesc*)(info_g + 32);
    const u32 kvh = tk->head;
    constexpr bool rev = false;
    const u32 key_a = tk->row0 * B90_BC + kl_a, key_b = key_a + 8;
    const u32 n_steps = group * tiles_n;
    const u32 n_pairs = (n_steps + QT - 1) / QT;  // steps of QT q tiles
    const u32 n_keys = wk->n_keys, n_rows = wk->n_rows;

    // dQ of step u (q tile at row q0, query head `head`), rows 16 wq + g (+8), columns
    // dq_col0 + nt * 8 + 2 t4 (this thread's fragment): rank 1 writes it into rank 0's staging
    // block of this warpgroup (the same thread of rank 0 holds the same fragment), rank 0 adds
    // its own and writes the sum converted into the copy's destination (see the top).
    auto dq_out = [&](u32 q0, u32 head, const float* dq) {
      const u32 k = n_x++;
      const u32 sblk = sdq + cw * (2 * B90_BR * 128);
      if (rank != 0) {
        // Rank 0's threads are done reading the block before.
        if (k >= 1) mbar_wait(xempty(cw), (k - 1) & 1);
        const u32 rb = peer_addr(sblk, 0), rbar = peer_addr(xfull(cw), 0);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 r = 16 * wq + g + 8 * h;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
            st_async_f2(rb + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) + (t4 & 1) * 8,
                        DQ_SCALED(dq[nt * 4 + 2 * h]), DQ_SCALED(dq[nt * 4 + 2 * h + 1]), rbar);
        }
        return;
      }
      mbar_wait(xfull(cw), k & 1);
      // The next phase armed (its bytes come only after this warpgroup's xempty arrivals below).
      if ((tid & 127) == 0) mbar_arm(xfull(cw), B90_BR * 64 * 4);
      const DqConv cv = dq_conv[tk->work];
      unsigned char* sdq_g = gbase + (sblk - base);
      const u32 xe = peer_addr(xempty(cw), 1);
      if (cv.dtype != DT_F32 && ((cv.dst & 15) | (cv.stride & 7)) == 0) {
        // The sum back into the block (where this thread read rank 1's part), then 8 columns of
        // a row per thread and 16-byte store (attn_bwd_sm90.cu BWD_CHAIN_ST16).
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 r = 16 * wq + g + 8 * h;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            float2* sp = (float2*)(sdq_g + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) +
                                   (t4 & 1) * 8);
            const float2 part = *sp;
            *sp = make_float2(part.x + DQ_SCALED(dq[nt * 4 + 2 * h]), part.y + DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
          }
        }
        named_bar(2 + cw, 128);
        // (t read again here: derived from `tid`, ptxas hoisted the staging addresses out of the
        // step loop and spilled them; attn_bwd_sm90.cu.)
        u32 t;
        asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));
        t &= 127;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const u32 idx = t + 128 * kk, r = idx >> 3, oc = idx & 7, row = q0 + r;
          const unsigned char* src = sdq_g + (oc >> 2) * (B90_BR * 128);
          const float4 a = *(const float4*)(src + sw128(r, 2 * (oc & 3)));
          const float4 b = *(const float4*)(src + sw128(r, 2 * (oc & 3) + 1));
          u32 pk[4];
          if (cv.dtype == DT_BF16) {
            const __nv_bfloat162 x0 = __floats2bfloat162_rn(a.x, a.y), x1 = __floats2bfloat162_rn(a.z, a.w);
            const __nv_bfloat162 x2 = __floats2bfloat162_rn(b.x, b.y), x3 = __floats2bfloat162_rn(b.z, b.w);
            pk[0] = *(const u32*)&x0;
            pk[1] = *(const u32*)&x1;
            pk[2] = *(const u32*)&x2;
            pk[3] = *(const u32*)&x3;
          } else {
            const __half2 x0 = __floats2half2_rn(a.x, a.y), x1 = __floats2half2_rn(a.z, a.w);
            const __half2 x2 = __floats2half2_rn(b.x, b.y), x3 = __floats2half2_rn(b.z, b.w);
            pk[0] = *(const u32*)&x0;
            pk[1] = *(const u32*)&x1;
            pk[2] = *(const u32*)&x2;
            pk[3] = *(const u32*)&x3;
          }
          if (row < n_rows)
            asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(
                             (unsigned short*)cv.dst + (u64)row * cv.stride + head * D + dq_col0 + 8 * oc),
                         "r"(pk[0]), "r"(pk[1]), "r"(pk[2]), "r"(pk[3])
                         : "memory");
        }
        fence_proxy_async();     // these generic accesses before the peer's st.async writes
        mbar_arrive_remote(xe);  // this thread's reads of the block are done
        return;
      }
      // Any destination dtype: 2 columns per store straight from the registers.
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const u32 r = 16 * wq + g + 8 * h, row = q0 + r;
        const u64 ob = (u64)row * cv.stride + head * D + dq_col0 + t4 * 2;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const float2 part =
              *(const float2*)(sdq_g + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) + (t4 & 1) * 8);
          if (row < n_rows)
            st2_dt((void*)cv.dst, ob + nt * 8, cv.dtype, part.x + DQ_SCALED(dq[nt * 4 + 2 * h]),
                   part.y + DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
        }
      }
      fence_proxy_async();
      mbar_arrive_remote(xe);
    };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

    // The step before (its dQ is computed a step late): this warpgroup's q tile of it.
    u32 prev_q0 = 0, prev_head = 0;
    bool prev_ok = true;
    u32 head_j = 0, head_i = 0;  // BWD_FASTDESC: query head and list index of the next q tile
    // S^T = K Q^T and dP^T = V dO^T of the step in stage g % 2 (two groups), once it is full.
    float st[SR / 2], dpt[SR / 2];
    auto wait_full = [&](u32 g) {
      mbar_wait(full_bar(g & 1), (g >> 1) & 1);
      fence_proxy_async();
    };
    auto issue_sdp = [&](u32 g) {
      const int s = g & 1;
#if !BWD_FASTDESC
      const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
#endif
      wg_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#if BWD_FASTDESC
        const u64 da = desc_off(k_a0, (kk >> 2) * (B90_BC * 128) + (kk & 3) * 32);
        const u64 db = desc_off(q_b0, s * QBYTES + (kk >> 2) * (SR * 128) + (kk & 3) * 32);
#else
        const u64 da = wg_desc(sK + (kk >> 2) * (B90_BC * 128) + 64 * cw * 128 + (kk & 3) * 32, 16, 1024);
        const u64 db = wg_desc(qs + (kk >> 2) * (SR * 128) + (kk & 3) * 32, 16, 1024);
#endif
        wg_ss_sr(st, da, db, kk > 0);
      }
      wg_commit();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
#if BWD_FASTDESC
        const u64 da = desc_off(v_a0, (kk >> 2) * (B90_BC * 128) + (kk & 3) * 32);
        const u64 db = desc_off(do_b0, s * QBYTES + (kk >> 2) * (SR * 128) + (kk & 3) * 32);
#else
        const u64 da = wg_desc(sV + (kk >> 2) * (B90_BC * 128) + 64 * cw * 128 + (kk & 3) * 32, 16, 1024);
        const u64 db = wg_desc(dos + (kk >> 2) * (SR * 128) + (kk & 3) * 32, 16, 1024);
#endif
        wg_ss_sr(dpt, da, db, kk > 0);
      }
      wg_commit();
    };
    for (u32 p = 0; p < n_pairs; ++p, ++gt) {
      const int s = gt & 1;
      wait_full(gt);
      const unsigned char* small_g = gbase + (small + s * SMALL - base);
      // Per q tile h of the step: tile word (first row, partial flag); past the list's end
      // (QT = 2, odd number of tiles) the tile is absent. This warpgroup's dQ tile: my_*.
      u32 words[QT];
      bool present[QT];
      u32 my_q0 = 0, my_head = 0;
      bool my_ok = true;
#pragma unroll
      for (int h = 0; h < QT; ++h) {
        const u32 t = QT * p + h;
        present[h] = QT == 1 || t < n_steps;
        words[h] = *(const u32*)(small_g + WORD_OFF + 8 * h);
        if (QT == 1 || h == cw) {
          my_q0 = (words[h] & B90_TILE_INDEX) * B90_BR;
          my_head = BWD_FASTDESC ? kvh * group + (rev ? group - 1 - head_j : head_j)
                                 : kvh * group + (rev ? n_steps - 1 - t : t) / tiles_n;
          my_ok = present[h];
        }
        if (BWD_FASTDESC && ++head_i == tiles_n) {
          head_i = 0;
          ++head_j;
        }
      }
#if !BWD_FASTDESC
      const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
#endif
      const float* lse_s = (const float*)small_g;
      issue_sdp(gt);
      const float* dd_s = lse_s + SR;
      const u32* rp_s = (const u32*)(dd_s + SR);

      // Mask bits (bit nt * 4 + e of word h: columns 64 h ..), partial tiles only: the
      // precomputed word of this thread (`tilemask.rs`), else from the ranges; 0 for an absent
      // tile.
      u32 pbits[QT];
      bool partial_any = false;  // warp-uniform: some tile of the step is partial or absent
#pragma unroll
      for (int h = 0; h < QT; ++h) partial_any |= !present[h] || (words[h] >> 31);
      auto tile_bits = [&]() {
#pragma unroll
        for (int h = 0; h < QT; ++h)
          pbits[h] = !present[h] ? 0u
                     : !(words[h] >> 31) ? 0xffffffffu
                     : *(const u32*)(small_g + WORD_OFF + 8 * h + 4) != NO_TILE_MASK
                         ? ((const u32*)(small_g + RG_OFF + 1024 * h))[tid - 128]
                         : bwd_mask_bits_s<B90_BR / 8>(ranges, rp_s + 2 * B90_BR * h,
                                                       (const uint4*)(small_g + RG_OFF) + B90_BR * h, key_a,
                                                       key_b, n_keys, t4);
      };
#if BWD_ORDER == 0
      wg_wait<1>();
      reg_fence<SR / 2>(st);
      tile_bits();
      // P^T (LSE = -inf rows: P = 0).
      bwd_probs_fast<SR / 8>(st, pbits, lse_s, scale_log2, loff, partial_any, t4);
      u32 pa[SR / 16][4];
      acc_to_a<SR>(st, pa);
      // dV += P^T dO now, on the tensor cores while dP^T completes and dS^T is formed.
      reg_fence<D / 2>(dv);
      wg_fence();
#pragma unroll
      for (int kc = 0; kc < SR / 16; ++kc)
        wg_rs_d(dv, pa[kc], DESC_DV(kc));
      wg_commit();
      wg_wait<1>();  // dP^T
      reg_fence<SR / 2>(dpt);
#else
      tile_bits();
      wg_wait<0>();  // S^T and dP^T
      reg_fence<SR / 2>(st);
      reg_fence<SR / 2>(dpt);
      bwd_probs_fast<SR / 8>(st, pbits, lse_s, scale_log2, loff, partial_any, t4);
      u32 pa[SR / 16][4];
      acc_to_a<SR>(st, pa);
#endif
      // dS^T = P^T (dP^T - D), into registers (A of dK) and shared memory (A of dQ, K-major:
      // element (row ql, key kl) of key block kl / 64).
      const u32 buf = gt & 1;
      const u32 dsb = sdS + buf * DSBYTES + cw * (SR * 128);
#pragma unroll
      for (int nt = 0; nt < SR / 8; ++nt) {
        const float2 d2 = *(const float2*)(dd_s + nt * 8 + t4 * 2);
#pragma unroll
        for (int e = 0; e < 4; ++e)
          st[nt * 4 + e] = st[nt * 4 + e] * (dpt[nt * 4 + e] - ((e & 1) ? d2.y : d2.x));
      }
      u32 da_[SR / 16][4];
      acc_to_a<SR>(st, da_);
#if BWD_ORDER != 0
      // dV += P^T dO, on the tensor cores while dS^T is stored.
      reg_fence<D / 2>(dv);
      wg_fence();
#pragma unroll
      for (int kc = 0; kc < SR / 16; ++kc)
        wg_rs_d(dv, pa[kc], DESC_DV(kc));
      wg_commit();
#endif
      if (gt >= 2) mbar_wait(ds_empty(buf), ((gt >> 1) - 1) & 1);  // both dQ of step gt - 2 read it
      {
        // stmatrix.trans: lane 8m + j addresses row j of 8x8 matrix m = (q block 2 kc + m / 2,
        // keys 16 wq + 8 (m & 1) ..): memory row = q row, 8 keys = one 16-byte chunk.
        const u32 m = lane >> 3, j = lane & 7;
#pragma unroll
        for (int kc = 0; kc < SR / 16; ++kc)
          stsm_x4_trans(dsb + sw128((2 * kc + (m >> 1)) * 8 + j, 2 * wq + (m & 1)), da_[kc]);
      }
      fence_proxy_async();  // dS stores -> wgmma reads (async proxy)
      mbar_arrive(ds_full(buf));
      // dQ of the step before (both warpgroups' dS of it are in shared memory by now, as a rule),
      // then dK += dS^T Q of this step: the dQ store below runs while dK is on the tensor cores.
#if BWD_DV_NOWAIT
      // dV stays in flight: dQ and dK queue behind it (the P^T registers live on until the
      // wait for dQ).
      reg_fence<D / 2>(dk);
#else
      wg_wait<0>();  // dV (issued before dS was stored): frees the P^T registers
      reg_fence<D / 2>(dv);
      reg_fence<D / 2>(dk);
#endif
      auto dk_mma = [&]() {
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < SR / 16; ++kc)
          wg_rs_d(dk, da_[kc], DESC_DK(kc));
        wg_commit();
      };
      if (p > 0) {
        const u32 pb = (gt - 1) & 1;
        float dq[32];
        mbar_wait(ds_full(pb), ((gt - 1) >> 1) & 1);
        dq_mma(dq, pb);
        dk_mma();
        wg_wait<1>();  // dQ of the step before
        reg_fence<32>(dq);
        mbar_arrive(ds_empty(pb));
        if (prev_ok) dq_out(prev_q0, prev_head, dq);
      } else {
        dk_mma();
      }
      wg_wait<0>();
      reg_fence<D / 2>(dv);
      reg_fence<D / 2>(dk);
      mbar_arrive(empty_bar(s));
      prev_q0 = my_q0;
      prev_head = my_head;
      prev_ok = my_ok;
    }
    if (n_pairs > 0) {
      // dQ of the task's last step: then K and V are read for good (the producer may load the
      // next task's), and its dS buffer is free.
      const u32 u = gt - 1;
      float dq[32];
      mbar_wait(ds_full(u & 1), (u >> 1) & 1);
      dq_mma(dq, u & 1);
      wg_wait<0>();
      reg_fence<32>(dq);
      mbar_arrive(ds_empty(u & 1));
      mbar_arrive(kv_empty);
      if (prev_ok) dq_out(prev_q0, prev_head, dq);
    } else {
      mbar_arrive(kv_empty);
    }

    // dK (scaled) and dV into the dKV regions, while the producer loads the next task's K/V.
#if BWD_EPI_V4
    // Lanes t4, t4 ^ 1 swap a pair per 8 columns, so each lane holds 4 consecutive columns of one
    // key: even t4 columns 2 t4 .. 2 t4 + 3 of key_a, odd t4 columns 2 t4 - 2 .. 2 t4 + 1 of key_b.
    {
      const bool odd = t4 & 1;
      u32 dt = DT_F32;
      const u32 seg0 = (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first;
      const u64 dp = dkv_key_ptr<D>(wk, segs, odd ? key_b : key_a, kvh, &dt, seg0);
      const u32 c0 = 2 * (t4 & 2);
      const bool dkv_store = tk->pad & B90_TASK_DKV_STORE;
#if BWD_EPI_B16V4
      const bool b16v4 =
          __all_sync(0xffffffffu, dp == 0 || (dkv_store && dt != DT_F32 && (dp & 15) == 0));
      if (b16v4) {
        const bool lo = !(t4 & 2);
#pragma unroll
        for (int nt = 0; nt < D / 8; nt += 2) {
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            const float* a = m ? dv : dk;
            const float f = m ? dv_f : dk_f;
            u32 pk[2][2];
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              const int n = nt + j;
              const float s0 = odd ? a[n * 4] : a[n * 4 + 2], s1 = odd ? a[n * 4 + 1] : a[n * 4 + 3];
              const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
              const float x0 = odd ? r0 : a[n * 4], x1 = odd ? r1 : a[n * 4 + 1];
              const float x2 = odd ? a[n * 4 + 2] : r0, x3 = odd ? a[n * 4 + 3] : r1;
              if (dt == DT_BF16) {
                const __nv_bfloat162 u = __floats2bfloat162_rn(x0 * f, x1 * f), v = __floats2bfloat162_rn(x2 * f, x3 * f);
                pk[j][0] = *(const u32*)&u;
                pk[j][1] = *(const u32*)&v;
              } else {
                const __half2 u = __floats2half2_rn(x0 * f, x1 * f), v = __floats2half2_rn(x2 * f, x3 * f);
                pk[j][0] = *(const u32*)&u;
                pk[j][1] = *(const u32*)&v;
              }
            }
            // Columns c0..c0+3 of tiles nt, nt + 1 -> the low lane (c0 0) columns 0-7, the high
            // lane (c0 4) columns 8-15 of the 16.
            const u32 q0 = __shfl_xor_sync(0xffffffffu, lo ? pk[1][0] : pk[0][0], 2);
            const u32 q1 = __shfl_xor_sync(0xffffffffu, lo ? pk[1][1] : pk[0][1], 2);
            const u32 col = m * D + nt * 8 + (lo ? 0 : 8);
            if (dp != 0) {
              if (lo)
                asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"((unsigned short*)dp + col),
                             "r"(pk[0][0]), "r"(pk[0][1]), "r"(q0), "r"(q1) : "memory");
              else
                asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"((unsigned short*)dp + col),
                             "r"(q0), "r"(q1), "r"(pk[1][0]), "r"(pk[1][1]) : "memory");
            }
          }
        }
      } else
#endif
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          const float* a = m ? dv : dk;
          const float f = m ? dv_f : dk_f;
          // Send the pair the partner keeps: even lanes send key_b's, odd lanes key_a's.
          const float s0 = odd ? a[nt * 4] : a[nt * 4 + 2], s1 = odd ? a[nt * 4 + 1] : a[nt * 4 + 3];
          const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);
          const float x0 = odd ? r0 : a[nt * 4], x1 = odd ? r1 : a[nt * 4 + 1];
          const float x2 = odd ? a[nt * 4 + 2] : r0, x3 = odd ? a[nt * 4 + 3] : r1;
          const u32 col = m * D + nt * 8 + c0;
          if (dp != 0) {
            if (dt == DT_F32) {
              if (dkv_store)
                st_v4((float*)dp + col, x0 * f, x1 * f, x2 * f, x3 * f);
              else
                red_add_v4((float*)dp + col, x0 * f, x1 * f, x2 * f, x3 * f);
            } else if (dkv_store) {
              // The finished fp32 sum straight into the 16-bit destination of the plan's
              // converting copy (src/own.rs: the host dropped that copy).
              st4_dt((void*)dp, col, dt, x0 * f, x1 * f, x2 * f, x3 * f);
            } else {
              atomic_add_out((void*)dp, col, dt, x0 * f, x1 * f);
              atomic_add_out((void*)dp, col + 2, dt, x2 * f, x3 * f);
            }
          }
        }
      }
    }
#else
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      u32 dt = DT_F32;
      const u64 dp = dkv_key_ptr<D>(wk, segs, h ? key_b : key_a, kvh, &dt, wk->kv_first);
      if (dp == 0) continue;
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        atomic_add_out((void*)dp, nt * 8 + t4 * 2, dt, dk[nt * 4 + 2 * h] * dk_f,
                       dk[nt * 4 + 2 * h + 1] * dk_f);
        atomic_add_out((void*)dp, D + nt * 8 + t4 * 2, dt, dv[nt * 4 + 2 * h] * dv_f,
                       dv[nt * 4 + 2 * h + 1] * dv_f);
      }
    }
#endif
  }

  }  // consumers
  // Neither CTA leaves while the other may still write into its shared memory or arrive on its
  // barriers.
  cluster_sync_all();
}
#undef DQ_SCALED
