// Shared by the two sm90 backward kernels, attn_bwd_sm90.cu and attn_bwd_cluster_sm90.cu
// (the executor concatenates common.cuh, mma.cuh, sm90.cuh, this file and the kernel file): tile
// sizes, the step's compile-time switches, and the device helpers of a backward step, the
// kernels' parameter list, and the pieces of their producer and consumer loops that are the same
// in both (session 15, kdup15). Every such move is checked to leave the SASS of every build the
// host makes of either file unchanged (bench/results/kernels-2026-11-29-kdup15/sass_cmp.py):
// where a __forceinline__ function changed it (register allocation; the dK/dV epilogue, a step's
// tile words), the piece is a macro over the kernels' names, expanding to their former text.
#pragma once

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
// 48 bytes of its loop state, off the critical path), except in the cluster kernel: its producer
// (pair claims, the peer's K columns, extra info) spilled 428 bytes at 24, 90 at 56 / 224
// (NVRTC 13.0, session 39). B90_IS_CLUSTER is 1 from attn_bwd_cluster_sm90.cu on: the two
// macros expand where the kernels use them, after it.
// CL_CONS_REGS: the cluster kernel's consumer registers (a multiple of 8 from 224 to 240), its
// producer taking what is left of the CTA's 384 x 168 (224: 56, 232: 40, 240: 24). Session 48:
// 232 at D 64 removed the 10 spill instructions of the consumers' P,dS phase (offline) but made
// that phase no faster and works1000's backward 0.4 % slower (the producer spills more); 224 stays.
#define B90_IS_CLUSTER 0
#ifndef CL_CONS_REGS
#define CL_CONS_REGS SM90_CONS_REGS
#endif
static_assert(CL_CONS_REGS % 8 == 0 && CL_CONS_REGS >= 224 && CL_CONS_REGS <= 240,
              "CL_CONS_REGS is a multiple of 8 from 224 to 240");
#define CL_PROD_REGS (((384 * 168 - 256 * CL_CONS_REGS) / 128) & ~7)
#ifndef BWD_PROD_REGS
#define BWD_PROD_REGS (B90_IS_CLUSTER ? CL_PROD_REGS : BWD_QT == 2 ? 24 : SM90_PROD_REGS)
#endif
#ifndef BWD_CONS_REGS
#define BWD_CONS_REGS (B90_IS_CLUSTER ? CL_CONS_REGS : BWD_QT == 2 ? 240 : SM90_CONS_REGS)
#endif
static_assert(128 * BWD_PROD_REGS + 256 * BWD_CONS_REGS <= 384 * 168,
              "setmaxnreg split exceeds the registers the CTA is launched with");

// Per-task info slot in shared memory (two, alternating by task): the TaskDesc at 0 (tiles_n =
// ~0: no task left), the WorkDesc at 32. (128 bytes until session 10: the WorkDesc's last 8
// bytes, pad0/pad1, landed on the next slot's task and work index, or on the first mbarrier.)
#define B90_INFO 160
static_assert(32 + sizeof(WorkDesc) <= B90_INFO, "the per-task info slot holds the WorkDesc");

// The converting dQ copy's destination per work (src/exec.rs DqConv; the cluster kernel uses
// dst, stride and dtype only).
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

