"""The backward profiler's two halves, without a GPU: bench/gpu/bwd_prof.py must still patch
today's backward kernel (a kernel change that breaks one of its patterns fails here, not on the
device), and bench/gpu/bwd_prof_sum.py must split a dump's steps into partial and full tiles with
the right phase lengths."""

import array
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
GPU = ROOT / "bench" / "gpu"
NCTA, NWG, MAXS, NSLOT = 132, 2, 64, 8


def run_patcher(*args):
    """bench/gpu/bwd_prof.py with `args` (flags, then the source and destination folders)."""
    return subprocess.run([sys.executable, str(GPU / "bwd_prof.py"), *map(str, args)], capture_output=True, text=True)


class Dump:
    """A synthetic dump (u32 [132][nwg][MAXS + 1][8], zeros) that bwd_prof_sum.py reads; nwg 3:
    with the producer's rows of `bwd_prof.py --timeline --cluster`."""

    def __init__(self, nwg=NWG):
        self.nwg = nwg
        self.raw = array.array("I", [0]) * (NCTA * nwg * (MAXS + 1) * NSLOT)

    def put(self, sm, w, step, slot, v):
        self.raw[((sm * self.nwg + w) * (MAXS + 1) + step) * NSLOT + slot] = v & 0xFFFFFFFF

    def summarise(self, path, *flags):
        """Writes the dump to `path` and runs bwd_prof_sum.py on it with `flags`."""
        path.write_bytes(self.raw.tobytes())
        return subprocess.run([sys.executable, str(GPU / "bwd_prof_sum.py"), *flags, str(path)], capture_output=True,
                              text=True)


def test_the_patcher_applies_to_todays_kernel(tmp_path):
    r = run_patcher(ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path)
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "attn_bwd_sm90.cu").read_text()
    for slot in range(7):
        assert f"PFS(p, {slot});" in src, slot
    assert "PFV(p, 7, words[0]);" in src and "__device__ unsigned int g_pf[132][2][PF_MAXS + 1][8];" in src
    assert 'asm volatile("mov.u32 %0, %%clock;"' in src


def test_the_summary_splits_partial_and_full_steps(tmp_path):
    dump = Dump()
    put = dump.put

    # SM 3: a full list, 2 000-clk steps; SM 7: a partial (masked) list, 3 000-clk steps whose
    # softmax phase is 1 000 clk longer. Clocks start near the 32-bit wrap on SM 7.
    for sm, step_clk, extra, partial, t0 in ((3, 2000, 0, False, 1000), (7, 3000, 1000, True, 2**32 - 5000)):
        for w in range(NWG):
            put(sm, w, MAXS, 0, sm + 1)
            put(sm, w, MAXS, 2, sm)
            put(sm, w, MAXS, 5, 10)
            for s in range(10):
                t = t0 + s * step_clk
                marks = [0, 100, 700, 1100 + extra, 1300 + extra, 1800 + extra, 1900 + extra]
                for slot, m in enumerate(marks):
                    put(sm, w, s, slot, t + m)
                put(sm, w, s, 7, (1 << 31 if partial else 0) | s)
    r = dump.summarise(tmp_path / "pf_1_0.bin")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    part = out[out.index("partial-tile steps"):out.index("full-tile steps")]
    full = out[out.index("full-tile steps"):]
    assert "partial-tile steps: 16 steps" in out and "full-tile steps: 16 steps" in out
    assert "P,dS+dV        1400 clk" in part and "P,dS+dV         400 clk" in full
    assert "step           3000 clk" in part and "step           2000 clk" in full
    assert out.index("SM   7") < out.index("SM   3"), "slowest CTA first"


