#!/usr/bin/env python3
"""A measurement-only copy of attn_bwd_sm90.cu with per-step clock stamps of each consumer
warpgroup (session 36: why a partial kv tile's steps cost 1.5-2x a full tile's; the forward's
counterpart is fwd_prof.py). Summarise a dump with bench/gpu/bwd_prof_sum.py. The measurement
binary is ../results/kernels-2026-11-29-kf13b/prof_host.diff applied to gpu.rs (it copies the
`g_pf` array of every loaded module to DCP_CUDA_PROF_DUMP=DIR at exit). When the backward
kernel's source changes, a pattern here fails with an AssertionError naming it.

    bench/gpu/bwd_prof.py [--bits | --cluster] [--timeline] SRC_DIR DST_DIR

Copies SRC_DIR's kernel files to DST_DIR and patches its attn_bwd_sm90.cu (--cluster: its
attn_bwd_cluster_sm90.cu instead, the 2-CTA clustered backward of works two kv tiles wide, with the
same slots; slot 5 is its dQ of the step before, stored; header word 7 is the CTA's rank in the
cluster. Where that file forms D itself, CL_DD of session 41's diffs, the consumers' wait for D
comes right after slot 1, so it counts in "S+dP"). Every launch of the
patched kernel overwrites the stamps, so a dump holds the last launch's. Thread 0 of each
consumer warpgroup writes, for the first PF_MAXS steps (pairs of q tiles at D 64) of the CTA's
first task, the low 32 bits of %clock into `g_pf[SM][cw][step][slot]` (u32 [132][2][PF_MAXS + 1][8];
one st.global per stamp, no printf: a call in the kernel makes ptxas serialise its wgmma):

  0 step top (before the stage wait)     1 stage landed (S^T and dP^T issued next)
  2 S^T, dP^T done                       3 P^T, dS^T formed and dV issued
  4 dS^T stored, ds_full arrived         5 dQ of the step before written (0 in a task's first step)
  6 step end (dV, dK waited for; stage released)
  7 the step's first tile word (bit 31: partial)

--bits: slot 5 is instead the clock once the step's mask bits are in registers (a stamp whose
asm takes the bits as an input, between issuing S^T, dP^T and waiting for them); summarise with
bwd_prof_sum.py --bits (session 37: a partial tile evaluated from its ranges reached that point
3 100 clk after its stage landed, a full one 506, at D 128).

--timeline (session 48): the stamps follow the CTA across its tasks instead of its first task
alone. Row g holds the CTA's g-th step whatever task it belongs to (the first PF_MAXS steps:
8 works1000 tasks at D 64, 4 at D 128), slot 7 is the step's index in its task (bit 31: partial),
slot 5 of a task's first step is the task loop's top (the previous task's epilogue done, before
the wait for this task's K/V), and header word 5 is the number of steps stamped, so the periods
that span a task's boundary (its last dQ, the dK/dV epilogue, the next task's K/V wait) can be
set against the steps inside a task; summarise with bwd_prof_sum.py --timeline. With --cluster it also stamps the producer's events
per task (`producer()` below) into a third block of rows, g_pf[SM][2] (the array grows to
[132][3][PF_MAXS + 1][8]), which the summary sets against the consumers' task boundaries.

Stamps change what ptxas emits (session 48, D 64 clustered: 82 bytes of spills with the
timeline stamps, 114 without). Step periods held up against Nsight Compute's stall sampling of
the uninstrumented kernel; the split of a step into phases did not (a phase that stamps put at
+48 % over the plain kernel sampled even with it). Check a phase-level finding with a
timing-only switch or with sampling before building on it.

Row PF_MAXS of each warpgroup is a header: 0 SM id + 1 (0: no CTA ran there), 1 work, 2 kv tile
(TaskDesc.row0), 3 q tiles of the task, 4 TaskDesc.pad, 5 steps of the task, 6 clock at the
task's start.
"""
import os
import shutil
import sys

PF_MAXS = 64

GLOBALS = r"""
// ---- bwd_prof.py: per-step clock stamps (measurement only) ----
#define PF_MAXS %d
__device__ unsigned int g_pf[132][2][PF_MAXS + 1][8];
__device__ __forceinline__ unsigned int pf_clk() {
  unsigned int c;
  asm volatile("mov.u32 %%0, %%%%clock;" : "=r"(c));
  return c;
}
__device__ __forceinline__ unsigned int pf_smid() {
  unsigned int s;
  asm volatile("mov.u32 %%0, %%%%smid;" : "=r"(s));
  return s;
}
#define PF_ON(step) ((tid & 127) == 0 && tq == 0 && pf_sm < 132u && (step) < PF_MAXS)
#define PFS(step, slot) do { if (PF_ON(step)) g_pf[pf_sm][cw][step][slot] = pf_clk(); } while (0)
#define PFV(step, slot, v) do { if (PF_ON(step)) g_pf[pf_sm][cw][step][slot] = (v); } while (0)
// The clock once `dep` is in a register (the asm takes it as an input).
#define PFD(step, slot, dep) do { if (PF_ON(step)) { unsigned int c_; \
  asm volatile("mov.u32 %%0, %%%%clock;" : "=r"(c_) : "r"(dep)); g_pf[pf_sm][cw][step][slot] = c_; } } while (0)
// ---- end bwd_prof.py ----
""" % PF_MAXS


