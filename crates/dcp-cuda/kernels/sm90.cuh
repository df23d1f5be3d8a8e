// Hopper (sm_90a) helpers: warpgroup MMA (wgmma) wrappers, shared-memory matrix descriptors for
// the 128-byte swizzled layout, mbarrier and setmaxnreg wrappers. Included after common.cuh and
// mma.cuh (which define u32/u64, MMA_TYPE and pack2).
#pragma once

// Byte offset of 16-byte chunk `c` (0..7) of row `r` inside a 128-byte-swizzled block of rows of
// 128 bytes (atoms of 8 rows x 128 B, 1024-byte aligned): chunk index XOR (row mod 8). This is
// the layout wgmma's 128B swizzle mode reads.
__device__ __forceinline__ u32 sw128(u32 r, u32 c) { return r * 128u + (((c ^ r) & 7u) << 4); }

// Shared-memory matrix descriptor, 128-byte swizzle: start address, leading and stride byte
// offsets (all >> 4), swizzle mode 1 in bits 62-63, base offset 0 (atoms 1024-byte aligned).
__device__ __forceinline__ u64 wg_desc(u32 saddr, u32 lbo, u32 sbo) {
  return (u64)((saddr & 0x3FFFFu) >> 4) | ((u64)((lbo >> 4) & 0x3FFFu) << 16) |
         ((u64)((sbo >> 4) & 0x3FFFu) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads/writes of accumulator registers across wgmma issue/wait
// (the asm statements of wgmma complete asynchronously).
template <int N>
__device__ __forceinline__ void reg_fence(float* r) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
// Arrives on `bar` once every cp.async this thread issued so far has landed (counts as one of
// the barrier's expected arrivals).
__device__ __forceinline__ void mbar_arrive_cp_async(u32 bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ u32 mbar_try_wait(u32 bar, u32 parity) {
  u32 done;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done;
}
__device__ __forceinline__ u64 global_ns() {
  u64 t;
  asm volatile("mov.u64 %0, %globaltimer;\n" : "=l"(t));
  return t;
}
// Waits for the phase of `bar` with `parity` to complete.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
}
// The same with a watchdog, for the producer (the consumers have no registers to spare): a wait
// of more than 20 s (a tile takes microseconds) means a pipeline bug, e.g. consumers that never
// start; trap, so the launch fails with an error instead of hanging the process (freeing device
// memory would wait for the kernel forever).
__device__ __forceinline__ void mbar_wait_guarded(u32 bar, u32 parity) {
  if (mbar_try_wait(bar, parity)) return;
  const u64 t0 = global_ns();
  while (!mbar_try_wait(bar, parity))
    if (global_ns() - t0 > 20000000000ull) __trap();
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
// 16-byte async copy global -> shared (shared-space address); zero-fills when !valid.
__device__ __forceinline__ void cp_async16_s(u32 saddr, const void* gmem, bool valid) {
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gmem), "r"(n) : "memory");
}

// 4-byte async copy global -> shared (shared-space address); zero-fills when !valid.
__device__ __forceinline__ void cp_async4_s(u32 saddr, const void* gmem, bool valid) {
  int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(saddr), "l"(gmem), "r"(n) : "memory");
}
// Barrier `id` (1..15) among `n` threads (a multiple of 32).
__device__ __forceinline__ void named_bar(u32 id, u32 n) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}

// Registers per thread after setmaxnreg in the sm90 kernels (3 warpgroups: producer, two
// consumers). setmaxnreg.inc only redistributes what the CTA was launched with (384 threads x
// 168, the launch-bounds cap rounded to 8): a larger sum leaves a consumer waiting forever.
// Tile-mask index of a partial tile without a precomputed mask (`tilemask.rs` NO_MASK): the
// kernel evaluates the rows' ranges itself.
#define NO_TILE_MASK 0xffffffffu
#define SM90_PROD_REGS 56
#define SM90_CONS_REGS 224
static_assert(128 * SM90_PROD_REGS + 256 * SM90_CONS_REGS <= 384 * 168,
              "setmaxnreg split exceeds the registers the CTA is launched with");

// Address of key `key` (concatenated KV coordinates of work `w`) of kv head `kvh`: its K row, V
// at +D elements; 0 past the work's keys.
template <int D>
__device__ __forceinline__ u64 kv_key_ptr(const WorkDesc& w, const KvSeg* segs, u32 key, u32 kvh) {
  if (key >= w.n_keys || w.kv_count == 0) return 0;
  const u32 lo = kv_seg_index(w.kv_first, w.kv_count, segs, key);
  const KvSeg& sg = segs[lo];
  if (key >= sg.key0 && key < sg.key0 + sg.len)
    return sg.k + ((u64)(key - sg.key0) * sg.stride + kvh * 2 * D) * sizeof(elem_t);
  return 0;
}

