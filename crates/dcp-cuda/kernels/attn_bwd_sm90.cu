// Blockwise attention backward over a work list on Hopper (sm_90a): wgmma + warp specialisation.
//
// Same contract and task list as attn_bwd.cu: one CTA = 128 keys (kv tile `task.row0`) of one kv
// head; it loops over the GQA group's query heads and the q tiles (64 rows) listed for its kv
// tile, keeps dK, dV in fp32 registers and adds them atomically into the dKV regions at the end;
// dQ is added into global memory once per q tile (bulk reductions for fp32 dQ buffers).
//
// Persistent (like attn_fwd_sm90.cu): at most one CTA per SM; CTA b starts with task b and takes
// the next from a counter (`sched[0]`; `sched[2]` = number of tasks, longest first), claimed when
// the producer has issued the task's last load (claimed at the start, long tasks went out in
// start order: -4-6 % on causal 128K). K/V are single buffered: the consumers arrive on
// `kv_empty` after the task's last dQ wgmma, then write that dQ and add dK/dV (red.v4) while the
// producer, already holding the next task's first Q/dO stage, loads the next K/V and the task's
// info slot and arrives on `kv_full`. Stage and dS-buffer phases count steps across tasks.
// bench/results/kernels-2026-11-28h-bwd.
//
// A step is one (head, q tile) at D 128 and two consecutive entries of the task's (head, q tile)
// list at D 64 (BWD_QT: 128 query rows, the second half zero rows and masked off past the list's
// end): at D 64 a 64-row step left the tensor cores idle most of the time (its elementwise work
// and per-step overhead equal D 128's for half the MMA work; 0.77x cuDNN), and each warpgroup
// added a partial dQ of the same 64 x 64 block. bench/results/kernels-2026-11-28k.
// Warpgroup 0 produces: K and V of the kv tile once per task, then per step Q, dO, LSE,
// D = rowsum(dO*O), the rows' range spans, the tile words and (partial tiles) the precomputed
// mask or the first two ranges of each row into 2 stages (cp.async, "full"/"empty" mbarriers;
// K/V, Q and dO by TMA tensor copies where the host built the work's maps, BWD_TMA).
// Warpgroups 1 and 2 consume, 64 keys each (transposed formulation, keys as the M dimension):
//   S^T = K Q^T and dP^T = V dO^T            wgmma m64n64k16 (D 64: m64n128k16), all operands
//                                             from shared memory
//   P^T = exp(S^T - LSE), dS^T = P^T (dP^T - D)   in registers (partial tiles masked; the mask
//                                             is a select before one ex2, no branch)
//   dV += P^T dO, dK += dS^T Q                wgmma m64nDk16, A (P^T, dS^T) from registers,
//                                             B (dO, Q) MN-major from shared memory
//   dQ = dS K                                  dS^T goes to shared memory with stmatrix.trans
//                                             (K-major for A); D = 128: warpgroup c computes dQ
//                                             columns 64c..64c+63 over all 128 keys; D = 64: all
//                                             columns of q tile c of the step over all keys
// wgmma descriptors are base descriptors plus constant offsets (BWD_FASTDESC).
// Step order of a consumer (step t, BWD_ORDER 1): S^T, dP^T issued and both waited for; P^T and
// dS^T formed in one pass, dV issued, dS^T stored into dS buffer t % 2 ("ds_full"); then dQ of
// step t - 1 (both warpgroups' dS of it, in the other buffer) and dK of step t issued (at D 128
// behind dV, not waiting for it: BWD_DV_NOWAIT); the dQ of step t - 1 is written out while dK
// runs. D 128 also forms P^T times the softmax scale (BWD_PSCALE: no multiply per dQ element)
// and masks only partial tiles' exponent arguments (BWD_MASK_BRANCH, BWD_LSE_GUARD 0): 668 -> 577
// SASS instructions per consumer warp and step, +6-8 % (bench/results/kernels-2026-11-28l). The
// mbarriers "ds_full"/"ds_empty" let the two consumers drift apart by up to one step (no per-step
// barrier between them).
// dK/dV of a task that alone adds into zero rows (TaskDesc.pad bit 31, D 128; src/own.rs): stored
// with st.global.v4 instead of red.add (1000 documents of 256 tokens: the kernel 1.71 -> 1.49 ms,
// the dKV fill dropped; bench/results/kernels-2026-11-28o).
// dQ (fp32 buffers): each consumer writes its 64 x 64 fp32 block into its staging area in the
// 128-byte swizzled box layout of the work's TMA tensor map (built by the host, one per work)
// and one of its threads adds it into global memory with two `cp.reduce.async.bulk.tensor`
// reductions (64 rows x 32 columns each; rows past the work's end are clipped by the map); the
// block is refilled a step later, after that thread has seen the reductions read it. 16-bit dQ
// buffers take vector atomics. Shared tiles use the 128-byte swizzled layout of
// attn_fwd_sm90.cu. Measured variants (dQ by atomics, by per-row bulk reductions from the
// consumers or the producer, by tensor reductions from the producer; step orders; per-warp
// mbarrier arrivals; 3 dS buffers): bench/results/kernels-2026-11-28d and -28e-bwd.

// Tile sizes, the step's switches (BWD_ORDER, BWD_FASTDESC, ...) and helpers: bwd_sm90.cuh.
static_assert(HEAD_DIM == 64 || HEAD_DIM == 128, "the sm90 backward takes head dims 64 and 128");