// dK (times dk_f) and dV (times dv_f) of a task into its dKV regions, at the end of the task, in
// both kernels' consumer loop (its names: tk, wk, segs, key_a, key_b, kvh, dk, dv, dk_f, dv_f,
// t4, D), while the producer loads the next task's K/V. A macro, not a function: as a
// __forceinline__ function (pointer or reference parameters) the same code moved the dK/dV
// registers of every D 128 build (bench/results/kernels-2026-11-29-kdup15); the macro expands
// to the kernels' former text, token for token.
// BWD_EPI_V4: lanes t4, t4 ^ 1 swap a pair per 8 columns, so each lane holds 4 consecutive
// columns of one key: even t4 columns 2 t4 .. 2 t4 + 3 of key_a, odd t4 columns 2 t4 - 2 .. 2 t4
// + 1 of key_b (each lane sends the pair its partner keeps: even lanes key_b's, odd key_a's).
// BWD_EPI_B16V4 (all 16-bit stores of the warp 16-byte aligned): columns c0..c0+3 of tiles nt,
// nt + 1 -> the low lane (c0 0) columns 0-7, the high lane (c0 4) columns 8-15 of the 16. A
// stored 16-bit row takes the finished fp32 sum straight into the 16-bit destination of the
// plan's converting copy (src/own.rs: the host dropped that copy). Without BWD_EPI_V4: float2
// atomics.
#if BWD_EPI_V4
#if BWD_EPI_B16V4
#define B90_DKV_B16V4_                                                                                                     \
      const bool b16v4 =                                                                                                   \
          __all_sync(0xffffffffu, dp == 0 || (dkv_store && dt != DT_F32 && (dp & 15) == 0));                               \
      if (b16v4) {                                                                                                         \
        const bool lo = !(t4 & 2);                                                                                         \
_Pragma("unroll")                                                                                                          \
        for (int nt = 0; nt < D / 8; nt += 2) {                                                                            \
_Pragma("unroll")                                                                                                          \
          for (int m = 0; m < 2; ++m) {                                                                                    \
            const float* a = m ? dv : dk;                                                                                  \
            const float f = m ? dv_f : dk_f;                                                                               \
            u32 pk[2][2];                                                                                                  \
_Pragma("unroll")                                                                                                          \
            for (int j = 0; j < 2; ++j) {                                                                                  \
              const int n = nt + j;                                                                                        \
              const float s0 = odd ? a[n * 4] : a[n * 4 + 2], s1 = odd ? a[n * 4 + 1] : a[n * 4 + 3];                      \
              const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);              \
              const float x0 = odd ? r0 : a[n * 4], x1 = odd ? r1 : a[n * 4 + 1];                                          \
              const float x2 = odd ? a[n * 4 + 2] : r0, x3 = odd ? a[n * 4 + 3] : r1;                                      \
              if (dt == DT_BF16) {                                                                                         \
                const __nv_bfloat162 u = __floats2bfloat162_rn(x0 * f, x1 * f), v = __floats2bfloat162_rn(x2 * f, x3 * f); \
                pk[j][0] = *(const u32*)&u;                                                                                \
                pk[j][1] = *(const u32*)&v;                                                                                \
              } else {                                                                                                     \
                const __half2 u = __floats2half2_rn(x0 * f, x1 * f), v = __floats2half2_rn(x2 * f, x3 * f);                \
                pk[j][0] = *(const u32*)&u;                                                                                \
                pk[j][1] = *(const u32*)&v;                                                                                \
              }                                                                                                            \
            }                                                                                                              \
            const u32 q0 = __shfl_xor_sync(0xffffffffu, lo ? pk[1][0] : pk[0][0], 2);                                      \
            const u32 q1 = __shfl_xor_sync(0xffffffffu, lo ? pk[1][1] : pk[0][1], 2);                                      \
            const u32 col = m * D + nt * 8 + (lo ? 0 : 8);                                                                 \
            if (dp != 0) {                                                                                                 \
              if (lo)                                                                                                      \
                asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"((unsigned short*)dp + col),                \
                             "r"(pk[0][0]), "r"(pk[0][1]), "r"(q0), "r"(q1) : "memory");                                   \
              else                                                                                                         \
                asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"((unsigned short*)dp + col),                \
                             "r"(q0), "r"(q1), "r"(pk[1][0]), "r"(pk[1][1]) : "memory");                                   \
            }                                                                                                              \
          }                                                                                                                \
        }                                                                                                                  \
      } else
#else
#define B90_DKV_B16V4_
#endif
#define BWD_DKV_OUT()                                                                                     \
    {                                                                                                     \
      const bool odd = t4 & 1;                                                                            \
      u32 dt = DT_F32;                                                                                    \
      const u32 seg0 = (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first;                          \
      const u64 dp = dkv_key_ptr<D>(wk, segs, odd ? key_b : key_a, kvh, &dt, seg0);                       \
      const u32 c0 = 2 * (t4 & 2);                                                                        \
      const bool dkv_store = tk->pad & B90_TASK_DKV_STORE;                                                \
      B90_DKV_B16V4_                                                                                      \
_Pragma("unroll")                                                                                         \
      for (int nt = 0; nt < D / 8; ++nt) {                                                                \
_Pragma("unroll")                                                                                         \
        for (int m = 0; m < 2; ++m) {                                                                     \
          const float* a = m ? dv : dk;                                                                   \
          const float f = m ? dv_f : dk_f;                                                                \
          const float s0 = odd ? a[nt * 4] : a[nt * 4 + 2], s1 = odd ? a[nt * 4 + 1] : a[nt * 4 + 3];     \
          const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1); \
          const float x0 = odd ? r0 : a[nt * 4], x1 = odd ? r1 : a[nt * 4 + 1];                           \
          const float x2 = odd ? a[nt * 4 + 2] : r0, x3 = odd ? a[nt * 4 + 3] : r1;                       \
          const u32 col = m * D + nt * 8 + c0;                                                            \
          if (dp != 0) {                                                                                  \
            if (dt == DT_F32) {                                                                           \
              if (dkv_store)                                                                              \
                st_v4((float*)dp + col, x0 * f, x1 * f, x2 * f, x3 * f);                                  \
              else                                                                                        \
                red_add_v4((float*)dp + col, x0 * f, x1 * f, x2 * f, x3 * f);                             \
            } else if (dkv_store) {                                                                       \
              st4_dt((void*)dp, col, dt, x0 * f, x1 * f, x2 * f, x3 * f);                                 \
            } else {                                                                                      \
              atomic_add_out((void*)dp, col, dt, x0 * f, x1 * f);                                         \
              atomic_add_out((void*)dp, col + 2, dt, x2 * f, x3 * f);                                     \
            }                                                                                             \
          }                                                                                               \
        }                                                                                                 \
      }                                                                                                   \
    }