// One warp copies 32 rows of D elements with cp.async into 128-byte-swizzled tiles: lane l holds
// the address of row r0 + l (0: zero-fill); the row goes to `dst` and, with DUAL, the next D
// elements (V after K) to `dst2`. `bstride`: bytes between a tile's 64-column blocks; `any`: a
// valid address for the zero-filling copies.
template <int D, bool DUAL>
__device__ __forceinline__ void warp_rows_async(u64 myp, int lane, u32 r0, u32 dst, u32 dst2,
                                                u32 bstride, const void* any) {
  constexpr int CH = D / 8, KPI = 32 / CH;  // 16-byte chunks per row, rows per instruction
#pragma unroll
  for (int j = 0; j < 32 / KPI; ++j) {
    const int src = j * KPI + lane / CH;
    const u64 p = __shfl_sync(0xffffffffu, myp, src);
    const int c = lane % CH;
    const u32 off = (c >> 3) * bstride + sw128(r0 + src, c);
    const elem_t* e = p ? (const elem_t*)p + c * 8 : (const elem_t*)any;
    cp_async16_s(dst + off, e, p != 0);
    if (DUAL) cp_async16_s(dst2 + off, p ? e + D : (const elem_t*)any, p != 0);
  }
}

// The register-A fragments (4 x b16x2 per 16 columns) of an m64nN fp32 accumulator: the
// accumulator layout of one k16 step is the A layout wgmma's register form takes.
template <int N>
__device__ __forceinline__ void acc_to_a(const float* acc, u32 (*a)[4]) {
#pragma unroll
  for (int kc = 0; kc < N / 16; ++kc) {
    a[kc][0] = pack2(acc[(2 * kc) * 4 + 0], acc[(2 * kc) * 4 + 1]);
    a[kc][1] = pack2(acc[(2 * kc) * 4 + 2], acc[(2 * kc) * 4 + 3]);
    a[kc][2] = pack2(acc[(2 * kc + 1) * 4 + 0], acc[(2 * kc + 1) * 4 + 1]);
    a[kc][3] = pack2(acc[(2 * kc + 1) * 4 + 2], acc[(2 * kc + 1) * 4 + 3]);
  }
}

// The wgmma shapes the kernels use (m64 x N x k16, fp32 accumulators, bf16/f16 operands).
// _ss: A and B from shared memory; _rs: A from registers (the mma.sync A-fragment layout, one
// 16-row slice per warp of the warpgroup). TRANS_B = 1: B is MN-major in shared memory.
// d[0..32) (+)= A (shared, K-major, desc a) * B (shared, desc b; trans_b: MN-major).
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n64k16_ss(float* d, u64 a, u64 b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, %35;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

// d[0..64) (+)= A (shared, K-major, desc a) * B (shared, desc b; trans_b: MN-major).
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float* d, u64 a, u64 b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_TYPE "." MMA_TYPE " "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, %64, %65, p, 1, 1, 0, %67;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

// d[0..32) (+)= A (registers, 4 x b16x2 per thread) * B (shared, desc b; trans_b: MN-major).
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n64k16_rs(float* d, const u32* a, u64 b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

// d[0..64) (+)= A (registers, 4 x b16x2 per thread) * B (shared, desc b; trans_b: MN-major).
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n128k16_rs(float* d, const u32* a, u64 b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." MMA_TYPE "." MMA_TYPE " "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, {%64,%65,%66,%67}, %68, p, 1, 1, %70;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate), "n"(TRANS_B));
}

// ---- persistent task scheduling (attn_fwd_sm90.cu, attn_bwd_sm90.cu) ----
// `sched[0]` counts claimed tasks beyond the first gridDim.x, `sched[1]` finished CTAs,
// `sched[2]` = number of tasks.

// The next task index (claimed by producer thread 0 into `nxt`) handed to all 128 producer
// threads through two shared slots: a slot is rewritten only after every thread has passed the
// named barrier `bar` that follows its next use.
__device__ __forceinline__ u32 sched_share_next(volatile u32* slot, u32 tq, u32 nxt, int pt, u32 bar) {
  if (pt == 0) slot[(tq + 1) & 1] = nxt;
  named_bar(bar, 128);
  return slot[(tq + 1) & 1];
}

// Called by one thread per CTA after its last claim: every CTA has taken its last index once all
// have counted themselves here, and the last one resets the counters for the next launch.
__device__ __forceinline__ void sched_finish(u32* sched) {
  __threadfence();
  if (atomicAdd(sched + 1, 1u) == gridDim.x - 1) {
    atomicExch(sched, 0u);
    atomicExch(sched + 1, 0u);
  }
}
