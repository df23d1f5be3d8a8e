// Prototype (session 23, issue 10): the forward of many short full-mask documents with NC
// consumer warpgroups, each owning one 64-row slab of a task, in lockstep over one shared K/V
// stream. Not the executor's kernel: no work list, no masks, fixed shapes (documents of
// W3_DOC tokens, D 128, GQA 8:2); it exists to measure whether a third consumer warpgroup buys
// what bench/results/kernels-2026-11-30-dram23 estimated (+15-20 % compute-only on works1000).
//
// Task t of a CTA: unit u = t / TPU (document u / HK, KV head u % HK), group g = t % TPU. A unit
// has SLABS = (H / HK) * (W3_DOC / 64) slabs (head, 64 rows) that attend the same W3_DOC keys, so
// its slabs can share the K/V tiles; group g takes slabs g*NC .. g*NC + NC - 1 (the last group
// may have fewer: its idle warpgroups only take part in the barriers).
// Warpgroup 0 is the producer (one thread issues every TMA copy); warpgroups 1..NC consume.
// Shared memory: Q [2 buffers][NC slabs][2 column blocks][64 rows][128 B]; K and V
// [W3_TILES stages][2 column blocks][128 keys][128 B]; stage j holds tile j of every task.
#pragma once

#ifdef __CUDACC_RTC__
// (NVRTC, offline checks only: the driver header's opaque 128-byte map.)
struct alignas(64) CUtensorMap {
  unsigned long long opaque[16];
};
#endif

#ifndef NC
#define NC 3
#endif
#ifndef W3_DOC
#define W3_DOC 256
#endif
#define W3_H 8
#define W3_HK 2
#define W3_D 128
#define W3_TILES (W3_DOC / 128)
// W3_MODE 0: documents of W3_DOC tokens, full mask (works1000). 1: one causal-blockwise
// sequence of W3_SEQ tokens (256-token blocks, 2 local: a row of block b attends keys from block
// b - 1's first to itself), the kernel-bench `blockwise` shape. A unit is then (KV head, block,
// half block of 128 rows): 4 heads x 2 slabs, tiles 2b - 2 .. 2b + half (the last one diagonal,
// masked causally; b = 0 starts at tile 0).
#ifndef W3_MODE
#define W3_MODE 0
#endif
#ifndef W3_SEQ
#define W3_SEQ 32768
#endif
// W3_MODE 2: one full-mask sequence of W3_SEQ tokens (onework's shape, 64-row slabs of the 4
// heads of a KV head per unit, every tile; no split-K, so the last wave leaves SMs idle: for
// the SM clock, not the rate).
#if W3_MODE == 1
#define W3_SLABS ((W3_H / W3_HK) * 2)
#define W3_MAXT 4
#elif W3_MODE == 2
#define W3_SLABS (W3_H / W3_HK)
#define W3_MAXT (W3_SEQ / 128)
#else
#define W3_SLABS ((W3_H / W3_HK) * (W3_DOC / 64))
#define W3_MAXT W3_TILES
#endif
#define W3_TPU ((W3_SLABS + NC - 1) / NC)
#define W3_THREADS (128 * (NC + 1))
#define W3_PROD_REGS 24
#ifndef W3_CONS_REGS
#define W3_CONS_REGS (NC == 3 ? 160 : 240)
#endif
#ifndef W3_NO_ASSERT
static_assert(128 * W3_PROD_REGS + 128 * NC * W3_CONS_REGS <= 65536, "setmaxnreg split");
#endif
static_assert(W3_DOC % 128 == 0, "documents of whole 128-key tiles");

#ifndef W3_EARLY
#define W3_EARLY 0
#endif
#if W3_EARLY && W3_TILES != 2
#error "W3_EARLY is written for 2-tile documents"
#endif
// W3_EARLY 1: both tiles' S issued at once, P of both in registers (needs 256 registers in
// ptxas's allocation: does not fit). 2: the same with tile 0's P staged in shared memory
// (stmatrix) and its P V taken from there (wgmma SS), so that the registers hold at most one S
// and O and P of tile 1. NC 2 only (registers).
#if W3_EARLY && NC != 2
#error "W3_EARLY needs NC 2"
#endif
// W3_ONE 1 (session 27; documents of 256 keys, NC 2 or 3): one step per task. Both tiles' S are
// issued at once (two 64 x 128 accumulators = the slab's 64 x 256 scores), the softmax is exact
// over all 256 keys (one row maximum, no running maximum, no rescale of O), P goes in place into
// S's registers and one P V over the 256 keys writes O (scale-d 0 on its first k-chunk). O is not
// live during S and the softmax, so a consumer holds at most 128 accumulator registers plus P.
// With W3_PP the two warpgroups take turns per S and per P V, one turn each per task.
#ifndef W3_ONE
#define W3_ONE 0
#endif
// W3_KVS 1 (with W3_ONE): K and V of a task get barriers of their own (full/empty 0: both K
// tiles, full/empty 1: both V tiles), so the next task's K loads once this task's S has completed
// and its V once this task's P V has. Without it a W3_ONE task frees both stages only at its end
// and the next task waits for a whole load.
#ifndef W3_KVS
#define W3_KVS 0
#endif
#if W3_KVS && !W3_ONE
#error "W3_KVS needs W3_ONE"
#endif
#if W3_ONE && (W3_EARLY || W3_TILES != 2 || W3_MODE != 0)
#error "W3_ONE is written for 2-tile documents without W3_EARLY"
#endif
#if W3_MODE != 0 && (W3_EARLY || W3_DOC != 256 || W3_ALIAS)
#error "W3_MODE 1 and 2 run the plain tile loop on their own sequence"
#endif
#if W3_MODE == 2 && W3_UNROLL
#error "W3_MODE 2 needs W3_UNROLL 0 (its tasks have W3_SEQ / 128 tiles)"
#endif
#define W3_SLAB_BYTES (64 * W3_D * 2)   // 16 KB
#define W3_TILE_BYTES (128 * W3_D * 2)  // 32 KB
// High word of every shared-memory descriptor: SBO 1024 bytes, 128-byte swizzle (bit 62).
#ifndef W3_UNROLL
#define W3_UNROLL 1
#endif
#ifndef W3_PONE
#define W3_PONE 1
#endif
#define W3_DHI ((1024u >> 4) | (1u << 30))
#define W3_SMEM (2 * NC * W3_SLAB_BYTES + 2 * 2 * W3_TILE_BYTES + (W3_EARLY == 2 ? NC * W3_SLAB_BYTES : 0) + 256 + 1024 + (W3_ONES_BYTES))
#define W3_ONES_BYTES (W3_ONES ? 1024 : 0)