#else
// The float2 form honours the task's flags (session 39: D 64 launches own dK/dV rows in the
// cluster kernel and, with DCP_CUDA_BWD_OWN_D64, in attn_bwd_sm90.cu): a stored task's rows are
// stored (their zero fill was dropped), the alternate segments of B90_TASK_DKV_ALT are added into.
#define B90_DKV_PUT_(dp_, col_, dt_, a_, b_)                                  \
  if (tk->pad & B90_TASK_DKV_STORE)                                          \
    st2_dt((void*)(dp_), col_, dt_, a_, b_);                                 \
  else                                                                       \
    atomic_add_out((void*)(dp_), col_, dt_, a_, b_);
#define BWD_DKV_OUT()                                                                           \
_Pragma("unroll")                                                                               \
    for (int h = 0; h < 2; ++h) {                                                               \
      u32 dt = DT_F32;                                                                          \
      const u64 dp = dkv_key_ptr<D>(wk, segs, h ? key_b : key_a, kvh, &dt,                      \
                                    (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first);  \
      if (dp == 0) continue;                                                                    \
_Pragma("unroll")                                                                               \
      for (int nt = 0; nt < D / 8; ++nt) {                                                      \
        B90_DKV_PUT_(dp, nt * 8 + t4 * 2, dt, dk[nt * 4 + 2 * h] * dk_f, dk[nt * 4 + 2 * h + 1] * dk_f) \
        B90_DKV_PUT_(dp, D + nt * 8 + t4 * 2, dt, dv[nt * 4 + 2 * h] * dv_f, dv[nt * 4 + 2 * h + 1] * dv_f) \
      }                                                                                         \
    }
#endif

// The dK/dV epilogue through a staging block of 1 KiB per consumer warp (session 16, kb16, in the
// cluster kernel as CL_STSM; session 17, kb17, in attn_bwd_sm90.cu as BWD_STSM): where every row
// of the warp is stored (TaskDesc.pad B90_TASK_DKV_STORE) into a destination of the element type
// (compile-time conversion), 16-byte aligned, per 16 rows x 16 columns of the fp32 fragment one
// `stmatrix` of the packed pairs, then each lane reads back one 16-byte chunk (8 columns of one
// row) and stores it: no shuffles, no selects, one rounding of the fp32 sum.
#ifdef ELEM_F16
#define B90_DT DT_F16
#else
#define B90_DT DT_BF16
#endif
// Two fp32 into the element type's packed pair (round to nearest).
__device__ __forceinline__ u32 b90_pack(float a, float b) {
#ifdef ELEM_F16
  const __half2 u = __floats2half2_rn(a, b);
#else
  const __nv_bfloat162 u = __floats2bfloat162_rn(a, b);
#endif
  return *(const u32*)&u;
}
__device__ __forceinline__ void b90_stsm_x4(u32 saddr, u32 r0, u32 r1, u32 r2, u32 r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(saddr), "r"(r0), "r"(r1),
               "r"(r2), "r"(r3)
               : "memory");
}
__device__ __forceinline__ uint4 b90_lds128(u32 a) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(a) : "memory");
  return v;
}
// NA: the store allocates no L1 line (`L1::no_allocate`).
template <bool NA>
__device__ __forceinline__ void b90_stg128(u64 p, uint4 v) {
  if (NA)
    asm volatile("st.global.L1::no_allocate.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
  else
    asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w) : "memory");
}
// CL_ST_NA: the cluster kernel's 16-byte dQ and dK/dV stores allocate no L1 line. Session 48
// (`gpu-x1-2026-12-03s48/`), alternated x5 in three calls: D 128 backward works1000 +1.6 / +2.5 /
// +3.1 %, 1 600 x 160 tokens +2.4 / +3.5 / +2.0 %; sustained 12 + 12 runs +1.4 / +0.9 % (median);
// D 64 +0.3 % (then without CL_DQ_RELOAD). Session 49 (`gpu-x1-2026-12-03s49/`), D 64 with
// CL_DQ_RELOAD, alternated in two calls: works1000 +1.8 / +1.0 %, 1 600 x 160 +1.5 / +2.0 %,
// onework +0.4 / -0.2 %. Default on at both head dims. B90_ST_NA expands where the kernels use
// it, so the plain kernel (B90_IS_CLUSTER 0 there) keeps its stores.
#ifndef CL_ST_NA
#define CL_ST_NA 1
#endif
#define B90_ST_NA (CL_ST_NA && B90_IS_CLUSTER)
// A staging half block: 16 rows x 16 columns of 16-bit (32 bytes per row), the 16-byte chunk c of
// row r at 32 r + 16 (c ^ ((r >> 2) & 1)) (the 8 rows of a stmatrix matrix and the rows read by
// each 8 lanes fall on distinct banks). stmatrix: lane l addresses row l & 7 of matrix l >> 3
// (matrices: rows 0-7 / 8-15 of column tile 0, then of tile 1), `b90_sts_off`; the read-back: lane
// l reads chunk l & 1 of row l >> 1, `b90_ld_off`.
__device__ __forceinline__ u32 b90_sts_off(int lane) {
  const u32 r = (lane & 7) + 8 * ((lane >> 3) & 1), c = lane >> 4;
  return 32 * r + 16 * (c ^ ((r >> 2) & 1));
}
__device__ __forceinline__ u32 b90_ld_off(int lane) {
  const u32 r = lane >> 1, c = lane & 1;
  return 32 * r + 16 * (c ^ ((r >> 2) & 1));
}
// The dK/dV row of `key` in a segment (dk: its first row, keys k0 .. k0 + len, dstride elements
// per row, dtype ddt) for kv head kvh; 0 past the work's keys (n_keys) or outside the segment.
// Branch-free (the pointer selected). b90_dkv_ptr's and both kernels' epilogue row pointer.
__device__ __forceinline__ u64 b90_seg_ptr(u64 dk, u32 k0, u32 len, u32 ds, u32 ddt, u32 key, u32 n_keys, u32 kvh) {
  const u64 p = dk + ((u64)(key - k0) * ds + kvh * 2 * HEAD_DIM) * (ddt == DT_F32 ? 4 : 2);
  return key < n_keys && key >= k0 && key - k0 < len ? p : 0;
}
// dkv_key_ptr without branches on the loaded values: the segment's fields are loaded together and
// the pointer selected (0 past the work's keys or outside the segment), so that the loads issued
// before the task's last dQ are waited for only at the epilogue.
__device__ __forceinline__ u64 b90_dkv_ptr(const WorkDesc* w, const KvSeg* segs, u32 key, u32 kvh, u32* dt, u32 first) {
  const u32 n = w->kv_count;
  if (n == 0) return 0;  // (from shared memory: a branch before the segment's loads)
  const KvSeg& sg = segs[n > 1 ? kv_seg_index(first, n, segs, key) : first];
  const u32 k0 = sg.key0, len = sg.len, ds = sg.dstride, ddt = sg.ddtype;
  const u64 dk = sg.dk;
  *dt = ddt;
  return b90_seg_ptr(dk, k0, len, ds, ddt, key, w->n_keys, kvh);
}
// Column tiles 2 p, 2 p + 1 of an m64nN fp32 accumulator fragment `a` (times f), this warp's 16
// rows, converted into the half block at `hb`.
__device__ __forceinline__ void b90_stage(u32 hb, const float* a, int p, float f) {
  b90_stsm_x4(hb, b90_pack(a[8 * p] * f, a[8 * p + 1] * f), b90_pack(a[8 * p + 2] * f, a[8 * p + 3] * f),
             b90_pack(a[8 * p + 4] * f, a[8 * p + 5] * f), b90_pack(a[8 * p + 6] * f, a[8 * p + 7] * f));
}
// The staged dK/dV epilogue of a consumer warp (a macro over the kernels' names dk, dv, dk_f, dv_f,
// lane, D): `scr_` its 1 KiB staging block, `e_p_` the destination row of this lane's staging row
// (key 16 wq + lane / 2 of the warpgroup's 64; 0: past the work's keys). Per round two half blocks
// of 16 columns, dK's D / 16 then dV's; this lane stores 8 columns of its row's dK / dV.
#define B90_DKV_STSM(scr_, e_p_)                                                                         \
  {                                                                                                      \
    const u32 scr = scr_;                                                                                \
    const u64 rp = (e_p_) + 16 * (lane & 1);                                                             \
    constexpr int NP_ = D / 16; /* half blocks (16 columns) per matrix: dK's NP_, then dV's */            \
    _Pragma("unroll") for (int r = 0; r < NP_; ++r) {                                                    \
      const int q0 = 2 * r, q1 = 2 * r + 1;                                                              \
      b90_stage(scr + b90_sts_off(lane), (q0 / NP_) ? dv : dk, q0 % NP_, (q0 / NP_) ? dv_f : dk_f);      \
      b90_stage(scr + 512 + b90_sts_off(lane), (q1 / NP_) ? dv : dk, q1 % NP_, (q1 / NP_) ? dv_f : dk_f); \
      __syncwarp();                                                                                      \
      const uint4 v0 = b90_lds128(scr + b90_ld_off(lane)), v1 = b90_lds128(scr + 512 + b90_ld_off(lane)); \
      __syncwarp();                                                                                      \
      if ((e_p_) != 0) {                                                                                 \
        b90_stg128<B90_ST_NA>(rp + 2 * ((q0 / NP_) * D + 16 * (q0 % NP_)), v0);                          \
        b90_stg128<B90_ST_NA>(rp + 2 * ((q1 / NP_) * D + 16 * (q1 % NP_)), v1);                          \
      }                                                                                                  \
    }                                                                                                    \
  }

