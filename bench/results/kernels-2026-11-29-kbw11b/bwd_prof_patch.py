#!/usr/bin/env python3
"""kbw11b: a timing-only copy of attn_bwd_sm90.cu with consumer cycle counters (BWDPROF).

    bwd_prof_patch.py SRC_DIR DST_DIR

Copies SRC_DIR's kernel files to DST_DIR and patches attn_bwd_sm90.cu: thread 0 of each consumer
warpgroup counts clock64 cycles per task (waiting for the task's K/V and info, the step loop
without its Q/dO waits, the Q/dO waits, the task's end: last dQ and the dK/dV epilogue), the
steps, and the steps with a partial or absent q tile and their cycles; summed over the grid, the
producer's warp 0 of the last CTA prints one BWDPROF line per launch (cycles per task and
warpgroup; kernel span from globaltimer, mean and max consumer busy time) and resets. Its printf
may make ptxas serialise wgmma (read span, tail and shares, not absolute step times).
"""
import os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    shutil.copy(os.path.join(src, f), os.path.join(dst, f))
p = os.path.join(dst, "attn_bwd_sm90.cu")
s = open(p).read()

def rep(old, new):
    global s
    assert s.count(old) == 1, old
    s = s.replace(old, new)

rep('''extern "C" __global__ void __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_sm90(''', r'''__device__ unsigned long long g_bprof[16];
__device__ unsigned int g_bprof_n;
__device__ __forceinline__ long long b90_clk() {
  long long t;
  asm volatile("mov.u64 %0, %%clock64;\n" : "=l"(t)::"memory");
  return t;
}
// 0 life, 1 tasks, 2 steps, 3 wait K/V (task start), 4 wait Q/dO, 5 step loop (no waits),
// 6 cycles of partial steps, 7 partial steps, 8 task end (last dQ, dK/dV epilogue);
// 12 busy ns, 13 first start, 14 last end, 15 longest busy.
__device__ __forceinline__ void b90_prof_flush(const long long* c, u64 t0, u64 t1) {
  for (int i = 0; i < 9; ++i) atomicAdd(&g_bprof[i], (unsigned long long)c[i]);
  atomicAdd(&g_bprof[12], t1 - t0);
  atomicMin(&g_bprof[13], t0);
  atomicMax(&g_bprof[14], t1);
  atomicMax(&g_bprof[15], t1 - t0);
  __threadfence();
}
__device__ __forceinline__ void b90_prof_print() {
  if (atomicAdd(&g_bprof_n, 1u) == gridDim.x - 1) {
    __threadfence();
    unsigned long long v[16];
    for (int i = 0; i < 16; ++i) v[i] = atomicExch(&g_bprof[i], 0ull);
    atomicExch(&g_bprof_n, 0u);
    const double nt = v[1] > 0 ? (double)v[1] : 1.0;
    const double fs = (double)(v[2] - v[7]);
    printf("BWDPROF grid %u tasks %.0f steps %.0f partial %.0f | per task and wg: life %.0f waitKV %.0f waitQ %.0f "
           "loop %.0f end %.0f | clk per step %.0f (partial %.0f, full %.0f) | span %.1f us, busy mean %.1f max %.1f us, %.3f GHz\n",
           gridDim.x, nt / 2, (double)v[2] / 2, (double)v[7] / 2, v[0] / nt, v[3] / nt, v[4] / nt, v[5] / nt, v[8] / nt,
           v[2] ? (double)(v[4] + v[5]) / v[2] : 0.0, v[7] ? (double)v[6] / v[7] : 0.0,
           fs > 0 ? (double)(v[4] + v[5] - v[6]) / fs : 0.0,
           (double)(v[14] - v[13]) * 1e-3, (double)v[12] * 1e-3 / (2.0 * gridDim.x), (double)v[15] * 1e-3,
           v[12] > 0 ? (double)v[0] / (double)v[12] : 0.0);
    atomicExch(&g_bprof[13], ~0ull);
  }
}

extern "C" __global__ void __launch_bounds__(B90_THREADS, 1)
dcp_attn_bwd_sm90(''')
rep('''    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\\n" ::: "memory");
    return;''', '''    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\\n" ::: "memory");
    if (pt < 32) {
      asm volatile("bar.sync 7, 288;\\n" ::: "memory");
      if (pt == 0) b90_prof_print();
    }
    return;''')
rep('''  u32 gt = 0;  // steps of this CTA so far (stages, dS buffers and their barrier phases)
  for (u32 tq = 0;; ++tq) {
    mbar_wait(kv_full, tq & 1);''', '''  long long cc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
  const long long c_t0 = b90_clk();
  const u64 c_g0 = global_ns();
  u32 gt = 0;  // steps of this CTA so far (stages, dS buffers and their barrier phases)
  for (u32 tq = 0;; ++tq) {
    const long long c_a = b90_clk();
    mbar_wait(kv_full, tq & 1);
    cc[3] += b90_clk() - c_a;''')
rep('''    for (u32 p = 0; p < n_pairs; ++p, ++gt) {
      const int s = gt & 1;
      wait_full(gt);''', '''    cc[1] += 1;
    cc[2] += n_pairs;
    const long long c_l = b90_clk();
    long long c_w = 0;
    for (u32 p = 0; p < n_pairs; ++p, ++gt) {
      const int s = gt & 1;
      const long long c_b = b90_clk();
      wait_full(gt);
      const long long c_s = b90_clk();
      c_w += c_s - c_b;''')
rep('''      mbar_arrive(empty_bar(s));
      prev_q0 = my_q0;''', '''      mbar_arrive(empty_bar(s));
      if (partial_any) {
        cc[6] += b90_clk() - c_b;
        cc[7] += 1;
      }
      prev_q0 = my_q0;''')
rep('''    if (n_pairs > 0) {
      // dQ of the task's last step''', '''    const long long c_e = b90_clk();
    cc[4] += c_w;
    cc[5] += c_e - c_l - c_w;
    if (n_pairs > 0) {
      // dQ of the task's last step''')
rep('''  }

  if ((tid & 127) == 0) bulk_wait0();  // the last reductions, before the CTA's shared memory goes
}''', '''    cc[8] += b90_clk() - c_e;
  }

  if ((tid & 127) == 0) bulk_wait0();  // the last reductions, before the CTA's shared memory goes
  if ((tid & 127) == 0) {
    cc[0] = b90_clk() - c_t0;
    b90_prof_flush(cc, c_g0, global_ns());
  }
  asm volatile("bar.arrive 7, 288;\\n" ::: "memory");
}''')
open(p, "w").write(s)
