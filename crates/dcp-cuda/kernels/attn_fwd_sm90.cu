// Blockwise attention forward over a work list on Hopper (sm_90a): wgmma + warp specialisation,
// persistent CTAs.
//
// Same contract as attn_fwd.cu (work list, per-row key ranges in concatenated-KV coordinates,
// tiles listed per task, partial tiles masked, GQA, O = 0 / LSE = -inf for rows with no key);
// only the tile shape differs: 128 query rows x S90_BC = 128 keys.
//
// Persistent: the grid is at most one CTA per SM; CTA b starts with task b and then takes the
// next task from a counter (`sched[0]`, one atomicAdd per task, fetched a task ahead;
// `sched[2]` = number of tasks, longest first), so short tasks (packed batches, thousands of
// small works) cost no launch tail or CTA prologue, and the producer loads the next task's Q and
// first K/V tiles while the consumers finish the current one. The last CTA to finish resets the
// counters for the next launch (`sched[1]` counts finished CTAs).
//
// One CTA = 3 warpgroups. Warpgroup 0 is the producer: per task it puts the task and work
// descriptors and each row's range span into shared memory and loads the Q tile into one of
// FWD_NQ Q buffers; then it streams the task's K/V tiles into FWD_NS stages (2 and 2 at D 128,
// 4 and 4 at D 64: the host's defines), signalling a "full" mbarrier per
// stage when the copies land: by TMA tensor copies where the host built the work maps (FWD_TMA,
// below: one KV region), else with cp.async (each key row through its own address, since a work's
// keys may come from several KV regions; cp.async.mbarrier.arrive.noinc). For a partial tile it also stages the tile word
// and the first two ranges of each row, so the consumers' mask reads no global memory (rows with
// more ranges read the rest from `ranges`).
// Warpgroups 1 and 2 are consumers, 64 query rows each: S = Q K^T with wgmma m64n128k16 (Q and K
// from shared memory), mask (partial tiles only: a select before one ex2.approx, no branch per
// element) and online softmax in registers (log2 domain), then O += P V with wgmma m64nDk16
// taking P from registers (the accumulator layout of S is the A fragment layout) and V from
// shared memory (MN-major); then they release the stage ("empty" mbarrier, every thread).
// Q, K and V sit in shared memory in the 128-byte swizzled layout: per 64-column block, rows of
// 128 bytes, 16-byte chunk c of row r at r*128 + ((c ^ r%8) * 16).
// setmaxnreg moves registers from the producer to the consumers.
// Measured variants (separate K and V barriers, S(j+1) issued with P V(j), warpgroup ping-pong,
// one elected arrival per warp): bench/results/kernels-2026-11-28e-fwd.
// With the TMA producer: the next tile's S issued early from one flat consumer loop, with and
// without separate K and V barriers, lost 17-27 % on 1000 short works
// (bench/results/kernels-2026-11-30-kf22, -kv23; the code is kept there as diffs).

// The head dim (the host's define; 128 by default), before the switches below test it.
#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif

// FWD_CLAIM_LATE 1: the next task index is claimed after a task's last K/V load instead of at its
// start (A/B; see attn_bwd_sm90.cu, where claiming late gained 4-6 % on causal 128K).
#ifndef FWD_CLAIM_LATE
#define FWD_CLAIM_LATE 0
#endif

// FWD_FASTDESC 1: the wgmma descriptors are fixed base descriptors (computed once per CTA, the
// consumer warpgroup index from a warp shuffle so they sit in uniform registers) plus constant
// offsets on their low word, instead of ~12 instructions per wgmma rebuilding them from the shared
// address (as BWD_FASTDESC in attn_bwd_sm90.cu).
// Defaults: on at D 128, where together with FWD_LAZY and FWD_SPLIT 2 they measured +5 % / +5 %
// at causal 32K / 128K (bench/results/kernels-2026-11-28m, variant pv2). At D 64 the same variant
// measured -5 % / +2 % then (2 K/V stages); with 4 stages (since session 29) FWD_FASTDESC and
// FWD_SPLIT 2 gained 1-8 % on every D 64 shape, FWD_LAZY a further 2-3 % on the long ones
// (packed, causal 32K, lambda, shared-question) in the plain kernel but cost 1-2 % in the
// short-task kernel, FWD_FIRST0 cost 1-3 % (bench/results/gpu-x1-2026-12-01s34): on at D 64 too,
// FWD_LAZY there only without FWD_LATEREL (the host's define of the short-task kernels).
#ifndef FWD_FASTDESC
#define FWD_FASTDESC 1
#endif
// FWD_LAZY 1: the running row maximum is raised (and O, l rescaled) only when a tile's maximum
// exceeds it by more than FWD_LAZY_TAU (log2 units), decided per warp (`__any_sync`, a
// warp-uniform branch): otherwise P = exp2(s - m) with the stale m (P <= 2^TAU, exact in the
// same bf16/fp32 formats) and no multiply of the 64 O registers per step. O / l and LSE = m +
// log2 l are unchanged, since O and l always share the same m.
#ifndef FWD_LAZY
#if HEAD_DIM == 128 || (HEAD_DIM == 64 && !defined(FWD_LATEREL))
#define FWD_LAZY 1
#else
#define FWD_LAZY 0
#endif
#endif
#ifndef FWD_LAZY_TAU
#define FWD_LAZY_TAU 8.0f
#endif
// FWD_SPLIT 1: full tiles are computed as two halves of 64 keys within the one K/V stage: S of
// both halves issued together, the softmax of half a runs while the tensor cores compute S of
// half b, that of half b while they compute P V of half a (intra-warpgroup overlap without a
// third stage or separate K and V barriers); P V of half b follows without a wait unless a row
// of the warpgroup rescales for half b (decided by `bar.red.or` on named barrier 1 + warpgroup).
// Partial tiles keep the whole-tile step. Variants and SASS counts: bench/results/kernels-2026-11-28m.
// FWD_SPLIT 2: S of the whole tile as before, one row maximum, then P V issued in two halves:
// P V of keys 0-63 runs while the exponentials of keys 64-127 are computed (every tile).
#ifndef FWD_SPLIT
#define FWD_SPLIT 2  // (at both head dims: FWD_FASTDESC above)
#endif

// FWD_OST 1: 16-bit O leaves through shared memory: each consumer warpgroup writes its normalised
// 64 x D tile with stmatrix into its own rows of the task's Q buffer (free once the task's last S
// has completed; same 128-byte swizzle, no bank conflicts), then copies it out with 16-byte shared
// loads and 16-byte global stores (a warp stores two whole 256-byte rows at a time) instead of 32
// 4-byte stores per row pair, each touching 8 rows. f32 O (split-K partials) keeps the direct
// stores. FWD_PREDESC 1: the producer loads a task's descriptors (task, work, the row's range
// span, first tile word, KV base) before it waits for the Q buffer to be free, so their latency
// runs under that wait. Defaults: on at D 128, where together they measured works1000 +19 %,
// causal-blockwise +6 %, dense within noise (bench/results/kernels-2026-11-28n, variant ostpd).
// FWD_OST is on at D 64 too since the lead's alternated A/B (kernels-2026-11-28n/lead/d64):
// works1000 +9 %, packed +1.6 %, blockwise +2 %, dense causal 32K / 128K -0.7 % / -0.6 %
// (within run-to-run spread). FWD_PREDESC stays off at D 64: measured there in session 34
// (bench/results/gpu-x1-2026-12-01s34, with FWD_SPLIT 2), short documents +2-4 % but lambda,
// shared-question -5 %, causal 32K -2 %; in the short-task kernels only, +-1 % geomean.
#ifndef FWD_OST
#define FWD_OST 1
#endif
#ifndef FWD_PREDESC
#define FWD_PREDESC (HEAD_DIM == 128)
#endif

// FWD_TMA 1: a one-KV-region work's K/V tiles come by TMA tensor copies (host maps per work,
// `tensormaps.rs`): producer thread 0 announces the tile's bytes on the stage's full barrier
// (`mbarrier.expect_tx`) and issues one `cp.async.bulk.tensor.3d` per 64-column half of K and V
// (box 64 columns x 1 K/V slot x 128 keys, 128-byte swizzle: the layout the wgmma descriptors
// read; keys past the region zero-filled), instead of 128 threads' per-row 16-byte cp.async (D 128:
// 4 instructions per tile instead of ~4096). The tile word and mask staging stay cp.async, so the
// barrier keeps its 128 arrivals plus the transaction bytes. Works with several KV regions or
// without maps keep the cp.async rows. FWD_TMA 2: Q by TMA too (box 64 x 1 head x 128 rows); the
// consumers then order their generic accesses to the Q buffer (O staging) before the next tensor
// copy into it with a proxy fence. FWD_TMA 3: also 16-bit O by TMA (FWD_OST's staged tile:
// each consumer warpgroup fences its stmatrix writes to the async proxy, meets on its named
// barrier, and one thread stores its 64 rows with one `cp.async.bulk.tensor.3d` per 64 columns,
// rows past the work's end clipped, then waits for the copy to have read the tile before that
// thread releases the Q buffer). Default 3 (bench/results/kernels-2026-11-29-tma, call 2, over 0 =
// the cp.async kernel): D 128 causal 32K / 128K +10 / +7 %, causal-blockwise +14 %, works1000
// +23 %, onework +8 %, packed +14 %, lambda +18 %; D 64 +3..+7 % on the same shapes except
// works1000 -5 % (FWD_TMA 1 there: -1.5 %, the others +0..+3 %).
#ifndef FWD_TMA
#define FWD_TMA 3
#endif
// FWD_OPF 1 (FWD_TMA 3, FWD_PREDESC: the D 128 builds): the producer's thread 0 prefetches the
// O tensor map of a task's work (`prefetch.tensormap`) when it reads the task's descriptors, with
// the KV map's prefetch, ~10 000 clk before the epilogue's tensor store uses it. Without it the
// store's issue waited for the map (kernels-2026-11-29-kf18's profile of works1000: one thread's
// two tensor stores took 267 clk median, 391 mean, 729 p90 per task and warpgroup, on the
// warpgroup's path to its next task). Default since kernels-2026-11-29-kf18 (alternated over
// main, 3 runs each: works1000 +3.0 %, causal-blockwise / causal 32K / lambda / packed / onework
// +0.1 / -0.1 / -0.0 / +0.1 / -0.0 %; the same prefetch by each consumer warpgroup's storing
// thread at the task's start measured works1000 +0.5 %). The D 64 builds do not change.
#ifndef FWD_OPF
#define FWD_OPF 1
#endif
#if FWD_OPF && FWD_TMA < 3
#error "FWD_OPF needs FWD_TMA 3"
#endif
// Bytes of tensor maps per work (tensormaps.rs: Q, KV, O maps of 128 bytes).
#define FWD_MAPS 384