__device__ __forceinline__ void w3_arrive_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void w3_tma_load(u32 dst, const void* map, int c0, int c1, int c2, u32 bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
      "%4}], [%5];\n" ::"r"(dst),
      "l"((u64)map), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void w3_tma_store(const void* map, u32 src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%1, %2, %3}], [%4];\n" ::"l"(
                   (u64)map),
               "r"(c0), "r"(c1), "r"(c2), "r"(src)
               : "memory");
}
__device__ __forceinline__ float w3_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ void w3_stmatrix4(u32 saddr, const u32* v) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(saddr), "r"(v[0]),
               "r"(v[1]), "r"(v[2]), "r"(v[3])
               : "memory");
}

template <int N>
__device__ __forceinline__ void reg_fence_u32(u32* r) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}
// S = Q K^T of one tile (descriptor low words of the slab and the K stage), committed.
__device__ __forceinline__ void w3_issue_s(float* sc, u32 qd, u32 kd) {
  wg_fence();
#pragma unroll
  for (int kk = 0; kk < W3_D / 16; ++kk) {
    const u64 da = ((u64)W3_DHI << 32) | (qd + (((kk >> 2) * (W3_SLAB_BYTES / 2) + (kk & 3) * 32) >> 4));
    const u64 db = ((u64)W3_DHI << 32) | (kd + (((kk >> 2) * (W3_TILE_BYTES / 2) + (kk & 3) * 32) >> 4));
    wgmma_m64n128k16_ss<0>(sc, da, db, kk > 0);
  }
  wg_commit();
}
// O (+)= P V of the V stage at sv (acc 0: O = P V), committed.
__device__ __forceinline__ void w3_issue_pv(float* o, u32 (*pa)[4], u32 sv, int acc) {
  const u32 vd = ((sv & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
#pragma unroll
  for (int kc = 0; kc < 8; ++kc)
    wgmma_m64n128k16_rs<1>(o, pa[kc], ((u64)W3_DHI << 32) | (vd + ((kc * 16 * 128) >> 4)), kc > 0 || acc);
  wg_commit();
}
// P to the register-A fragments in place: fragment (kc, i) = bf16 pair of sc[8 kc + 2 i],
// sc[8 kc + 2 i + 1], stored as the bits of sc[4 kc + i] (each write is at or below the pair it
// reads, so nothing is read after it is overwritten). Keeps P in S's registers: ptxas does not
// reuse the accumulator block of an S for a separate P array while another S is in flight.
__device__ __forceinline__ void w3_p_inplace(float* sc) {
#pragma unroll
  for (int i = 0; i < 32; ++i) sc[i] = __uint_as_float(pack2(sc[2 * i], sc[2 * i + 1]));
}
// O (+)= P V with P in place in sc (w3_p_inplace), committed.
__device__ __forceinline__ void w3_issue_pv_in(float* o, const float* sc, u32 sv, int acc) {
  const u32 vd = ((sv & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
#pragma unroll
  for (int kc = 0; kc < 8; ++kc) {
    const u32 a[4] = {__float_as_uint(sc[4 * kc]), __float_as_uint(sc[4 * kc + 1]), __float_as_uint(sc[4 * kc + 2]),
                      __float_as_uint(sc[4 * kc + 3])};
    wgmma_m64n128k16_rs<1>(o, a, ((u64)W3_DHI << 32) | (vd + ((kc * 16 * 128) >> 4)), kc > 0 || acc);
  }
  wg_commit();
}
__device__ __forceinline__ float w3_rowmax(const float* sc, int h) {
  float mx = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) mx = fmaxf(mx, fmaxf(sc[nt * 4 + 2 * h], sc[nt * 4 + 2 * h + 1]));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  return fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
}
// W3_POLY N (0..16, session 28): in each row's 16 column pairs of a tile, N evenly spread pairs take
// their exponentials from a cubic on the FMA pipe (w3_ex2_poly) instead of the MUFU, whose 16
// results per clock per SM bound the softmax when both warpgroups are in it (session 27's stamps).
#ifndef W3_POLY
#define W3_POLY 0
#endif
// 2^x for x <= 0 (finite) without the MUFU: x = j + f with j = round(x), f in [-0.5, 0.5];
// 2^f by a cubic fitted for relative error (1.0e-4 at most, against bf16 P's 3.9e-3 rounding);
// j added to the exponent field. x is clamped at -127, where f = 0 and p = 1 exactly, so that
// 2^-127 (and -inf) give exactly 0 and no exponent wraps.
__device__ __forceinline__ float w3_ex2_poly(float x) {
  x = fmaxf(x, -127.f);
  const float t = x + 12582912.f;  // 1.5 * 2^23: round(x) in the low mantissa bits
  const float f = x - (t - 12582912.f);
  const float p = fmaf(fmaf(fmaf(0.0550089329f, f, 0.242210999f), f, 0.693282902f), f, 1.f);
  return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));
}
__device__ __forceinline__ float w3_exps(float* sc, int h, float m, float scale_log2) {
  float s = 0.f;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    if ((nt * W3_POLY) % 16 < W3_POLY) {
      sc[nt * 4 + 2 * h] = w3_ex2_poly(fmaf(sc[nt * 4 + 2 * h], scale_log2, -m));
      sc[nt * 4 + 2 * h + 1] = w3_ex2_poly(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -m));
    } else {
      sc[nt * 4 + 2 * h] = w3_ex2(fmaf(sc[nt * 4 + 2 * h], scale_log2, -m));
      sc[nt * 4 + 2 * h + 1] = w3_ex2(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -m));
    }
    s += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
  }
  return s;
}
// A task's first tile: the rows' maxima, P in place, l.
__device__ __forceinline__ void w3_softmax_first(float* sc, float* mm, float* ll, float scale_log2) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mm[h] = w3_rowmax(sc, h) * scale_log2;
    ll[h] = w3_exps(sc, h, mm[h], scale_log2);
  }
}
// A later tile: new maxima, P in place, l rescaled and added to; `al`: O's factor.
__device__ __forceinline__ void w3_softmax_next(float* sc, float* mm, float* ll, float* al, float scale_log2) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float mn = fmaxf(mm[h], w3_rowmax(sc, h) * scale_log2);
    al[h] = w3_ex2(mm[h] - mn);
    mm[h] = mn;
    ll[h] = ll[h] * al[h] + w3_exps(sc, h, mn, scale_log2);
  }
}

