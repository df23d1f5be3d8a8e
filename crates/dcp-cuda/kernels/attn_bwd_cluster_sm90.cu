// Backward of many short works on Hopper (sm_90a): a 2-CTA thread-block cluster per (work, kv
// head) of a work exactly two kv tiles wide (issue 10, works1000: 1000 works of 256 x 256).
// The default for such launches since session 15 (DCP_CUDA_BWD_CLUSTER, src/cluster.rs;
// bench/results/kernels-2026-11-29-kb14, -kb14b, -kb15 for what it measured).
//
// The same tasks, step loop and epilogues as attn_bwd_sm90.cu (D 128 and, since session 39, D 64; the pieces that are
// the same text in both are in bwd_sm90.cuh, shared with the SASS of every build unchanged:
// bench/results/kernels-2026-11-29-kdup15), launched with __cluster_dims__(2, 1, 1). The
// host (src/cluster.rs `pairs_ok` / `order_pairs`, src/exec.rs) lists the tasks in pairs: task
// 2 p + r = kv tile r of pair p, both with the same (query head, q tile) list in the same order
// (every work of the launch has exactly two kv tiles whose lists name the same q tiles). CTA
// rank r of a cluster runs task 2 p + r; the two CTAs walk the same steps. Tile words carry no
// chain visit flags.
//
// dQ (session 15, kb15): the pair exchanges dS, not dQ partials. dQ of a step's 64 q rows is
// dS_0 K_0 + dS_1 K_1 over the pair's two kv tiles; rank r computes its 64 columns (64 r ..)
// over all 256 keys, so no partial sum leaves the tensor cores' fp32 accumulator (one rounding
// into the 16-bit destination of the plan's converting dQ copy, stored straight from the
// registers, 16-byte stores after a quad transpose (kb15b); the host dropped that copy and the
// fp32 scratch's zero fill). Per step, after its
// dS^T `stmatrix` and the proxy fence, each consumer warpgroup meets its own named barrier and
// one thread sends its 8 KiB dS block (the layout the dQ wgmma reads) into the peer's `sdSp`
// buffer with one `cp.async.bulk.shared::cluster.shared::cta ... complete_tx` (completing on the
// peer's `pfull[buf]`, armed by the peer for 16 KiB per phase: no writer fence or arrival, like
// a TMA load). The producer loads, with K and V, the peer's K tile's 64 columns of this rank's
// half (`sKp`, 16 KiB; host: cluster::SMEM_EXTRA). The dQ of step t (in step t + 1) is computed
// by warpgroup t & 1 alone: 8 wgmmas own dS x own K columns + 8 peer dS x sKp (the two
// warpgroups take turns: the same 16 m64n64k16 per two steps as a 128-key dQ per warpgroup and
// step). Hand-offs: `ds_empty[buf]` (this CTA's dS buffer read: the dQ warpgroup's 128 threads),
// the peer's `pempty[buf]` (one remote arrival per warp of the dQ warpgroup once its wgmmas
// read the copy; waited before the dS `stmatrix` two steps later, which also proves the
// outgoing copy of that buffer complete), `pfull` re-armed by the dQ warpgroup's first thread.
// Replaced (kb14 / kb14b): fp32 dQ halves sent by 8-byte `st.async` per thread and finished
// through a staging block (kernel 1 699 us on works1000, ~560 us of it that dQ path: the remote
// stores' issue and drain, the peer waiting for them, a proxy fence per step); this: ~1 290 us
// (1 350 with 4-byte dQ stores; without any dQ stores, timing only: ~1 220).
// The D pre-pass (`dcp_bwd_dd`) stays. (Release/acquire at cluster scope for remote arrivals
// compiled to a MEMBAR.ALL.GPU per arrival and a CCTL.IVALL per wait: +28 % kernel time, kb14.)
// Scheduling: persistent, one cluster per pair of SMs; rank 0's producer thread 0 claims the
// next pair (`sched[2]` = pairs) and hands it to rank 1 by st.async into rank 1's slot,
// completing on rank 1's `claim` mbarrier (armed by rank 1 for 4 bytes per phase). Both CTAs meet
// at a cluster barrier after the mbarrier init (before any remote access) and before exit (no
// CTA's shared memory goes while the peer may still write or arrive on it).
// Q and dO are loaded by each CTA (TMA; the second read of a tile hits L2: the two CTAs are in
// step; the DRAM bytes were measured not to be the limiter).

// Tile sizes, the step's switches and helpers: bwd_sm90.cuh (shared with attn_bwd_sm90.cu).
// D 128: one q tile per step, rank r computes dQ columns 64 r .. of the step's q tile over both kv
// tiles' keys. D 64 (session 39): two q tiles per step (BWD_QT 2, as attn_bwd_sm90.cu at D 64),
// rank r computes all 64 columns of the step's q tile r over both kv tiles' keys: the peer sends
// only the rows of that q tile of its dS (8 KiB per warpgroup, as at D 128) and the peer's K tile
// is loaded whole (128 keys x 64 columns, as D 128's half). The same 16 m64n64k16 per dQ.
static_assert((HEAD_DIM == 128 && BWD_QT == 1) || (HEAD_DIM == 64 && BWD_QT == 2),
              "the cluster backward is written for head dim 128 (one q tile per step) and 64 (two)");
