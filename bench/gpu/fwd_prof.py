#!/usr/bin/env python3
"""A measurement-only copy of attn_fwd_sm90.cu with per-task, per-warpgroup clock stamps (the
maintained form of kf13b's prof13.py: patterns follow today's kernel — kf17's FWD_HALFBITS half
step, F90_LATE_STEP, the half step's body as the macro F90_HALF_ONE; the stamps are kf13b's, so
dumps compare with kf13b's tables). Summarise a dump with bench/gpu/fwd_prof_sum.py; the
measurement binary is ../results/kernels-2026-11-29-kf13b/prof_host.diff applied to gpu.rs.
When the forward kernel's source changes, a pattern here fails with an AssertionError naming it.

    bench/gpu/fwd_prof.py SRC_DIR DST_DIR

Copies SRC_DIR's kernel files to DST_DIR and patches its attn_fwd_sm90.cu. In launch number
PF_REC of each compiled module (counted by the module's last CTA), thread 0 of the producer and
thread 0 of each consumer warpgroup write the low 32 bits of %clock64 at phase boundaries into
`g_pf` (a __device__ array, no printf: a call in the kernel would make ptxas serialise its
wgmma). Layout: u32 g_pf[132][PF_MAXT][3 roles][PF_NS] (role 0 producer, 1 + cw consumer
warpgroup cw), then a header of 8 u32 per CTA (smid, clock lo at start, globaltimer lo/hi at
start, globaltimer lo/hi at end, 0, 0). The measurement binary's gpu.rs hook
(DCP_CUDA_PROF_DUMP=DIR) copies `g_pf` of every loaded module to DIR at exit.

Producer slots (task tq of the CTA): 0 loop top, 1 descriptors read (before the Q-empty wait),
2 Q buffer free, 3 Q issued, 5 + 3 it (it < 8): stage wait start, stage free, stage issued;
29 next task shared; 30 task index, 31 tiles.
Consumer slots: 0 Q wait start, 1 Q landed, 2 n_tiles | n_half << 16, 4 + 6 j (j < 8): stage
wait start, stage landed (S issued next), S done (right after S's wgmma wait), first P V half
issued (whole tiles), all P V issued, P V done (stage released next); 56 epilogue start, 57 O
staged (stmatrix done), 58 warpgroup barrier passed, 59 tensor store committed, 60 store read
(bulk wait), 61 Q released (task end); 62/63 late release (FWD_LATEREL) wait start / end.
A FWD_ONE step (a 256-key task in one step; slot 2 then has bit 31 set) uses step 0's slots for
4 K stage wait start, 5 K landed, 6 S of both tiles done, 7 P V of tile 0 issued, 8 P V of
tile 1 issued, 9 P V done, and 10 / 11 for its V stage's wait start / landed.
Header h[6]: clock lo at the producer's end.
"""
import os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for f in os.listdir(src):
    shutil.copy(os.path.join(src, f), os.path.join(dst, f))
p = os.path.join(dst, "attn_fwd_sm90.cu")
s = open(p).read()


def rep(old, new, count=1):
    global s
    n = s.count(old)
    assert n == count, (n, count, old)
    s = s.replace(old, new)


# Globals and helpers, before the kernel.
rep("""extern "C" __global__ void __launch_bounds__(S90_THREADS, 1)""", r"""#define PF_MAXT 192
#define PF_NS 80
#ifndef PF_REC
#define PF_REC 2
#endif
__device__ u32 g_pf[132 * PF_MAXT * 3 * PF_NS + 132 * 8];
__device__ u32 g_pf_launch, g_pf_done;
__device__ __forceinline__ u32 pf_clk() {
  u32 t;
  asm volatile("mov.u32 %0, %%clock;\n" : "=r"(t)::"memory");
  return t;
}
// The stamp of slot `sl` of task tq, role r (only where this launch records, tq < PF_MAXT).
#define PF(r, tq, sl)                                                                   \
  do {                                                                                  \
    if (pf_on && (tq) < PF_MAXT)                                                        \
      g_pf[((blockIdx.x * PF_MAXT + (tq)) * 3 + (r)) * PF_NS + (sl)] = pf_clk();         \
  } while (0)
#define PFV(r, tq, sl, v)                                                               \
  do {                                                                                  \
    if (pf_on && (tq) < PF_MAXT) g_pf[((blockIdx.x * PF_MAXT + (tq)) * 3 + (r)) * PF_NS + (sl)] = (v); \
  } while (0)

extern "C" __global__ void __launch_bounds__(S90_THREADS, 1)""")