// W3_PP 1 (NC 2, the plain tile loop): FA3's ping-pong. Each warpgroup issues its wgmma only in
// its turn (named barrier 8 + cw, which the other warpgroup arrives on after issuing its own), so
// the two warpgroups' S and P V alternate in the tensor pipe and one's softmax runs under the
// other's products instead of both at once.
#ifndef W3_PP
#define W3_PP 0
#endif
#if W3_PP && (NC != 2 || W3_EARLY)
#error "W3_PP is written for NC 2 and the plain tile loop"
#endif
__device__ __forceinline__ void w3_bar_arrive(u32 id, u32 n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
#if W3_PP
#define W3_PP_SYNC() named_bar(8 + cw, 256)
#define W3_PP_ARRIVE() w3_bar_arrive(8 + (1 - cw), 256)
#else
#define W3_PP_SYNC() \
  do {               \
  } while (0)
#define W3_PP_ARRIVE() \
  do {                 \
  } while (0)
#endif

// A 64 x 128 fp32 accumulator (times f[h] per row half) to bf16 with stmatrix into a 64-row,
// 128-byte-swizzled buffer [2 column blocks][64 rows][128 B] (the layout of a Q slab, and of an
// A operand read K-major).
__device__ __forceinline__ void w3_stage(const float* acc, const float* f, u32 buf, int lane, int wq) {
  const int li = lane & 7, lm = lane >> 3;
  const u32 rs = 16 * wq + li + 8 * (lm & 1);
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    const u32 c = 16 * q + 8 * (lm >> 1);
    u32 v[4];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const int nt = 2 * q + (m >> 1), h = m & 1;
      v[m] = pack2(acc[nt * 4 + 2 * h] * f[h], acc[nt * 4 + 2 * h + 1] * f[h]);
    }
    w3_stmatrix4(buf + (c >> 6) * (W3_SLAB_BYTES / 2) + rs * 128 + ((((c & 63) >> 3) ^ (rs & 7)) << 4), v);
  }
}
// Ablations (timing only; the check fails where they change results): W3_AB_NOEXP no
// exponential (the FMA's value), W3_AB_NOS no S wgmma (S = 0), W3_AB_NOPV no P V wgmma,
// W3_AB_NOSTORE no O tensor store. W3_UNITMAJOR: each CTA takes whole units (all TPU tasks of a
// document and KV head in a row) instead of tasks round-robin; W3_AB_KVONCE (with it): the
// producer loads a unit's K/V once, for its first task.
#ifndef W3_AB_NOEXP
#define W3_AB_NOEXP 0
#endif
#ifndef W3_AB_NOS
#define W3_AB_NOS 0
#endif
#ifndef W3_AB_NOPV
#define W3_AB_NOPV 0
#endif
#ifndef W3_AB_NOSTORE
#define W3_AB_NOSTORE 0
#endif
#ifndef W3_UNITMAJOR
#define W3_UNITMAJOR 0
#endif
#ifndef W3_AB_KVONCE
#define W3_AB_KVONCE 0
#endif
#if W3_AB_KVONCE && !W3_UNITMAJOR
#error "W3_AB_KVONCE needs W3_UNITMAJOR"
#endif
#if W3_AB_NOEXP
#define W3_EXP(x) (x)
#else
#define W3_EXP(x) w3_ex2(x)
#endif
#if W3_UNITMAJOR
#define W3_FOR_TASKS                                                                   \
  for (u32 uu = blockIdx.x, gg = 0, t = blockIdx.x * W3_TPU; uu < n_units;           \
       (++gg == W3_TPU ? (gg = 0, uu += gridDim.x) : 0u), t = uu * W3_TPU + gg, ++k)