def test_bits_mode_stamps_the_mask_bits_and_sums_them(tmp_path):
    # Session 37: slot 5 becomes the clock once the mask bits are in registers.
    r = run_patcher("--bits", ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "k" / "attn_bwd_sm90.cu").read_text()
    assert "tile_bits();\n        PFD(p, 5, pbits[0]);\n        wg_wait<0>();" in src
    assert "PFS(p, 5);" not in src
    bad = run_patcher("--bits", "only-one")
    assert bad.returncode != 0 and "usage" in bad.stderr

    dump = Dump()
    put = dump.put

    # SM 5: partial steps reaching their bits 3 000 clk after the stage lands, SM 9: full, 500.
    for sm, to_bits, partial in ((5, 3000, True), (9, 500, False)):
        for w in range(NWG):
            put(sm, w, MAXS, 0, sm + 1)
            put(sm, w, MAXS, 5, 8)
            for s in range(8):
                t = 10_000 * s
                for slot, m in enumerate([0, 100, to_bits + 150, to_bits + 600, to_bits + 800, to_bits + 100,
                                          to_bits + 2000]):
                    put(sm, w, s, slot, t + m)
                put(sm, w, s, 7, (1 << 31) if partial else 0)
    r = dump.summarise(tmp_path / "pf_2_0.bin", "--bits")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    part = out[out.index("partial-tile steps"):out.index("full-tile steps")]
    full = out[out.index("full-tile steps"):]
    assert "to bits        3000 clk" in part and "to bits         500 clk" in full
    assert "dQ+end         1200 clk" in part and "dQ prev" not in out


def test_cluster_mode_patches_the_clustered_kernel(tmp_path):
    # Session 41: the same stamps in attn_bwd_cluster_sm90.cu (the main kernel left as it is).
    r = run_patcher("--cluster", ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "k" / "attn_bwd_cluster_sm90.cu").read_text()
    for slot in range(7):
        assert src.count(f"PFS(p, {slot});") == 1, slot
    assert "PFV(p, 7, words[0]);" in src and "hd[7] = rank;" in src
    assert "g_pf" not in (tmp_path / "k" / "attn_bwd_sm90.cu").read_text()
    both = run_patcher("--bits", "--cluster", "a", "b")
    assert both.returncode != 0 and "usage" in both.stderr


def test_timeline_mode_follows_a_cta_over_its_tasks(tmp_path):
    # Session 48: --timeline stamps by the CTA's step over all its tasks (no first-task
    # condition), slot 7 the step's index in its task, header word 5 the steps stamped.
    for flags, name in ((["--cluster", "--timeline"], "attn_bwd_cluster_sm90.cu"), (["--timeline"], "attn_bwd_sm90.cu")):
        r = run_patcher(*flags, ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path / name)
        assert r.returncode == 0, r.stderr
        src = (tmp_path / name / name).read_text()
        for slot in range(7):
            assert src.count(f"PFS(gt, {slot});") == (2 if slot == 5 else 1), (name, slot)
        assert "PFS(p," not in src and "PFV(gt, 7, (words[0] & 0x80000000u) | p);" in src
        assert "#define PF_ON(step) ((tid & 127) == 0 && pf_sm < 132u && (step) < PF_MAXS)" in src
        assert "[PF_MAXS][5] = (step) + 1;" in src and "PFN(gt);" in src
        assert "    PFS(gt, 5);\n    mbar_wait(kv_full, tq & 1);" in src
    bad = run_patcher("--bits", "--timeline", "a", "b")
    assert bad.returncode != 0 and "usage" in bad.stderr

    dump = Dump()
    put = dump.put

    # One CTA (SM 4), both warpgroups: 5 tasks of 8 steps, 2 000 clk between steps inside a task
    # and 3 000 across a boundary; the first task (the fill) is slower and must be left out.
    # Stale stamps past the 40 recorded steps must be ignored (header word 5 = 40).
    for w in range(NWG):
        put(4, w, MAXS, 0, 5)
        put(4, w, MAXS, 5, 40)
        t = 2**32 - 30_000
        for g in range(40):
            p = g % 8
            for slot, m in enumerate([0, 100, 600, 1000, 1200, 1500, 1900]):
                put(4, w, g, slot, t + m)
            if p == 0:  # the task loop's top: 1 000 clk after the last step's end, 100 before this one
                put(4, w, g, 5, t - 100)
            put(4, w, g, 7, p)
            t += (9000 if g < 8 else 3000) if p == 7 else (5000 if g < 8 else 2000)
        for g in range(40, MAXS):
            put(4, w, g, 0, 123)
            put(4, w, g, 7, 0)
    r = dump.summarise(tmp_path / "pf_3_0.bin", "--timeline")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "timeline: 2 warpgroups, 64 steps" in out, out
    assert "step inside a task         2000 clk (56 periods)" in out, out
    assert "step across a boundary     3000 clk (6 periods)" in out, out
    assert "task span                 17000 clk (8.0 steps, 6 whole tasks)" in out, out
    assert "boundary extra             1000 clk per task, 5.9 % of the span" in out, out
    assert "first step of a task: 8 steps; wait 100, S+dP 500" in out, out
    # the last step's end (t + 1 900) to the top (next t - 100): 3 000 - 2 000 = 1 000 clk
    assert "(last dQ, dK/dV epilogue) 1000 clk, then to its first step (K/V wait, set-up) 100 clk" in out, out
    both = dump.summarise(tmp_path / "pf_3_1.bin", "--bits", "--timeline")
    assert both.returncode != 0 and "different dumps" in both.stderr