// FWD_HALF 1 (opt-in, a kernel of its own): half tiles, decided per task. A partial tile whose
// rows of one consumer warpgroup attend keys of only one 64-key half of the tile is computed on
// that half alone by that warpgroup: S = Q K^T with N = 64 and P V over its 4 key steps; a
// warpgroup whose rows attend none of the tile's keys skips it (decided per warpgroup from the
// rows' mask bits, `bar.red.or` on named barrier 1 + warpgroup, then `vote.any` so that ptxas sees
// uniform branches around the wgmma: a wgmma under a branch it thinks divergent makes it
// serialise every wgmma of the kernel). The host (exec.rs, `DCP_CUDA_FWD_HALF=1`) puts a task's
// half tiles first in its tile list and their count in TaskDesc.pad, and launches this kernel,
// compiled with FWD_HALF 1, only for launches that have half tiles; the consumers run those tiles
// through the half step and the rest through the plain loop (the step's source as without
// FWD_HALF). causal-blockwise: the window's first tile (rows 64-127 need keys 64-127 only) and
// the diagonal (rows 0-63 keys 0-63) make 6.5 of 7 tile-equivalents per task. Measured
// (bench/results/kernels-2026-11-29-kbw11c, D 128): causal-blockwise +3.0 %, causal 32K +5.5 %,
// shared-question +6.6 %, packed +1.8 %, but lambda -2.6 % (the dense gains are not the half
// steps but the offset the half diagonal leaves between the warpgroups: FWD_PP, which this kernel
// now also takes at D 128); with no half tile at all the kernel
// still loses works1000 -7 % and lambda -5 % (ptxas schedules the whole kernel differently: the
// plain step is 425 instructions against 437 and not the same order), hence a kernel of its own.
// The per-tile decision before it (kbw11) lost about the same.
#ifndef FWD_HALF
#define FWD_HALF 0
#endif
// FWD_HALFBITS 1 (with FWD_HALF; set by the host, exec.rs `DCP_CUDA_FWD_HALFBITS`, which then
// writes the bits): a half tile's word carries, in bits 27 + 2 cw + h, whether consumer warpgroup
// cw's rows attend keys 64 h .. 64 h + 63 of the tile (tilemask.rs `fwd_half_bits`). The half
// step then decides from the tile word alone and issues its S at once; its mask words are read
// under that S. Without it each warpgroup reads its mask words (a chain of three shared loads)
// and ORs them over its 128 threads (two `bar.red.or`) before the S can be issued. The key tile
// index is then the word's low 27 bits. The host's default at D 128 since
// kernels-2026-11-29-kf17 (alternated over main, 3 runs each: causal-blockwise +1.1 % alone,
// +2.0 % with FWD_LATEREL 2 and FWD_FIRST0; causal 32K / lambda / packed within +-0.8 %).
#ifndef FWD_HALFBITS
#define FWD_HALFBITS 0
#endif
#if FWD_HALFBITS && !FWD_HALF
#error "FWD_HALFBITS needs FWD_HALF"
#endif
#define F90_KT(word) ((word) & (FWD_HALFBITS ? 0x07ffffffu : 0x7fffffffu))
// FWD_LATEREL 1 (a kernel of its own, with FWD_TMA 3): the consumer thread that stores a warpgroup's O by TMA does not
// wait for the store to have read the staged tile (in the task's Q buffer) before the next task:
// it releases that Q buffer (its arrival on "Q empty") after the next task's first tile step,
// when the read is long done. Its warp, and with it the warpgroup's first wgmma of the next task,
// no longer waits for the bulk read (the producer needs the buffer only for the task after next),
// and the consumers skip the second proxy fence of such a task (its staging was fenced before
// the tensor store). Measured (kernels-2026-11-29-kbw11, D 128, over the merge fast path):
// works1000 +5.1 %, causal-blockwise +0.9 %, but lambda -6.1 %, causal 32K -0.7 %; D 64 -9 % on
// causal 32K (the owed-release check in every step). Hence off in the plain and half kernels;
// the host (exec.rs, `DCP_CUDA_FWD_SHORT`) compiles a third forward kernel with it for launches
// without half tiles whose tasks average at most 3 tiles, at D 128 (kernels-2026-11-29-kf13:
// 1000 works of 256 x 256 +3.7..+4.0 %; at D 64 -8 %, so not there).
// FWD_LATEREL 2: the same late release, but the owed arrival is paid once at the next task's
// start (after its Q wait, descriptor reads and O zeroing, before its first tile step), with no
// check in the tile steps. Default in the half-tile kernel at D 128 since
// kernels-2026-11-29-kf17 (alternated over main, 3 runs each: causal-blockwise +1.2 %, causal
// 32K / lambda / packed +0.1 / +0.7 / +0.0 %); in the plain kernel it cost onework -0.8 %
// (kernels-2026-11-29-kf16, with the dropped FWD_NOFENCE), at D 64 -2..-5 %: off there.
// FWD_LATEREL 3: 1 in tasks of two or more tiles, 2 in one-tile tasks; the short kernel's default
// (the host's define). Under 1 a one-tile task's first step is its end, so the Q buffer of the
// task before it was freed only then and the load of the task after next waited a whole task.
// Measured (bench/results/kernels-2026-11-30-s29, alternated x3): 2 000 documents of 128 tokens,
// full mask, 193 TFLOP/s forward under 1, 320 under 2, 323 under 3; works1000, blocks256,
// packed and 3-tile tasks within +-0.6 % of 1 under 3 (2 cost works1000 and 3-tile tasks -1.6 %).
#ifndef FWD_LATEREL
#define FWD_LATEREL ((FWD_HALF && HEAD_DIM == 128) ? 2 : 0)
#endif
#if FWD_LATEREL && FWD_TMA < 3
#error "FWD_LATEREL needs FWD_TMA 3"
#endif
// FWD_ONE 1 (a short-task kernel; host `DCP_CUDA_FWD_SHORT_ONE`, `_MIN`): a task the host flags
// with FWD_ONE_TASK in `TaskDesc.pad` (two full kv tiles of a single KV region loaded by TMA: a
// 256-key document) runs as one step. The producer loads both tiles' K into one stage (tile 0 in
// its K slot, tile 1 in its V slot) and both V into the next; the consumers issue both S at once
// (64 x 256 scores), take one exact softmax (no running maximum, no rescale of O), release the K
// stage, and issue one P V over the 256 keys. O is not live before that P V. The K stage frees
// once both warpgroups' S have completed, so the next task's K loads under this task's softmax and
// P V, and tile 1's exponentials run under tile 0's P V. Measured (bench/results/
// kernels-2026-11-30-s27, 1x H200, alternated x3 against the two-step tasks): works1000 forward
// +2.1 % (+1.0 % without that overlap, dropped), blocks256 +1.0 %, packed +-0; the lean prototype
// had shown +8 % over a two-step task without the late Q release.
#ifndef FWD_ONE
#define FWD_ONE 0
#endif
#define FWD_ONE_TASK 1u
#if FWD_ONE && (FWD_HALF || !FWD_FASTDESC || FWD_TMA < 1)
#error "FWD_ONE is written for the short-task kernel (FWD_FASTDESC, K/V by TMA)"
#endif
// FWD_PP 1: a one-time stagger of the two consumer warpgroups per task, in the plain loop (named
// barriers 6 and 7). At a task's first plain step each warpgroup waits for the other's go before
// its S (bar.sync) and gives its own go (bar.arrive) at FWD_PP_AT: 0 after issuing S, 1 after S
// completed, 2 after issuing its first P V, 3 after issuing the second half's P V (FWD_SPLIT 2);
// warpgroup 1 gives warpgroup 0 the first go, so warpgroup 1 starts each task about FWD_PP_AT
// quarters of a step behind. Then one warpgroup's softmax runs while the other's wgmma do, for
// the rest of the task (the stages let them be a step apart; nothing else re-aligns them), where
// in lockstep both sit in softmax with the tensor cores idle. This is where the half-tile
// kernel's dense gain came from (kernels-2026-11-29-kf12: its diagonal, first and half for
// warpgroup 0 only, made the same offset; the plain kernel with FWD_PP_AT 2 and no half tile:
// causal 32K +4.6 %, shared-question +6.4 %, one 8K work +3.7 %; go at 1: +0 %; a turn at every
// step, FA3's ping-pong, -25 %). Only tasks of at least FWD_PP_MIN tiles take the turn.
// Default: in the half-tile kernel at D 128 (FWD_HALF 1: launches with half tiles), at 3 / 4:
// lambda +3.2 %, causal-blockwise +2.2 %, causal 32K / shared-question / packed -0.1 / -0.6 /
// -0.3 % (these already had the diagonal's offset). Not in the plain kernel: compiled in there
// it cost works1000 -5 % with no turn taken (ptxas's code for the whole kernel), though one 8K
// work gained +3.5 %. Off at D 64, where the half kernel is off too; measured with FWD_SPLIT 2
// in session 34 (bench/results/gpu-x1-2026-12-01s34 c3): in the plain kernel lambda +4.2 % but
// the other shapes -1..-10 %; in the half kernel with FWD_LATEREL 2 and FWD_HALFBITS, lambda
// -2.3 % against the plain kernel, causal 128K -2.7 %.
#ifndef FWD_PP
#define FWD_PP (HEAD_DIM == 128 && FWD_HALF)
#endif
#ifndef FWD_PP_AT
#define FWD_PP_AT 3
#endif
#ifndef FWD_PP_MIN
#define FWD_PP_MIN 4
#endif
#if FWD_PP && FWD_SPLIT == 1
#error "FWD_PP is not written for FWD_SPLIT 1"
#endif
#if FWD_PP_AT == 3 && FWD_PP && FWD_SPLIT != 2
#error "FWD_PP_AT 3 needs FWD_SPLIT 2"
#endif

#define S90_BR 128
#define S90_BC 128
#define S90_THREADS 384
#define FWD_PROD_REGS 56
#define FWD_CONS_REGS 224
static_assert(128 * FWD_PROD_REGS + 256 * FWD_CONS_REGS <= 384 * 168,
              "setmaxnreg split exceeds the registers the CTA is launched with");

static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "the sm90 forward takes head dims 64 and 128");

// FWD_NS K/V stages and FWD_NQ Q buffers (the host's defines, `DCP_CUDA_FWD_STAGES`; 2 and 2
// fill the shared memory at D 128). More of either lets the producer load further ahead: a
// one-tile task is short, and the loads of the next task alone may not hide the latency.
#ifndef FWD_NS
#define FWD_NS 2
#endif
#ifndef FWD_NQ
#define FWD_NQ 2
#endif
static_assert(FWD_NS >= 2 && FWD_NQ >= 2, "the forward needs at least 2 K/V stages and 2 Q buffers");

// Shared memory besides the tiles (kept in step with exec.rs): per K/V stage the ranges of each
// row (2 x 8 bytes) and the tile word; per Q buffer the task and work descriptors (160 bytes)
// and each row's range span (8 bytes); 2 mbarriers per stage and per Q buffer, two task-index
// slots.
#define F90_KSMALL (S90_BR * 16 + 16)
#define F90_INFO 160
#define F90_QSMALL (F90_INFO + S90_BR * 8)
#define F90_BARS (16 * (FWD_NS + FWD_NQ) + 8)