#else
#define W3_FOR_TASKS for (u32 t = blockIdx.x; t < n_tasks; t += gridDim.x, ++k)
#endif

// W3_ALIAS 1 (timing only): every document's Q, K/V, O and LSE rows are document 0's, so the
// same work runs with its bytes in L2 instead of DRAM (the check fails).
#ifndef W3_ALIAS
#define W3_ALIAS 0
#endif
// Unit u's key tiles: the first (in the K/V tensor's rows, key row 128 * t0) and how many.
__device__ __forceinline__ void w3_tiles(u32 u, u32* t0, u32* nt) {
#if W3_MODE == 1
  const u32 bh = u / W3_HK, b = bh >> 1;
  *t0 = b ? 2 * b - 2 : 0;
  *nt = 2 * b + (bh & 1) + 1 - *t0;
#elif W3_MODE == 2
  (void)u;
  *t0 = 0;
  *nt = W3_SEQ / 128;
#else
  *t0 = (W3_ALIAS ? 0u : u / W3_HK) * W3_TILES;
  *nt = W3_TILES;
#endif
}
// The slab of unit-relative index s: head and first row.
__device__ __forceinline__ void w3_slab(u32 u, u32 s, u32* head, u32* row0) {
  const u32 kvh = u % W3_HK;
  *head = kvh * (W3_H / W3_HK) + s % (W3_H / W3_HK);
#if W3_MODE == 1
  *row0 = (u / W3_HK) * 128 + (s / (W3_H / W3_HK)) * 64;  // (block, half) = u / HK
#elif W3_MODE == 2
  *row0 = (u / W3_HK) * 64;
#else
  const u32 doc = W3_ALIAS ? 0u : u / W3_HK;
  *row0 = doc * W3_DOC + (s / (W3_H / W3_HK)) * 64;
#endif
}

// W3_STAMP 1 (W3_ONE only; the measurement build, not the timed one): in the launch that reads
// the clock, thread 0 of each consumer warpgroup of the first W3_STAMP_CTAS CTAs stamps clock64
// at 9 points of its first W3_STAMP_TASKS tasks (w3_stamps[cta][warpgroup][task][point]): task
// start, Q ready, K ready, S issued, S done, softmax done, P V issued, P V done, epilogue done.
#ifndef W3_STAMP
#define W3_STAMP 0
#endif
// W3_ONES 1 (W3_ONE only): the rows' sums l come from the tensor cores instead of the softmax's
// adds. After P is in place, 16 wgmma m64n8k16 (A = P's fragments, B = a 1 KiB block of bf16
// ones in shared memory, K-major; every k-chunk reads the same block) accumulate P * ones: each
// thread gets its two rows' full sums over the 256 keys in lsum[0] and lsum[2], with no shuffles.
// The softmax then issues no row-sum adds (~1 of its ~4.5 instructions per score); the tensor
// cores do +6 % of the P V's work. l is the sum of the bf16 P the P V multiplies (the same
// rounding as O's numerator).
#ifndef W3_ONES
#define W3_ONES 0
#endif
#if W3_ONES && !W3_ONE
#error "W3_ONES needs W3_ONE"
#endif
__device__ __forceinline__ void w3_wgmma_m64n8k16_rs(float* d, const u32* a, u64 b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, %8, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}
// W3_LATEREL 1 (W3_ONE only): the thread that issues a slab's O tensor stores does not wait for
// their read at the task's end; it owes its "Q empty" arrival and pays it (the read wait, then the
// arrival) right after the next task's S issue, so neither its warpgroup's next task nor the
// epilogue's critical path holds the read (main's FWD_LATEREL 1).
#ifndef W3_LATEREL
#define W3_LATEREL 0
#endif
#if W3_LATEREL && !W3_ONE
#error "W3_LATEREL is written for W3_ONE"
#endif
#if W3_STAMP && !W3_ONE
#error "W3_STAMP is written for W3_ONE"
#endif
#define W3_STAMP_CTAS 8
#define W3_STAMP_TASKS 32
#if W3_STAMP
__device__ u64 w3_stamps[W3_STAMP_CTAS][NC][W3_STAMP_TASKS][10];
#define W3_ST(i) \
  do { \
    if (st_on && k < W3_STAMP_TASKS) w3_stamps[blockIdx.x][cw][k][i] = clock64(); \
  } while (0)
#else
#define W3_ST(i) \
  do { \
  } while (0)
#endif