# Whether this launch records; CTA header.
rep("""  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
""", """  const int tid = threadIdx.x, wg = tid >> 7, lane = tid & 31;
  const bool pf_on = *(volatile u32*)&g_pf_launch == PF_REC && blockIdx.x < 132;
  if (pf_on && tid == 0) {
    u32 smid;
    asm volatile("mov.u32 %0, %%smid;\\n" : "=r"(smid));
    const u64 gt = global_ns();
    u32* h = g_pf + 132 * PF_MAXT * 3 * PF_NS + blockIdx.x * 8;
    h[0] = smid;
    h[1] = pf_clk();
    h[2] = (u32)gt;
    h[3] = (u32)(gt >> 32);
  }
""")

# ---------------- producer ----------------
rep("""    for (u32 tq = 0;; ++tq) {
      const int qb = tq % FWD_NQ;
      u32 nxt = 0;
""", """    for (u32 tq = 0;; ++tq) {
      const int qb = tq % FWD_NQ;
      u32 nxt = 0;
      if (pt == 0) PF(0, tq, 0);
""")
rep("""      if (tq >= FWD_NQ) mbar_wait_guarded(qempty(qb), ((tq / FWD_NQ) - 1) & 1);
      if (pt < 3) f90_cp_async8(qs + 8 * pt, (const char*)(tasks + cur) + 8 * pt, true);""",
    """      if (pt == 0) {
        PF(0, tq, 1);
        PFV(0, tq, 30, cur);
        PFV(0, tq, 31, task.tiles_n);
      }
      if (tq >= FWD_NQ) mbar_wait_guarded(qempty(qb), ((tq / FWD_NQ) - 1) & 1);
      if (pt == 0) PF(0, tq, 2);
      if (pt < 3) f90_cp_async8(qs + 8 * pt, (const char*)(tasks + cur) + 8 * pt, true);""")
rep("""        warp_rows_async<D, false>(myq, lane, 32 * pw, sQ + qb * QBYTES, 0, S90_BR * 128, qbase);
      mbar_arrive_cp_async(qfull(qb));
#else""", """        warp_rows_async<D, false>(myq, lane, 32 * pw, sQ + qb * QBYTES, 0, S90_BR * 128, qbase);
      mbar_arrive_cp_async(qfull(qb));
      if (pt == 0) PF(0, tq, 3);
#else""")
rep("""        if (sg >= FWD_NS) mbar_wait_guarded(empty(s), ((sg / FWD_NS) - 1) & 1);
        const u32 ks = ksmall + s * F90_KSMALL;""", """        if (pt == 0 && it < 8) PF(0, tq, 5 + 3 * it);
        if (sg >= FWD_NS) mbar_wait_guarded(empty(s), ((sg / FWD_NS) - 1) & 1);
        if (pt == 0 && it < 8) PF(0, tq, 6 + 3 * it);
        const u32 ks = ksmall + s * F90_KSMALL;""")
rep("""          warp_rows_async<D, true>(kp, lane, 32 * pw, sK + s * TBYTES, sV + s * TBYTES, S90_BC * 128, qbase);
        mbar_arrive_cp_async(full(s));
      }""", """          warp_rows_async<D, true>(kp, lane, 32 * pw, sK + s * TBYTES, sV + s * TBYTES, S90_BC * 128, qbase);
        mbar_arrive_cp_async(full(s));
        if (pt == 0 && it < 8) PF(0, tq, 7 + 3 * it);
      }""")
rep("""      cur = sched_share_next(slot, tq, nxt, pt, 3);
    }
    if (pt == 0) sched_finish(sched);""", """      cur = sched_share_next(slot, tq, nxt, pt, 3);
      if (pt == 0) PF(0, tq, 29);
    }
    if (pt == 0) sched_finish(sched);
    if (pt == 0) {
      if (pf_on) {
        const u64 gt = global_ns();
        u32* h = g_pf + 132 * PF_MAXT * 3 * PF_NS + blockIdx.x * 8;
        h[4] = (u32)gt;
        h[5] = (u32)(gt >> 32);
        h[6] = pf_clk();
      }
      __threadfence();
      if (atomicAdd(&g_pf_done, 1u) == gridDim.x - 1) {
        atomicExch(&g_pf_done, 0u);
        atomicAdd(&g_pf_launch, 1u);
      }
    }""")

# ---------------- consumers ----------------
rep("""      f90_bulk_wait_read();                    \\
      mbar_arrive(qempty((int)pend - 1));      \\""", """      PF(1 + cw, tq, 62);                      \\
      f90_bulk_wait_read();                    \\
      PF(1 + cw, tq, 63);                      \\
      mbar_arrive(qempty((int)pend - 1));      \\""")