def once(s, name, old, new):
    """`s` with its one occurrence of `old` replaced by `new` (an AssertionError naming the pattern
    and the kernel file `name` where `old` is not there exactly once)."""
    assert s.count(old) == 1, f"pattern not found once in {name}: {old!r}"
    return s.replace(old, new)


def stamp_steps(s, name, kernel, ind, extra=""):
    """The stamps both backward kernels take at the same places: the globals before `kernel`'s
    entry, the SM id, the header row of a CTA's first task (`extra`: more header words), the stage
    wait (slots 0, 1), S^T / dP^T waited for (2; `ind`: the consumer step's indentation there), dV
    issued (3), ds_full (4), the step's end (6)."""
    s = once(s, name, f"DCP_PDL_KERNEL({kernel})", GLOBALS + f"DCP_PDL_KERNEL({kernel})")
    s = once(s, name, "  u32 gt = 0;  // steps of this CTA so far",
             "  const u32 pf_sm = pf_smid();\n  u32 gt = 0;  // steps of this CTA so far")
    s = once(s, name, "    const u32 n_pairs = (n_steps + QT - 1) / QT;  // steps of QT q tiles",
             "    const u32 n_pairs = (n_steps + QT - 1) / QT;  // steps of QT q tiles\n"
             "    if ((tid & 127) == 0 && tq == 0 && pf_sm < 132u) {\n"
             "      unsigned int* hd = g_pf[pf_sm][cw][PF_MAXS];\n"
             "      hd[0] = pf_sm + 1; hd[1] = tk->work; hd[2] = tk->row0; hd[3] = tiles_n;\n"
             f"      hd[4] = tk->pad; hd[5] = n_pairs; hd[6] = pf_clk();{extra}\n"
             "    }")
    s = once(s, name, "      wait_full(gt);", "      PFS(p, 0);\n      wait_full(gt);\n      PFS(p, 1);")
    s = once(s, name, f"{ind}wg_wait<0>();  // S^T and dP^T", f"{ind}wg_wait<0>();  // S^T and dP^T\n{ind}PFS(p, 2);")
    s = once(s, name, f"{ind}BWD_RS_MMA(dv, pa, DESC_DV);", f"{ind}BWD_RS_MMA(dv, pa, DESC_DV);\n{ind}PFS(p, 3);")
    s = once(s, name, "      mbar_arrive(ds_full(buf));", "      mbar_arrive(ds_full(buf));\n      PFS(p, 4);")
    return once(s, name, "      mbar_arrive(empty_bar(s));", "      PFS(p, 6);\n      mbar_arrive(empty_bar(s));")


def patch(s, bits=False):
    name = "attn_bwd_sm90.cu"
    s = stamp_steps(s, name, "dcp_attn_bwd_sm90", "        ")
    s = once(s, name, "      BWD_STEP_TILES(BWD_CHAIN, B90_TILE_FIRST | B90_TILE_LAST, cw);",
             "      BWD_STEP_TILES(BWD_CHAIN, B90_TILE_FIRST | B90_TILE_LAST, cw);\n      PFV(p, 7, words[0]);")
    if bits:
        return once(s, name, "        tile_bits();\n        wg_wait<0>();  // S^T and dP^T\n        PFS(p, 2);",
                    "        tile_bits();\n        PFD(p, 5, pbits[0]);\n        wg_wait<0>();  // S^T and dP^T\n"
                    "        PFS(p, 2);")
    return once(s, name, "        if (prev_ok) dq_out(prev_q0, prev_head, dq, prev_visit);",
                "        if (prev_ok) dq_out(prev_q0, prev_head, dq, prev_visit);\n        PFS(p, 5);")


def patch_cluster(s):
    """The same stamps in attn_bwd_cluster_sm90.cu's consumer step (session 41)."""
    name = "attn_bwd_cluster_sm90.cu"
    s = stamp_steps(s, name, "dcp_attn_bwd_cluster_sm90", "      ", " hd[7] = rank;")
    s = once(s, name, "      BWD_STEP_TILES(false, 0u, rank);", "      BWD_STEP_TILES(false, 0u, rank);\n      PFV(p, 7, words[0]);")
    return once(s, name, "        dq_release(pb);\n        if (QT == 1 || prev_ok) dq_store(dq, prev_q0, prev_head);",
                "        dq_release(pb);\n        if (QT == 1 || prev_ok) dq_store(dq, prev_q0, prev_head);\n        PFS(p, 5);")