extern "C" __global__ void __launch_bounds__(W3_THREADS, 1)
w3_fwd(const __grid_constant__ CUtensorMap qmap, const __grid_constant__ CUtensorMap kmap,
       const __grid_constant__ CUtensorMap vmap, const __grid_constant__ CUtensorMap omap, float* lse,
       u32 n_units, float scale_log2, u64* clk) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const u32 base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const u32 sQ = base;
  const u32 sK = sQ + 2 * NC * W3_SLAB_BYTES;
  const u32 sV = sK + 2 * W3_TILE_BYTES;
  const u32 sP = sV + 2 * W3_TILE_BYTES;  // W3_EARLY 2: [NC][2 column blocks][64 rows][128 B]
  const u32 bars = sP + (W3_EARLY == 2 ? NC * W3_SLAB_BYTES : 0);
  const u32 sOnes = (bars + 256 + 1023u) & ~1023u;  // W3_ONES: 1 KiB of bf16 ones, 1 KiB aligned
  auto full = [&](int j) { return bars + 8u * j; };
  auto empty = [&](int j) { return bars + 8u * (2 + j); };
  auto qfull = [&](int b) { return bars + 8u * (4 + b); };
  auto qempty = [&](int b) { return bars + 8u * (6 + b); };
  const int tid = threadIdx.x, wg = tid >> 7;
  const u32 n_tasks = n_units * W3_TPU;

  if (tid == 0) {
    for (int j = 0; j < 2; ++j) {
      mbar_init(full(j), 1);
      mbar_init(empty(j), 128 * NC);
    }
    for (int b = 0; b < 2; ++b) {
      mbar_init(qfull(b), 1);
      mbar_init(qempty(b), 128 * NC);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    setmaxnreg_dec<W3_PROD_REGS>();
    if (tid != 0) return;
    u32 k = 0, it = 0;  // tasks, and K/V tiles through the ring of 2 stages
    W3_FOR_TASKS {
      const u32 u = t / W3_TPU, g = t % W3_TPU;
      const int b = k & 1;
      const u32 n_act = min((u32)NC, (u32)W3_SLABS - g * NC);
      if (k >= 2) mbar_wait(qempty(b), ((k >> 1) - 1) & 1);
      w3_arrive_tx(qfull(b), n_act * W3_SLAB_BYTES);
      for (u32 c = 0; c < n_act; ++c) {
        u32 head, row0;
        w3_slab(u, g * NC + c, &head, &row0);
        const u32 dst = sQ + (b * NC + c) * W3_SLAB_BYTES;
        w3_tma_load(dst, &qmap, 0, head, row0, qfull(b));
        w3_tma_load(dst + W3_SLAB_BYTES / 2, &qmap, 64, head, row0, qfull(b));
      }
      const u32 kvh = u % W3_HK;
      u32 t0, nt;
      w3_tiles(u, &t0, &nt);
#if W3_KVS
      (void)it;
      for (int kv = 0; kv < 2; ++kv) {  // K of both tiles on barrier 0, then V on barrier 1
        if (k >= 1) mbar_wait(empty(kv), (k - 1) & 1);
        w3_arrive_tx(full(kv), 2 * W3_TILE_BYTES);
        for (int j = 0; j < 2; ++j)
          for (int h = 0; h < 2; ++h)
            w3_tma_load((kv ? sV : sK) + j * W3_TILE_BYTES + h * (W3_TILE_BYTES / 2), kv ? &vmap : &kmap, 64 * h,
                        kvh, 128 * (t0 + j), full(kv));
      }
#else
      for (u32 j = 0; j < nt; ++j, ++it) {
        const int st = it & 1;
        if (it >= 2) mbar_wait(empty(st), ((it >> 1) - 1) & 1);
#if W3_AB_KVONCE
        if (g > 0) {  // the unit's K/V are still in the stages (same CTA, previous task)
          mbar_arrive(full(st));
          continue;
        }
#endif
        w3_arrive_tx(full(st), 2 * W3_TILE_BYTES);
        const int key0 = 128 * (t0 + j);
        for (int h = 0; h < 2; ++h) {
          w3_tma_load(sK + st * W3_TILE_BYTES + h * (W3_TILE_BYTES / 2), &kmap, 64 * h, kvh, key0, full(st));
          w3_tma_load(sV + st * W3_TILE_BYTES + h * (W3_TILE_BYTES / 2), &vmap, 64 * h, kvh, key0, full(st));
        }
      }
#endif
    }
    return;
  }

  // ---------------- consumers ----------------
  setmaxnreg_inc<W3_CONS_REGS>();
  // The SM clock over the CTA's run: clock64 and %globaltimer at its first consumer thread's
  // start and end (clk[4 b .. 4 b + 3]).
  if (tid == 128 && clk) {
    clk[4 * blockIdx.x] = clock64();
    clk[4 * blockIdx.x + 1] = global_ns();
  }
  // (Register budget at NC 3, checked offline with nvrtc_check.py: 160 per consumer thread is
  // enough only with the tile loop unrolled and P converted whole before its P V (W3_PONE);
  // a vote or shuffle to make `act` visibly uniform costs the registers that make ptxas
  // serialise the wgmma.)
  const int cw = wg - 1, lane = tid & 31, wq = (tid >> 5) & 3;
#if W3_ONES
  for (u32 i = tid - 128; i < 256; i += 128 * NC)
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sOnes + 4 * i), "r"(0x3F803F80u) : "memory");
  fence_proxy_async();  // (generic writes, read by wgmma through the async proxy)
  named_bar(12, 128 * NC);