// BWD_CHAIN 1 (D 128; the host compiles it in under DCP_CUDA_BWD_CHAIN, src/own.rs
// `chain_launch`): work-resident tasks for launches of many short works. Every kv tile of a work
// runs, for one kv head, on one CTA, one after the other in key order (a *chain*): TaskDesc.pad
// bit 28 = the task is part of a chain, bits 0-26 = the index of the chain's next task (0: none;
// the CTA runs it next without a claim; the claim counter and `sched[2]` count chains, whose first
// tasks come first in the list). Every dQ element of the work's query heads of that kv head is
// then written by this CTA alone, in a known order, and each q tile's word says which visit it
// is: bit 30 (`B90_TILE_FIRST`) = the q tile's first visit in the chain: its dQ is *stored* (TMA
// tile store into the fp32 scratch instead of a reduction: the host dropped the zero fill); bit 29
// (`B90_TILE_LAST`) = the last visit: the warpgroup takes the fp32 partial of the earlier visits
// (none if this is also the first) from a tensor load into its dQ staging block, issued one step
// ahead and completing on an mbarrier per warpgroup (per-thread global loads at the visit itself
// left a DRAM round trip exposed per step: kernel +0.75 ms on works1000), adds its own and writes
// the sum converted into the 16-bit destination of the plan's converting copy (`dq_conv[work]`,
// which the host dropped): one conversion of the fp32 sum, no dQ conversion pass. Middle visits
// (chains of 3+ kv tiles) reduce as before, after the thread's earlier bulk operations completed
// (bulk stores and reductions are not ordered among themselves).
// Ordering: at D 128 a (q tile, head, 64-column half) is always handled by the same consumer
// warpgroup, whose first thread issued every bulk store / reduction into it. Before that thread
// issues a last visit's load, the warpgroup's named barrier orders every thread's earlier use of
// the staging block, and the thread waits for all of its bulk groups to complete
// (`cp.async.bulk.wait_group 0`: writes done, not only the staging read) and fences
// (`fence.proxy.async.global`); the mbarrier's phase completion makes the loaded block visible
// to the threads that wait on it.
// Bit 27 (`B90_TASK_REV`): the task walks its (query head, q tile) steps last to first (the host
// flags every other task of a chain under DCP_CUDA_BWD_CHAIN=1): the q tiles and heads the task
// before handled last, whose Q / dO rows and dQ partials are the most likely still in L2, come
// first.
#ifndef BWD_CHAIN
#define BWD_CHAIN 0
#endif
static_assert(!BWD_CHAIN || HEAD_DIM == 128, "chains are written for head dim 128");
#define B90_TASK_NEXT 0x07ffffffu
#define B90_TASK_REV 0x08000000u    // the task walks its steps last to first
#define B90_TASK_CHAIN 0x10000000u  // the task is part of a chain
#define B90_TILE_FIRST 0x40000000u
#define B90_TILE_LAST 0x20000000u
// BWD_HALF 1 (D 128, not with chains; opt-in: the host compiles it into a kernel of its own,
// src/exec.rs `bwd_half`, and launches it where at least `DCP_CUDA_BWD_HALF` percent of the steps
// are half steps): tile word bit 30 (`B90_TILE_HLO`) = no row of the q tile attends keys 0-63 of
// the kv tile, bit 29 (`B90_TILE_HHI`) = none attends keys 64-127 (src/tilemask.rs
// `bwd_half_bits`, partial tiles only; the bits are set only for launches of this kernel). The
// consumer warpgroup of the unseen half skips the step's S^T, dP^T, dV and dK wgmmas and its
// elementwise work, and stores zero dS^T (the dQ wgmmas still run over all 128 keys); the barriers
// keep their arrivals. Measured and not adopted (bench/results/kernels-2026-11-29-kbb14, 1x H200):
// a half step costs ~0.75 of a step, but the branches cost every full step of the build: forced
// onto causal 32K (0.4 % half steps) -3 %; causal-blockwise 32K (11 % half steps) +-0, lambda
// -1.7 %. Its first form, whose half steps' dQ also ran over the seen half only (a branch between
// two dQ wgmma sequences), cost full steps -8 % (blockwise -2.7 %, lambda -6 %).
#ifndef BWD_HALF
#define BWD_HALF 0
#endif
static_assert(!BWD_HALF || (HEAD_DIM == 128 && !BWD_CHAIN), "half steps are written for head dim 128, no chains");
#define B90_TILE_HLO 0x40000000u
#define B90_TILE_HHI 0x20000000u
// A tile word's q tile index (bit 31: partial tile; chains: bits 29-30 the visit flags; BWD_HALF:
// bits 29-30 the unseen halves).
#define B90_TILE_INDEX ((BWD_CHAIN || BWD_HALF) ? 0x1fffffffu : 0x7fffffffu)

// BWD_CHAIN_DD 1 (with BWD_CHAIN; the host compiles it in under DCP_CUDA_BWD_CHAIN_DD): the
// chain kernel computes D = rowsum(dO * O) itself, at each q tile's first visit, for the works
// flagged B90_WORK_DD (WorkDesc.flags; the host sets it on every work of a chained launch whose
// O is 16-bit of Q's dtype and whose dO / O rows allow 16-byte loads, and drops the launch's
// `dcp_bwd_dd` pre-pass when it set it on all of them). On such a step (first visit: the tile
// word's B90_TILE_FIRST, the same for every query head of the step) producer thread pt loads
// half a row (row pt / 2, columns 64 (pt % 2) ..) of dO into the stage (cp.async, the stage's
// swizzled layout; Q keeps its tensor copy) and the same chunks of O into `sO` (16 KiB, the
// same layout, this kernel only), waits for its own copies (`cp.async.wait_all`: no other
// thread's data is read), forms the half row's dot product in fp32, adds its partner's (lane ^
// 1), and the even thread writes D into the stage's D slot (st.shared) and, unless this is also
// the tile's last visit, into the global D buffer; then every producer thread arrives on the
// stage's full barrier with a plain (release) arrive instead of the cp.async arrive (its
// copies are complete). Later visits load D from the global buffer as before, by the same
// thread: in this kernel the D word of row r of a step is loaded by producer thread 2 r (not r),
// the thread that stored it at the first visit, earlier in its program order (same thread, same
// address, generic proxy both: the load sees the store; the L1 is coherent with its own SM's
// stores). Every (row, head) pair of D is written by the chain of its (work, kv head) only, which
// is one CTA. Each producer thread fences (`fence.proxy.async`) after reading the stage's dO,
// which a tensor copy may overwrite later (cross-proxy write after read).
#ifndef BWD_CHAIN_DD
#define BWD_CHAIN_DD 0
#endif
static_assert(!BWD_CHAIN_DD || BWD_CHAIN, "D in the kernel is written for chains");
static_assert(!BWD_CHAIN_DD || BWD_QT == 1, "D in the kernel is written for one q tile per step");
#define B90_WORK_DD 32u
// sO: O half rows of a D step (BWD_CHAIN_DD).
#define B90_O_BYTES (BWD_CHAIN_DD ? B90_BR * HEAD_DIM * 2 : 0)

// BWD_CHAIN_ST16 1 (with BWD_CHAIN; the default since bench/results/kernels-2026-11-29-kb13:
// works1000 backward -1.9 %): a last visit's finished dQ (partial + its own) goes back into the
// warpgroup's staging block (each thread where it read the partial), and after the warpgroup's
// named barrier each thread converts 8 consecutive columns of a row and writes them with one
// 16-byte store (4 per thread and step; a warp writes 4 whole 128-byte row pieces), where the
// destination is 16-bit with 16-byte aligned rows; the same fp32 sums and rounding (the output is
// bit-identical). 0 (main's until then): 2 columns per 4-byte store straight from the registers (a
// quad writes 16 bytes of a row, half a 32-byte sector, per instruction: 16 stores per thread
// and step; the pattern that also cost the 16-bit dK/dV stores, kernels-2026-11-29-kb12).
// Measured and dropped there: L2 policies for the chain's partials (evict_last stores, discard
// after the last visit's load, evict_first Q/dO/K/V): +-0 alone, and it took most of this one's
// gain when combined (variant_l2_attn_bwd_sm90.patch).
#ifndef BWD_CHAIN_ST16
#define BWD_CHAIN_ST16 1
#endif

#if BWD_CHAIN_DD
// The dot product of 8 + 8 16-bit elements (dO, O) in fp32.
__device__ __forceinline__ float dd_dot8(uint4 a, uint4 b) {
  const u32 x[4] = {a.x, a.y, a.z, a.w}, y[4] = {b.x, b.y, b.z, b.w};
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#ifdef ELEM_F16
    const float2 u = __half22float2(*(const __half2*)&x[i]), v = __half22float2(*(const __half2*)&y[i]);
    s = fmaf(u.x, v.x, s);
    s = fmaf(u.y, v.y, s);
#else
    s = fmaf(__uint_as_float(x[i] << 16), __uint_as_float(y[i] << 16), s);
    s = fmaf(__uint_as_float(x[i] & 0xffff0000u), __uint_as_float(y[i] & 0xffff0000u), s);
#endif
  }
  return s;
}
#endif