// PV for the head dim: N = HEAD_DIM.
__device__ __forceinline__ void wg_pv(float* o, const u32* a, u64 b) {
#if HEAD_DIM == 128
  wgmma_m64n128k16_rs<1>(o, a, b, 1);
#else
  wgmma_m64n64k16_rs<1>(o, a, b, 1);
#endif
}

// exp2 with no range fix-up (ex2.approx: -inf -> 0).
__device__ __forceinline__ float f90_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// FWD_TMA: transaction bytes the current phase of `bar` waits for (no arrival).
__device__ __forceinline__ void f90_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// FWD_TMA: box (c0, c1, c2) of the 3-D tensor of map `tmap` (a CUtensorMap in global memory)
// into shared memory at `dst`, completing `bytes` on `bar`.
__device__ __forceinline__ void f90_tma_3d(u32 dst, u64 tmap, int c0, int c1, int c2, u32 bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(tmap), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
// FWD_TMA 3: shared `src` (a box) to box (c0, c1, c2) of map `tmap`'s tensor, committed as a
// bulk group; f90_bulk_wait_read: until this thread's bulk groups have read their shared source.
__device__ __forceinline__ void f90_tma_store_3d(u64 tmap, u32 src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%1, %2, %3}], [%4];\n" ::"l"(tmap),
               "r"(c0), "r"(c1), "r"(c2), "r"(src)
               : "memory");
}
__device__ __forceinline__ void f90_bulk_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void f90_bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
}
__device__ __forceinline__ void f90_bulk_wait() { asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void f90_prefetch_map(u64 tmap) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tmap) : "memory");
}

__device__ __forceinline__ void f90_cp_async8(u32 saddr, const void* gmem, bool valid) {
  int n = valid ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(saddr), "l"(gmem), "r"(n) : "memory");
}

// Mask of a partial tile: element (row r_lo + 8h, key k0 + nt*8 + 2 t4 + e) keeps its score when
// the key is in one of the row's ranges (the first two staged in `rg`, the rest read from
// `ranges[span.x + 2 .. span.y)`) and below n_keys; -inf otherwise.
__device__ __forceinline__ void mask_tile(float* sc, u32 k0, const uint4* rg, const uint2* span,
                                          const uint2* __restrict__ ranges, u32 n_keys, int r_lo,
                                          int t4) {
  // The thread's columns of a row are c = 8 nt + 2 t4 + e (nt < 16, e < 2): key range [lo, hi)
  // (relative to the tile's first key) holds exactly the nt in [ceil((lo - b) / 8),
  // ceil((hi - b) / 8)) for b = 2 t4 + e, so each range becomes two 16-bit masks (one per e) from
  // its two ends instead of four compares per element (the per-element form cost
  // causal-blockwise 7 % of its forward, bench/results/kernels-2026-11-28j).
  auto add = [&](u32* m, int lo, int hi) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int b = 2 * t4 + e;
      const int a0 = min(max((lo - b + 7) >> 3, 0), S90_BC / 8);
      const int a1 = max(min(max((hi - b + 7) >> 3, 0), S90_BC / 8), a0);
      m[e] |= (1u << a1) - (1u << a0);
    }
  };
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint4 r = rg[r_lo + 8 * h];
    u32 m[2] = {0u, 0u};
    // Bounds relative to the tile's first key (signed: a range may start before it).
    add(m, (int)(r.x - k0), (int)(min(r.y, n_keys) - k0));
    add(m, (int)(r.z - k0), (int)(min(r.w, n_keys) - k0));
    for (u32 i = span[h].x + 2; i < span[h].y; ++i) {
      const uint2 x = ranges[i];
      add(m, (int)(x.x - k0), (int)(min(x.y, n_keys) - k0));
    }
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        sc[nt * 4 + 2 * h + e] = ((m[e] >> nt) & 1u) ? sc[nt * 4 + 2 * h + e] : -INFINITY;
  }
}

// Mask of a partial tile from its precomputed words (`tilemask.rs`): bit 2 nt + e of word h is
// element (row r_lo + 8 h, key 8 nt + 2 t4 + e).
__device__ __forceinline__ void mask_tile_bits(float* sc, uint2 w) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const u32 m = h ? w.y : w.x;
#pragma unroll
    for (int i = 0; i < S90_BC / 4; ++i)
      sc[(i >> 1) * 4 + 2 * h + (i & 1)] = ((m >> i) & 1u) ? sc[(i >> 1) * 4 + 2 * h + (i & 1)] : -INFINITY;
  }
}

#if FWD_HALF
// Spreads the 16 bits of x to the even bits of the result.
__device__ __forceinline__ u32 f90_spread16(u32 x) {
  x = (x | (x << 8)) & 0x00ff00ffu;
  x = (x | (x << 4)) & 0x0f0f0f0fu;
  x = (x | (x << 2)) & 0x33333333u;
  return (x | (x << 1)) & 0x55555555u;
}
// mask_tile's mask as the words of mask_tile_bits (bit 2 nt + e of word h).
__device__ __forceinline__ uint2 mask_words(u32 k0, const uint4* rg, const uint2* span,
                                            const uint2* __restrict__ ranges, u32 n_keys, int r_lo,
                                            int t4) {
  auto add = [&](u32* m, int lo, int hi) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int b = 2 * t4 + e;
      const int a0 = min(max((lo - b + 7) >> 3, 0), S90_BC / 8);
      const int a1 = max(min(max((hi - b + 7) >> 3, 0), S90_BC / 8), a0);
      m[e] |= (1u << a1) - (1u << a0);
    }
  };
  u32 w[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint4 r = rg[r_lo + 8 * h];
    u32 m[2] = {0u, 0u};
    add(m, (int)(r.x - k0), (int)(min(r.y, n_keys) - k0));
    add(m, (int)(r.z - k0), (int)(min(r.w, n_keys) - k0));
    for (u32 i = span[h].x + 2; i < span[h].y; ++i) {
      const uint2 x = ranges[i];
      add(m, (int)(x.x - k0), (int)(min(x.y, n_keys) - k0));
    }
    w[h] = f90_spread16(m[0] & 0xffffu) | (f90_spread16(m[1] & 0xffffu) << 1);
  }
  return make_uint2(w[0], w[1]);
}
// mask_tile_bits on the 64 keys of half kh of the tile (S of m64n64: sc[nt * 4 + 2 h + e], nt < 8).
__device__ __forceinline__ void mask_half_bits(float* sc, uint2 w, int kh) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const u32 m = (h ? w.y : w.x) >> (16 * kh);
#pragma unroll
    for (int i = 0; i < S90_BC / 8; ++i)
      sc[(i >> 1) * 4 + 2 * h + (i & 1)] = ((m >> i) & 1u) ? sc[(i >> 1) * 4 + 2 * h + (i & 1)] : -INFINITY;
  }
}
#endif

// Online softmax step (log2 domain) on S in place: new row maxima `mm`, P = exp2(S*scale - m),
// the factor `al` by which O and the row sums must be scaled, and the rows' sums of P.
__device__ __forceinline__ void softmax_step(float* sc, float* mm, float* al, float* sum,
                                             float scale_log2) {
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
    al[h] = f90_ex2(mm[h] - mu);
    mm[h] = mn;
    float s = 0.f;
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt) {
      sc[nt * 4 + 2 * h] = f90_ex2(fmaf(sc[nt * 4 + 2 * h], scale_log2, -mu));
      sc[nt * 4 + 2 * h + 1] = f90_ex2(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -mu));
      s += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
    }
    sum[h] = s;
  }
}

__device__ __forceinline__ void rescale(float* o, float* ll, const float* al, const float* sum) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    ll[h] = ll[h] * al[h] + sum[h];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) {
      o[i * 4 + 2 * h] *= al[h];
      o[i * 4 + 2 * h + 1] *= al[h];
    }
  }
}

// Descriptor from its low and high words (FWD_FASTDESC: the low word, whose 14-bit start-address
// field never carries below 256 KiB of shared memory, takes the offsets).
__device__ __forceinline__ u64 f90_desc(u32 lo, u32 hi) { return ((u64)hi << 32) | lo; }