def test_timeline_cluster_mode_stamps_the_producer_and_sets_it_against_the_consumers(tmp_path):
    # Session 48: --timeline --cluster also stamps the producer's events per task (g_pf grows a
    # third row block, w 2); the summary gives them in clocks from the end of the task before's
    # last step.
    r = run_patcher("--cluster", "--timeline", ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path / "k")
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "k" / "attn_bwd_cluster_sm90.cu").read_text()
    assert "__device__ unsigned int g_pf[132][3][PF_MAXS + 1][8];" in src
    for stamp in ("PFP(0);", "PFPD(1, k0 ^ pk0);", "PFP(2);", "PFP(3);", "PFP(4);", "PFP(6);"):
        assert src.count(stamp) == 1, stamp
    assert 'asm volatile("mov.u32 %0, %%clock;" : "=r"(c_) : "r"(dep));' in src
    plain = run_patcher("--timeline", ROOT / "crates" / "dcp-cuda" / "kernels", tmp_path / "p")
    assert "PFP(" not in (tmp_path / "p" / "attn_bwd_sm90.cu").read_text()
    assert plain.returncode == 0

    dump = Dump(nwg=3)
    put = dump.put
    # SM 9: 4 tasks of 8 steps, 2 000 clk apart inside a task, 3 000 across; a task's last step
    # ends 1 900 clk after its top. Producer, for task k >= 1, against the end E of task k - 1's
    # last step: claimed (row k - 1, slot 4) E - 6 000, loop top E - 5 000, descriptors E - 4 000,
    # first stage E - 3 000, K/V issued E + 200; the consumers' task top E + 900 (slot 5 of the
    # task's first step), its first step E + 1 100.
    for w in range(NWG):
        put(9, w, MAXS, 0, 10)
        put(9, w, MAXS, 5, 32)
    t = 100_000
    ends = []
    for g in range(32):
        p = g % 8
        for w in range(NWG):
            for slot, m in enumerate([0, 100, 600, 1000, 1200, 1500, 1900]):
                put(9, w, g, slot, t + m)
            put(9, w, g, 7, p)
        if p == 7:
            ends.append(t + 1900)
        t += 3000 if p == 7 else 2000
    for k in range(1, 4):
        e = ends[k - 1]
        for w in range(NWG):
            put(9, w, 8 * k, 5, e + 900)
        put(9, 2, k - 1, 4, e - 6000)
        for slot, m in ((0, -5000), (1, -4000), (3, -3000), (2, 200)):
            put(9, 2, k, slot, e + m)
        if k < 3:  # session 49: the first Q/dO copies (slot 6), stamped for two tasks of three
            put(9, 2, k, 6, e - 3500 - 1000 * k)
    put(9, 2, 0, 0, 5)  # task 0's row (no task before it: not summed)
    r = dump.summarise(tmp_path / "pf_4_0.bin", "--timeline")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "producer, clk from the end of the task before's last step (3 tasks):" in out, out
    for name, v in (("next pair claimed", "-6000"), ("producer loop top", "-5000"), ("descriptors loaded", "-4000"),
                    ("first Q/dO stage issued", "-3000"), ("first Q/dO copies issued", "-5000"),
                    ("K/V issued (kv_empty seen)", "+200"),
                    ("consumers' task top", "+900"), ("consumers' first step top", "+1100")):
        assert f"  {name:28} {v:>8}" in out, (name, out)