// BWD_CLAIM_EARLY 1: the next task index is claimed when a task starts (the forward's way; A/B).
#ifndef BWD_CLAIM_EARLY
#define BWD_CLAIM_EARLY 0
#endif
static_assert(!(BWD_CLAIM_EARLY && BWD_CHAIN), "chain links are followed at the late claim");

// TaskDesc.pad bit 30 (src/own.rs `TASK_DQ_CONV`, D 128): the work's dQ is converted by its
// last writer. Per (q tile, query head, 64-column half) of the work a counter (`dq_cnt`, zeroed
// by the D pre-pass) counts the tasks whose dQ reductions into it are complete; at the end of a
// task each consumer warpgroup waits for its reductions, arrives on the counters of the task's
// (q tile, head) steps (release/acquire at gpu scope), and converts the halves whose count
// reached `dq_expect` (the number of tasks listing the q tile) from the fp32 sums into the
// 16-bit destination of the plan's converting copy, which the host drops.
#define B90_TASK_DQ_CONV 0x40000000u
// BWD_DQ_CONV 1: the conversion compiled in (D 128; the host sets it when DCP_CUDA_BWD_CONVERT
// asks for dQ, and flags tasks only then). Off by default: its mere presence moved the consumer
// loop's schedule and cost ~1 % on causal 128K (bench/results/kernels-2026-11-29-bwd).
#ifndef BWD_DQ_CONV
#define BWD_DQ_CONV 0
#endif
static_assert(!BWD_DQ_CONV || HEAD_DIM == 128, "the dQ conversion is written for head dim 128");

// Session 17 (kb17; bench/results/kernels-2026-11-29-kb17): the cluster kernel's session-16 task
// boundary (attn_bwd_cluster_sm90.cu CL_STSM, CL_TQ_SMEM, CL_XINFO) in the plain D 128 build
// (not with BWD_CHAIN, BWD_HALF or BWD_DQ_CONV: those builds keep their code). Shared memory after
// the barriers (`sscr`, 128-byte aligned; host: SM90_BWD_SCRATCH): 8 KiB of staging (1 KiB per
// consumer warp), the task counters (a word per consumer thread), two extra info slots.
// BWD_STSM: a task whose every dK/dV row of the warp is stored into a destination of the element
// type, 16-byte aligned (TaskDesc.pad B90_TASK_DKV_STORE: owned rows, converted), leaves through
// the staging block (bwd_sm90.cuh B90_DKV_STSM: per 16 x 16 block one stmatrix, one 16-byte
// read-back and store per lane) instead of BWD_DKV_OUT's quad transposes (96 SHFL, ~270 SEL / MOV
// and both dtypes' conversions per thread); other destinations (fp32 reductions) keep BWD_DKV_OUT.
// BWD_TQ_SMEM: the consumers' task counter in a shared word per consumer thread (broadcast from
// lane 0 by a shuffle so ptxas keeps it warp-uniform) instead of a register ptxas spilled (its
// local reload at the epilogue's start missed L1 after a task's traffic).
// BWD_XINFO: the producer copies the task's first dK/dV segment with the task info (64-byte slot
// per task parity), so the epilogue's row pointer needs no global load.
// BWD_EPI17 turns the four on together (BWD_STSM, BWD_TQ_SMEM, BWD_XINFO, BWD_RED32). Measured
// (kb17 call 3, alternated x3 against main's kernel): causal-blockwise 32K backward +3.4 %, causal
// 32K +1.1 %, lambda +0.8 %, packed +1.2 %, onework +1.6 %; selftest and the 4096-token checks
// pass. Default 1 since the lead's session-17 final call (memcheck + racecheck of this form, the
// selftest and the short / pair / split-K checks of merged main: bench/results/gpu-x2-2026-11-29s17).
// 0: session 16's SASS of the plain kernel.
#ifndef BWD_EPI17
#define BWD_EPI17 1
#endif
#ifndef BWD_STSM
#define BWD_STSM (BWD_EPI17 && HEAD_DIM == 128 && !BWD_CHAIN && !BWD_HALF && !BWD_DQ_CONV)
#endif
#ifndef BWD_TQ_SMEM
#define BWD_TQ_SMEM BWD_STSM
#endif
#ifndef BWD_XINFO
#define BWD_XINFO BWD_STSM
#endif
static_assert(!(BWD_STSM || BWD_TQ_SMEM || BWD_XINFO) || (HEAD_DIM == 128 && !BWD_CHAIN && !BWD_HALF && !BWD_DQ_CONV),
              "the staged epilogue is written for the plain D 128 build");
static_assert(!BWD_XINFO || BWD_TQ_SMEM, "the extra info slot is found through the counter");
// BWD_RED32 (with BWD_STSM and BWD_XINFO): a task whose every dK/dV row of the warp is added into
// fp32 rows (split lists: the sink pieces of causal-blockwise, most tasks of causal 32K) takes
// BWD_DKV_OUT's red.v4 branch as straight-line code (B90_DKV_RED32: the same transposes, values
// and reductions) with the rows' pointers from the segment's shared-memory copy, instead of
// BWD_DKV_OUT's per-column-tile branches on the run-time dtype and store flag: that path spread
// ~70 KB of code over small blocks, each run once per task, and its samples were ~75 % `no_inst`
// (instruction-cache misses; kb17 call 2's profile of the blockwise backward).
#ifndef BWD_RED32
#define BWD_RED32 (BWD_STSM && BWD_XINFO)
#endif
static_assert(!BWD_RED32 || (BWD_STSM && BWD_XINFO && BWD_EPI_V4), "the compact fp32 path follows the staged epilogue");
// red.global.add.v4.f32 where `ok` (a predicate in the instruction: no branch around it).
__device__ __forceinline__ void red_add_v4_if(float* p, float a, float b, float c, float d, bool ok) {
  asm volatile(
      "{\n.reg .pred q;\nsetp.ne.u32 q, %5, 0;\n@q red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n}\n" ::"l"(p), "f"(a),
      "f"(b), "f"(c), "f"(d), "r"((u32)ok)
      : "memory");
}
// The fp32 dK/dV reductions of a consumer thread (BWD_DKV_OUT's red.v4 branch for every column
// tile; a macro over its names dk, dv, dk_f, dv_f, t4, D): `rp_` the fp32 row of this lane's key
// (key_b for odd t4, else key_a; 0: past the work's keys).
#define B90_DKV_RED32(rp_)                                                                                     \
  {                                                                                                            \
    const bool odd = t4 & 1;                                                                                   \
    const u32 c0 = 2 * (t4 & 2);                                                                               \
    _Pragma("unroll") for (int nt = 0; nt < D / 8; ++nt) {                                                     \
      _Pragma("unroll") for (int m = 0; m < 2; ++m) {                                                          \
        const float* a = m ? dv : dk;                                                                          \
        const float f = m ? dv_f : dk_f;                                                                       \
        const float s0 = odd ? a[nt * 4] : a[nt * 4 + 2], s1 = odd ? a[nt * 4 + 1] : a[nt * 4 + 3];            \
        const float r0 = __shfl_xor_sync(0xffffffffu, s0, 1), r1 = __shfl_xor_sync(0xffffffffu, s1, 1);       \
        const float x0 = odd ? r0 : a[nt * 4], x1 = odd ? r1 : a[nt * 4 + 1];                                 \
        const float x2 = odd ? a[nt * 4 + 2] : r0, x3 = odd ? a[nt * 4 + 3] : r1;                             \
        red_add_v4_if((float*)(rp_) + m * D + nt * 8 + c0, x0 * f, x1 * f, x2 * f, x3 * f, (rp_) != 0);        \
      }                                                                                                        \
    }                                                                                                          \
  }