// Online softmax step with its rescale separated (FWD_LAZY, FWD_SPLIT), on NT column groups of
// 8 keys of S (sc[nt * 4 + 2 h + e], nt < NT). f90_max: the candidate maxima `mn`; returns
// whether the warp rescales (every row of a warp if any of its rows' maximum grew by more than
// FWD_LAZY_TAU with FWD_LAZY, always without).
template <int NT>
__device__ __forceinline__ bool f90_max(const float* sc, const float* mm, float* mn, float scale_log2) {
  bool need = false;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(sc[nt * 4 + 2 * h], sc[nt * 4 + 2 * h + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    mn[h] = fmaxf(mm[h], mx * scale_log2);
    need |= mn[h] > mm[h] + FWD_LAZY_TAU;
  }
#if FWD_LAZY
  return __any_sync(0xffffffffu, need);
#else
  return true;
#endif
}
// FWD_FIRST0: a row whose maximum is still -inf has had every P = 0 so far, so its O and l are 0
// and its rescale only moves m; a warp whose rows all have none (a task's first tile, where the
// rescale is always taken) skips the 64 multiplies of O (a warp-uniform branch). Default at D 128
// since kernels-2026-11-29-kf17 (alternated over main, 3 runs each: works1000 +1.5 %,
// causal-blockwise +0.8 %, dense within +-0.5 % except onework -1.1 %, which the same plain
// kernel in the combined variant measured at -0.1 %). Off at D 64, where it cost 1-3 % with the
// other three switches (bench/results/gpu-x1-2026-12-01s34).
#ifndef FWD_FIRST0
#define FWD_FIRST0 (HEAD_DIM == 128)
#endif
// Moves the rows' maxima to `mn`: l and O scaled by exp2(m - mn) (O must not be in flight).
__device__ __forceinline__ void f90_rescale(float* o, float* mm, float* ll, const float* mn) {
#if FWD_FIRST0
  if (!__any_sync(0xffffffffu, mm[0] != -INFINITY || mm[1] != -INFINITY)) {
    mm[0] = mn[0];
    mm[1] = mn[1];
    return;
  }
#endif
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float al = f90_ex2(mm[h] - (mn[h] == -INFINITY ? 0.f : mn[h]));
    mm[h] = mn[h];
    ll[h] *= al;
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) {
      o[i * 4 + 2 * h] *= al;
      o[i * 4 + 2 * h + 1] *= al;
    }
  }
}
// P = exp2(S * scale - m) in place, the row sums added to l.
template <int NT>
__device__ __forceinline__ void f90_exp(float* sc, const float* mm, float* ll, float scale_log2) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float mu = mm[h] == -INFINITY ? 0.f : mm[h];
    float s = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      sc[nt * 4 + 2 * h] = f90_ex2(fmaf(sc[nt * 4 + 2 * h], scale_log2, -mu));
      sc[nt * 4 + 2 * h + 1] = f90_ex2(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -mu));
      s += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
    }
    ll[h] += s;
  }
}
// OR of `x` over the 128 threads of a consumer warpgroup (named barrier `bar`, FWD_SPLIT 1).
__device__ __forceinline__ bool f90_wg_any(bool x, u32 bar) {
  u32 r;
  asm volatile(
      "{\n.reg .pred p, q;\nsetp.ne.u32 p, %1, 0;\nbar.red.or.pred q, %2, 128, p;\nselp.u32 %0, 1, 0, q;\n}\n"
      : "=r"(r)
      : "r"((u32)x), "r"(bar)
      : "memory");
  return r != 0;
}
template <int N>
__device__ __forceinline__ void reg_fence_u(u32* r) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// FWD_OST: stmatrix (four 8x8 b16 matrices; lane l addresses row l % 8 of matrix l / 8), a
// 16-byte shared load, a predicated 16-byte global store (st.global: the pointer is generic).
__device__ __forceinline__ void f90_stmatrix4(u32 saddr, const u32* v) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(saddr), "r"(v[0]),
               "r"(v[1]), "r"(v[2]), "r"(v[3])
               : "memory");
}
__device__ __forceinline__ uint4 f90_lds128(u32 saddr) {
  uint4 v;
  asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(saddr) : "memory");
  return v;
}
__device__ __forceinline__ void f90_stg128p(void* p, uint4 v, bool ok) {
  asm volatile("{\n.reg .pred q;\nsetp.ne.u32 q, %5, 0;\n@q st.global.v4.b32 [%0], {%1, %2, %3, %4};\n}\n" ::"l"(
                   __cvta_generic_to_global(p)),
               "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w), "r"((u32)ok)
               : "memory");
}
// FWD_NOMAX (with FWD_SPLIT 2): a tile of a warp whose rows all have a maximum already skips the
// row maximum (64 FMNMX and 4 shuffles per thread, on the critical path between S and the first
// exponential, with the tensor pipe idle): P = exp2(S * scale - m) against the stale m at once.
// Guard: every row's partial sum over the thread's 32 columns <= 2^FWD_LAZY_TAU (so every P is).
// If a row of the warp fails it (rare after a task's first tile: a key scoring more than TAU above
// the running maximum), f90_nomax_fix raises m by d = floor(log2) of the row's largest P and
// scales P, O and l by 2^-d: exact (a power of two), and then P < 2. A P that is not finite
// (a score 128 above m) cannot be rescaled: then the warp recomputes its scores from shared
// memory (f90_scores_smem) and takes the plain max + rescale + exp.
// Default with FWD_SPLIT 2 (D 128) since kernels-2026-11-29-kf15 (alternated, 5 runs each: causal32k
// +2.9 %, lambda +3.4 %, onework +4.1 %, packed +1.8 %, works1000 and causal-blockwise -0.2 %).
#ifndef FWD_NOMAX
#define FWD_NOMAX (FWD_SPLIT == 2)
#endif
// Test modes (correctness only): 1 lowers m by 10 (O and l scaled by 2^10, exact; rows with
// l < 10^6) before the exponentials, so the guard fails and the fix runs with d ~ 10; 2 forces
// the recompute path.
#ifndef FWD_NOMAX_TEST
#define FWD_NOMAX_TEST 0
#endif
// FWD_EPRE (FWD_SPLIT 2): the epilogue's part that does not need O (the row sums' shuffles,
// 1 / l, LSE and its store) runs in the task's last tile step between the issue of its last P V
// and the wait for it, i.e. under the tensor cores, instead of after it (where both rows went
// one after the other through two branches: the IEEE division's slow path and the LSE store);
// both rows at once, without branches (1 / l by rcp.approx, a predicated LSE store). A task with
// no plain step does it in the epilogue. Default at D 128 since kernels-2026-11-29-kf16
// (alternated, 3 runs each): works1000 +2.4 %, causal-blockwise +2.2 %, onework -0.5 %,
// causal 32K / lambda / packed within +-0.2 %.
#ifndef FWD_EPRE
#define FWD_EPRE (FWD_SPLIT == 2)
#endif
#if FWD_EPRE && FWD_SPLIT != 2
#error "FWD_EPRE is written for FWD_SPLIT 2"
#endif
__device__ __forceinline__ bool f90_exp_nm(float* sc, const float* mm, float* ps, float scale_log2) {
  bool bad = false;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float s = 0.f;
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt) {
      sc[nt * 4 + 2 * h] = f90_ex2(fmaf(sc[nt * 4 + 2 * h], scale_log2, -mm[h]));
      sc[nt * 4 + 2 * h + 1] = f90_ex2(fmaf(sc[nt * 4 + 2 * h + 1], scale_log2, -mm[h]));
      s += sc[nt * 4 + 2 * h] + sc[nt * 4 + 2 * h + 1];
    }
    ps[h] = s;
    bad |= !(s <= (float)(1 << (int)FWD_LAZY_TAU));
  }
  return __any_sync(0xffffffffu, bad || FWD_NOMAX_TEST == 2);
}
// Returns whether a row of the warp has a P that is not finite (nothing was changed for that row).
__device__ __forceinline__ bool f90_nomax_fix(float* sc, float* o, float* mm, float* ll, float* ps) {
  bool bad = false;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float pm = 0.f;
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt) pm = fmaxf(pm, fmaxf(sc[nt * 4 + 2 * h], sc[nt * 4 + 2 * h + 1]));
    pm = fmaxf(pm, __shfl_xor_sync(0xffffffffu, pm, 1));
    pm = fmaxf(pm, __shfl_xor_sync(0xffffffffu, pm, 2));
    // (NaN: fmaxf drops it, then the sum, not the maximum, shows it.)
    if (!(pm <= 3.0e38f) || !(ps[h] <= 3.0e38f)) {
      bad = true;
      continue;
    }
    // floor(log2(pm)) from the exponent field (pm < 1: d = 0).
    const int d = min(max(((__float_as_int(pm) >> 23) & 0xff) - 127, 0), 126);
    const float f = __int_as_float((127 - d) << 23);  // 2^-d
    mm[h] += (float)d;
    ll[h] *= f;
    ps[h] *= f;
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt) {
      sc[nt * 4 + 2 * h] *= f;
      sc[nt * 4 + 2 * h + 1] *= f;
    }
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) {
      o[i * 4 + 2 * h] *= f;
      o[i * 4 + 2 * h + 1] *= f;
    }
  }
  return __any_sync(0xffffffffu, bad || FWD_NOMAX_TEST == 2);
}
__device__ __forceinline__ float2 f90_unpack2(u32 v) {
#ifdef ELEM_F16
  return __half22float2(*(const __half2*)&v);
#else
  return __bfloat1622float2(*(const __nv_bfloat162*)&v);
#endif
}
// FWD_NOMAX's recompute path: this thread's scores (rows r_lo + 8 h of the Q tile at sq, keys
// 8 nt + 2 t4 + e of the K stage at sk; both 128-byte swizzled, blocks of 64 columns) in fp32.
__device__ __forceinline__ void f90_scores_smem(float* sc, u32 sq, u32 sk, int r_lo, int t4) {
#pragma unroll
  for (int i = 0; i < S90_BC / 2; ++i) sc[i] = 0.f;
#pragma unroll 1
  for (int kb = 0; kb < HEAD_DIM / 8; ++kb) {
    const int b = kb >> 3, ch = kb & 7;
    float q[2][8];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = r_lo + 8 * h;
      const uint4 v = f90_lds128(sq + b * (S90_BR * 128) + r * 128 + ((ch ^ (r & 7)) << 4));
      const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = f90_unpack2(w[i]);
        q[h][2 * i] = f.x;
        q[h][2 * i + 1] = f.y;
      }
    }
#pragma unroll
    for (int nt = 0; nt < S90_BC / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = 8 * nt + 2 * t4 + e;
        const uint4 v = f90_lds128(sk + b * (S90_BC * 128) + c * 128 + ((ch ^ (c & 7)) << 4));
        const u32 w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float2 f = f90_unpack2(w[i]);
#pragma unroll
          for (int h = 0; h < 2; ++h)
            sc[nt * 4 + 2 * h + e] = fmaf(q[h][2 * i + 1], f.y, fmaf(q[h][2 * i], f.x, sc[nt * 4 + 2 * h + e]));
        }
      }
  }
}
__device__ __forceinline__ void f90_bar_arrive(u32 id, u32 n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
// FWD_EPRE: a predicated 4-byte global store (no branch), reciprocal without a slow path.
__device__ __forceinline__ void f90_stg32p(float* p, float v, bool ok) {
  asm volatile("{\n.reg .pred q;\nsetp.ne.u32 q, %2, 0;\n@q st.global.f32 [%0], %1;\n}\n" ::"l"(
                   __cvta_generic_to_global(p)),
               "f"(v), "r"((u32)ok)
               : "memory");
}
__device__ __forceinline__ float f90_rcp(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
// FWD_EPRE: the rows' 1 / l (0 for rows with no key) and their LSE stores, both rows together.
__device__ __forceinline__ void f90_epre(const float* ll, const float* mm, float* inv, const TaskDesc* tk,
                                         const WorkDesc* wk, int r_lo, int t4) {
  const float LN2 = 0.6931471805599453f;
  float l[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] = ll[h] + __shfl_xor_sync(0xffffffffu, ll[h], 1);
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  const u32 row0 = tk->row0, head = tk->head, n_rows = wk->n_rows, lse_stride = wk->lse_stride;
  float* const lptr = (float*)wk->lse;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    inv[h] = l[h] > 0.f ? f90_rcp(l[h]) : 0.f;
    const u32 row = row0 + r_lo + 8 * h;
    const float v = l[h] > 0.f ? (mm[h] + __log2f(l[h])) * LN2 : -INFINITY;
    f90_stg32p(lptr + ((u64)(row < n_rows ? row : 0) * lse_stride + head), v, t4 == 0 && row < n_rows);
  }
}
// The generic O store of this thread's row r_lo + 8 h (its columns of O / l, `inv` = 1 / l) at
// element offset `rb` of the work's O, in its dtype (f32 partials, or 16-bit O without FWD_OST).
__device__ __forceinline__ void f90_store_row(const float* o, float inv, int h, void* optr, u64 rb, u32 o_dtype,
                                              int t4) {
#pragma unroll
  for (int nt = 0; nt < HEAD_DIM / 8; ++nt) {
    const u64 i = rb + nt * 8 + t4 * 2;
    const float x = o[nt * 4 + 2 * h] * inv, y = o[nt * 4 + 2 * h + 1] * inv;
    if (o_dtype == DT_F32) *(float2*)((float*)optr + i) = make_float2(x, y);
    else if (o_dtype == DT_BF16) *(__nv_bfloat162*)((__nv_bfloat16*)optr + i) = __floats2bfloat162_rn(x, y);
    else *(__half2*)((__half*)optr + i) = __floats2half2_rn(x, y);
  }
}
__device__ __forceinline__ u32 f90_bits(__nv_bfloat162 v) { return *(u32*)&v; }
__device__ __forceinline__ u32 f90_bits(__half2 v) { return *(u32*)&v; }
// FWD_OST's staging: a consumer warpgroup's O / l (o, inv) to 16-bit (BF: bf16, else fp16) with
// stmatrix into its rows `rs` of the staging buffer `sq` (lane block lm). Called once per 16-bit
// type behind a CTA-uniform branch, so each pair is converted only to the work's type: the loop
// converted every pair to both and selected (64 F2FP per thread instead of 32, in the epilogue
// where the tensor cores idle). Measured alternated (kernels-2026-11-29-kf13b, -s13lead):
// works1000 and causal-blockwise +1.2 % at D 128, onework +2.2 % at D 64, the other shapes
// within their spread.
template <bool BF>
__device__ __forceinline__ void f90_stage_o(const float* o, const float* inv, u32 sq, u32 rs, int lm) {
#pragma unroll
  for (int q = 0; q < HEAD_DIM / 16; ++q) {
    const u32 c = 16 * q + 8 * (lm >> 1);  // its first column
    u32 v[4];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const int nt = 2 * q + (m >> 1), h = m & 1;
      const float x = o[nt * 4 + 2 * h] * inv[h], y = o[nt * 4 + 2 * h + 1] * inv[h];
      v[m] = BF ? f90_bits(__floats2bfloat162_rn(x, y)) : f90_bits(__floats2half2_rn(x, y));
    }
    f90_stmatrix4(sq + (c >> 6) * (S90_BR * 128) + rs * 128 + ((((c & 63) >> 3) ^ (rs & 7)) << 4), v);
  }
}