// S^T = K Q^T and dP^T = V dO^T of a step in stage s (two wgmma groups; A: the 64 K, V rows of
// consumer warpgroup cw, K-major; B: the stage's Q, dO, K-major). BWD_FASTDESC: from the base
// descriptors k_a0, v_a0 (the warpgroup's K, V rows) and q_b0, do_b0 (stage 0's Q, dO); 0: from
// the shared addresses sK, sV, sQ, sdO.
__device__ __forceinline__ void bwd_issue_sdp(float* st, float* dpt, int s, u64 k_a0, u64 v_a0, u64 q_b0,
                                              u64 do_b0, u32 sK, u32 sV, u32 sQ, u32 sdO, int cw) {
  constexpr int D = HEAD_DIM, SR = B90_SR;
  constexpr u32 QBYTES = SR * D * 2;
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
}

// Mask bits of a step per q tile h (bit nt * 4 + e of pbits[h]: columns 64 h ..), partial tiles
// only: the precomputed word of this thread (`tilemask.rs`), else from the ranges; all set for a
// full tile, 0 for an absent one. `small_g`: the stage's small block (tile words at WORD_OFF,
// masks or the rows' first two ranges at RG_OFF), `rp_s` its range spans.
__device__ __forceinline__ void bwd_tile_bits(u32* pbits, const bool* present, const u32* words,
                                              const unsigned char* small_g, int tid, const uint2* ranges,
                                              const u32* rp_s, u32 key_a, u32 key_b, u32 n_keys, int t4) {
  constexpr u32 RG_OFF = B90_SR * 16, WORD_OFF = B90_SR * 32;
#pragma unroll
  for (int h = 0; h < BWD_QT; ++h)
    pbits[h] = !present[h] ? 0u
               : !(words[h] >> 31) ? 0xffffffffu
               : *(const u32*)(small_g + WORD_OFF + 8 * h + 4) != NO_TILE_MASK
                   ? ((const u32*)(small_g + RG_OFF + 1024 * h))[tid - 128]
                   : bwd_mask_bits_s<B90_BR / 8>(ranges, rp_s + 2 * B90_BR * h,
                                                 (const uint4*)(small_g + RG_OFF) + B90_BR * h, key_a, key_b,
                                                 n_keys, t4);
}