// BWD_KVL2_PF 1 (A/B, off): when producer thread 0 has claimed the next task (about two steps
// before this one ends), it prefetches that task's K and V tiles into L2 (tensor prefetches by the
// work's KV map), so that the K/V load after the consumers release K/V finds them there (the
// cluster kernel's BWD_KV_PF; measured +-0 there, kb16, and here: kb17 call 2, causal-blockwise
// 32K +-0 over two alternated pairs).
#ifndef BWD_KVL2_PF
#define BWD_KVL2_PF 0
#endif
static_assert(!BWD_KVL2_PF || (BWD_TMA && !BWD_CHAIN), "the K/V prefetch follows claims, K/V by TMA");
#define B90_SCR_TQ (8 * 1024)
#define B90_SCR_XINFO (9 * 1024)
static_assert(3 + sizeof(WorkDesc) / 8 <= 32, "the producer threads copying the info and the extra info overlap");
static_assert(sizeof(KvSeg) <= 64, "an extra info slot holds a KvSeg");

__device__ __forceinline__ u32 atom_add_acq_rel_gpu(u32* p, u32 v) {
  u32 old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}
__device__ __forceinline__ float4 ld_cg_f4(const float* p) {
  float4 v;
  asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];\n"
               : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

// dQ converted by its last writer (B90_TASK_DQ_CONV), at the end of a task, by one consumer
// warpgroup (`cw`: its 64-column half): its reductions of the task complete and released, then
// one arrival per (q tile, head) step of the task on the counter of its half, 32 steps at a time
// by its first warp; the halves whose count is complete are converted by the whole warpgroup.
// `mbox`: a free word of the warpgroup's dQ staging block (its reductions have read it). The
// code's presence moves the consumer loop's schedule (577 -> 607 SASS instructions per step by
// kernels-2026-11-28l/sass_hot.py; the loop's source and registers unchanged, nothing spilled;
// __noinline__ and hiding the pointers changed nothing: NVRTC inlines it), hence BWD_DQ_CONV.
__device__ __forceinline__ void bwd_dq_convert(const TaskDesc* tk, const u32* tiles, const DqConv* dq_conv,
                                            u32* dq_cnt, const u32* dq_expect, u32 group, u32 cw,
                                            unsigned char* mbox_p) {
  const WorkDesc* wk = (const WorkDesc*)((const unsigned char*)tk + 32);
  const u32 n_steps = group * tk->tiles_n;
  const u32 tid = threadIdx.x, t = tid & 127, lane = tid & 31, wq = (tid >> 5) & 3;
  if (t == 0) {
    bulk_wait0();
    asm volatile("fence.proxy.async.global;\n" ::: "memory");
    asm volatile("fence.acq_rel.gpu;\n" ::: "memory");
  }
  named_bar(2 + cw, 128);
  const DqConv cv = dq_conv[tk->work];
  const u32 tiles_off = tk->tiles_off, tiles_n = tk->tiles_n, kvh = tk->head;
  const u32 q_heads = wk->q_heads, sstride = wk->dq_stride, n_rows = wk->n_rows;
  const float* src = (const float*)wk->dq;
  volatile u32* mbox = (volatile u32*)mbox_p;
  for (u32 j0 = 0; j0 < n_steps; j0 += 32) {
    if (wq == 0) {
      const u32 j = j0 + lane;
      bool last = false;
      if (j < n_steps) {
        const u32 jj = j / tiles_n, it = j - jj * tiles_n;
        const u32 qt = tiles[tiles_off + it] & B90_TILE_INDEX;
        const u32 head = kvh * group + jj;
        const u32 old = atom_add_acq_rel_gpu(dq_cnt + cv.cnt_off + (qt * q_heads + head) * 2 + cw, 1u);
        last = old + 1 == dq_expect[cv.exp_off + qt];
      }
      const u32 m = __ballot_sync(0xffffffffu, last);
      if (lane == 0) *mbox = m;
    }
    named_bar(2 + cw, 128);
    u32 m = *mbox;
    named_bar(2 + cw, 128);
    while (m) {
      const u32 j = j0 + __ffs(m) - 1;
      m &= m - 1;
      const u32 jj = j / tiles_n, it = j - jj * tiles_n;
      const u32 q0 = (tiles[tiles_off + it] & B90_TILE_INDEX) * B90_BR;
      const u32 col0 = (kvh * group + jj) * HEAD_DIM + 64 * cw;
      // 64 rows x 64 fp32 columns: 16 float4 per row, 8 per thread, all loads in flight first.
      float4 v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const u32 idx = t + 128 * k, row = q0 + (idx >> 4);
        v[k] = row < n_rows ? ld_cg_f4(src + (u64)row * sstride + col0 + 4 * (idx & 15))
                            : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const u32 idx = t + 128 * k, row = q0 + (idx >> 4);
        if (row < n_rows)
          st4_dt((void*)cv.dst, (u64)row * cv.stride + col0 + 4 * (idx & 15), cv.dtype, v[k].x, v[k].y, v[k].z,
                 v[k].w);
      }
    }
  }
}