// The producer / consumer register split of the cluster builds (bwd_sm90.cuh BWD_PROD_REGS).
#undef B90_IS_CLUSTER
#define B90_IS_CLUSTER 1
// CL_DQ_RELOAD: dq_store reads the work's dQ destination (its DqConv) from the shared copy at
// each store instead of keeping it, and the flags derived from it, in registers across the step
// loop. Session 47 offline: ptxas had spilled those flags, and reloaded them (LDL) in every
// step's dQ store. Session 48 (`gpu-x1-2026-12-03s48/`), alternated x5 in three calls: D 64
// backward works1000 +2.2 / +2.7 / +2.8 %, 1 600 x 160 tokens +2.0 / +1.9 / +1.9 %, sustained
// +2.1 %; D 128 -2.3 % / -0.5 % in one call (noisy). Default on at D 64. (Session 49 measured and
// removed a level 2 that read the task counter's word from %tid.x instead of tq_get()'s spilled
// address: 20 consumer spill instructions at D 64 against 33, yet works1000 0.993x, the other
// shapes 0.999x; `gpu-x1-2026-12-03s49/`.)
#ifndef CL_DQ_RELOAD
#define CL_DQ_RELOAD (HEAD_DIM == 64)
#endif
// The dQ store's destination and what it implies, from the DqConv `cv_`: a 16-bit destination
// 16-byte aligned at every row takes 16-byte stores, 8-byte aligned 8-byte stores, else 4-byte
// stores (or fp32 pairs); dq_pack converts column tile n's pair (columns 8 n + 2 t4, + 1) of row
// g + 8 h; dq_ct16 (CL_DQ_CTDT): the element type, 16-byte aligned at every row.
#define CL_DQ_DEST(cv_)                                                                            \
  const u64 dq_dst = (cv_).dst;                                                                    \
  const u32 dq_stride = (cv_).stride, dq_dtype = (cv_).dtype;                                      \
  const bool dq_v16 = dq_dtype != DT_F32 && ((dq_dst & 15) | (dq_stride & 7)) == 0;                \
  const bool dq_v8 = dq_dtype != DT_F32 && ((dq_dst & 7) | (dq_stride & 3)) == 0;                  \
  auto dq_pack = [&](const float* dq, int n, int h) -> u32 {                                       \
    const float* x = dq + n * 4 + 2 * h;                                                           \
    if (dq_dtype == DT_BF16) {                                                                     \
      const __nv_bfloat162 u = __floats2bfloat162_rn(DQ_SCALED(x[0]), DQ_SCALED(x[1]));            \
      return *(const u32*)&u;                                                                      \
    }                                                                                              \
    const __half2 u = __floats2half2_rn(DQ_SCALED(x[0]), DQ_SCALED(x[1]));                        \
    return *(const u32*)&u;                                                                        \
  };                                                                                               \
  const bool dq_ct16 = dq_dtype == B90_DT && ((dq_dst & 15) | (dq_stride & 7)) == 0;
// A peer dS buffer: per consumer warpgroup 64 q rows (D 64: the q tile whose dQ this rank
// computes) x its 64 keys, 16-bit, in sdS's layout.
#define CL_PDS (2 * B90_BR * 128)


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
__device__ __forceinline__ void st_async_u32(u32 caddr, u32 v, u32 cbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];\n" ::"r"(caddr), "r"(v),
               "r"(cbar)
               : "memory");
}

// A bulk copy of `bytes` (a multiple of 16) from this CTA's shared memory `src` into the other
// CTA's at `cdst`, completing its bytes on the other CTA's mbarrier `cbar` (both shared::cluster
// addresses). The source is read through the async proxy (fence.proxy.async after writing it).
__device__ __forceinline__ void bulk_copy_peer(u32 cdst, u32 src, u32 bytes, u32 cbar) {
  asm volatile("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(cdst),
               "r"(src), "r"(bytes), "r"(cbar)
               : "memory");
}
// The peer's K columns of this rank's dQ (D 128: its half; D 64: all): 128 keys x 64 columns, 16-bit.
#define B90_KP_BYTES (B90_BC * 64 * 2)

// Session 16 (kb16; bench/results/kernels-2026-11-29-kb16), the task boundary. Switches, all on
// (0: the session-15 code, for A/B):
// CL_STSM: the task's dK/dV leave through a 1 KiB staging block per consumer warp
// (`B90_CL_SCRATCH`; host: cluster::SMEM_EXTRA) where every row's destination has the element
// type (compile-time conversion) and is 16-byte aligned: per 16 rows x 16 columns of a fragment
// one `stmatrix` (4 packed 8x8 matrices, no shuffles), then each lane reads back one 16-byte
// chunk (8 columns of one row) and stores it (`STG.128`; a warp instruction writes 16 rows x 32
// bytes). It replaces BWD_DKV_OUT's quad transposes (96 SHFL, ~270 SEL / MOV, both dtypes'
// conversions and 32 half-predicated STG.128 per thread); other destinations keep that path. The
// per-step dQ store through the same staging measured slower (its read-back waits behind the
// tensor cores' shared-memory reads; kb16's variants/s1_dq_stsm.diff): dQ keeps the shuffles.
// CL_DQ_CTDT: a dQ destination of the element type converts by the compile-time type alone (16
// F2FP per dQ instead of 32 predicated: the run-time dtype issued both).
// CL_TQ_SMEM: the consumers' task counter lives in shared memory (a word per consumer thread,
// read back through a shuffle from lane 0 so that ptxas keeps it warp-uniform) instead of a
// register that ptxas spilled: its `LDL` reloads after a task's traffic missed L1 and waited
// behind the epilogue's stores (kb16 call 1's profile: ~5 % of the consumers' samples).
#ifndef CL_STSM
#define CL_STSM 1
#endif
#ifndef CL_DQ_CTDT
#define CL_DQ_CTDT 1
#endif
#ifndef CL_TQ_SMEM
#define CL_TQ_SMEM 1
#endif
// CL_XINFO: with a task's info the producer copies into shared memory (64 bytes per slot, two
// slots like the info's) the KV segment its dK/dV rows start in and the work's DqConv, so that
// the consumers read them there: no global loads (~1 L2 round trip each) at the task's start and
// before its epilogue.
#ifndef CL_XINFO
#define CL_XINFO 1
#endif
#if CL_DQ_RELOAD && !(CL_XINFO && CL_TQ_SMEM)
#error "CL_DQ_RELOAD reads the shared DqConv copy of CL_XINFO through CL_TQ_SMEM's task counter"
#endif
// Shared memory after the peer K columns: the staging blocks (8 KiB), the task counters (a word
// per consumer thread, 1 KiB) and the two extra info slots (CL_XINFO, 128 bytes).
#define B90_CL_TQ (8 * 1024)
#define B90_CL_XINFO (9 * 1024)
#define B90_CL_SCRATCH (9 * 1024 + 128)
static_assert(3 + sizeof(WorkDesc) / 8 <= 32, "the producer threads copying the info and the extra info overlap");
static_assert(sizeof(KvSeg) + sizeof(DqConv) <= 64, "an extra info slot holds a KvSeg and a DqConv");
// The staging helpers of CL_STSM (b90_stage, B90_DKV_STSM, ...) and b90_dkv_ptr: bwd_sm90.cuh.