#else
  (void)sOnes;
#endif
  const int r_lo = 16 * wq + (lane >> 2), t4 = lane & 3;  // rows r_lo, r_lo + 8 of the slab
#if W3_PP
  if (cw == 1) w3_bar_arrive(8, 256);  // warpgroup 0 issues first
#endif
#if W3_STAMP
  const bool st_on = clk && blockIdx.x < W3_STAMP_CTAS && (tid & 127) == 0;
#endif
  u32 k = 0, it = 0;  // tasks, and K/V tiles through the ring of 2 stages (plain loop)
#if W3_LATEREL
  u32 owed = 0;  // 1 + the Q buffer whose "Q empty" arrival this thread still owes
#endif
  W3_FOR_TASKS {
    const u32 u = t / W3_TPU, g = t % W3_TPU;
    const int b = k & 1;
    const bool act = g * NC + cw < W3_SLABS;  // uniform per warpgroup
    const u32 sq = sQ + (b * NC + cw) * W3_SLAB_BYTES;
    W3_ST(0);
    mbar_wait(qfull(b), (k >> 1) & 1);
    W3_ST(1);
    float o[W3_D / 2];
#if !W3_EARLY && !W3_ONE  // (W3_EARLY, W3_ONE: the first P V writes O without adding)
#pragma unroll
    for (int i = 0; i < W3_D / 2; ++i) o[i] = 0.f;
#endif
    float mm[2] = {-INFINITY, -INFINITY}, ll[2] = {0.f, 0.f};
#if W3_ONE
    (void)it;  // (stages 0 and 1 by the task count, as W3_EARLY)
    if (act) {
      float s0[64], s1[64];
      const u32 qd = ((sq & 0x3FFFFu) >> 4) | (1u << 16);
      mbar_wait(full(0), k & 1);
      W3_ST(2);
      W3_PP_SYNC();
      w3_issue_s(s0, qd, (((sK) & 0x3FFFFu) >> 4) | (1u << 16));
#if !W3_KVS
      mbar_wait(full(1), k & 1);
#endif
      w3_issue_s(s1, qd, (((sK + W3_TILE_BYTES) & 0x3FFFFu) >> 4) | (1u << 16));
      W3_PP_ARRIVE();
#if W3_LATEREL
      if (owed) {
        asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
        mbar_arrive(qempty(owed - 1));
        owed = 0;
      }
#endif
      W3_ST(3);
      wg_wait<0>();
      reg_fence<64>(s0);
      reg_fence<64>(s1);
      W3_ST(4);
#if W3_KVS
      mbar_arrive(empty(0));  // both K tiles read
#endif
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 16; ++nt)
          mx = fmaxf(mx, fmaxf(fmaxf(s0[nt * 4 + 2 * h], s0[nt * 4 + 2 * h + 1]),
                               fmaxf(s1[nt * 4 + 2 * h], s1[nt * 4 + 2 * h + 1])));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mm[h] = mx * scale_log2;
#if W3_ONES
        (void)w3_exps(s0, h, mm[h], scale_log2);  // (the sums are dead: l comes from the ones)
        (void)w3_exps(s1, h, mm[h], scale_log2);
#else
        ll[h] = w3_exps(s0, h, mm[h], scale_log2) + w3_exps(s1, h, mm[h], scale_log2);
#endif
      }
      w3_p_inplace(s0);
      w3_p_inplace(s1);
#pragma unroll
      for (int i = 0; i < W3_D / 2; ++i) o[i] = 0.f;
      W3_ST(5);
#if W3_KVS
      mbar_wait(full(1), k & 1);