// dS^T = P^T (dP^T - D) in place of P^T in `st` (D of the step's rows at `dd_s`).
__device__ __forceinline__ void bwd_ds(float* st, const float* dpt, const float* dd_s, int t4) {
#pragma unroll
  for (int nt = 0; nt < B90_SR / 8; ++nt) {
    const float2 d2 = *(const float2*)(dd_s + nt * 8 + t4 * 2);
#pragma unroll
    for (int e = 0; e < 4; ++e)
      st[nt * 4 + e] = st[nt * 4 + e] * (dpt[nt * 4 + e] - ((e & 1) ? d2.y : d2.x));
  }
}

// This warp's dS^T (A fragments `da`) into the warpgroup's dS block at `dsb` (K-major for the dQ
// wgmma's A: memory row = q row, 8 keys = one 16-byte chunk). stmatrix.trans: lane 8m + j
// addresses row j of 8x8 matrix m = (q block 2 kc + m / 2, keys 16 wq + 8 (m & 1) ..).
__device__ __forceinline__ void bwd_store_ds(u32 dsb, const u32 (*da)[4], int lane, int wq) {
  const u32 m = lane >> 3, j = lane & 7;
#pragma unroll
  for (int kc = 0; kc < B90_SR / 16; ++kc)
    stsm_x4_trans(dsb + sw128((2 * kc + (m >> 1)) * 8 + j, 2 * wq + (m & 1)), da[kc]);
}

// The two kernels' parameters (src/exec.rs passes them in this order to either; the cluster
// kernel does not read dq_maps, dq_cnt or dq_expect).
#define BWD_SM90_PARAMS                                                                                   \
  const WorkDesc *__restrict__ works, const KvSeg *__restrict__ segs, const TaskDesc *__restrict__ tasks, \
      const u32 *__restrict__ tiles, const u32 *__restrict__ row_ptr, const uint2 *__restrict__ ranges,   \
      const float *__restrict__ dd, u32 group, float scale_log2, float scale,                             \
      const unsigned char *__restrict__ dq_maps, u32 *sched, const u32 *__restrict__ tmask,               \
      const u32 *__restrict__ masks, const DqConv *__restrict__ dq_conv, u32 *dq_cnt,                     \
      const u32 *__restrict__ dq_expect, const unsigned char *__restrict__ bmaps