// BWD_TMA, BWD_TMA_PF and the other producer switches: bwd_sm90.cuh.
static_assert(!BWD_TMA_PF, "attn_bwd_sm90.cu's map prefetch indexes tasks, not pairs: BWD_KV_PF here");
// BWD_KV_PF 1: when the producer has the next pair's index (about two steps before the task's
// end), thread 0 prefetches that task's K and V tiles into L2 (`cp.async.bulk.prefetch.tensor`)
// and its tensor maps, so the K/V load after the consumers release K/V (not double buffered)
// finds them in L2.
#ifndef BWD_KV_PF
#define BWD_KV_PF 0
#endif

// The task boundary, session 49 (`gpu-x1-2026-12-03s49/`, works1000, producer stamps against the
// end of the task before's last step, D 128): the next pair claimed at -5 100 clk, its
// descriptors in registers at -2 700, the first Q/dO stage issued at +2 100 (a chain of
// dependent global loads: the D block's words, each D unit's acquire, the tile list), K/V at
// +2 600 (kv_empty), the consumers' task top +4 600, their first step +8 700: ~6 000 clk from
// the K/V issue (HBM). Tried and removed (correct: CPU f64 checks, memcheck, racecheck clean):
// loading V and K's other half once the last dP had read V (a second empty barrier), issued at
// -1 950 clk, gave 0.993x (D 128) / 0.981x (D 64); the first step's Q/dO copies issued before the
// D flags' acquire gave 0.990x / 1.001x (the stage still waited for its small rows behind the
// acquire, and K/V behind both).
// CL_EARLY_CLAIM N: the producer claims the next pair before issuing the stage N before the
// task's last (not after the last), and then (CL_DSM) acquires that task's D flags, so that its
// chain of dependent loads and, with BWD_KV_PF, its K/V prefetch into L2 run while the consumers
// still have N + 2 steps to go. Measured with BWD_KV_PF (N 4): the boundary shrank from 8 800
// to 6 100 clk per task at D 128 (12.4 -> 8.4 % of a task's span; 11.7 -> 9.8 % at D 64), but
// the chain runs on the producer warps that load the stages' small rows, and the steps' stage
// wait grew from 124 to 346 clk (one stage late by the chain's ~3 500 clk): A/B 0.983x at D 128,
// 1.007x at D 64 (N 2: 1.008x), one call each. Off until the chain leaves the stage path. Rank 1
// waits for rank 0's claim at its own point, so a pair whose rank 0 has more steps (causal)
// stalls rank 1's stage issue: not measured.
#ifndef CL_EARLY_CLAIM
#define CL_EARLY_CLAIM 0
#endif

// CL_DSM (session 44, host: DCP_CUDA_BWD_CLUSTER_DSM, src/cluster.rs `Dsm`): the launch's first
// k clusters stream D = rowsum(dO o O) beside the pairs instead of a D pre-pass before the
// kernel. Only where the launch's dO and O rows are one flat run each (src/own.rs `dd_flat`:
// item i, D index i, at element i * D of both), so a D CTA's work is a plain stream: 1-D bulk
// copies of 32 KiB per tensor into DSM_NS stages, no search, no descriptors (one SM streamed
// 182 GB/s so in bench/gpu/sm_stream.cu, session 44; sessions 42-43's D clusters and bulk pass
// paid a dependent search per chunk and streamed ~18-36 GB/s). The items come in units of
// `unit_items` (512 KiB of each tensor); units below `unit0` were computed by a short flat
// pre-pass over the first pairs' rows (which also zeroes the units' flags), unit u >= unit0 by
// D CTA (u - unit0) % 2k, which releases flags[u] once the unit's D is stored. A pair's
// producer's warp 0 acquires the flags of its work's units before the pair's first step. The
// host orders the pairs by D index (src/cluster.rs `pairs_in_d_order`), so the D CTAs, all
// streaming units in index order, stay ahead of the pairs. Host block (`dq_expect`): k, log2 of
// unit_items, unit0, n_units, n_items (2 words), dout (2), o (2); flags: `dq_cnt`. Measured
// (bench/results/gpu-x1-2026-12-03s44): ~96 GB/s per D SM where D bounded the kernel; works1000's
// backward +5.7 % at D 128 with 6 D clusters, +3 % at D 64 with 3. An L2 prefetch of the next
// unit and polling from one lane with back-off changed nothing (dsm_pf_poll.diff there).
#ifndef CL_DSM
#define CL_DSM 0
#endif
#if CL_DSM
#define DSM_NS 3
#define DSM_CHUNK (32u * 1024u)
__device__ __forceinline__ u32 dsm_ld_acquire(const u32* p) {
  u32 v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
// A word of the host's D block where it is needed (a relaxed load, which ptxas neither merges nor
// hoists: one load kept live from the kernel's start through the producer's loop spilled, in the
// consumers too).
__device__ __forceinline__ u32 dsm_ld(const u32* p) {
  u32 v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ u64 dsm_u64(const u32* p) { return (u64)p[0] | ((u64)p[1] << 32); }
// A pair's producer thread before it loads D of unit `flag`'s items: wait for the D CTAs' release.
__device__ __forceinline__ void dsm_acquire(const u32* flag) {
  if (dsm_ld_acquire(flag) != 0) return;
  // As mbar_wait_guarded: a D CTA that never ran (not resident) traps after 20 s.
  const u64 t0 = global_ns();
  while (dsm_ld_acquire(flag) == 0)
    if (global_ns() - t0 > 20000000000ull) __trap();
}
// A D CTA (all B90_THREADS threads; `j` of `m` D CTAs): thread 0 issues the bulk copies, the 256
// threads of warpgroups 1-2 form the dot products (1 or 2 threads an item, 16 bytes a load).
// Shared memory: DSM_NS stages of a dO and an O chunk from `sb`, then the stages' full and empty
// mbarriers.
template <bool BF>
__device__ __forceinline__ void cl_dsm_stream(const u32* info, float* dd, u32* flags, u32 j, u32 m, u32 sb) {
  constexpr u32 D = HEAD_DIM, L = D / 8, IB = D * 2, IC = DSM_CHUNK / IB, NS = DSM_NS;
  constexpr u32 STB = 2 * DSM_CHUNK;
  static_assert(NS * STB + 16 * NS <= 200 * 1024, "the D stages fit the kernel's shared memory");
  const u32 unit_items = 1u << info[1], unit0 = info[2], n_units = info[3];
  const u64 n_items = dsm_u64(info + 4);
  const char* dout = (const char*)dsm_u64(info + 6);
  const char* o = (const char*)dsm_u64(info + 8);
  const u32 tid = threadIdx.x, bars = sb + NS * STB;
  auto full = [&](u32 s) { return bars + 8 * s; };
  auto empty = [&](u32 s) { return bars + 8 * (NS + s); };
  if (tid == 0) {
    for (u32 s = 0; s < NS; ++s) {
      mbar_init(full(s), 1);
      mbar_init(empty(s), 256);  // each consumer thread, after its reads of the stage
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  const u32 cpu = unit_items / IC;  // chunks per unit (the host makes units whole chunks)
  if (tid == 0) {
    u32 g = 0;
    for (u32 u = unit0 + j; u < n_units; u += m) {
      for (u32 c = 0; c < cpu; ++c, ++g) {
        const u64 i0 = (u64)u * unit_items + (u64)c * IC;
        if (i0 >= n_items) break;
        const u32 bytes = (u32)((n_items - i0 < IC ? n_items - i0 : IC) * IB);
        const u32 s = g % NS;
        if (g >= NS) mbar_wait_guarded(empty(s), ((g / NS) - 1) & 1);
        mbar_arm(full(s), 2 * bytes);
        const u32 buf = sb + s * STB;
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(buf),
                     "l"(dout + i0 * IB), "r"(bytes), "r"(full(s))
                     : "memory");
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                         buf + DSM_CHUNK),
                     "l"(o + i0 * IB), "r"(bytes), "r"(full(s))
                     : "memory");
      }
    }
  } else if (tid >= 128) {
    // TPI threads an item (2 at D 128, 1 at D 64), each summing CPT 16-byte chunks of dO and O
    // in a rotated order: the 8 lanes of a quarter warp read 8 different 16-byte bank groups.
    constexpr u32 TPI = 256 / IC, CPT = L / TPI;
    static_assert(TPI >= 1 && TPI <= 2 && CPT * TPI == L, "one or two threads an item");
    const u32 t = tid - 128, it = t / TPI, c0 = (t % TPI) * CPT, lane = tid & 31;
    u32 g = 0;
    for (u32 u = unit0 + j; u < n_units; u += m) {
      for (u32 c = 0; c < cpu; ++c, ++g) {
        const u64 i0 = (u64)u * unit_items + (u64)c * IC;
        if (i0 >= n_items) break;
        const u32 s = g % NS;
        mbar_wait(full(s), (g / NS) & 1);
        const u32 st = sb + s * STB + it * IB;
        float x = 0.f;
#pragma unroll
        for (u32 k = 0; k < CPT; ++k) {
          // 16-byte shared loads (through a generic pointer ptxas split them into four).
          const u32 ch = c0 + ((k + lane) % CPT);
          uint4 a, b;
          asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                       : "=r"(a.x), "=r"(a.y), "=r"(a.z), "=r"(a.w)
                       : "r"(st + ch * 16));
          asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                       : "=r"(b.x), "=r"(b.y), "=r"(b.z), "=r"(b.w)
                       : "r"(st + DSM_CHUNK + ch * 16));
          x += dd_flat_dot<BF>(a, b);
        }
        if (TPI == 2) x += __shfl_xor_sync(0xffffffffu, x, 1);
        if (t % TPI == 0 && i0 + it < n_items) dd[i0 + it] = x;
        mbar_arrive(empty(s));
      }
      // The unit's D stored by every consumer thread, then released by one.
      __threadfence();
      named_bar(2, 256);
      if (t == 0) asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(flags + u), "r"(1u) : "memory");
    }
  }
}
#endif