DCP_PDL_KERNEL(dcp_attn_bwd_sm90)
extern "C" __global__ void __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_sm90(BWD_SM90_PARAMS) {
  BWD_SM90_SMEM_BASE
  // dQ staging: [2 consumer wgs][2 column blocks of 32][64 rows][128 B], 128-byte swizzled (the
  // layout of the tensor maps' boxes; 1024-byte aligned like every tile above).
  const u32 sdq = sdS + 2 * DSBYTES;
  // Per stage: lse[SR], dd[SR], span[SR][2], the first two ranges of each row [SR][16 B] (partial
  // tiles; empty [0, 0) where a row has fewer; or the tile's precomputed mask, 1 KiB per q tile)
  // and per q tile its tile word and mask index (8 bytes each).
  const u32 sO = sdq + 2 * B90_DQ_WG_BYTES;  // BWD_CHAIN_DD: O of a D step (B90_O_BYTES)
  const u32 small = sO + B90_O_BYTES;
  constexpr u32 SMALL = SR * 32 + 16;
  constexpr u32 RG_OFF = SR * 16, WORD_OFF = SR * 32;
  const u32 sinfo = small + 2 * SMALL;         // [2][B90_INFO]
  // full[2], empty[2], kv_full, ds_full[2], ds_empty[2], kv_empty, then 2 task-index slots.
  const u32 bars = sinfo + 2 * B90_INFO;
  auto full_bar = [&](int s) { return bars + 8u * s; };
  auto empty_bar = [&](int s) { return bars + 8u * (2 + s); };
  const u32 kv_full = bars + 32;
  auto ds_full = [&](u32 b) { return bars + 40 + 8u * b; };
  auto ds_empty = [&](u32 b) { return bars + 56 + 8u * b; };
  const u32 kv_empty = bars + 72;
  volatile u32* slot = (volatile u32*)(gbase + (bars + 80u - base));
  // BWD_STSM / BWD_TQ_SMEM / BWD_XINFO: staging, task counters, extra info slots.
  const u32 sscr = (bars + 128u + 127u) & ~127u;

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
#if BWD_CHAIN
    for (int c = 0; c < 2; ++c) mbar_init(bars + 88 + 8 * c, 1);  // dQ partial loads (chains)
#endif
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  // DCP_PDL_KERNEL: from here on every thread reads or writes what the launches before wrote (D,
  // the zeroed dQ and dK/dV, the claim counter the last launch of this kernel reset).
  pdl_wait();
  __syncthreads();

  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<BWD_PROD_REGS>();
    const int pt = tid, pw = pt >> 5;
    const u32 n_tasks = sched[2];
    // cur: task index; BWD_CHAIN: | 0x80000000 when it came through a chain link, not a claim
    // (`n_tasks` counts only the chains' first tasks).
    u32 cur = blockIdx.x, sg = 0;
    for (u32 tq = 0;; ++tq) {
      u32 nxt = 0;
#if BWD_CHAIN
      const bool linked = cur >> 31;
      cur &= 0x7fffffffu;
#else
      constexpr bool linked = false;
#endif
#if BWD_CLAIM_EARLY
      if (pt == 0 && cur < n_tasks) nxt = gridDim.x + atomicAdd(sched, 1u);
#endif
      const u32 info = sinfo + (tq & 1) * B90_INFO;
      if (!linked && cur >= n_tasks) {
        // No task left: once the consumers are done with the last one, tell them (tiles_n = ~0).
        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);
        if (pt == 0) *(volatile u32*)(gbase + (info + 16u - base)) = 0xffffffffu;
        mbar_arrive(kv_full);
        break;
      }
      const TaskDesc task = tasks[cur];
      const WorkDesc& w = works[task.work];
      const u32 kvh = task.head;
      const u32 k0 = task.row0 * B90_BC;
      const u32* my_tiles = tiles + task.tiles_off;
      const u32 n_steps = group * task.tiles_n;
      const u32 n_pairs = (n_steps + QT - 1) / QT;  // consumer steps (QT q tiles each)
      // BWD_CHAIN: a task flagged B90_TASK_REV walks its steps last to first (QT 1).
      const bool rev = BWD_CHAIN && (task.pad & B90_TASK_REV);
      const elem_t* qbase = (const elem_t*)w.q;
      const elem_t* dobase = (const elem_t*)w.dout;
      BWD_TASK_MAPS
      // K, V and the task's info, once the consumers' last wgmma of the task before has read K/V
      // (after this task's first Q/dO stage is on its way).
      auto load_kv = [&]() {
        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);
        if (pt < 3) cp_async8_s(info + 8 * pt, (const char*)(tasks + cur) + 8 * pt, true);
        else if (pt < 3 + (int)sizeof(WorkDesc) / 8)
          cp_async8_s(info + 32 + 8 * (pt - 3), (const char*)&w + 8 * (pt - 3), true);
#if BWD_XINFO
        // The task's first dK/dV segment (40 bytes; zeros for a work without KV segments) into
        // extra info slot tq & 1.
        else if (pt >= 32 && pt < 32 + (int)sizeof(KvSeg) / 8) {
          const u32 sf = (task.pad & B90_TASK_DKV_ALT) ? w.kv_alt : w.kv_first;
          cp_async8_s(sscr + B90_SCR_XINFO + (tq & 1) * 64 + 8 * (pt - 32),
                      w.kv_count ? (const char*)(segs + sf) + 8 * (pt - 32) : (const char*)segs, w.kv_count != 0);
        }
#endif
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
#if BWD_CHAIN_DD
        // This step computes D (QT 1): the flagged work's q tile's first visit.
        u32 dd_word;
        {
          const u32 t = rev ? n_steps - 1 - p : p;
          dd_word = my_tiles[t - t / task.tiles_n * task.tiles_n];
        }
        const bool dd_here = (w.flags & B90_WORK_DD) && (dd_word & B90_TILE_FIRST);
#else
        constexpr bool dd_here = false;
#endif
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
#if BWD_CHAIN_DD
          if (dd_here) {
            // dO and O, chunks 8 hf .. 8 hf + 7 of row r (rows past the work's end zero).
            const u32 r = (u32)pt >> 1, hf = (u32)pt & 1, row = q0 + r;
            const bool ok = row < w.n_rows;
            const elem_t* dp = dobase + (u64)row * w.do_stride + head * D + hf * 64;
            const elem_t* op = (const elem_t*)w.o + (u64)row * w.o_stride + head * D + hf * 64;
#pragma unroll 1
            for (int c = 0; c < 8; ++c) {  // not unrolled: the producer has 56 registers
              const u32 off = hf * (SR * 128) + sw128(r, c);
              cp_async16_s(dos + off, ok ? dp + 8 * c : dobase, ok);
              cp_async16_s(sO + off, ok ? op + 8 * c : dobase, ok);
            }
            if (qdo_tma) {
              if (pt == 0) {
#pragma unroll
                for (int c = 0; c < D / 64; ++c) b90_tma_3d(qs + c * (SR * 128), qmap, 64 * c, head, q0, full_bar(s));
              }
              continue;
            }
          }
#endif
#if BWD_TMA >= 2
          if (qdo_tma && tv) {
            if (pt == 0) bwd_tma_qdo(qs, dos, h, qmap, domap, head, q0, full_bar(s));
            continue;
          }
#endif
          bwd_load_qdo_rows(qs, dos, h, pt, w, qbase, dobase, q0, head, tv, !dd_here);
        }
        if (pt < SR)
          bwd_load_row(small + s * SMALL, pt, p, rev, n_steps, task, w, my_tiles, kvh, group, dd, row_ptr,
                       ranges, tmask, masks, B90_TILE_INDEX, !BWD_CHAIN_DD);