#endif
      W3_PP_SYNC();
      wg_fence();
      {
        const u32 vd0 = ((sV & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
        const u32 vd1 = (((sV + W3_TILE_BYTES) & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
#pragma unroll
        for (int kc = 0; kc < 8; ++kc) {
          const u32 a[4] = {__float_as_uint(s0[4 * kc]), __float_as_uint(s0[4 * kc + 1]),
                            __float_as_uint(s0[4 * kc + 2]), __float_as_uint(s0[4 * kc + 3])};
          wgmma_m64n128k16_rs<1>(o, a, ((u64)W3_DHI << 32) | (vd0 + ((kc * 16 * 128) >> 4)), kc > 0);
        }
#pragma unroll
        for (int kc = 0; kc < 8; ++kc) {
          const u32 a[4] = {__float_as_uint(s1[4 * kc]), __float_as_uint(s1[4 * kc + 1]),
                            __float_as_uint(s1[4 * kc + 2]), __float_as_uint(s1[4 * kc + 3])};
          wgmma_m64n128k16_rs<1>(o, a, ((u64)W3_DHI << 32) | (vd1 + ((kc * 16 * 128) >> 4)), 1);
        }
      }
#if W3_ONES
      float lsum[4];
      {
        const u64 od = ((u64)W3_DHI << 32) | (((sOnes & 0x3FFFFu) >> 4) | (1u << 16));
#pragma unroll
        for (int kc = 0; kc < 16; ++kc) {
          const float* sp = kc < 8 ? s0 : s1;
          const int c = kc & 7;
          const u32 a[4] = {__float_as_uint(sp[4 * c]), __float_as_uint(sp[4 * c + 1]), __float_as_uint(sp[4 * c + 2]),
                            __float_as_uint(sp[4 * c + 3])};
          w3_wgmma_m64n8k16_rs(lsum, a, od, kc > 0);
        }
      }
#endif
      wg_commit();
      W3_PP_ARRIVE();
      W3_ST(6);
      wg_wait<0>();
      reg_fence<W3_D / 2>(o);
      reg_fence<32>(s0);
      reg_fence<32>(s1);
      W3_ST(7);
#if W3_ONES
      reg_fence<4>(lsum);
      ll[0] = lsum[0];  // row r_lo's sum over all 256 keys (every column of P * ones)
      ll[1] = lsum[2];  // row r_lo + 8's
#endif
#if !W3_KVS
      mbar_arrive(empty(0));
#endif
      mbar_arrive(empty(1));
    } else {
      for (int j = 0; j < W3_TILES; ++j) {
        mbar_wait(full(j), k & 1);
        mbar_arrive(empty(j));
      }
    }
#elif W3_EARLY
    (void)it;  // (the early path takes stages 0 and 1 by the task count)
    // Both tiles' S issued at once; tile 0's softmax runs while the tensor cores compute tile
    // 1's S, tile 1's exponentials while they compute tile 0's P V.
    if (act) {
      float s0[64], s1[64];
      const u32 qd = ((sq & 0x3FFFFu) >> 4) | (1u << 16);
      mbar_wait(full(0), k & 1);
      w3_issue_s(s0, qd, (((sK) & 0x3FFFFu) >> 4) | (1u << 16));
      mbar_wait(full(1), k & 1);
      w3_issue_s(s1, qd, (((sK + W3_TILE_BYTES) & 0x3FFFFu) >> 4) | (1u << 16));
      wg_wait<1>();
      reg_fence<64>(s0);
      w3_softmax_first(s0, mm, ll, scale_log2);
#if W3_EARLY == 2
      {
        const float one[2] = {1.f, 1.f};
        w3_stage(s0, one, sP + cw * W3_SLAB_BYTES, lane, wq);
      }
      fence_proxy_async();
      named_bar(1 + cw, 128);
#else
      w3_p_inplace(s0);
#endif
      // (O defined only here: left undefined before, ptxas keeps it live across the task's S.)
#pragma unroll
      for (int i = 0; i < W3_D / 2; ++i) o[i] = 0.f;
      wg_fence();
#if W3_EARLY == 2
      {
        const u32 pd = (((sP + cw * W3_SLAB_BYTES) & 0x3FFFFu) >> 4) | (1u << 16);
        const u32 vd = ((sV & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
#pragma unroll
        for (int kk = 0; kk < 8; ++kk)
          wgmma_m64n128k16_ss<1>(o, ((u64)W3_DHI << 32) | (pd + (((kk >> 2) * (W3_SLAB_BYTES / 2) + (kk & 3) * 32) >> 4)),
                                 ((u64)W3_DHI << 32) | (vd + ((kk * 16 * 128) >> 4)), kk > 0);
        wg_commit();
      }
#else
      w3_issue_pv_in(o, s0, sV, 0);
#endif
      wg_wait<1>();
      reg_fence<64>(s1);
      float al[2];
      w3_softmax_next(s1, mm, ll, al, scale_log2);
      w3_p_inplace(s1);
      wg_wait<0>();
      reg_fence<W3_D / 2>(o);
#if W3_EARLY != 2
      reg_fence<32>(s0);
#endif
      mbar_arrive(empty(0));
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int i = 0; i < W3_D / 8; ++i) {
          o[i * 4 + 2 * h] *= al[h];
          o[i * 4 + 2 * h + 1] *= al[h];
        }
      wg_fence();
      w3_issue_pv_in(o, s1, sV + W3_TILE_BYTES, 1);
      wg_wait<0>();
      reg_fence<W3_D / 2>(o);
      reg_fence<32>(s1);
      mbar_arrive(empty(1));
    } else {
      for (int j = 0; j < W3_TILES; ++j) {
        mbar_wait(full(j), k & 1);
        mbar_arrive(empty(j));
      }
    }
#else
    u32 t0, nt;
    w3_tiles(u, &t0, &nt);
#if W3_UNROLL
#pragma unroll
#else
#pragma unroll 1
#endif
    for (int j = 0; j < W3_MAXT; ++j) {
      if (j >= (int)nt) break;
      const int st = it & 1;
      mbar_wait(full(st), (it >> 1) & 1);
      if (act) {
        float sc[64];
        // Descriptors as a base low word plus constant offsets (the start address field takes
        // them without carry below 256 KiB); the high word (SBO 1024, 128-byte swizzle) is shared.
        const u32 qd = ((sq & 0x3FFFFu) >> 4) | (1u << 16);
        const u32 kd = (((sK + st * W3_TILE_BYTES) & 0x3FFFFu) >> 4) | (1u << 16);
        W3_PP_SYNC();
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < W3_D / 16; ++kk) {
          const u64 da = ((u64)W3_DHI << 32) | (qd + (((kk >> 2) * (W3_SLAB_BYTES / 2) + (kk & 3) * 32) >> 4));
          const u64 db = ((u64)W3_DHI << 32) | (kd + (((kk >> 2) * (W3_TILE_BYTES / 2) + (kk & 3) * 32) >> 4));
#if W3_AB_NOS
          if (kk == 0) {
#pragma unroll
            for (int i = 0; i < 64; ++i) sc[i] = 0.f;
          }
          (void)da, (void)db;
#else
          wgmma_m64n128k16_ss<0>(sc, da, db, kk > 0);
#endif
        }
        wg_commit();
        W3_PP_ARRIVE();
        wg_wait<0>();
        reg_fence<64>(sc);
#if W3_MODE == 1
        if (j == (int)nt - 1) {  // the diagonal tile: key <= row
          u32 m_head, m_row0;  // (recomputed here: cheaper than a register across the loop)
          w3_slab(u, g * NC + cw, &m_head, &m_row0);
          const int kb = 128 * (int)(t0 + j) + 2 * t4;
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row = (int)m_row0 + r_lo + 8 * h;
#pragma unroll
            for (int n = 0; n < 16; ++n)
#pragma unroll
              for (int e = 0; e < 2; ++e)
                if (kb + 8 * n + e > row) sc[n * 4 + 2 * h + e] = -INFINITY;
          }
        }
#endif
        // Online softmax (log2 domain), rows h = 0 / 1.
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float mx = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < 16; ++nt) mx = fmaxf(mx, fmaxf(sc[nt * 4 + 2 * h], sc[nt * 4 + 2 * h + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mn = fmaxf(mm[h], mx * scale_log2);
          const float al = w3_ex2(mm[h] - mn);  // 0 on the first tile (mm = -inf)
          mm[h] = mn;
          float s = 0.f;
#pragma unroll
          for (int nt = 0; nt < 16; ++nt) {
            sc[nt * 4 + 2 * h] = W3_EXP(fmaf(sc[nt * 4 + 2 * h], scale_log2, -mn));
            sc[nt * 4 + 2 * h + 1] = W3_EXP(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -mn));
            s += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
          }
          ll[h] = ll[h] * al + s;
          if (j > 0) {
#pragma unroll
            for (int i = 0; i < W3_D / 8; ++i) {
              o[i * 4 + 2 * h] *= al;
              o[i * 4 + 2 * h + 1] *= al;
            }
          }
        }
        // P V in two halves of 64 keys (the first half's P registers are built while the
        // second half's scores are still live).
        u32 pa[8][4];
        acc_to_a<64>(sc, pa);
#if W3_PONE
        acc_to_a<64>(sc + 32, pa + 4);
#endif
        reg_fence<W3_D / 2>(o);
        W3_PP_SYNC();
        wg_fence();
        const u32 vd = (((sV + st * W3_TILE_BYTES) & 0x3FFFFu) >> 4) | ((u32)(W3_TILE_BYTES / 2 >> 4) << 16);
#pragma unroll
        for (int kc = 0; kc < 4; ++kc)
          if (!W3_AB_NOPV) wgmma_m64n128k16_rs<1>(o, pa[kc], ((u64)W3_DHI << 32) | (vd + ((kc * 16 * 128) >> 4)), 1);
#if !W3_PONE
        acc_to_a<64>(sc + 32, pa + 4);
#endif
#pragma unroll
        for (int kc = 4; kc < 8; ++kc)
          if (!W3_AB_NOPV) wgmma_m64n128k16_rs<1>(o, pa[kc], ((u64)W3_DHI << 32) | (vd + ((kc * 16 * 128) >> 4)), 1);
        wg_commit();
        W3_PP_ARRIVE();
        wg_wait<0>();
        reg_fence<W3_D / 2>(o);
      }
      mbar_arrive(empty(st));
      ++it;
    }
#endif
    if (act) {
      u32 head, row0;
      w3_slab(u, g * NC + cw, &head, &row0);
      float inv[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#if W3_ONES
        const float l = ll[h];  // (already the whole row's)
#else
        float l = ll[h] + __shfl_xor_sync(0xffffffffu, ll[h], 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
#endif
        inv[h] = 1.f / l;
        if (t4 == 0) lse[(u64)(row0 + r_lo + 8 * h) * W3_H + head] = (mm[h] + __log2f(l)) * 0.6931471805599453f;
      }
      // O / l to bf16 through stmatrix into this slab's Q buffer (its last S has completed),
      // then one thread stores the 64 rows by TMA.
      w3_stage(o, inv, sq, lane, wq);
      fence_proxy_async();
      named_bar(1 + cw, 128);
      if ((tid & 127) == 0) {
        if (!W3_AB_NOSTORE) {
          w3_tma_store(&omap, sq, 0, head, row0);
          w3_tma_store(&omap, sq + W3_SLAB_BYTES / 2, 64, head, row0);
        }
        asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#if W3_LATEREL
        owed = 1 + b;
#else
        asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
      }
    }
    W3_ST(8);
#if W3_LATEREL
    if (!owed || (u32)b + 1 != owed) mbar_arrive(qempty(b));
#else
    mbar_arrive(qempty(b));
#endif
  }
  if ((tid & 127) == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  if (tid == 128 && clk) {
    clk[4 * blockIdx.x + 2] = clock64();
    clk[4 * blockIdx.x + 3] = global_ns();
  }
}