// The consumers' names below: `scale` (the kernel argument), `s` (the step's stage), QBYTES, SR,
// and the base descriptors do_bt0 / q_bt0 (BWD_FASTDESC) or the stage's dos / qs.
// A dQ element times the softmax scale unless P^T already carries it (BWD_PSCALE).
#if BWD_PSCALE
#define DQ_SCALED(x) (x)
#else
#define DQ_SCALED(x) ((x) * scale)
#endif
// B of dV += P^T dO and dK += dS^T Q (dO, Q of stage s, MN-major), k step kc.
#if BWD_FASTDESC
#define DESC_DV(kc) desc_off(do_bt0, s * QBYTES + (kc) * 16 * 128)
#define DESC_DK(kc) desc_off(q_bt0, s * QBYTES + (kc) * 16 * 128)
#else
#define DESC_DV(kc) wg_desc(dos + (kc) * 16 * 128, SR * 128, 1024)
#define DESC_DK(kc) wg_desc(qs + (kc) * 16 * 128, SR * 128, 1024)
#endif
// acc += A B over the step's SR rows (dV += P^T dO: a = pa, DESC_DV; dK += dS^T Q: a = da_,
// DESC_DK): one wgmma group, A from registers (SR / 16 fragments).
#define BWD_RS_MMA(acc, a, DESC)                                                            \
  {                                                                                         \
    wg_fence();                                                                             \
    _Pragma("unroll") for (int kc = 0; kc < SR / 16; ++kc) wg_rs_d(acc, a[kc], DESC(kc));  \
    wg_commit();                                                                            \
  }

// Producer thread pt < SR, step p: row pt of the step (row pt % 64 of q tile pt / 64; `rev`: the
// task's list walked last to first) into the stage's small block at `sm` by cp.async: its LSE, D
// (unless !load_dd), range span, the tile word and mask index (a q tile's first row), and for a
// partial tile the precomputed mask or the row's first two ranges. `tile_index`: the q tile bits
// of a tile word (B90_TILE_INDEX).
__device__ __forceinline__ void bwd_load_row(u32 sm, int pt, u32 p, bool rev, u32 n_steps, const TaskDesc& task,
                                             const WorkDesc& w, const u32* my_tiles, u32 kvh, u32 group,
                                             const float* dd, const u32* row_ptr, const uint2* ranges,
                                             const u32* tmask, const u32* masks, u32 tile_index, bool load_dd) {
  constexpr int QT = BWD_QT, SR = B90_SR;
  constexpr u32 RG_OFF = SR * 16, WORD_OFF = SR * 32;
  const u32 h = QT == 2 ? (u32)pt >> 6 : 0u, pr = (u32)pt & (B90_BR - 1);
  const u32 t = rev ? n_steps - 1 - (QT * p + h) : QT * p + h;
  const bool tv = QT == 1 || t < n_steps;
  const u32 tt = tv ? t : 0;
  const u32 jj = tt / task.tiles_n, it = tt - jj * task.tiles_n;
  const u32 head = kvh * group + jj;
  const u32 q0 = (my_tiles[it] & tile_index) * B90_BR;
  const u32 row = q0 + pr;
  const bool ok = tv && row < w.n_rows;
  const u64 rr = ok ? row : 0;
  cp_async4_s(sm + pt * 4, (const float*)w.lse + rr * w.lse_stride + head, ok);
  if (load_dd) cp_async4_s(sm + SR * 4 + pt * 4, dd + w.dd_off + rr * w.q_heads + head, ok);
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

// Producer thread pt: its share of q tile h's Q and (load_do) dO rows of a step (q0: first row,
// `head`: query head; tv: the tile is present, else zero rows) into the stage's buffers at qs, dos
// by cp.async: chunk c of rows r0 + RPJ j (RPJ a multiple of 8: one swizzle phase).
__device__ __forceinline__ void bwd_load_qdo_rows(u32 qs, u32 dos, int h, int pt, const WorkDesc& w,
                                                  const elem_t* qbase, const elem_t* dobase, u32 q0, u32 head,
                                                  bool tv, bool load_do) {
  constexpr int D = HEAD_DIM, CH = D / 8, SR = B90_SR;
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
    if (load_do) cp_async16_s(dos + off + j * RPJ * 128, ok ? dp : dobase, ok);
    qp += (u64)RPJ * qst;
    dp += (u64)RPJ * dst;
  }
}

// BWD_TMA 2, producer thread 0: q tile h's Q and dO of a step (query head `head`, first row q0)
// into the stage's buffers at qs, dos by tensor copies (maps qmap, domap), completing on `bar`.
__device__ __forceinline__ void bwd_tma_qdo(u32 qs, u32 dos, int h, u64 qmap, u64 domap, u32 head, u32 q0,
                                            u32 bar) {
#pragma unroll
  for (int c = 0; c < HEAD_DIM / 64; ++c) {
    const u32 o = c * (B90_SR * 128) + h * (B90_BR * 128);
    b90_tma_3d(qs + o, qmap, 64 * c, head, q0, bar);
    b90_tma_3d(dos + o, domap, 64 * c, head, q0, bar);
  }
}

