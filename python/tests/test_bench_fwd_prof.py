"""The forward profiler's two halves, without a GPU: bench/gpu/fwd_prof.py must still patch
today's forward kernel (its patterns follow the source; a kernel change that breaks one fails
here, not on the device), and bench/gpu/fwd_prof_sum.py must read a FWD_ONE step's stamps
(slot 2's bit 31) as the `ONE:` phases."""

import array
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
GPU = ROOT / "bench" / "gpu"

MAXT, NS, NCTA = 192, 80, 132


def test_the_patcher_applies_to_todays_kernel(tmp_path):
    r = subprocess.run(
        [sys.executable, str(GPU / "fwd_prof.py"), str(ROOT / "crates" / "dcp-cuda" / "kernels"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    src = (tmp_path / "attn_fwd_sm90.cu").read_text()
    # The FWD_ONE step's flag and its slots 4-11, the plain steps' and the epilogue's stamps.
    assert "n_tiles | 0x80000000u" in src
    for slot in (4, 5, 6, 7, 8, 9, 10, 11):
        assert f"PF(1 + cw, tq, {slot});" in src, slot
    assert src.count("PFJ(0);") >= 2 and "PFC(56);" in src and "PFC(61);" in src


def write_dump(path, stamps, tasks=2):
    """One CTA at 1.73 GHz; `tasks` FWD_ONE tasks per consumer warpgroup, `stamps` = slot -> clk
    offset from the task's start."""
    raw = array.array("I", [0]) * (NCTA * MAXT * 3 * NS + NCTA * 8)
    hb = NCTA * MAXT * 3 * NS
    raw[hb + 2], raw[hb + 4], raw[hb + 6] = 1, 1_000_001, 1_730_000
    for tq in range(tasks):
        for w in (0, 1):
            o = ((0 * MAXT + tq) * 3 + 1 + w) * NS
            t0 = 1000 + 10_000 * tq + 50 * w
            for sl, d in stamps.items():
                raw[o + sl] = t0 + d
            raw[o + 2] = 2 | 0x8000_0000
    path.write_bytes(raw.tobytes())


def phase(out, name):
    line = next(l for l in out.splitlines() if l.startswith(name))
    return int(line[len(name):].split()[0])


def test_the_summary_reads_a_one_step_task(tmp_path):
    stamps = {0: 0, 1: 100, 4: 500, 5: 600, 6: 2400, 10: 4000, 11: 4100, 7: 4300, 8: 6100, 9: 6400,
              56: 6500, 57: 7000, 58: 7100, 59: 7300, 61: 7500}
    dump = tmp_path / "d.bin"
    write_dump(dump, stamps)
    r = subprocess.run([sys.executable, str(GPU / "fwd_prof_sum.py"), str(dump), "synth"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "tasks recorded 2" in out
    assert phase(out, "ONE: S of both tiles (issue + wait)") == 1800
    assert phase(out, "ONE: max, exp of tile 0, O zero") == 1600
    assert phase(out, "ONE: exp of tile 1 + its P V issue") == 1800
    assert phase(out, "ONE: P V wait") == 300
    assert phase(out, "TASK (Q wait start -> Q released)") == 7500
    # A one-step task is not read as two plain steps (no negative "pre-step" phase).
    assert "pre-step" not in out and "K/V wait" not in out