#if BWD_CHAIN_DD
        {
          // D of row r = pt / 2 (see BWD_CHAIN_DD): computed here on a D step, else loaded by
          // thread 2 r, the thread that stored it at the tile's first visit.
          const u32 t = rev ? n_steps - 1 - p : p;
          const u32 jj = t / task.tiles_n;
          const u32 head = kvh * group + jj;
          const u32 r = (u32)pt >> 1, row = (dd_word & B90_TILE_INDEX) * B90_BR + r;
          const bool ok = row < w.n_rows;
          float* const dg = (float*)dd + w.dd_off + (u64)(ok ? row : 0) * w.q_heads + head;
          const u32 sd = small + s * SMALL + SR * 4 + r * 4;
          if (dd_here) {
            asm volatile("cp.async.wait_all;\n" ::: "memory");
            const unsigned char* dog = gbase + (dos - base);
            const unsigned char* og = gbase + (sO - base);
            float acc = 0.f;
#pragma unroll
            for (int c = 0; c < 8; ++c) {
              const u32 off = ((u32)pt & 1) * (SR * 128) + sw128(r, c);
              acc += dd_dot8(*(const uint4*)(dog + off), *(const uint4*)(og + off));
            }
            acc += __shfl_xor_sync(0xffffffffu, acc, 1);
            fence_proxy_async();  // the stage's dO read (generic) before a later tensor copy writes it
            if (!(pt & 1)) {
              *(volatile float*)(gbase + (sd - base)) = acc;
              if (ok && !(dd_word & B90_TILE_LAST))
                asm volatile("st.global.f32 [%0], %1;\n" ::"l"(dg), "f"(acc) : "memory");
            }
            mbar_arrive(full_bar(s));  // release: D's st.shared; every copy of this thread landed
          } else {
            if (!(pt & 1)) cp_async4_s(sd, dg, ok);
            mbar_arrive_cp_async(full_bar(s));
          }
        }
#else
        mbar_arrive_cp_async(full_bar(s));
#endif
        ++sg;
      };
      if (n_pairs > 0) load_step(0);
      load_kv();
      for (u32 p = 1; p < n_pairs; ++p) load_step(p);
#if !BWD_CLAIM_EARLY
      // The next task is claimed only now, with the consumers about two steps from the end of
      // this one: claimed at the task's start, the second round of tasks went to CTAs in the
      // order they started rather than finished, which breaks longest-first balancing of long
      // tasks (causal 128K -4 %, packed -5 % against one CTA per task).
      if (pt == 0) {
        const u32 link = BWD_CHAIN ? task.pad & B90_TASK_NEXT : 0u;
        nxt = link ? 0x80000000u | link : gridDim.x + atomicAdd(sched, 1u);
      }
#endif
#if BWD_TMA && BWD_TMA_PF
      if (pt == 0 && nxt < n_tasks) {
        const u32 nw = tasks[nxt].work, nf = works[nw].flags;
        const u64 nm = (u64)(bmaps + (u64)nw * BWD_MAPS);
        if (nf & B90_TMA_KV) b90_prefetch_map(nm + 128);
#if BWD_TMA >= 2
        if ((nf & (B90_TMA_Q | B90_TMA_DO)) == (B90_TMA_Q | B90_TMA_DO)) {
          b90_prefetch_map(nm);
          b90_prefetch_map(nm + 256);
        }
#endif
      }
#endif
#if BWD_KVL2_PF
      if (pt == 0 && nxt < n_tasks) {
        const TaskDesc& nt = tasks[nxt];
        const WorkDesc& nw = works[nt.work];
        const u64 nm = (u64)(bmaps + (u64)nt.work * BWD_MAPS) + 128;
        if (nw.kv_count == 1 && (nw.flags & B90_TMA_KV)) {
#pragma unroll
          for (int h = 0; h < D / 64; ++h)
#pragma unroll
            for (int m = 0; m < 2; ++m)
              asm volatile("cp.async.bulk.prefetch.tensor.3d.L2.global.tile [%0, {%1, %2, %3}];\n" ::"l"(nm), "r"(64 * h),
                           "r"(2 * nt.head + m), "r"(nt.row0 * B90_BC)
                           : "memory");
        }
      }
#endif
      cur = sched_share_next(slot, tq, nxt, pt, 1);
    }
    if (pt == 0) {
      sched_finish(sched);
      pdl_launch();  // no task left for this CTA: the next launch may be scheduled
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---------------- consumers ----------------
  BWD_CONSUMER_SETUP

  // dQ phase: rows, columns and keys of this warpgroup (D 128: columns 64 cw.. over all keys;
  // D 64 with two q tiles per step: all columns of q tile cw over all keys; D 64 with one: all
  // columns over its own 64 keys).
  constexpr bool DQ_ALL_KEYS = D == 128 || QT == 2;
  constexpr int DQ_KSTEPS = DQ_ALL_KEYS ? B90_BC / 16 : 64 / 16;
  const u32 dq_col0 = D == 128 ? 64 * cw : 0;
  const u32 dq_kstep0 = DQ_ALL_KEYS ? 0 : 4 * cw;
  const u32 dq_row0 = QT == 2 ? B90_BR * cw : 0;
  // dQ A (dS buffer 0, K-major) and B (K, MN-major) base descriptors (BWD_FASTDESC).
  const u64 ds_a0 = wg_desc(sdS + dq_row0 * 128 + (dq_kstep0 >> 2) * (SR * 128), 16, 1024);
  const u64 k_bt0 =
      wg_desc(sK + dq_kstep0 * 16 * 128 + (dq_col0 >> 6) * (B90_BC * 128), B90_BC * 128, 1024);
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
#if BWD_HALF
  static_assert(BWD_FASTDESC && BWD_ORDER == 1 && BWD_DV_NOWAIT && QT == 1, "half steps: D 128's default step");
#endif

  u32 gt = 0;  // steps of this CTA so far (stages, dS buffers and their barrier phases)
#if BWD_CHAIN
  const u32 dql_bar = bars + 88 + 8 * cw;  // this warpgroup's dQ partial loads (chains)
  u32 n_dql = 0;                           // of them, waited for so far
#endif
#if BWD_TQ_SMEM
  // The task counter, a word per consumer thread (as attn_bwd_cluster_sm90.cu CL_TQ_SMEM), read
  // back through a shuffle from lane 0 (warp-uniform for ptxas); the next task's count is stored
  // at the top, the epilogue and the next iteration read it back.
  B90_TQ_FNS(sscr + B90_SCR_TQ + 4 * (u32)(tid - 128))
  for (u32 tq = 0;; tq = tq_get()) {
    tq_set(tq + 1);
#else
  for (u32 tq = 0;; ++tq) {
#endif
    mbar_wait(kv_full, tq & 1);
    const unsigned char* info_g = gbase + (sinfo + (tq & 1) * B90_INFO - base);
    const TaskDesc* tk = (const TaskDesc*)info_g;
    const u32 tiles_n = tk->tiles_n;
    if (tiles_n == 0xffffffffu) break;
    fence_proxy_async();
    const WorkDesc* wk = (const WorkDesc*)(info_g + 32);
    const u32 kvh = tk->head;
    const bool rev = BWD_CHAIN && (tk->pad & B90_TASK_REV);  // steps last to first
    const u32 key_a = tk->row0 * B90_BC + kl_a, key_b = key_a + 8;
    const u32 n_steps = group * tiles_n;
    const u32 n_pairs = (n_steps + QT - 1) / QT;  // steps of QT q tiles
    const unsigned char* dq_map = dq_maps + (u64)tk->work * 128;  // this work's dQ tensor map
    const u32 n_keys = wk->n_keys, n_rows = wk->n_rows, dq_dtype = wk->dq_dtype, dq_stride = wk->dq_stride;
    void* const dq_ptr = (void*)wk->dq;

    // dQ of step u (q tile at row q0, query head `head`), rows 16 wq + g (+8), columns
    // dq_col0 + nt * 8 + 2 t4: fp32 through the staging block and two tensor reductions issued by
    // the warpgroup's first thread, 16-bit through atomics.
    auto dq_out = [&](u32 q0, u32 head, const float* dq, u32 visit) {
#if BWD_CHAIN
      if (visit & B90_TILE_LAST) {
        // The q tile's last visit in the chain (fp32 scratch): the partial of the earlier
        // visits plus this one, converted into the copy's destination.
        const bool first = visit & B90_TILE_FIRST;
        // The partial (not a first visit): the tensor load issued a step ago into this
        // warpgroup's staging block (`dq_load`), in the map's swizzled box layout.
        if (!first) {
          mbar_wait(dql_bar, n_dql & 1);
          ++n_dql;
        }
        const DqConv cv = dq_conv[tk->work];
        unsigned char* sdq_g = gbase + (sdq + cw * (2 * B90_BR * 128) - base);
#if BWD_CHAIN_ST16
        if (cv.dtype != DT_F32 && ((cv.dst & 15) | (cv.stride & 7)) == 0) {
          // The staging block, unless a partial was loaded into it (dq_load: its named barrier
          // came after every earlier use), may still be read by this warpgroup's earlier bulk
          // operations and by its threads' reads of the step before.
          if (first) {
            if ((tid & 127) == 0) bulk_wait_read0();
            named_bar(2 + cw, 128);
          }
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const u32 r = 16 * wq + g + 8 * h;
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) {
              float2* sp = (float2*)(sdq_g + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) +
                                     (t4 & 1) * 8);
              const float2 part = first ? make_float2(0.f, 0.f) : *sp;
              *sp = make_float2(part.x + DQ_SCALED(dq[nt * 4 + 2 * h]), part.y + DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
            }
          }
          named_bar(2 + cw, 128);
          // Thread t: 8-column chunk oc of row r, for 4 (r, oc): a warp writes 4 rows' 128 bytes.
          // (t read again here: derived from `tid`, ptxas hoisted the 8 staging addresses out of
          // the step loop and spilled them.)
          u32 t;
          asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(t));
          t &= 127;
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            const u32 idx = t + 128 * k, r = idx >> 3, oc = idx & 7, row = q0 + r;
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
          // These generic accesses of the block before a later tensor load (async proxy) writes
          // it (dq_load's named barrier orders them before its issue).
          fence_proxy_async();
          return;
        }
#endif
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 r = 16 * wq + g + 8 * h, row = q0 + r;
          const u64 ob = (u64)row * cv.stride + head * D + dq_col0 + t4 * 2;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            const float2 part =
                first ? make_float2(0.f, 0.f)
                      : *(const float2*)(sdq_g + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) +
                                         (t4 & 1) * 8);
            if (row < n_rows)
              st2_dt((void*)cv.dst, ob + nt * 8, cv.dtype, part.x + DQ_SCALED(dq[nt * 4 + 2 * h]),
                     part.y + DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
          }
        }
        return;
      }