extern "C" __global__ void __launch_bounds__(S90_THREADS, 1)
dcp_attn_fwd_sm90(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
                  const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
                  const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges, u32 group,
                  float scale_log2, u32* sched, const u32* __restrict__ tmask,
                  const u32* __restrict__ masks, const unsigned char* __restrict__ fmaps) {
  constexpr int D = HEAD_DIM;
  constexpr u32 QBYTES = S90_BR * D * 2;
  constexpr u32 TBYTES = S90_BC * D * 2;  // one K (or V) stage
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  // Shared-space addresses, 1024-byte aligned (the swizzle atoms must be).
  const u32 raw = smem_u32(smem_raw);
  const u32 base = (raw + 1023u) & ~1023u;
  unsigned char* gbase = smem_raw + (base - raw);  // generic pointer of `base`
  const u32 sQ = base;                              // [NQ][D/64][BR][128 B]
  const u32 sK = sQ + FWD_NQ * QBYTES;              // [NS][D/64][BC][128 B]
  const u32 sV = sK + FWD_NS * TBYTES;              // same
  const u32 ksmall = sV + FWD_NS * TBYTES;          // [NS][F90_KSMALL]
  const u32 qsmall = ksmall + FWD_NS * F90_KSMALL;  // [NQ][F90_QSMALL]
  const u32 bars = qsmall + FWD_NQ * F90_QSMALL;
  auto full = [&](int s) { return bars + 8u * s; };
  auto empty = [&](int s) { return bars + 8u * FWD_NS + 8u * s; };
  auto qfull = [&](int b) { return bars + 16u * FWD_NS + 8u * b; };
  auto qempty = [&](int b) { return bars + 16u * FWD_NS + 8u * FWD_NQ + 8u * b; };
  // [2] next task index
  volatile u32* slot = (volatile u32*)(gbase + (bars + 16u * (FWD_NS + FWD_NQ) - base));

  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;

  if (tid == 0) {
    for (int s = 0; s < FWD_NS; ++s) {
      mbar_init(full(s), 128);
      mbar_init(empty(s), 256);
    }
    for (int b = 0; b < FWD_NQ; ++b) {
      mbar_init(qfull(b), 128);
      mbar_init(qempty(b), 256);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<FWD_PROD_REGS>();
    const int pt = tid;      // 0..127: the row / key of the tile this thread loads
    const int pw = pt >> 5;  // producer warp: rows / keys 32*pw .. 32*pw+31
    const u32 n_tasks = sched[2];
    u32 cur = blockIdx.x, sg = 0;
    for (u32 tq = 0;; ++tq) {
      const int qb = tq % FWD_NQ;
      u32 nxt = 0;
#if !FWD_CLAIM_LATE
      if (pt == 0 && cur < n_tasks) nxt = gridDim.x + atomicAdd(sched, 1u);
#endif
#if !FWD_PREDESC
      if (tq >= FWD_NQ) mbar_wait_guarded(qempty(qb), ((tq / FWD_NQ) - 1) & 1);
#endif
      const u32 qs = qsmall + qb * F90_QSMALL;
      if (cur >= n_tasks) {
#if FWD_PREDESC
        if (tq >= FWD_NQ) mbar_wait_guarded(qempty(qb), ((tq / FWD_NQ) - 1) & 1);
#endif
        // No task left: tell the consumers (tiles_n = ~0) and stop.
        if (pt == 0) *(volatile u32*)(gbase + (qs + 16u - base)) = 0xffffffffu;
        mbar_arrive(qfull(qb));
        break;
      }
      const TaskDesc task = tasks[cur];
      const WorkDesc& w = works[task.work];
#if FWD_PREDESC
      // Everything read from global memory before the Q buffer is free (registers only).
      const u32 row = task.row0 + pt;
      const bool rok = row < w.n_rows;
      const u32* rp = row_ptr + w.row_off + (rok ? row : 0);
      const u32 ra = rok ? rp[0] : 0, rb = rok ? rp[1] : 0;
      const elem_t* qbase = (const elem_t*)w.q;
      const u64 myq = rok ? (u64)(qbase + (u64)row * w.q_stride + task.head * D) : 0;
      const u32 kvh = task.head / group;
      const u32* my_tiles = tiles + task.tiles_off;
      const u32 n_keys = w.n_keys;
      const bool one_seg = w.kv_count == 1;
      const KvSeg* sg0 = segs + w.kv_first;
      const u64 k_base = one_seg ? sg0->k + (u64)kvh * 2 * D * sizeof(elem_t) : 0;
      const u32 k_stride = one_seg ? sg0->stride : 0;
      u32 word_next = task.tiles_n > 0 ? my_tiles[0] : 0;
#if FWD_TMA
      // This work's maps: Q at fmaps + FWD_MAPS work, its KV region 128 bytes further (tensormaps.rs).
      const u32 wtma = w.flags;
      const u64 qmap = (u64)(fmaps + (u64)task.work * FWD_MAPS), kvmap = qmap + 128;
      const bool kv_tma = one_seg && (wtma & 2u);
      if (pt == 0 && kv_tma) f90_prefetch_map(kvmap);
#if FWD_OPF
      if (pt == 0 && (wtma & 4u)) f90_prefetch_map(qmap + 256);  // the O map (FWD_OPF)
#endif
#endif
      if (tq >= FWD_NQ) mbar_wait_guarded(qempty(qb), ((tq / FWD_NQ) - 1) & 1);
      if (pt < 3) f90_cp_async8(qs + 8 * pt, (const char*)(tasks + cur) + 8 * pt, true);
      else if (pt < 3 + (int)sizeof(WorkDesc) / 8)
        f90_cp_async8(qs + 32 + 8 * (pt - 3), (const char*)&w + 8 * (pt - 3), true);
      cp_async4_s(qs + F90_INFO + 8 * pt, rp, rok);
      cp_async4_s(qs + F90_INFO + 8 * pt + 4, rp + 1, rok);
#if FWD_TMA >= 2
      if (wtma & 1u) {
        if (pt == 0) {
          f90_expect_tx(qfull(qb), QBYTES);
#pragma unroll
          for (int h = 0; h < D / 64; ++h)
            f90_tma_3d(sQ + qb * QBYTES + h * (S90_BR * 128), qmap, 64 * h, task.head, task.row0, qfull(qb));
        }
      } else
#endif
        warp_rows_async<D, false>(myq, lane, 32 * pw, sQ + qb * QBYTES, 0, S90_BR * 128, qbase);
      mbar_arrive_cp_async(qfull(qb));
#else
      // Task and work descriptors, the rows' range spans, Q.
      if (pt < 3) f90_cp_async8(qs + 8 * pt, (const char*)(tasks + cur) + 8 * pt, true);
      else if (pt < 3 + (int)sizeof(WorkDesc) / 8)
        f90_cp_async8(qs + 32 + 8 * (pt - 3), (const char*)&w + 8 * (pt - 3), true);
      const u32 row = task.row0 + pt;
      const bool rok = row < w.n_rows;
      const u32* rp = row_ptr + w.row_off + (rok ? row : 0);
      cp_async4_s(qs + F90_INFO + 8 * pt, rp, rok);
      cp_async4_s(qs + F90_INFO + 8 * pt + 4, rp + 1, rok);
      const u32 ra = rok ? rp[0] : 0, rb = rok ? rp[1] : 0;
      const elem_t* qbase = (const elem_t*)w.q;
      const u64 myq = rok ? (u64)(qbase + (u64)row * w.q_stride + task.head * D) : 0;
#if FWD_TMA >= 2
      if (w.flags & 1u) {
        if (pt == 0) {
          f90_expect_tx(qfull(qb), QBYTES);
#pragma unroll
          for (int h = 0; h < D / 64; ++h)
            f90_tma_3d(sQ + qb * QBYTES + h * (S90_BR * 128), (u64)(fmaps + (u64)task.work * FWD_MAPS), 64 * h,
                       task.head, task.row0, qfull(qb));
        }
      } else
#endif
        warp_rows_async<D, false>(myq, lane, 32 * pw, sQ + qb * QBYTES, 0, S90_BR * 128, qbase);
      mbar_arrive_cp_async(qfull(qb));
      const u32 kvh = task.head / group;
      const u32* my_tiles = tiles + task.tiles_off;
      // One KV region (the common case): key addresses by arithmetic, no loads per tile.
      const u32 n_keys = w.n_keys;
      const bool one_seg = w.kv_count == 1;
      const KvSeg* sg0 = segs + w.kv_first;
      const u64 k_base = one_seg ? sg0->k + (u64)kvh * 2 * D * sizeof(elem_t) : 0;
      const u32 k_stride = one_seg ? sg0->stride : 0;
      u32 word_next = task.tiles_n > 0 ? my_tiles[0] : 0;
#if FWD_TMA
      const u64 kvmap = (u64)(fmaps + (u64)task.work * FWD_MAPS) + 128;
      const bool kv_tma = one_seg && (w.flags & 2u);
#endif
#endif
      for (u32 it = 0; it < task.tiles_n; ++it, ++sg) {
        const int s = sg % FWD_NS;
        const u32 word = word_next;
        if (it + 1 < task.tiles_n) word_next = my_tiles[it + 1];
        const u32 key = F90_KT(word) * S90_BC + pt;
        const u64 kp = one_seg ? (key < n_keys ? k_base + (u64)key * k_stride * sizeof(elem_t) : 0)
                               : kv_key_ptr<D>(w, segs, key, kvh);
        if (sg >= FWD_NS) mbar_wait_guarded(empty(s), ((sg / FWD_NS) - 1) & 1);
        const u32 ks = ksmall + s * F90_KSMALL;
        if (pt == 0) {
          cp_async4_s(ks + S90_BR * 16, my_tiles + it, true);
          cp_async4_s(ks + S90_BR * 16 + 4, tmask + task.tiles_off + it, true);
        }
        if (word >> 31) {
          // The tile's precomputed mask (2 KiB, the consumers' bit order), else the first two
          // ranges of each row.
          const u32 mi = tmask[task.tiles_off + it];
          if (mi != NO_TILE_MASK) {
            cp_async16_s(ks + pt * 16, masks + (u64)mi * (2 * 256) + 4 * pt, true);
          } else {
            f90_cp_async8(ks + pt * 16, ranges + (ra < rb ? ra : 0), ra < rb);
            f90_cp_async8(ks + pt * 16 + 8, ranges + (ra + 1 < rb ? ra + 1 : 0), ra + 1 < rb);
          }
        }
#if FWD_TMA
        if (kv_tma) {
          if (pt == 0) {
            // Key rows of the region (its key0 is 0): the tile's, zero-filled past its end.
            f90_expect_tx(full(s), 2 * TBYTES);
#if FWD_ONE
            if (task.tiles_n == 2 && (task.pad & FWD_ONE_TASK)) {
              // FWD_ONE: stage `it` = 0 takes both tiles' K, 1 both tiles' V (slot 2 kvh + it of
              // the region's rows), tile 0 in the stage's K slot and tile 1 in its V slot.
              const int kr0 = (int)(F90_KT(my_tiles[0]) * S90_BC), kr1 = (int)(F90_KT(my_tiles[1]) * S90_BC);
#pragma unroll
              for (int h = 0; h < D / 64; ++h) {
                f90_tma_3d(sK + s * TBYTES + h * (S90_BC * 128), kvmap, 64 * h, 2 * kvh + it, kr0, full(s));
                f90_tma_3d(sV + s * TBYTES + h * (S90_BC * 128), kvmap, 64 * h, 2 * kvh + it, kr1, full(s));
              }
            } else
#endif
            {
              const int kr = (int)(F90_KT(word) * S90_BC);
#pragma unroll
              for (int h = 0; h < D / 64; ++h) {
                f90_tma_3d(sK + s * TBYTES + h * (S90_BC * 128), kvmap, 64 * h, 2 * kvh, kr, full(s));
                f90_tma_3d(sV + s * TBYTES + h * (S90_BC * 128), kvmap, 64 * h, 2 * kvh + 1, kr, full(s));
              }
            }
          }
        } else
#endif
          warp_rows_async<D, true>(kp, lane, 32 * pw, sK + s * TBYTES, sV + s * TBYTES, S90_BC * 128, qbase);
        mbar_arrive_cp_async(full(s));
      }
#if FWD_CLAIM_LATE
      // Claimed once this task's last K/V load is issued (the backward's order: tasks go out in
      // the order CTAs finish, not start, which keeps longest-first balancing).
      if (pt == 0) nxt = gridDim.x + atomicAdd(sched, 1u);
#endif
      cur = sched_share_next(slot, tq, nxt, pt, 3);
    }
    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---------------- consumers ----------------
  setmaxnreg_inc<FWD_CONS_REGS>();
#if FWD_FASTDESC
  const int cw = __shfl_sync(0xffffffffu, wg - 1, 0);  // consumer warpgroup: rows 64*cw .. 64*cw+63
#else
  const int cw = wg - 1;                   // consumer warpgroup: rows 64*cw .. 64*cw+63
#endif
  const int wq = (tid >> 5) & 3;           // warp within the warpgroup: 16 rows each
  const int g = lane >> 2, t4 = lane & 3;
  const int r_lo = 64 * cw + 16 * wq + g;  // this thread's rows: r_lo, r_lo + 8 (in the tile)
#if FWD_FASTDESC
  // Low words of the base descriptors (K-major Q of this warpgroup in Q buffer 0, K-major K and
  // MN-major V of stage 0); the high word (SBO 1024, 128-byte swizzle) is the same for all.
  const u32 DHI = (1024u >> 4) | (1u << 30);
  const u32 q_d0 = ((sQ + 64 * cw * 128) >> 4) | (1u << 16);
  const u32 k_d0 = (sK >> 4) | (1u << 16);
  const u32 v_d0 = (sV >> 4) | ((u32)(S90_BC * 128 >> 4) << 16);
#endif
  u32 sg = 0;
#if FWD_LATEREL
  // FWD_LATEREL: 1 + the Q buffer whose release this thread still owes (0: none).
  u32 pend = 0;
#define F90_LATE_ARRIVE()                      \
  do {                                         \
    if (pend != 0) {                           \
      f90_bulk_wait_read();                    \
      mbar_arrive(qempty((int)pend - 1));      \
      pend = 0;                                \
    }                                          \
  } while (0)
#else
#define F90_LATE_ARRIVE() \
  do {                    \
  } while (0)
#endif
// In the tile steps (FWD_LATEREL 1, and 3 in tasks of several tiles; 2 pays it at the next task's
// start).
#if FWD_LATEREL == 1 || FWD_LATEREL == 3
#define F90_LATE_STEP() F90_LATE_ARRIVE()
#else
#define F90_LATE_STEP() \
  do {                  \
  } while (0)
#endif
#if FWD_PP
  if (cw == 1) f90_bar_arrive(7, 256);  // warpgroup 0's first go
#endif
  for (u32 tq = 0;; ++tq) {
    const int qb = tq % FWD_NQ;
    mbar_wait(qfull(qb), (tq / FWD_NQ) & 1);
    const unsigned char* qi = gbase + (qsmall + qb * F90_QSMALL - base);
    const TaskDesc* tk = (const TaskDesc*)qi;
    const u32 n_tiles = tk->tiles_n;
    if (n_tiles == 0xffffffffu) {
#if FWD_TMA >= 3
      if ((tid & 127) == 0) f90_bulk_wait();  // this thread's O stores complete
#endif
      F90_LATE_ARRIVE();
#if FWD_PP
      if (cw == 0) named_bar(7, 256);  // warpgroup 1's last go
#endif
      break;
    }
    fence_proxy_async();
    const WorkDesc* wk = (const WorkDesc*)(qi + 32);
    const u32 n_keys = wk->n_keys;
    uint2 span[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) span[h] = *(const uint2*)(qi + F90_INFO + 8 * (r_lo + 8 * h));
#if FWD_FASTDESC
    const u32 q_d = q_d0 + qb * (QBYTES >> 4);
    // S (keys 64 kh .. 64 kh + 64 N - 1 of stage s, N = 1: 64 keys, 2: all) and P V (key steps
    // kc0 .. kc0 + NK - 1) of stage s.
#define F90_ISSUE_S(N, acc, s, kh)                                                                  \
  do {                                                                                              \
    _Pragma("unroll") for (int kk = 0; kk < D / 16; ++kk) {                                         \
      const u64 da = f90_desc(q_d + (((kk >> 2) * (S90_BR * 128) + (kk & 3) * 32) >> 4), DHI);       \
      const u64 db = f90_desc(k_d0 + (s) * (TBYTES >> 4) +                                         \
                                  (((kk >> 2) * (S90_BC * 128) + (kk & 3) * 32 + (kh) * 64 * 128) >> 4), \
                              DHI);                                                                 \
      if (N == 2) wgmma_m64n128k16_ss<0>(acc, da, db, kk > 0);                                      \
      else wgmma_m64n64k16_ss<0>(acc, da, db, kk > 0);                                              \
    }                                                                                               \
    wg_commit();                                                                                    \
  } while (0)
#define F90_ISSUE_PV(pa, s, kc0, NK)                                                                \
  do {                                                                                              \
    _Pragma("unroll") for (int kc = 0; kc < (NK); ++kc)                                             \
        wg_pv(o, (pa)[kc], f90_desc(v_d0 + (s) * (TBYTES >> 4) + (((kc0) + kc) * 16 * 128 >> 4), DHI)); \
    wg_commit();                                                                                    \
  } while (0)
#else
    // Q rows of this warpgroup (K-major, SBO = 8 rows of 128 B).
    const u32 q_lo = sQ + qb * QBYTES + 64 * cw * 128;
#define F90_ISSUE_S(N, acc, s, kh)                                                                  \
  do {                                                                                              \
    _Pragma("unroll") for (int kk = 0; kk < D / 16; ++kk) {                                         \
      const u64 da = wg_desc(q_lo + (kk >> 2) * (S90_BR * 128) + (kk & 3) * 32, 16, 1024);           \
      const u64 db = wg_desc(sK + (s) * TBYTES + (kk >> 2) * (S90_BC * 128) + (kk & 3) * 32 +       \
                                 (kh) * 64 * 128, 16, 1024);                                        \
      if (N == 2) wgmma_m64n128k16_ss<0>(acc, da, db, kk > 0);                                      \
      else wgmma_m64n64k16_ss<0>(acc, da, db, kk > 0);                                              \
    }                                                                                               \
    wg_commit();                                                                                    \
  } while (0)
#define F90_ISSUE_PV(pa, s, kc0, NK)                                                                \
  do {                                                                                              \
    _Pragma("unroll") for (int kc = 0; kc < (NK); ++kc)                                             \
        wg_pv(o, (pa)[kc], wg_desc(sV + (s) * TBYTES + ((kc0) + kc) * 16 * 128, S90_BC * 128, 1024)); \
    wg_commit();                                                                                    \
  } while (0)
#endif

    float o[D / 2];
#if FWD_ONE
    // (The producer's condition, plus its kv_tma: the host flags only such works' tasks.)
    const bool one = n_tiles == 2 && (tk->pad & FWD_ONE_TASK) && wk->kv_count == 1 && (wk->flags & 2u);
    if (!one)  // (a one-step task defines O at its P V, so that O is not live across its S)
#endif
    {
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
    }
    float mm[2] = {-INFINITY, -INFINITY}, ll[2] = {0.f, 0.f};
#if FWD_LATEREL == 2
    F90_LATE_ARRIVE();  // the previous task's O store has had this task's start to read its tile
#elif FWD_LATEREL == 3
    if (n_tiles == 1) F90_LATE_ARRIVE();  // (a one-tile task's first step is its end)
#endif
#if FWD_EPRE
    float inv[2];  // 1 / l of the rows, from the last tile step (f90_epre)
#endif
#if FWD_HALF
    // The task's first `pad` tiles (the host puts its half tiles first: `DCP_CUDA_FWD_HALF`,
    // exec.rs) through the half step; the rest through the plain loop below, main's step
    // unchanged (no tile word read before its first wgmma).
// One half of a half tile: S (m64n64) and P V over its 4 key steps, the key half `nh` a
// compile-time value in each branch (the descriptors stay uniform). MW_: the statement that gets
// this thread's mask words `mw` while the S runs (FWD_HALFBITS), or nothing (read before).
#define F90_HALF_ONE(MW_)                                                                         \
  {                                                                                               \
    float sh[S90_BC / 4];                                                                         \
    wg_fence();                                                                                   \
    if (nh) F90_ISSUE_S(1, sh, s, 1);                                                             \
    else F90_ISSUE_S(1, sh, s, 0);                                                                \
    MW_                                                                                           \
    wg_wait<0>();                                                                                 \
    reg_fence<S90_BC / 4>(sh);                                                                    \
    mask_half_bits(sh, mw, nh ? 1 : 0);                                                           \
    float mn[2];                                                                                  \
    if (f90_max<S90_BC / 16>(sh, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);                 \
    f90_exp<S90_BC / 16>(sh, mm, ll, scale_log2);                                                 \
    u32 ph[S90_BC / 32][4];                                                                       \
    acc_to_a<S90_BC / 2>(sh, ph);                                                                 \
    reg_fence<D / 2>(o);                                                                          \
    wg_fence();                                                                                   \
    if (nh) F90_ISSUE_PV(ph, s, S90_BC / 32, S90_BC / 32);                                        \
    else F90_ISSUE_PV(ph, s, 0, S90_BC / 32);                                                     \
    wg_wait<0>();                                                                                 \
    reg_fence<D / 2>(o);                                                                          \
  }
    u32 j = 0;
    const u32 n_half = min(tk->pad, n_tiles);
    for (; j < n_half; ++j, ++sg) {
      const int s = sg % FWD_NS;
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      fence_proxy_async();
      const unsigned char* kst = gbase + (ksmall + s * F90_KSMALL - base);
#if FWD_HALFBITS
      // Which 64-key halves the warpgroup's rows attend, from the host's bits in the tile word
      // (a tile that is not partial: both), uniform through vote.any; this thread's mask words
      // (staged, or from the staged ranges) are read after the S is issued.
      const u32 word = *(const u32*)(kst + S90_BR * 16);
      const u32 hb = (word >> 31) ? (word >> (27 + 2 * cw)) & 3u : 3u;
      const bool nl = __any_sync(0xffffffffu, (hb & 1u) != 0u);
      const bool nh = __any_sync(0xffffffffu, (hb & 2u) != 0u);
#define F90_MW()                                                                                  \
  (*(const u32*)(kst + S90_BR * 16 + 4) != NO_TILE_MASK                                           \
       ? ((const uint2*)kst)[tid - 128]                                                           \
       : mask_words(F90_KT(word) * S90_BC, (const uint4*)kst, span, ranges, n_keys, r_lo, t4))
      if (!(nl && nh)) {
        if (nl || nh) {
          F90_HALF_ONE(const uint2 mw = F90_MW();)
        }
        mbar_arrive(empty(s));
        F90_LATE_STEP();
        continue;
      }
      float sc[S90_BC / 2];
      wg_fence();
      F90_ISSUE_S(2, sc, s, 0);
      const uint2 mw = (word >> 31) ? F90_MW() : make_uint2(0u, 0u);
#undef F90_MW
      wg_wait<0>();
#else
      // Partial tiles: this thread's mask words (staged, or from the staged ranges), and which
      // 64-key halves the warpgroup's rows attend.
      // Branches around wgmma must be uniform to ptxas (else it serialises every wgmma of the
      // kernel): the conditions go through vote.any (the same value in every thread anyway).
      const u32 word = *(const u32*)(kst + S90_BR * 16);
      uint2 mw = make_uint2(0u, 0u);
      if (__any_sync(0xffffffffu, (word >> 31) != 0u)) {
        mw = *(const u32*)(kst + S90_BR * 16 + 4) != NO_TILE_MASK
                 ? ((const uint2*)kst)[tid - 128]
                 : mask_words(F90_KT(word) * S90_BC, (const uint4*)kst, span, ranges, n_keys, r_lo, t4);
        const u32 mo = mw.x | mw.y;
        const bool nl = __any_sync(0xffffffffu, f90_wg_any((mo & 0xffffu) != 0u, 1 + cw));
        const bool nh = __any_sync(0xffffffffu, f90_wg_any((mo >> 16) != 0u, 1 + cw));
        if (!(nl && nh)) {
          if (nl || nh) {
            F90_HALF_ONE()
          }
          mbar_arrive(empty(s));
          F90_LATE_STEP();
          continue;
        }
      }
      float sc[S90_BC / 2];
      wg_fence();
      F90_ISSUE_S(2, sc, s, 0);
      wg_wait<0>();
#endif
      reg_fence<S90_BC / 2>(sc);
      if (word >> 31) mask_tile_bits(sc, mw);
#if FWD_SPLIT == 2
      u32 pa[S90_BC / 16][4];
      {
        float mn[2];
        if (f90_max<S90_BC / 8>(sc, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);
        f90_exp<S90_BC / 16>(sc, mm, ll, scale_log2);
        acc_to_a<S90_BC / 2>(sc, pa);
        reg_fence<D / 2>(o);
        wg_fence();
        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        f90_exp<S90_BC / 16>(sc + S90_BC / 4, mm, ll, scale_log2);
        acc_to_a<S90_BC / 2>(sc + S90_BC / 4, pa + S90_BC / 32);
        wg_fence();
        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
      }
#else
#if FWD_LAZY || FWD_SPLIT
      {
        float mn[2];
        if (f90_max<S90_BC / 8>(sc, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);
        f90_exp<S90_BC / 8>(sc, mm, ll, scale_log2);
      }
#else
      {
        float al[2], sum[2];
        softmax_step(sc, mm, al, sum, scale_log2);
        rescale(o, ll, al, sum);
      }
#endif
      u32 pa[S90_BC / 16][4];
      acc_to_a<S90_BC>(sc, pa);
      reg_fence<D / 2>(o);
      wg_fence();
      F90_ISSUE_PV(pa, s, 0, S90_BC / 16);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
    for (; j < n_tiles; ++j, ++sg) {
#else
#if FWD_ONE
    if (one) {
      // FWD_ONE (above): stage s0 holds both tiles' K (K slot: tile 0, V slot: tile 1), s1 both V.
      const int s0 = sg % FWD_NS, s1 = (sg + 1) % FWD_NS;
      const u32 kv_d0 = (sV >> 4) | (1u << 16);                          // K-major read of a V slot
      const u32 vk_d0 = (sK >> 4) | ((u32)(S90_BC * 128 >> 4) << 16);    // MN-major read of a K slot
      float sa[S90_BC / 2], sb[S90_BC / 2];
      // (No proxy fence after these waits: the stages are written by TMA and read by wgmma
      // only, both async proxy; the plain loop's fence also covers its generic reads of the
      // staged tile word. Without it, alternated x3 in two calls: works1000 +1.5 % and +0.1 %,
      // kernels-2026-11-30-s27 calls 7 and 8; racecheck clean.)
      mbar_wait(full(s0), (sg / FWD_NS) & 1);
      wg_fence();
// S of one tile against the K-major tile at descriptor base `kb` of stage s0.
#define F90_ONE_S(acc, kb)                                                                           \
  _Pragma("unroll") for (int kk = 0; kk < D / 16; ++kk) {                                            \
    const u64 da = f90_desc(q_d + (((kk >> 2) * (S90_BR * 128) + (kk & 3) * 32) >> 4), DHI);         \
    const u32 off = s0 * (TBYTES >> 4) + (((kk >> 2) * (S90_BC * 128) + (kk & 3) * 32) >> 4);        \
    wgmma_m64n128k16_ss<0>(acc, da, f90_desc((kb) + off, DHI), kk > 0);                              \
  }
      F90_ONE_S(sa, k_d0);
      F90_ONE_S(sb, kv_d0);
#undef F90_ONE_S
      wg_commit();
      F90_LATE_STEP();  // (the previous task's O store: its read is done by now)
      wg_wait<0>();
      reg_fence<S90_BC / 2>(sa);
      reg_fence<S90_BC / 2>(sb);
      mbar_arrive(empty(s0));  // both K tiles read: the next task's K loads under what follows
      // One exact softmax over the 256 keys (full tiles: every row has finite scores).
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < S90_BC / 8; ++nt)
          mx = fmaxf(mx, fmaxf(fmaxf(sa[nt * 4 + 2 * h], sa[nt * 4 + 2 * h + 1]),
                               fmaxf(sb[nt * 4 + 2 * h], sb[nt * 4 + 2 * h + 1])));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mm[h] = mx * scale_log2;
      }
      u32 pa[S90_BC / 16][4], pb[S90_BC / 16][4];
      // Tile 1's exponentials run under tile 0's P V (as FWD_SPLIT 2 does by halves). The
      // epilogue's part without O goes before the last P V: under it, ptxas serialised the wgmma
      // for lack of registers (C7512, 92 B spilled; offline).
      float ls[2] = {0.f, 0.f};
      f90_exp<S90_BC / 8>(sa, mm, ll, scale_log2);
      acc_to_a<S90_BC>(sa, pa);
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
      mbar_wait(full(s1), ((sg + 1) / FWD_NS) & 1);
      wg_fence();
#pragma unroll
      for (int kc = 0; kc < S90_BC / 16; ++kc)
        wg_pv(o, pa[kc], f90_desc(vk_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();
      f90_exp<S90_BC / 8>(sb, mm, ls, scale_log2);
      acc_to_a<S90_BC>(sb, pb);
      ll[0] += ls[0];
      ll[1] += ls[1];
#if FWD_EPRE
      f90_epre(ll, mm, inv, tk, wk, r_lo, t4);
#endif
      wg_fence();
#pragma unroll
      for (int kc = 0; kc < S90_BC / 16; ++kc)
        wg_pv(o, pb[kc], f90_desc(v_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();
      wg_wait<0>();
      reg_fence<D / 2>(o);
      reg_fence_u<S90_BC / 4>(&pa[0][0]);
      reg_fence_u<S90_BC / 4>(&pb[0][0]);
      mbar_arrive(empty(s1));
      sg += 2;
    }
    for (u32 j = one ? n_tiles : 0; j < n_tiles; ++j, ++sg) {
#else
    for (u32 j = 0; j < n_tiles; ++j, ++sg) {
#endif
#endif
      const int s = sg % FWD_NS;
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      fence_proxy_async();
      const unsigned char* kst = gbase + (ksmall + s * F90_KSMALL - base);
#if FWD_SPLIT == 1
      const u32 word0 = *(const u32*)(kst + S90_BR * 16);
      if (!(word0 >> 31)) {
        // Full tile in two halves of 64 keys (sa: keys 0-63, sb: keys 64-127).
        float sa[S90_BC / 4], sb[S90_BC / 4];
        wg_fence();
        F90_ISSUE_S(1, sa, s, 0);
        F90_ISSUE_S(1, sb, s, 1);
        wg_wait<1>();
        reg_fence<S90_BC / 4>(sa);
        float mn[2];
        if (f90_max<S90_BC / 16>(sa, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);
        f90_exp<S90_BC / 16>(sa, mm, ll, scale_log2);
        u32 pa[S90_BC / 32][4], pb[S90_BC / 32][4];
        acc_to_a<S90_BC / 2>(sa, pa);
        reg_fence<D / 2>(o);
        wg_fence();
        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        wg_wait<1>();
        reg_fence<S90_BC / 4>(sb);
        // Whether any row of the warpgroup rescales for half b (warpgroup-uniform, so that only
        // then P V of half a is waited for before P V of half b, which otherwise just follows it).
        const bool nb = f90_wg_any(f90_max<S90_BC / 16>(sb, mm, mn, scale_log2), 1 + cw);
        // Half b's exponentials with the maximum it will have (O is still in flight).
        float mb[2] = {nb ? mn[0] : mm[0], nb ? mn[1] : mm[1]}, lb[2] = {0.f, 0.f};
        f90_exp<S90_BC / 16>(sb, mb, lb, scale_log2);
        acc_to_a<S90_BC / 2>(sb, pb);
        if (nb) {
          wg_wait<0>();
          reg_fence<D / 2>(o);
          f90_rescale(o, mm, ll, mn);
        }
        ll[0] += lb[0];
        ll[1] += lb[1];
        wg_fence();
        F90_ISSUE_PV(pb, s, S90_BC / 32, S90_BC / 32);
        wg_wait<0>();
        reg_fence<D / 2>(o);
        reg_fence_u<S90_BC / 8>(&pa[0][0]);
        reg_fence_u<S90_BC / 8>(&pb[0][0]);
        mbar_arrive(empty(s));
        F90_LATE_STEP();
        continue;
      }
#endif
#if FWD_PP
      // FWD_PP: the task's first plain step, in a task of at least FWD_PP_MIN tiles, is a turn.
#if FWD_HALF
      const bool turn = j == n_half && n_tiles >= FWD_PP_MIN;
#else
      const bool turn = j == 0 && n_tiles >= FWD_PP_MIN;
#endif
      if (turn) named_bar(7 - cw, 256);
#define F90_PP_GO(at)                                               \
  do {                                                              \
    if (FWD_PP_AT == (at) && turn) f90_bar_arrive(6 + cw, 256);     \
  } while (0)
#else
#define F90_PP_GO(at) \
  do {                \
  } while (0)
#endif
      float sc[S90_BC / 2];
      wg_fence();
      F90_ISSUE_S(2, sc, s, 0);
      F90_PP_GO(0);
      wg_wait<0>();
      reg_fence<S90_BC / 2>(sc);
      F90_PP_GO(1);
      // Partial tiles: the mask from the staged tile word and ranges.
      const u32 word = *(const u32*)(kst + S90_BR * 16);
#define F90_MASK_SC()                                                                                 \
  do {                                                                                                \
    if (word >> 31) {                                                                                 \
      if (*(const u32*)(kst + S90_BR * 16 + 4) != NO_TILE_MASK)                                       \
        mask_tile_bits(sc, ((const uint2*)kst)[tid - 128]);                                           \
      else                                                                                            \
        mask_tile(sc, F90_KT(word) * S90_BC, (const uint4*)kst, span, ranges, n_keys, r_lo, t4); \
    }                                                                                                 \
  } while (0)
      F90_MASK_SC();
#if FWD_SPLIT == 2
      // softmax below, with P V
#elif FWD_LAZY || FWD_SPLIT
      {
        float mn[2];
        if (f90_max<S90_BC / 8>(sc, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);
        f90_exp<S90_BC / 8>(sc, mm, ll, scale_log2);
      }
#else
      {
        float al[2], sum[2];
        softmax_step(sc, mm, al, sum, scale_log2);
        rescale(o, ll, al, sum);
      }
#endif
      u32 pa[S90_BC / 16][4];
#if FWD_SPLIT == 2
      {
#if FWD_NOMAX
        // Every row of the warp has a maximum: no new one (FWD_NOMAX, above).
        const bool nm = !__any_sync(0xffffffffu, mm[0] == -INFINITY || mm[1] == -INFINITY);
#else
        const bool nm = false;
#endif
        if (nm) {
          float ps[2];
#if FWD_NOMAX_TEST == 1
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            if (!(ll[h] < 1.0e6f)) continue;  // (bounded: rows the guard never trips for stay finite)
            mm[h] -= 10.f;
            ll[h] *= 1024.f;
#pragma unroll
            for (int i = 0; i < D / 8; ++i) {
              o[i * 4 + 2 * h] *= 1024.f;
              o[i * 4 + 2 * h + 1] *= 1024.f;
            }
          }
#endif
          if (f90_exp_nm(sc, mm, ps, scale_log2) && f90_nomax_fix(sc, o, mm, ll, ps)) {
            // A P that is not finite: the scores again, from shared memory (rare; the stage is held).
            f90_scores_smem(sc, sQ + qb * QBYTES, sK + s * TBYTES, r_lo, t4);
            F90_MASK_SC();
            float mn[2];
            f90_max<S90_BC / 8>(sc, mm, mn, scale_log2);
            f90_rescale(o, mm, ll, mn);
            ps[0] = ps[1] = 0.f;
            f90_exp<S90_BC / 8>(sc, mm, ps, scale_log2);
          }
          ll[0] += ps[0];
          ll[1] += ps[1];
        } else {
          float mn[2];
          if (f90_max<S90_BC / 8>(sc, mm, mn, scale_log2)) f90_rescale(o, mm, ll, mn);
          f90_exp<S90_BC / 16>(sc, mm, ll, scale_log2);
        }
        acc_to_a<S90_BC / 2>(sc, pa);
        reg_fence<D / 2>(o);
        wg_fence();
        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        F90_PP_GO(2);
        if (!nm) f90_exp<S90_BC / 16>(sc + S90_BC / 4, mm, ll, scale_log2);
        acc_to_a<S90_BC / 2>(sc + S90_BC / 4, pa + S90_BC / 32);
        wg_fence();
        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
        F90_PP_GO(3);
#if FWD_EPRE
        // The task's last tile: the epilogue's part without O, under this P V.
        if (j + 1 == n_tiles) f90_epre(ll, mm, inv, tk, wk, r_lo, t4);
#endif
      }
#else
      acc_to_a<S90_BC>(sc, pa);
      reg_fence<D / 2>(o);
      wg_fence();
      F90_ISSUE_PV(pa, s, 0, S90_BC / 16);
      F90_PP_GO(2);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
#undef F90_PP_GO
#undef F90_MASK_SC
#undef F90_ISSUE_S
#undef F90_ISSUE_PV
    F90_LATE_STEP();  // (owed from before a task without tiles)

    // Epilogue: O = acc / l (0 for rows with no key), LSE = m + log2(l) in natural log units.
    const float LN2 = 0.6931471805599453f;
    const u32 row0 = tk->row0, head = tk->head, n_rows = wk->n_rows;
    const u32 o_stride = wk->o_stride, lse_stride = wk->lse_stride, o_dtype = wk->o_dtype;
    void* const optr = (void*)wk->o;
    float* const lptr = (float*)wk->lse;
#if FWD_EPRE
    (void)LN2, (void)lse_stride, (void)lptr;
    // (Done in the last tile step unless the task had no step of the plain loop.)
#if FWD_HALF
    if (n_tiles <= n_half) f90_epre(ll, mm, inv, tk, wk, r_lo, t4);
#else
    if (n_tiles == 0) f90_epre(ll, mm, inv, tk, wk, r_lo, t4);
#endif
#endif
#if FWD_OST
    if (o_dtype != DT_F32) {
#if !FWD_EPRE
      float inv[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float l = ll[h];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        inv[h] = l > 0.f ? 1.f / l : 0.f;
        const u32 row = row0 + r_lo + 8 * h;
        if (t4 == 0 && row < n_rows)
          lptr[(u64)row * lse_stride + head] = l > 0.f ? (mm[h] + __log2f(l)) * LN2 : -INFINITY;
      }
#endif
      // O of this warpgroup through its 64 rows of the task's Q buffer (FWD_OST): the 8 x 8
      // blocks of O's accumulator layout are stmatrix's fragments (block (nt, h) of a warp: rows
      // 8 h + 0..7, columns 8 nt + 0..7); one stmatrix takes 16 rows x 16 columns.
      const u32 sq = sQ + qb * QBYTES;
      const int li = lane & 7, lm = lane >> 3;               // row li of block lm of a stmatrix
      const u32 rs = 64 * cw + 16 * wq + li + 8 * (lm & 1);  // that row in the tile
      // Each pair converted only to the work's 16-bit type.
      if (o_dtype == DT_BF16) f90_stage_o<true>(o, inv, sq, rs, lm);
      else f90_stage_o<false>(o, inv, sq, rs, lm);
#if FWD_TMA >= 3
      if (wk->flags & 4u) {
        // Visible to the tensor copy (async proxy), then one thread stores the 64 rows.
        fence_proxy_async();
        named_bar(4 + cw, 128);
        if ((tid & 127) == 0) {
          const u64 omap = (u64)(fmaps + (u64)tk->work * FWD_MAPS) + 256;
#pragma unroll
          for (int h = 0; h < D / 64; ++h)
            f90_tma_store_3d(omap, sq + h * (S90_BR * 128) + 64 * cw * 128, 64 * h, head, row0 + 64 * cw);
          f90_bulk_commit();
#if FWD_LATEREL
          pend = 1 + qb;
#else
          f90_bulk_wait_read();
#endif
        }
      } else
#endif
      {
        named_bar(4 + cw, 128);  // this warpgroup's rows are written
        // 16-byte chunks: thread tw of the warpgroup takes chunk tw of each 128 (rows of D / 8).
        const int tw = tid & 127;
#pragma unroll
        for (int i = 0; i < 64 * (D / 8) / 128; ++i) {
          const int qq = i * 128 + tw, rw = qq / (D / 8), cc = qq % (D / 8);
          const u32 rr = 64 * cw + rw;
          const uint4 val = f90_lds128(sq + (cc >> 3) * (S90_BR * 128) + rr * 128 + (((cc & 7) ^ (rr & 7)) << 4));
          const u32 grow = row0 + rr;
          f90_stg128p((__half*)optr + ((u64)grow * o_stride + head * D + 8 * cc), val, grow < n_rows);
        }
      }
    } else
#endif
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#if FWD_EPRE
      const u32 row = row0 + r_lo + 8 * h;
      if (row < n_rows) f90_store_row(o, inv[h], h, optr, (u64)row * o_stride + head * D, o_dtype, t4);
#else
      float l = ll[h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const u32 row = row0 + r_lo + 8 * h;
      if (row < n_rows) {
        f90_store_row(o, inv, h, optr, (u64)row * o_stride + head * D, o_dtype, t4);
        if (t4 == 0)
          lptr[(u64)row * lse_stride + head] = l > 0.f ? (mm[h] + __log2f(l)) * LN2 : -INFINITY;
      }
#endif
    }
#if FWD_TMA >= 2
    // The O staging's generic accesses to the Q buffer before the next tensor copy into it
    // (FWD_LATEREL: only where O left by generic loads; a TMA-stored O's staging writes were
    // fenced before the tensor store, which reads it through the async proxy).
#if FWD_LATEREL
    if (!(wk->flags & 4u) || o_dtype == DT_F32)
#endif
      fence_proxy_async();
#endif
#if FWD_LATEREL
    if (pend != 1u + qb)  // (the O-storing thread arrives after the next task's first tile)
#endif
      mbar_arrive(qempty(qb));
  }
#undef F90_LATE_ARRIVE
}