DCP_PDL_KERNEL(dcp_attn_bwd_cluster_sm90)
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_cluster_sm90(BWD_SM90_PARAMS) {
  BWD_SM90_SMEM_BASE
#if CL_DSM
  // The first k clusters stream D (CL_DSM, above), the others run pairs. The D clusters come
  // first so that the block scheduler places them before any pair cluster that waits for them.
  // They leave here: the rest of the kernel (its registers included) is the pairs'. (The D
  // block's words are read where they are needed: one load kept live from here through the
  // producer's loop spilled.)
  if ((blockIdx.x >> 1) < dsm_ld(dq_expect)) {
    pdl_wait();
    const u32 k = dsm_ld(dq_expect);
    if (B90_DT == DT_BF16)
      cl_dsm_stream<true>(dq_expect, (float*)dd, dq_cnt, blockIdx.x, 2 * k, base);
    else
      cl_dsm_stream<false>(dq_expect, (float*)dd, dq_cnt, blockIdx.x, 2 * k, base);
    if (threadIdx.x == 0) {
      sched_finish(sched);
      pdl_launch();
    }
    return;
  }
#endif
  // The peer's dS of the last two steps (the layout of sdS; its bulk copies, see the top).
  const u32 sdSp = sdS + 2 * DSBYTES;
  // The peer's K tile, the 64 columns of this rank's dQ (D 128: its half) ([128 keys][128 B], swizzled).
  const u32 sKp = sdSp + 2 * CL_PDS;
  // Per stage: lse[SR], dd[SR], span[SR][2], the first two ranges of each row [SR][16 B] (partial
  // tiles; empty [0, 0) where a row has fewer; or the tile's precomputed mask, 1 KiB per q tile)
  // and per q tile its tile word and mask index (8 bytes each).
  // Session 16's shared memory (B90_CL_SCRATCH): 1 KiB of staging per consumer warp (two half
  // blocks), the task counters, the extra info slots.
  const u32 sscr = sKp + B90_KP_BYTES;
  const u32 small = sscr + B90_CL_SCRATCH;
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
  // Cluster: the peer's half dQ blocks in this CTA's staging (xfull, this CTA's barrier), the
  // peer done reading this CTA's halves (xempty, this CTA's), the next pair's index in rank 1's
  // slot (claim, rank 1's).
  auto pfull = [&](u32 b) { return bars + 88 + 8u * b; };
  auto pempty = [&](u32 b) { return bars + 104 + 8u * b; };
  const u32 claim_bar = bars + 120;
  const u32 rank = cluster_rank();

  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;

  if (tid == 0) {
    for (int s = 0; s < 2; ++s) {
      mbar_init(full_bar(s), 128);
      mbar_init(empty_bar(s), 256);
      mbar_init(ds_full(s), 256);   // every consumer thread, after its dS stores
      mbar_init(ds_empty(s), 128);  // every thread of the step's dQ warpgroup, after its dQ wgmmas
    }
    mbar_init(kv_full, 128);   // every producer thread, once its K/V rows (and the info) landed
    mbar_init(kv_empty, 256);  // every consumer thread, after the task's last wgmma read K/V
    for (int b = 0; b < 2; ++b) {
      mbar_init(pfull(b), 1);   // this CTA's arming + the peer's two bulk copies' bytes
      mbar_init(pempty(b), 4);  // each warp of the peer's dQ warpgroup, after its dQ wgmmas
    }
    mbar_init(claim_bar, 1);  // rank 1: its own arming + rank 0's st.async of the pair index
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    // Phase 0 armed: one dS buffer of the peer (both ranks), one index (rank 1).
    for (int b = 0; b < 2; ++b) mbar_arm(pfull(b), CL_PDS);
    if (rank != 0) mbar_arm(claim_bar, 4);
  }
  // DCP_PDL_KERNEL: from here on every thread reads or writes what the launches before wrote.
  pdl_wait();
  // Both CTAs' barriers initialised before either touches the other's shared memory.
  cluster_sync_all();
  if (wg == 0) {
    // ---------------- producer ----------------
    setmaxnreg_dec<BWD_PROD_REGS>();
    const int pt = tid, pw = pt >> 5;
    const u32 n_tasks = sched[2];
    // cur: pair index (`n_tasks` counts pairs; this CTA runs task 2 cur + rank).
#if CL_DSM
    u32 cur = (blockIdx.x >> 1) - dsm_ld(dq_expect), sg = 0;
#else
    u32 cur = blockIdx.x >> 1, sg = 0;
#endif
    bool pre_acq = false;  // CL_EARLY_CLAIM: this task's D flags were acquired at its claim
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
      // The peer's kv tile (the other task of the pair, the same work and kv head).
      const u32 pk0 = tasks[2 * cur + (rank ^ 1)].row0 * B90_BC;
      const u32 kvh = task.head;
      const u32 k0 = task.row0 * B90_BC;
      const u32* my_tiles = tiles + task.tiles_off;
      const u32 n_steps = group * task.tiles_n;
      const u32 n_pairs = (n_steps + QT - 1) / QT;  // consumer steps (QT q tiles each)
      constexpr bool rev = false;
      const elem_t* qbase = (const elem_t*)w.q;
      const elem_t* dobase = (const elem_t*)w.dout;
      BWD_TASK_MAPS
      // K, V and the task's info, once the consumers' last wgmma of the task before has read K/V
      // (after this task's first Q/dO stage is on its way).
      auto load_kv = [&]() {
        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);
        if (pt < 3) cp_async8_s(info + 8 * pt, (const char*)(tasks + 2 * cur + rank) + 8 * pt, true);
        else if (pt < 3 + (int)sizeof(WorkDesc) / 8)
          cp_async8_s(info + 32 + 8 * (pt - 3), (const char*)&w + 8 * (pt - 3), true);
#if CL_XINFO
        // The task's first dK/dV segment (40 bytes; zeros for a work without KV segments) and the
        // work's DqConv (24 bytes) into extra info slot tq & 1.
        else if (pt >= 32 && pt < 32 + (int)sizeof(KvSeg) / 8) {
          const u32 sf = (task.pad & B90_TASK_DKV_ALT) ? w.kv_alt : w.kv_first;
          cp_async8_s(sscr + B90_CL_XINFO + (tq & 1) * 64 + 8 * (pt - 32),
                      w.kv_count ? (const char*)(segs + sf) + 8 * (pt - 32) : (const char*)segs, w.kv_count != 0);
        } else if (pt >= 64 && pt < 64 + (int)sizeof(DqConv) / 8)
          cp_async8_s(sscr + B90_CL_XINFO + (tq & 1) * 64 + sizeof(KvSeg) + 8 * (pt - 64),
                      (const char*)(dq_conv + task.work) + 8 * (pt - 64), true);
#endif
#if BWD_TMA
        if (kv_tma) {
          if (pt == 0) {
            b90_expect_tx(kv_full, 2 * KVBYTES + B90_KP_BYTES);
#pragma unroll
            for (int h = 0; h < D / 64; ++h) {
              b90_tma_3d(sK + h * (B90_BC * 128), kvmap, 64 * h, 2 * kvh, k0, kv_full);
              b90_tma_3d(sV + h * (B90_BC * 128), kvmap, 64 * h, 2 * kvh + 1, k0, kv_full);
            }
            b90_tma_3d(sKp, kvmap, D == 128 ? 64 * rank : 0, 2 * kvh, pk0, kv_full);
          }
        } else
#endif
        {
          warp_rows_async<D, true>(kv_key_ptr<D>(w, segs, k0 + pt, kvh), lane, 32 * pw, sK, sV,
                                   B90_BC * 128, qbase);
          // The peer's key row pt, columns 64 rank .. (D 64: 0 ..; zero past the work's keys).
          const u64 kp = kv_key_ptr<D>(w, segs, pk0 + pt, kvh);
#pragma unroll
          for (int c = 0; c < 8; ++c)
            cp_async16_s(sKp + sw128(pt, c), kp ? (const elem_t*)kp + (D == 128 ? 64 * rank : 0) + 8 * c : qbase, kp != 0);
        }
        mbar_arrive_cp_async(kv_full);
      };
      // The threads that load D (pt < SR): the units of the work's D indices released (the D
      // CTAs' flags; the pre-pass computed those below unit0). Lane 0 of each of their warps
      // acquires them and the warp meets it at __syncwarp (all SR threads acquiring made ptxas
      // spill in the consumers at D 128; warp 0 alone with a named barrier for the others drew
      // racecheck reports on the producer's pair slot).
      auto acquire_work = [&](const WorkDesc& aw) {
#if CL_DSM
        if (pt < SR) {
          if ((pt & 31) == 0) {
            const u32 sh = dsm_ld(dq_expect + 1), u0 = dsm_ld(dq_expect + 2);
            const u64 lo = aw.dd_off, hi = lo + (u64)aw.n_rows * aw.q_heads;
            for (u32 u = max((u32)(lo >> sh), u0); hi > lo && u <= (u32)((hi - 1) >> sh); ++u)
              dsm_acquire(dq_cnt + u);
          }
          __syncwarp();
        }
#endif
      };
      // (CL_EARLY_CLAIM: acquired at the claim, in the task before.)
      auto acquire_d = [&]() {
        if (!pre_acq) acquire_work(w);
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
            if (pt == 0) bwd_tma_qdo(qs, dos, h, qmap, domap, head, q0, full_bar(s));
            continue;
          }
#endif
          bwd_load_qdo_rows(qs, dos, h, pt, w, qbase, dobase, q0, head, tv, !dd_here);
        }
        if (pt < SR)
          bwd_load_row(small + s * SMALL, pt, p, rev, n_steps, task, w, my_tiles, kvh, group, dd, row_ptr,
                       ranges, tmask, masks, B90_TILE_INDEX, true);
        mbar_arrive_cp_async(full_bar(s));
        ++sg;
      };
      acquire_d();
      if (n_pairs > 0) load_step(0);
      load_kv();
      // The next pair is claimed with the consumers about two steps from the end of this one
      // (after the task's last stage was issued; CL_EARLY_CLAIM: CL_EARLY_CLAIM stages before
      // that) (attn_bwd_sm90.cu: longest-first balancing), by rank 0, and handed to rank 1
      // through its slot (the one sched_share_next fills next) and its claim barrier.
      u32 cur_next = 0;
      bool claimed = false, pre_next = false;
      auto claim_next = [&]() {
        if (pt == 0) {
          if (rank == 0) {
#if CL_DSM
            nxt = (gridDim.x >> 1) - dsm_ld(dq_expect) + atomicAdd(sched, 1u);
#else
            nxt = (gridDim.x >> 1) + atomicAdd(sched, 1u);
#endif
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
        cur_next = slot[(tq + 1) & 1];
        claimed = true;
#if CL_EARLY_CLAIM && CL_DSM
        // The next task's D flags now, off its first stage's path.
        if (cur_next < n_tasks) {
          acquire_work(works[tasks[2 * cur_next + rank].work]);
          pre_next = true;
        }
#endif
#if BWD_KV_PF
        // The next task's K and V tiles into L2 (and its maps), about two steps before its load_kv.
        if (pt == 0 && cur_next < n_tasks) {
          const TaskDesc& nt = tasks[2 * cur_next + rank];
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
      };
      for (u32 p = 1; p < n_pairs; ++p) {
        if (CL_EARLY_CLAIM && p + CL_EARLY_CLAIM == n_pairs) claim_next();
        load_step(p);
      }
      if (!claimed) claim_next();
      cur = cur_next;
      pre_acq = pre_next;
    }
    if (pt == 0) {
      sched_finish(sched);
      pdl_launch();  // no pair left for this CTA: the next launch may be scheduled
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else {
  // ---------------- consumers ----------------
  BWD_CONSUMER_SETUP
  // dQ of a step, this rank's 64 columns (D 128: 64 rank ..; D 64: all of q tile `rank` of the
  // step, dq_row0) over both kv tiles' 256 keys: this CTA's dS (buffer `buf`) times the columns
  // of its own K, then the peer's dS (its bulk copies into sdSp) times the peer's K columns
  // (sKp). A: dS K-major; B: K MN-major (keys x d); one group.
  const u32 dq_row0 = QT == 2 ? B90_BR * rank : 0, dq_col0 = D == 128 ? 64 * rank : 0;
  const u64 ds_a0 = wg_desc(sdS + dq_row0 * 128, 16, 1024), dsp_a0 = wg_desc(sdSp, 16, 1024);
  const u64 k_bt0 = wg_desc(sK + (dq_col0 >> 6) * (B90_BC * 128), B90_BC * 128, 1024);
  const u64 kp_bt0 = wg_desc(sKp, B90_BC * 128, 1024);
  auto dq_mma = [&](float* dq, u32 buf) {
    wg_fence();
#pragma unroll
    for (int i = 0; i < B90_BC / 16; ++i)
      wgmma_m64n64k16_ss<1>(dq, desc_off(ds_a0, buf * DSBYTES + (i >> 2) * (SR * 128) + (i & 3) * 32),
                            desc_off(k_bt0, i * 16 * 128), i > 0);
#pragma unroll
    for (int i = 0; i < B90_BC / 16; ++i)
      wgmma_m64n64k16_ss<1>(dq, desc_off(dsp_a0, buf * CL_PDS + (i >> 2) * (B90_BR * 128) + (i & 3) * 32),
                            desc_off(kp_bt0, i * 16 * 128), true);
    wg_commit();
  };

  u32 gt = 0;  // steps of this CTA so far (stages, dS buffers and their barrier phases)
#if CL_TQ_SMEM
  // The task counter, a word per consumer thread (each thread reads only what it wrote: all lanes
  // sharing a warp's word was a benign intra-warp race to racecheck, lane 0 alone made ptxas spill
  // its predicate), read back through a shuffle from lane 0, which makes it warp-uniform for ptxas
  // (as bwd_consumer_index).
  B90_TQ_FNS(sscr + B90_CL_TQ + 4 * (u32)(tid - 128))
  // The counter of the next task is stored at the top (tq dies there); the epilogue and the next
  // iteration read it back.
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
    constexpr bool rev = false;
    const u32 key_a = tk->row0 * B90_BC + kl_a, key_b = key_a + 8;
    const u32 n_steps = group * tiles_n;
    const u32 n_pairs = (n_steps + QT - 1) / QT;  // steps of QT q tiles
    const u32 n_keys = wk->n_keys, n_rows = wk->n_rows;
#if !CL_DQ_RELOAD
    // The work's converting dQ copy (its destination, once per task; dq_store's).
#if CL_XINFO
    const DqConv cv = *(const DqConv*)(gbase + (sscr + B90_CL_XINFO + (tq & 1) * 64 + sizeof(KvSeg) - base));
#else
    const DqConv cv = dq_conv[tk->work];
#endif
    CL_DQ_DEST(cv)
#endif

    // After the dQ wgmmas of buffer b completed (every thread of the warpgroup): this CTA's dS
    // buffer b is free (ds_empty), pfull(b) armed for its next phase (by one thread: the next
    // copies come only after the arrivals below, so every warp has seen this phase), and the
    // peer may overwrite its copy (one arrival per warp on the peer's pempty(b): the warp's
    // wgmma reads are complete; async proxy on both sides, no proxy fence).
    auto dq_release = [&](u32 b) {
      mbar_arrive(ds_empty(b));
      if ((tid & 127) == 0) mbar_arm(pfull(b), CL_PDS);
      __syncwarp();
      if (lane == 0) mbar_arrive_remote(peer_addr(pempty(b), rank ^ 1));
    };
    // A finished dQ of a step (all 256 keys) from the registers of the warpgroup that computed it:
    // rows 16 wq + g + 8 h of q tile q0, columns dq_col0 + 8 nt + 2 t4 (+1), converted into the
    // 16-bit destination of the plan's converting dQ copy (one rounding of the fp32 sum).
    auto dq_store = [&](const float* dq, u32 q0, u32 head) {
#if CL_DQ_RELOAD
      // The work's dQ destination, read here at each store from its shared copy (volatile: not
      // hoisted out of the step loop), so that nothing of it lives across the steps.
      DqConv cv;
      {
        const u32 tq_now = tq_get();
        const u32 a_ = sscr + B90_CL_XINFO + ((tq_now - 1) & 1) * 64 + sizeof(KvSeg);
        u32 lo_, hi_;
        asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(lo_), "=r"(hi_) : "r"(a_) : "memory");
        asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(cv.stride), "=r"(cv.dtype) : "r"(a_ + 8) : "memory");
        cv.dst = (u64)lo_ | ((u64)hi_ << 32);
      }
      CL_DQ_DEST(cv)
#endif
      // 16-byte stores: a transpose of the quad's packed pairs per four column tiles 4 c .. 4 c + 3,
      // so lane t4 holds all 8 columns of tile 4 c + t4. Lanes t4, t4 ^ 1 swap one pair per two
      // tiles (the even lane then holds columns 4 (t4 >> 1) .. + 3 of tiles 4 c, 4 c + 2, the odd
      // lane those of tiles 4 c + 1, 4 c + 3), then lanes t4, t4 ^ 2 swap 4 columns: the low
      // lane (t4 < 2) keeps its first tile, the high lane its second. `ct`: convert by the
      // compile-time element type (a constant at both calls).
      auto st16 = [&](const bool ct) {
        auto pack = [&](int n, int h) -> u32 {
          return ct ? b90_pack(DQ_SCALED(dq[n * 4 + 2 * h]), DQ_SCALED(dq[n * 4 + 2 * h + 1])) : dq_pack(dq, n, h);
        };
        const bool odd = t4 & 1, lo = !(t4 & 2);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 row = q0 + 16 * wq + g + 8 * h;
          const u64 ob = (u64)row * dq_stride + head * D + dq_col0 + 8 * t4;
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const u32 a0 = pack(4 * c, h), a1 = pack(4 * c + 1, h);
            const u32 a2 = pack(4 * c + 2, h), a3 = pack(4 * c + 3, h);
            const u32 r01 = __shfl_xor_sync(0xffffffffu, odd ? a0 : a1, 1);
            const u32 r23 = __shfl_xor_sync(0xffffffffu, odd ? a2 : a3, 1);
            // Columns 4 (t4 >> 1) .. + 3 of the lane's first tile (p0, p1) and second (p2, p3).
            const u32 p0 = odd ? r01 : a0, p1 = odd ? a1 : r01;
            const u32 p2 = odd ? r23 : a2, p3 = odd ? a3 : r23;
            const u32 s0 = __shfl_xor_sync(0xffffffffu, lo ? p2 : p0, 2);
            const u32 s1 = __shfl_xor_sync(0xffffffffu, lo ? p3 : p1, 2);
            if (row < n_rows)
              b90_stg128<B90_ST_NA>((u64)((unsigned short*)dq_dst + ob + 32 * c),
                                    make_uint4(lo ? p0 : s0, lo ? p1 : s1, lo ? s0 : p2, lo ? s1 : p3));
          }
        }
      };
      // CL_DQ_CTDT: a destination of the element type converts by the compile-time type alone
      // (the run-time dtype issued both conversions, predicated, per pair).
      if (CL_DQ_CTDT && dq_ct16) {
        st16(true);
        return;
      }
      if (dq_v16) {
        st16(false);
        return;
      }
      if (dq_v8) {
        // 8-byte stores: lanes t4, t4 ^ 1 swap one packed pair per two column tiles, so the even
        // lane holds columns 2 t4 .. 2 t4 + 3 of tile 2 m, the odd lane those of tile 2 m + 1.
        const bool odd = t4 & 1;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const u32 row = q0 + 16 * wq + g + 8 * h;
          const u64 ob = (u64)row * dq_stride + head * D + dq_col0 + 2 * (t4 & 2);
#pragma unroll
          for (int m = 0; m < 4; ++m) {
            const float* x0 = dq + (2 * m) * 4 + 2 * h;
            const float* x1 = dq + (2 * m + 1) * 4 + 2 * h;
            u32 a0, a1;
            if (dq_dtype == DT_BF16) {
              const __nv_bfloat162 u = __floats2bfloat162_rn(DQ_SCALED(x0[0]), DQ_SCALED(x0[1]));
              const __nv_bfloat162 v = __floats2bfloat162_rn(DQ_SCALED(x1[0]), DQ_SCALED(x1[1]));
              a0 = *(const u32*)&u;
              a1 = *(const u32*)&v;
            } else {
              const __half2 u = __floats2half2_rn(DQ_SCALED(x0[0]), DQ_SCALED(x0[1]));
              const __half2 v = __floats2half2_rn(DQ_SCALED(x1[0]), DQ_SCALED(x1[1]));
              a0 = *(const u32*)&u;
              a1 = *(const u32*)&v;
            }
            const u32 r = __shfl_xor_sync(0xffffffffu, odd ? a0 : a1, 1);
            if (row < n_rows) {
              const u64 o = ob + 8 * (2 * m + (odd ? 1 : 0));
              asm volatile("st.global.v2.b32 [%0], {%1, %2};\n" ::"l"((unsigned short*)dq_dst + o),
                           "r"(odd ? r : a0), "r"(odd ? a1 : r) : "memory");
            }
          }
        }
        return;
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const u32 row = q0 + 16 * wq + g + 8 * h;
        if (row >= n_rows) continue;
        const u64 ob = (u64)row * dq_stride + head * D + dq_col0 + 2 * t4;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
          st2_dt((void*)dq_dst, ob + 8 * nt, dq_dtype, DQ_SCALED(dq[nt * 4 + 2 * h]), DQ_SCALED(dq[nt * 4 + 2 * h + 1]));
      }
    };

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.f;

    // The step before (its dQ is computed a step late): its q tile whose dQ this CTA computes
    // (D 64: tile `rank`, absent past the end of an odd list: prev_ok false, nothing stored).
    u32 prev_q0 = 0, prev_head = 0;
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
      u32 my_q0 = 0, my_head = 0, my_visit = 0;  // (no visit flags here)
      bool my_ok = true;
      BWD_STEP_TILES(false, 0u, rank);
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
        bwd_tile_bits(pbits, present, words, small_g, tid, ranges, rp_s, key_a, key_b, n_keys, t4);
      };
