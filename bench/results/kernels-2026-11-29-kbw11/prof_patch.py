#!/usr/bin/env python3
"""kbw11: a timing-only copy of attn_fwd_sm90.cu with consumer cycle counters (FWD_PROF).

    prof_patch.py SRC_DIR DST_DIR

Copies SRC_DIR's kernel files to DST_DIR and patches its attn_fwd_sm90.cu: thread 0 of each consumer
warpgroup counts clock64 cycles (its lifetime, waiting for Q, waiting for K/V stages, the tile
steps, the epilogue) and tasks / tiles / half tiles, summed over the grid; the last consumer to
finish prints one FWDPROF line per launch (printf: ptxas then serialises the kernel's wgmma, so
the tile steps are slower than unprofiled; read the epilogue, waits and span) (cycles per task and warpgroup, kernel span from
globaltimer, mean and max consumer busy time) and resets the counters.
"""
import os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    shutil.copy(os.path.join(src, f), os.path.join(dst, f))
p = os.path.join(dst, "attn_fwd_sm90.cu")
s = open(p).read()

def rep(old, new, count=1, optional=False):
    global s
    if optional and old not in s:
        return
    assert s.count(old) >= 1, old
    s = s.replace(old, new, count)

rep("""// PV for the head dim: N = HEAD_DIM.""", r"""__device__ unsigned long long g_fprof[16];
__device__ unsigned int g_fprof_n;
__device__ __forceinline__ long long f90_clk() {
  long long t;
  asm volatile("mov.u64 %0, %%clock64;\n" : "=l"(t)::"memory");
  return t;
}
// 0 life, 1 tasks, 2 tiles, 3 wait Q, 4 wait K/V, 5 tile steps, 6 half tiles, 7 epilogue;
// 12 busy ns, 13 first start, 14 last end, 15 longest busy.
__device__ __forceinline__ void f90_prof_flush(const long long* c, u64 t0, u64 t1) {
  for (int i = 0; i < 8; ++i) atomicAdd(&g_fprof[i], (unsigned long long)c[i]);
  atomicAdd(&g_fprof[12], t1 - t0);
  atomicMin(&g_fprof[13], t0);
  atomicMax(&g_fprof[14], t1);
  atomicMax(&g_fprof[15], t1 - t0);
  __threadfence();
}
// Producer thread 0, after both consumer warpgroups of its CTA flushed (named barrier 7): the
// last CTA prints (no call in the consumers' code: ptxas would serialise their wgmma).
__device__ __forceinline__ void f90_prof_print() {
  if (atomicAdd(&g_fprof_n, 1u) == gridDim.x - 1) {
    __threadfence();
    unsigned long long v[16];
    for (int i = 0; i < 16; ++i) v[i] = atomicExch(&g_fprof[i], 0ull);
    atomicExch(&g_fprof_n, 0u);
    const double nt = v[1] > 0 ? (double)v[1] : 1.0;
    printf("FWDPROF grid %u tasks %.0f tiles %.0f halftiles %.0f | per task and warpgroup: life %.0f waitQ %.0f "
           "waitKV %.0f steps %.0f epi %.0f (tile step %.0f) | span %.1f us, busy mean %.1f max %.1f us, clock %.3f GHz\n",
           gridDim.x, nt / 2, (double)v[2] / 2, (double)v[6] / 2, v[0] / nt, v[3] / nt, v[4] / nt, v[5] / nt,
           v[7] / nt, v[2] > 0 ? (double)v[5] / (double)v[2] : 0.0, (double)(v[14] - v[13]) * 1e-3,
           (double)v[12] * 1e-3 / (2.0 * gridDim.x), (double)v[15] * 1e-3,
           v[12] > 0 ? (double)v[0] / (double)v[12] : 0.0);
    atomicExch(&g_fprof[13], ~0ull);
  }
}

// PV for the head dim: N = HEAD_DIM.""")
# consumer start
rep("""  for (u32 tq = 0;; ++tq) {
    const int qb = tq & 1;
    mbar_wait(qfull(qb), (tq >> 1) & 1);""", """  long long cc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const long long c_t0 = f90_clk();
  const u64 c_g0 = global_ns();
  for (u32 tq = 0;; ++tq) {
    const int qb = tq & 1;
    long long c_a = f90_clk();
    mbar_wait(qfull(qb), (tq >> 1) & 1);
    cc[3] += f90_clk() - c_a;""")
rep("""    for (u32 j = 0; j < n_tiles; ++j, ++sg) {
      const int s = sg & 1;
      mbar_wait(full(s), (sg >> 1) & 1);""", """    cc[1] += 1;
    cc[2] += n_tiles;
    const long long c_l = f90_clk();
    long long c_w = 0;
    for (u32 j = 0; j < n_tiles; ++j, ++sg) {
      const int s = sg & 1;
      const long long c_b = f90_clk();
      mbar_wait(full(s), (sg >> 1) & 1);
      c_w += f90_clk() - c_b;""")
rep("""          mbar_arrive(empty(s));
          continue;
        }
      }""", """          mbar_arrive(empty(s));
          cc[6] += 1;
          continue;
        }
      }""", optional=True)
rep("""#undef F90_ISSUE_S
#undef F90_ISSUE_PV
""", """#undef F90_ISSUE_S
#undef F90_ISSUE_PV
    const long long c_e = f90_clk();
    cc[4] += c_w;
    cc[5] += c_e - c_l - c_w;
""")
if "#undef F90_LATE_ARRIVE\n}" in s:
    rep("""      mbar_arrive(qempty(qb));
  }
#undef F90_LATE_ARRIVE
}""", """      mbar_arrive(qempty(qb));
    cc[7] += f90_clk() - c_e;
  }
#undef F90_LATE_ARRIVE
  if ((tid & 127) == 0) {
    cc[0] = f90_clk() - c_t0;
    f90_prof_flush(cc, c_g0, global_ns());
  }
  asm volatile("bar.arrive 7, 288;\\n" ::: "memory");
}""")
else:
  rep("""    mbar_arrive(qempty(qb));
  }
}""", """    mbar_arrive(qempty(qb));
    cc[7] += f90_clk() - c_e;
  }
  if ((tid & 127) == 0) {
    cc[0] = f90_clk() - c_t0;
    f90_prof_flush(cc, c_g0, global_ns());
  }
  asm volatile("bar.arrive 7, 288;\\n" ::: "memory");
}""")
rep("""    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\\n" ::: "memory");
    return;""", """    if (pt == 0) sched_finish(sched);
    asm volatile("cp.async.wait_all;\\n" ::: "memory");
    if (pt < 32) {
      asm volatile("bar.sync 7, 288;\\n" ::: "memory");
      if (pt == 0) f90_prof_print();
    }
    return;""")
open(p, "w").write(s)