// Consumer warpgroup `wg` (1 or 2): its index cw (keys 64 cw .. 64 cw + 63 of the kv tile).
// BWD_FASTDESC: from a warp shuffle, so that ptxas keeps it (and the base descriptors made from
// it) in uniform registers.
__device__ __forceinline__ int bwd_consumer_index(int wg) {
#if BWD_FASTDESC
  return __shfl_sync(0xffffffffu, wg - 1, 0);
#else
  return wg - 1;
#endif
}

// A consumer step p's tile words (q tile index, partial flag and the kernel's flag bits) and
// which of its QT q tiles are present (QT 2: past the end of an odd list the second is absent),
// from the stage's small block; the step's dQ tile of this warpgroup (QT 2: tile `mine`, the
// main kernel's cw, the cluster kernel's rank): its first row my_q0, query
// head my_head, visit flags my_visit (if `visit`: the bits `vbits` of its word; chains) and
// whether it is present (my_ok); head_i, head_j: list index and query head of the next q tile
// (BWD_FASTDESC, counted here; `rev`: the task walks its list last to first). A macro over the
// kernels' names (words, present, my_*, head_i, head_j, small_g, p, n_steps, tiles_n, cw, kvh,
// group, rev, QT, WORD_OFF): as a __forceinline__ function (reference parameters) the same code
// changed the SASS (main D 64 and cluster builds; bench/results/kernels-2026-11-29-kdup15).
#define BWD_STEP_TILES(visit, vbits, mine)                                                  \
  _Pragma("unroll") for (int h = 0; h < QT; ++h) {                                          \
    const u32 t = QT * p + h;                                                               \
    present[h] = QT == 1 || t < n_steps;                                                    \
    words[h] = *(const u32*)(small_g + WORD_OFF + 8 * h);                                   \
    if (QT == 1 || h == (mine)) {                                                           \
      my_q0 = (words[h] & B90_TILE_INDEX) * B90_BR;                                         \
      if (visit) my_visit = words[h] & (vbits);                                             \
      my_head = BWD_FASTDESC ? kvh * group + (rev ? group - 1 - head_j : head_j)            \
                             : kvh * group + (rev ? n_steps - 1 - t : t) / tiles_n;         \
      my_ok = present[h];                                                                   \
    }                                                                                       \
    if (BWD_FASTDESC && ++head_i == tiles_n) {                                              \
      head_i = 0;                                                                           \
      ++head_j;                                                                             \
    }                                                                                       \
  }

// The kernels' first lines (a macro: they declare the names both use): tile constants (D, CH,
// KVBYTES: a K or V tile, QT, SR, QBYTES: one Q or dO stage, DSBYTES), the dynamic shared memory
// (`base` 1024-byte aligned, `gbase` its generic pointer) and the part of its layout the two
// share: sK, sV (the task's K, V tile), sQ, sdO (two stages each, [D/64][SR rows][128 B]), sdS
// (two dS buffers, [2 key blocks][SR rows][128 B]).
#define BWD_SM90_SMEM_BASE                                     \
  constexpr int D = HEAD_DIM;                                  \
  constexpr int CH = D / 8;                                    \
  constexpr u32 KVBYTES = B90_BC * D * 2;                      \
  constexpr int QT = BWD_QT, SR = B90_SR;                      \
  constexpr u32 QBYTES = SR * D * 2;                           \
  constexpr u32 DSBYTES = SR * B90_BC * 2;                     \
  extern __shared__ __align__(1024) unsigned char smem_raw[];  \
  const u32 raw = smem_u32(smem_raw);                          \
  const u32 base = (raw + 1023u) & ~1023u;                     \
  unsigned char* gbase = smem_raw + (base - raw);              \
  const u32 sK = base;                                         \
  const u32 sV = sK + KVBYTES;                                 \
  const u32 sQ = sV + KVBYTES;                                 \
  const u32 sdO = sQ + 2 * QBYTES;                             \
  const u32 sdS = sdO + 2 * QBYTES;

// Producer, at a task's start (a macro: it declares the names the loads use; the kernels' w,
// task, pt, bmaps): BWD_TMA, the work's tensor maps (Q at bmaps + BWD_MAPS work, its KV region
// 128 bytes further, dO 256: qmap, kvmap, domap), whether K/V (kv_tma) and Q/dO (qdo_tma, BWD_TMA
// 2) come by tensor copies, and thread 0's prefetch of the maps used.
#if BWD_TMA >= 2
#define BWD_TASK_MAPS_QDO_                                                                \
  const u64 domap = qmap + 256;                                                           \
  const bool qdo_tma = (wtma & (B90_TMA_Q | B90_TMA_DO)) == (B90_TMA_Q | B90_TMA_DO);     \
  if (pt == 0 && qdo_tma) {                                                               \
    b90_prefetch_map(qmap);                                                               \
    b90_prefetch_map(domap);                                                              \
  }