#endif
      if (dq_dtype == DT_F32) {
        // This warpgroup's reductions of the step before have read the staging block.
        const bool lead = (tid & 127) == 0;
        // BWD_CHAIN: a middle visit (a chain's task, neither flag) adds into rows an earlier
        // task's bulk store wrote, and bulk operations are not ordered among themselves: all of
        // this thread's earlier ones complete first.
        if (lead) {
          if (BWD_CHAIN && (tk->pad & B90_TASK_CHAIN) && !(visit & B90_TILE_FIRST))
            bulk_wait0();
          else
            bulk_wait_read0();
        }
        named_bar(2 + cw, 128);
        // Column 8 nt + 2 t4 of the warpgroup's 64: box nt / 4, 16-byte chunk 2 (nt % 4) + t4 / 2.
        unsigned char* sdq_g = gbase + (sdq + cw * (2 * B90_BR * 128) - base);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 r = 16 * wq + g + 8 * h;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
            *(float2*)(sdq_g + (nt >> 2) * (B90_BR * 128) + sw128(r, 2 * (nt & 3) + (t4 >> 1)) + (t4 & 1) * 8) =
                make_float2(DQ_SCALED(dq[nt * 4 + 2 * h]), DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
        }
        fence_proxy_async();  // generic-proxy stores -> bulk copy (async proxy) reads
        named_bar(2 + cw, 128);
        if (lead) {
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const u32 src = sdq + (2 * cw + b) * (B90_BR * 128), c0 = head * D + dq_col0 + 32 * b;
            if (BWD_CHAIN && (visit & B90_TILE_FIRST))  // the chain's first visit: rows not written yet
              tma_store_2d(dq_map, src, c0, q0);
            else
              tma_reduce_add_2d(dq_map, src, c0, q0);
          }
          bulk_commit();
        }
        return;
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const u32 row = q0 + 16 * wq + g + 8 * h;
        if (row < n_rows) {
          const u64 rb = (u64)row * dq_stride + head * D + dq_col0 + t4 * 2;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
            atomic_add_out(dq_ptr, rb + nt * 8, dq_dtype, DQ_SCALED(dq[nt * 4 + 2 * h]),
                           DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
        }
      }
    };

#if BWD_CHAIN
    // A chain's last, not first, visit of the q tile at row q0 of query head `head`: its fp32
    // partial into this warpgroup's staging block (two 64 x 32 boxes by the dQ tensor map),
    // completing on `dql_bar`; dq_out of the next step reads it. Before: every thread's use of
    // the block (dq_out of this step) is done, and the first thread's earlier bulk stores and
    // reductions (this tile's earlier visits among them) have completed (written, not only read).
    auto dq_load = [&](u32 q0, u32 head) {
      named_bar(2 + cw, 128);
      if ((tid & 127) == 0) {
        bulk_wait0();
        asm volatile("fence.proxy.async.global;\n" ::: "memory");
        b90_expect_tx(dql_bar, 2 * B90_BR * 128);
        asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(dql_bar) : "memory");
#pragma unroll
        for (int b = 0; b < 2; ++b)
          asm volatile(
              "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
                  sdq + (2 * cw + b) * (B90_BR * 128)),
              "l"(dq_map), "r"(head * D + dq_col0 + 32 * b), "r"(q0), "r"(dql_bar)
              : "memory");
      }
    };
#endif

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

    // The step before (its dQ is computed a step late): this warpgroup's q tile of it.
    u32 prev_q0 = 0, prev_head = 0, prev_visit = 0;
    bool prev_ok = true;
    u32 head_j = 0, head_i = 0;  // BWD_FASTDESC: query head and list index of the next q tile
    // S^T = K Q^T and dP^T = V dO^T of the step in stage g % 2 (two groups), once it is full.
    float st[SR / 2], dpt[SR / 2];
    auto wait_full = [&](u32 g) {
      mbar_wait(full_bar(g & 1), (g >> 1) & 1);
      fence_proxy_async();
    };
    auto issue_sdp = [&](u32 g) { bwd_issue_sdp(st, dpt, g & 1, k_a0, v_a0, q_b0, do_b0, sK, sV, sQ, sdO, cw); };
    for (u32 p = 0; p < n_pairs; ++p, ++gt) {
      const int s = gt & 1;
      wait_full(gt);
      const unsigned char* small_g = gbase + (small + s * SMALL - base);
      // Per q tile h of the step: tile word (first row, partial flag); past the list's end
      // (QT = 2, odd number of tiles) the tile is absent. This warpgroup's dQ tile: my_*.
      u32 words[QT];
      bool present[QT];
      u32 my_q0 = 0, my_head = 0, my_visit = 0;
      bool my_ok = true;
      BWD_STEP_TILES(BWD_CHAIN, B90_TILE_FIRST | B90_TILE_LAST, cw);
#if !BWD_FASTDESC
      const u32 qs = sQ + s * QBYTES, dos = sdO + s * QBYTES;
#endif
      const float* lse_s = (const float*)small_g;
#if BWD_HALF
      // This warpgroup's keys unseen by the step's q tile (warp-uniform).
      const bool skip = words[0] & (cw ? B90_TILE_HHI : B90_TILE_HLO);
#else
      constexpr bool skip = false;
      issue_sdp(gt);
#endif
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
        bwd_tile_bits(pbits, present, words, small_g, tid, ranges, rp_s, key_a, key_b, n_keys, t4);
      };