rep("""  for (u32 tq = 0;; ++tq) {
    const int qb = tq % FWD_NQ;
    mbar_wait(qfull(qb), (tq / FWD_NQ) & 1);
    const unsigned char* qi = gbase + (qsmall + qb * F90_QSMALL - base);""", """  const bool pf_me = (tid & 127) == 0;
#define PFC(sl)                    \\
  do {                             \\
    if (pf_me) PF(1 + cw, tq, sl); \\
  } while (0)
#define PFJ(k)                                     \\
  do {                                             \\
    if (pf_me && j < 8) PF(1 + cw, tq, 4 + 6 * j + (k)); \\
  } while (0)
  for (u32 tq = 0;; ++tq) {
    const int qb = tq % FWD_NQ;
    PFC(0);
    mbar_wait(qfull(qb), (tq / FWD_NQ) & 1);
    PFC(1);
    const unsigned char* qi = gbase + (qsmall + qb * F90_QSMALL - base);""")
# Half-step loop (FWD_HALF builds; present in the source either way).
rep("""    for (; j < n_half; ++j, ++sg) {
      const int s = sg % FWD_NS;
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      fence_proxy_async();""", """    if (pf_me) PFV(1 + cw, tq, 2, n_tiles | (n_half << 16));
    for (; j < n_half; ++j, ++sg) {
      const int s = sg % FWD_NS;
      PFJ(0);
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      PFJ(1);
      fence_proxy_async();""")
# The half step's body is the macro F90_HALF_ONE since session 17 (both branches, FWD_HALFBITS
# and its #else, expand it): the stamps go into its lines (PFJ is a macro, so it expands there).
def mline(code):  # a macro body line as the source pads it: code, spaces to column 98, backslash
    return "    " + code.ljust(94) + "\\\n"
rep(mline("reg_fence<S90_BC / 4>(sh);"), mline("reg_fence<S90_BC / 4>(sh);") + mline("PFJ(2);"))
rep(mline("else F90_ISSUE_PV(ph, s, 0, S90_BC / 32);") + mline("wg_wait<0>();") + mline("reg_fence<D / 2>(o);"),
    mline("else F90_ISSUE_PV(ph, s, 0, S90_BC / 32);") + mline("PFJ(4);") + mline("wg_wait<0>();")
    + mline("reg_fence<D / 2>(o);") + mline("PFJ(5);"))
# The whole-tile step inside the half loop (FWD_SPLIT 2 there too).
rep("""      reg_fence<S90_BC / 2>(sc);
      if (word >> 31) mask_tile_bits(sc, mw);""", """      reg_fence<S90_BC / 2>(sc);
      PFJ(2);
      if (word >> 31) mask_tile_bits(sc, mw);""")
rep("""        wg_fence();
        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
      }
#else
#if FWD_LAZY || FWD_SPLIT""", """        wg_fence();
        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
        PFJ(4);
      }
#else
#if FWD_LAZY || FWD_SPLIT""")
rep("""      F90_ISSUE_PV(pa, s, 0, S90_BC / 16);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
    for (; j < n_tiles; ++j, ++sg) {
#else
#if FWD_ONE
    if (one) {""", """      F90_ISSUE_PV(pa, s, 0, S90_BC / 16);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      PFJ(5);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
    for (; j < n_tiles; ++j, ++sg) {
#else
    if (pf_me) PFV(1 + cw, tq, 2, n_tiles);
#if FWD_ONE
    if (one) {""")
# FWD_ONE's one step (works1000's 256-key tasks), in step 0's slots: 4 K stage wait start, 5 K
# landed, 6 S done, 7 P V of tile 0 issued, 8 P V of tile 1 issued, 9 P V done; and 10 / 11 the
# V stage's wait start / landed (no plain step follows a FWD_ONE step, so those slots are free).
PFO = lambda k: "if (pf_me) PF(1 + cw, tq, %d);" % k
rep("""      mbar_wait(full(s0), (sg / FWD_NS) & 1);
      wg_fence();""", """      if (pf_me) PFV(1 + cw, tq, 2, n_tiles | 0x80000000u);  // a FWD_ONE step
      %s
      mbar_wait(full(s0), (sg / FWD_NS) & 1);
      %s
      wg_fence();""" % (PFO(4), PFO(5)))
rep("""      reg_fence<S90_BC / 2>(sb);
      mbar_arrive(empty(s0));""", """      reg_fence<S90_BC / 2>(sb);
      %s
      mbar_arrive(empty(s0));""" % PFO(6))