#if BWD_ORDER == 0
      BWD_ORDER0_PT_DV
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
      bwd_ds(st, dpt, dd_s, t4);
      u32 da_[SR / 16][4];
      acc_to_a<SR>(st, da_);
#if BWD_ORDER != 0
      // dV += P^T dO, on the tensor cores while dS^T is stored.
      reg_fence<D / 2>(dv);
      BWD_RS_MMA(dv, pa, DESC_DV);
#endif
      if (gt >= 2) {
        mbar_wait(ds_empty(buf), ((gt >> 1) - 1) & 1);  // this CTA's dQ of step gt - 2 read it
        // The peer's dQ of step gt - 2 read our copy of it: that copy (reading this buffer) is
        // complete and the peer's buffer is free for the next.
        mbar_wait(pempty(buf), ((gt >> 1) - 1) & 1);
      }
      bwd_store_ds(dsb, da_, lane, wq);
      fence_proxy_async();  // dS stores -> wgmma reads and the bulk copy (async proxy)
      mbar_arrive(ds_full(buf));
      // This warpgroup's 64 keys of dS (8 KiB; D 64: the rows of q tile rank ^ 1, whose dQ the
      // peer computes) into the peer's sdSp buffer `buf`, completing on its pfull(buf) (which
      // waits for both warpgroups' 16 KiB).
      named_bar(2 + cw, 128);
      if ((tid & 127) == 0)
        bulk_copy_peer(peer_addr(sdSp + buf * CL_PDS + cw * (B90_BR * 128), rank ^ 1),
                       dsb + (QT == 2 ? (rank ^ 1) * (B90_BR * 128) : 0), B90_BR * 128,
                       peer_addr(pfull(buf), rank ^ 1));
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
      // The dQ of step gt - 1 (both kv tiles' keys) by warpgroup (gt - 1) & 1: the two
      // warpgroups take turns (each the same wgmmas per two steps as one 128-key dQ per step).
      if (p > 0 && (u32)cw == ((gt - 1) & 1)) {
        const u32 pb = (gt - 1) & 1;
        float dq[32];
        mbar_wait(ds_full(pb), ((gt - 1) >> 1) & 1);
        mbar_wait(pfull(pb), ((gt - 1) >> 1) & 1);
        dq_mma(dq, pb);
        dk_mma();
        wg_wait<1>();  // dQ of the step before
        reg_fence<32>(dq);
        dq_release(pb);
        if (QT == 1 || prev_ok) dq_store(dq, prev_q0, prev_head);
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
#if CL_TQ_SMEM
    {
    B90_TASK_FROM_TQ()  // the task's info again (not kept across the step loop)
#endif
#if CL_STSM
    // The dK/dV destination of this lane's staging row (key 16 wq + (lane >> 1) of the
    // warpgroup's 64): with CL_XINFO from the segment's shared-memory copy after the last dQ;
    // else from the global segments, loaded before the last dQ (branch-free, so that the waits
    // come at the epilogue, not behind the dQ stores).
    u32 e_dt;
#if CL_XINFO && CL_TQ_SMEM
    auto e_ptr = [&]() -> u64 {
      const u32 key = tk->row0 * B90_BC + 64 * cw + 16 * wq + (lane >> 1);
      if (wk->kv_count != 1)
        return b90_dkv_ptr(wk, segs, key, kvh, &e_dt, (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first);
      const KvSeg* sg = (const KvSeg*)(gbase + (sscr + B90_CL_XINFO + tq_e * 64 - base));
      e_dt = sg->ddtype;
      return b90_seg_ptr(sg->dk, sg->key0, sg->len, sg->dstride, sg->ddtype, key, wk->n_keys, kvh);
    };
#else
    const u64 e_p0 = b90_dkv_ptr(wk, segs, tk->row0 * B90_BC + 64 * cw + 16 * wq + (lane >> 1), kvh, &e_dt,
                                (tk->pad & B90_TASK_DKV_ALT) ? wk->kv_alt : wk->kv_first);
    auto e_ptr = [&]() { return e_p0; };
#endif
    const bool e_store = tk->pad & B90_TASK_DKV_STORE;
#endif
    if (n_pairs > 0) {
      // dQ of the task's last step: then K and V are read for good (the producer may load the
      // next task's), and its dS buffer is free.
      const u32 u = gt - 1;
      if ((u32)cw == (u & 1)) {
        float dq[32];
        mbar_wait(ds_full(u & 1), (u >> 1) & 1);
        mbar_wait(pfull(u & 1), (u >> 1) & 1);
        dq_mma(dq, u & 1);
        wg_wait<0>();
        reg_fence<32>(dq);
        dq_release(u & 1);
        mbar_arrive(kv_empty);
        if (QT == 1 || prev_ok) dq_store(dq, prev_q0, prev_head);
      } else {
        mbar_arrive(kv_empty);
      }
    } else {
      mbar_arrive(kv_empty);
    }

    // dK (scaled) and dV into the dKV regions, while the producer loads the next task's K/V.
#if CL_STSM
    const u64 e_p = e_ptr();
    if (__all_sync(0xffffffffu, e_p == 0 || (e_store && e_dt == B90_DT && (e_p & 15) == 0))) {
      // Through the warp's staging block (CL_STSM): per round two half blocks of 16 columns, dK's
      // 8 then dV's 8; this lane stores 8 columns of its row's dK / dV.
      B90_DKV_STSM(sscr + ((u32)(tid - 128) >> 5) * 1024, e_p);
    } else
#endif
    BWD_DKV_OUT();
#if CL_TQ_SMEM
    }
#endif
  }

  }  // consumers
  // Neither CTA leaves while the other may still write into its shared memory or arrive on its
  // barriers.
  cluster_sync_all();
}