#if BWD_ORDER == 0
      BWD_ORDER0_PT_DV
#else
      u32 pa[SR / 16][4];
#endif
      // dS^T = P^T (dP^T - D), into registers (A of dK) and shared memory (A of dQ, K-major:
      // element (row ql, key kl) of key block kl / 64).
      const u32 buf = gt & 1;
      const u32 dsb = sdS + buf * DSBYTES + cw * (SR * 128);
      u32 da_[SR / 16][4];
      if (!skip) {
#if BWD_HALF
        // (Issued here, not before the mask set-up: issued in one branch and waited for in
        // another, the accumulators' registers spilled across the loop.)
        issue_sdp(gt);
#endif
#if BWD_ORDER != 0
        tile_bits();
        wg_wait<0>();  // S^T and dP^T
        reg_fence<SR / 2>(st);
        reg_fence<SR / 2>(dpt);
        bwd_probs_fast<SR / 8>(st, pbits, lse_s, scale_log2, loff, partial_any, t4);
        acc_to_a<SR>(st, pa);
#endif
        bwd_ds(st, dpt, dd_s, t4);
        acc_to_a<SR>(st, da_);
#if BWD_ORDER != 0
        // dV += P^T dO, on the tensor cores while dS^T is stored.
        reg_fence<D / 2>(dv);
        BWD_RS_MMA(dv, pa, DESC_DV);
#endif
      }
#if BWD_HALF
      else {
        // Zero dS^T rows of this warpgroup's keys: the dQ wgmmas of the step read all 128 keys.
#pragma unroll
        for (int kc = 0; kc < SR / 16; ++kc)
#pragma unroll
          for (int i = 0; i < 4; ++i) da_[kc][i] = 0u;
      }
#endif
      if (gt >= 2) mbar_wait(ds_empty(buf), ((gt >> 1) - 1) & 1);  // both dQ of step gt - 2 read it
      bwd_store_ds(dsb, da_, lane, wq);
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
        BWD_RS_MMA(dk, da_, DESC_DK);
      };
      if (p > 0) {
        const u32 pb = (gt - 1) & 1;
        float dq[32];
        mbar_wait(ds_full(pb), ((gt - 1) >> 1) & 1);
        dq_mma(dq, pb);
        if (!skip) {
          dk_mma();
          wg_wait<1>();  // dQ of the step before
        } else {
          wg_wait<0>();
        }
        reg_fence<32>(dq);
        mbar_arrive(ds_empty(pb));
        if (prev_ok) dq_out(prev_q0, prev_head, dq, prev_visit);
      } else if (!skip) {
        dk_mma();
      }
#if BWD_CHAIN
      if (my_ok && (my_visit & (B90_TILE_FIRST | B90_TILE_LAST)) == B90_TILE_LAST) dq_load(my_q0, my_head);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(dv);
      reg_fence<D / 2>(dk);
      mbar_arrive(empty_bar(s));
      prev_q0 = my_q0;
      prev_head = my_head;
      prev_ok = my_ok;
      prev_visit = my_visit;
    }
#if BWD_TQ_SMEM
    {
    B90_TASK_FROM_TQ()  // the task's info again (not kept across the step loop)
#endif
#if BWD_STSM
    // The dK/dV destination of this lane's staging row (key 16 wq + lane / 2 of the warpgroup's
    // 64): with BWD_XINFO from the segment's shared-memory copy after the last dQ, else from the
    // global segments.
    u32 e_dt;
#if BWD_XINFO
    // The dK/dV row of `key` and its dtype (`dt`).
    auto key_ptr = [&](u32 key, u32& dt) -> u64 {
      if (wk->kv_count != 1)
        return b90_dkv_ptr(wk, segs, key, kvh, &dt, (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first);
      const KvSeg* sg = (const KvSeg*)(gbase + (sscr + B90_SCR_XINFO + tq_e * 64 - base));
      dt = sg->ddtype;
      return b90_seg_ptr(sg->dk, sg->key0, sg->len, sg->dstride, sg->ddtype, key, wk->n_keys, kvh);
    };
    auto e_ptr = [&]() -> u64 { return key_ptr(tk->row0 * B90_BC + 64 * cw + 16 * wq + (lane >> 1), e_dt); };
#else
    const u64 e_p0 = b90_dkv_ptr(wk, segs, tk->row0 * B90_BC + 64 * cw + 16 * wq + (lane >> 1), kvh, &e_dt,
                                 (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first);
    auto e_ptr = [&]() { return e_p0; };
#endif
    const bool e_store = tk->pad & B90_TASK_DKV_STORE;
#endif
#if BWD_TQ_SMEM
    // (n_pairs > 0 from the info, not kept across the step loop: ptxas spilled the predicate.)
    if (tk->tiles_n != 0) {
#else
    if (n_pairs > 0) {
#endif
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
      if (prev_ok) dq_out(prev_q0, prev_head, dq, prev_visit);
    } else {
      mbar_arrive(kv_empty);
    }

    // dK (scaled) and dV into the dKV regions, while the producer loads the next task's K/V.
#if BWD_STSM
    const u64 e_p = e_ptr();
    if (__all_sync(0xffffffffu, e_p == 0 || (e_store && e_dt == B90_DT && (e_p & 15) == 0))) {
      B90_DKV_STSM(sscr + ((u32)(tid - 128) >> 5) * 1024, e_p);
    } else {
#if BWD_RED32
      u32 r_dt = DT_F32;
      const u64 r_p = key_ptr((t4 & 1) ? key_b : key_a, r_dt);
      if (__all_sync(0xffffffffu, r_p == 0 || (!e_store && r_dt == DT_F32))) {
        B90_DKV_RED32(r_p);
      } else
#endif
      BWD_DKV_OUT();
    }
#else
    BWD_DKV_OUT();
#endif
#if BWD_EPI_V4 && BWD_DQ_CONV
    if (tk->pad & B90_TASK_DQ_CONV)
      bwd_dq_convert(tk, tiles, dq_conv, dq_cnt, dq_expect, group, cw,
                     gbase + (sdq + cw * (2 * B90_BR * 128) - base));
#endif
#if BWD_TQ_SMEM
    }
#endif
  }

  if ((tid & 127) == 0) bulk_wait0();  // the last reductions, before the CTA's shared memory goes
}