#else
#define BWD_TASK_MAPS_QDO_
#endif
#if BWD_TMA
#define BWD_TASK_MAPS                                                                     \
  const u32 wtma = w.flags;                                                               \
  const u64 qmap = (u64)(bmaps + (u64)task.work * BWD_MAPS), kvmap = qmap + 128;          \
  const bool kv_tma = w.kv_count == 1 && (wtma & B90_TMA_KV);                             \
  BWD_TASK_MAPS_QDO_                                                                      \
  if (pt == 0 && kv_tma) b90_prefetch_map(kvmap);
#else
#define BWD_TASK_MAPS
#endif

// The consumer warpgroups' first lines (a macro: it declares the names the step code uses):
// registers raised (setmaxnreg); cw (keys 64 cw .. 64 cw + 63 of the kv tile), wq (warp in the
// warpgroup), g, t4 (lane / 4, lane % 4), kl_a (this thread's keys in the tile: kl_a, kl_a + 8);
// loff, dk_f, dv_f (BWD_PSCALE: P^T, and so dS^T, dQ, dK, carries the softmax scale, dV is
// divided by it at the end); the base descriptors of BWD_FASTDESC (unused without it): S^T, dP^T
// A (k_a0, v_a0: K, V rows of this warpgroup, K-major), their B (q_b0, do_b0: Q, dO stage 0,
// K-major), dV, dK B (do_bt0, q_bt0: dO, Q stage 0, MN-major).
#if BWD_PSCALE
#define BWD_SCALES_ const float loff = -log2f(scale), dk_f = 1.f, dv_f = 1.f / scale;
#else
#define BWD_SCALES_ const float loff = 0.f, dk_f = scale, dv_f = 1.f;
#endif
#define BWD_CONSUMER_SETUP                                                                                \
  setmaxnreg_inc<BWD_CONS_REGS>();                                                                        \
  const int cw = bwd_consumer_index(wg);                                                                  \
  const int wq = (tid >> 5) & 3;                                                                          \
  const int g = lane >> 2, t4 = lane & 3;                                                                 \
  const u32 kl_a = 64 * cw + 16 * wq + g;                                                                 \
  BWD_SCALES_                                                                                             \
  const u64 k_a0 = wg_desc(sK + 64 * cw * 128, 16, 1024), v_a0 = wg_desc(sV + 64 * cw * 128, 16, 1024);  \
  const u64 q_b0 = wg_desc(sQ, 16, 1024), do_b0 = wg_desc(sdO, 16, 1024);                                 \
  const u64 q_bt0 = wg_desc(sQ, SR * 128, 1024), do_bt0 = wg_desc(sdO, SR * 128, 1024);

// BWD_ORDER 0's P^T and dV of a step (a macro over the consumer step's names; it declares pa):
// S^T waited for, P^T formed (LSE = -inf rows: P = 0) and dV += P^T dO issued at once, on the
// tensor cores while dP^T completes and dS^T is formed; then dP^T waited for.
#define BWD_ORDER0_PT_DV                                                      \
  wg_wait<1>();                                                               \
  reg_fence<SR / 2>(st);                                                      \
  tile_bits();                                                                \
  bwd_probs_fast<SR / 8>(st, pbits, lse_s, scale_log2, loff, partial_any, t4); \
  u32 pa[SR / 16][4];                                                         \
  acc_to_a<SR>(st, pa);                                                       \
  reg_fence<D / 2>(dv);                                                       \
  BWD_RS_MMA(dv, pa, DESC_DV);                                                \
  wg_wait<1>();                                                               \
  reg_fence<SR / 2>(dpt);

// The consumers' task counter in a shared word per consumer thread at `slot_` (BWD_TQ_SMEM,
// CL_TQ_SMEM): defines `tq_slot`, `tq_get()` (the word read back through a shuffle from lane 0,
// which keeps it warp-uniform for ptxas) and `tq_set(v)`.
#define B90_TQ_FNS(slot_)                                                                               \
  const u32 tq_slot = (slot_);                                                                          \
  auto tq_get = [&]() {                                                                                 \
    u32 v;                                                                                              \
    asm volatile("ld.shared.u32 %0, [%1];\n" : "=r"(v) : "r"(tq_slot) : "memory");                      \
    return (u32)__shfl_sync(0xffffffffu, v, 0);                                                         \
  };                                                                                                    \
  auto tq_set = [&](u32 v) { asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(tq_slot), "r"(v) : "memory"); };
// After the step loop: the task's info (`tk`, `wk`) again from the counter of B90_TQ_FNS, in the
// info slot of the task's parity (`sinfo`, `gbase`, `base` of the kernel).
#define B90_TASK_FROM_TQ()                                                          \
  const u32 tq_e = (tq_get() - 1) & 1;                                              \
  const unsigned char* info_e = gbase + (sinfo + tq_e * B90_INFO - base);           \
  const TaskDesc* tk = (const TaskDesc*)info_e;                                     \
  const WorkDesc* wk = (const WorkDesc*)(info_e + 32);