def timeline(s, name):
    """`s` (a patched kernel) with its stamps indexed by the CTA's step `gt` over all its tasks:
    no first-task condition, slot 7 the step's index in its task (bit 31: partial), header word 5
    the steps stamped so far."""
    s = once(s, name, "#define PF_ON(step) ((tid & 127) == 0 && tq == 0 && pf_sm < 132u && (step) < PF_MAXS)",
             "#define PF_ON(step) ((tid & 127) == 0 && pf_sm < 132u && (step) < PF_MAXS)")
    s = once(s, name, "PFV(p, 7, words[0]);",
             "PFV(gt, 7, (words[0] & 0x80000000u) | p);\n      PFN(gt);")
    for slot in range(7):
        s = once(s, name, f"PFS(p, {slot});", f"PFS(gt, {slot});")
    # Slot 5 of a task's first step (which has no dQ of a step before): the task loop's top, the
    # end of the previous task's epilogue, before the wait for this task's K/V.
    s = once(s, name, "    mbar_wait(kv_full, tq & 1);", "    PFS(gt, 5);\n    mbar_wait(kv_full, tq & 1);")
    # The header's step count, written at each stamped step (the header row itself is the first
    # task's, as without --timeline).
    return once(s, name, "// ---- end bwd_prof.py ----",
                "#define PFN(step) do { if (PF_ON(step)) g_pf[pf_sm][cw][PF_MAXS][5] = (step) + 1; } while (0)\n"
                "// ---- end bwd_prof.py ----")


def producer(s, name):
    """--timeline --cluster: the producer's events per task too, in a third row block of g_pf
    (g_pf[SM][2][tq][slot], thread 0 of the producer warpgroup, the CTA's first PF_MAXS tasks):
    0 the task loop's top, 1 the task's descriptors in registers (a stamp that takes the kv tile
    rows loaded from them as inputs), 3 the task's first Q/dO stage issued (after its stage
    wait), 2 K/V issued (after the wait for the consumers' kv_empty), 4 the next pair claimed
    (rank 1: received), 6 the first step's Q/dO copies issued (before its small rows)."""
    s = once(s, name, "__device__ unsigned int g_pf[132][2][PF_MAXS + 1][8];",
             "__device__ unsigned int g_pf[132][3][PF_MAXS + 1][8];")
    s = once(s, name, "// ---- end bwd_prof.py ----",
             "#define PFP(slot) do { if (pt == 0 && pf_psm < 132u && tq < PF_MAXS) g_pf[pf_psm][2][tq][slot] = pf_clk(); } "
             "while (0)\n"
             "#define PFPD(slot, dep) do { if (pt == 0 && pf_psm < 132u && tq < PF_MAXS) { unsigned int c_; \\\n"
             "  asm volatile(\"mov.u32 %0, %%clock;\" : \"=r\"(c_) : \"r\"(dep)); g_pf[pf_psm][2][tq][slot] = c_; } } while (0)\n"
             "// ---- end bwd_prof.py ----")
    s = once(s, name, "    const int pt = tid, pw = pt >> 5;\n    const u32 n_tasks = sched[2];",
             "    const int pt = tid, pw = pt >> 5;\n    const u32 pf_psm = pf_smid();\n    const u32 n_tasks = sched[2];")
    s = once(s, name, "    for (u32 tq = 0;; ++tq) {\n      u32 nxt = 0;",
             "    for (u32 tq = 0;; ++tq) {\n      PFP(0);\n      u32 nxt = 0;")
    s = once(s, name, "      BWD_TASK_MAPS\n      // K, V and the task's info, once",
             "      BWD_TASK_MAPS\n      PFPD(1, k0 ^ pk0);\n      // K, V and the task's info, once")
    s = once(s, name, "        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);\n        if (pt < 3) cp_async8_s(",
             "        if (tq >= 1) mbar_wait_guarded(kv_empty, (tq - 1) & 1);\n        PFP(2);\n        if (pt < 3) cp_async8_s(")
    s = once(s, name, "      if (n_pairs > 0) load_step(0);\n      load_kv();",
             "      if (n_pairs > 0) load_step(0);\n      PFP(3);\n      load_kv();")
    s = once(s, name, "        if (pt < SR)\n          bwd_load_row(small + s * SMALL,",
             "        if (p == 0) PFP(6);\n        if (pt < SR)\n          bwd_load_row(small + s * SMALL,")
    return once(s, name, "      // The pair index for all producer threads",
                "      PFP(4);\n      // The pair index for all producer threads")


def main():
    args = sys.argv[1:]
    bits = "--bits" in args
    cluster = "--cluster" in args
    tl = "--timeline" in args
    args = [a for a in args if a not in ("--bits", "--cluster", "--timeline")]
    if len(args) != 2 or (bits and (cluster or tl)):
        raise SystemExit("usage: bwd_prof.py [--bits | --cluster] [--timeline] SRC_DIR DST_DIR")
    src, dst = args
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))
    name = "attn_bwd_cluster_sm90.cu" if cluster else "attn_bwd_sm90.cu"
    p = os.path.join(dst, name)
    with open(p) as f:
        s = patch_cluster(f.read()) if cluster else patch(f.read(), bits)
    if tl:
        s = timeline(s, name)
        if cluster:
            s = producer(s, name)
    with open(p, "w") as f:
        f.write(s)
    what = "first steps over its tasks" if tl else "first task"
    print(f"patched {p}: per-step stamps of the CTA's {what}, {PF_MAXS} steps"
          + (" (slot 5: mask bits in registers)" if bits else ""))


if __name__ == "__main__":
    main()