rep("""      mbar_wait(full(s1), ((sg + 1) / FWD_NS) & 1);
      wg_fence();""", """      %s
      mbar_wait(full(s1), ((sg + 1) / FWD_NS) & 1);
      %s
      wg_fence();""" % (PFO(10), PFO(11)))
rep("""        wg_pv(o, pa[kc], f90_desc(vk_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();""", """        wg_pv(o, pa[kc], f90_desc(vk_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();
      %s""" % PFO(7))
rep("""        wg_pv(o, pb[kc], f90_desc(v_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();
      wg_wait<0>();
      reg_fence<D / 2>(o);""", """        wg_pv(o, pb[kc], f90_desc(v_d0 + s1 * (TBYTES >> 4) + ((kc * 16 * 128) >> 4), DHI));
      wg_commit();
      %s
      wg_wait<0>();
      reg_fence<D / 2>(o);
      %s""" % (PFO(8), PFO(9)))
rep("""    for (u32 j = one ? n_tiles : 0; j < n_tiles; ++j, ++sg) {
#else
    for (u32 j = 0; j < n_tiles; ++j, ++sg) {
#endif
#endif
      const int s = sg % FWD_NS;
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      fence_proxy_async();""", """    for (u32 j = one ? n_tiles : 0; j < n_tiles; ++j, ++sg) {
#else
    for (u32 j = 0; j < n_tiles; ++j, ++sg) {
#endif
#endif
      const int s = sg % FWD_NS;
      PFJ(0);
      mbar_wait(full(s), (sg / FWD_NS) & 1);
      PFJ(1);
      fence_proxy_async();""")
# Plain step.
rep("""      F90_ISSUE_S(2, sc, s, 0);
      F90_PP_GO(0);
      wg_wait<0>();
      reg_fence<S90_BC / 2>(sc);
      F90_PP_GO(1);""", """      F90_ISSUE_S(2, sc, s, 0);
      F90_PP_GO(0);
      wg_wait<0>();
      reg_fence<S90_BC / 2>(sc);
      PFJ(2);
      F90_PP_GO(1);""")
rep("""        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
        F90_PP_GO(3);
""", """        F90_ISSUE_PV(pa + S90_BC / 32, s, S90_BC / 32, S90_BC / 32);
        F90_PP_GO(3);
        PFJ(4);
""")
rep("""      F90_PP_GO(2);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
#undef F90_PP_GO""", """      F90_PP_GO(2);
#endif
      wg_wait<0>();
      reg_fence<D / 2>(o);
      PFJ(5);
      mbar_arrive(empty(s));
      F90_LATE_STEP();
    }
#undef F90_PP_GO""")
rep("""        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        f90_exp<S90_BC / 16>(sc + S90_BC / 4, mm, ll, scale_log2);""", """        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        PFJ(3);
        f90_exp<S90_BC / 16>(sc + S90_BC / 4, mm, ll, scale_log2);""")
rep("""        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        F90_PP_GO(2);""", """        F90_ISSUE_PV(pa, s, 0, S90_BC / 32);
        PFJ(3);
        F90_PP_GO(2);""")
# Epilogue.
rep("""    F90_LATE_STEP();  // (owed from before a task without tiles)
""", """    F90_LATE_STEP();  // (owed from before a task without tiles)
    PFC(56);
""")
rep("""      if (o_dtype == DT_BF16) f90_stage_o<true>(o, inv, sq, rs, lm);
      else f90_stage_o<false>(o, inv, sq, rs, lm);""", """      if (o_dtype == DT_BF16) f90_stage_o<true>(o, inv, sq, rs, lm);
      else f90_stage_o<false>(o, inv, sq, rs, lm);
      PFC(57);""")
rep("""        fence_proxy_async();
        named_bar(4 + cw, 128);
        if ((tid & 127) == 0) {""", """        fence_proxy_async();
        named_bar(4 + cw, 128);
        PFC(58);
        if ((tid & 127) == 0) {""")
rep("""          f90_bulk_commit();
#if FWD_LATEREL
          pend = 1 + qb;
#else
          f90_bulk_wait_read();
#endif""", """          f90_bulk_commit();
          PFC(59);
#if FWD_LATEREL
          pend = 1 + qb;
#else
          f90_bulk_wait_read();
          PFC(60);
#endif""")
rep("""      mbar_arrive(qempty(qb));
  }
#undef F90_LATE_ARRIVE""", """      mbar_arrive(qempty(qb));
    PFC(61);
  }
#undef F90_LATE_ARRIVE""")
open(p, "w").write(s)
print("patched", p)
