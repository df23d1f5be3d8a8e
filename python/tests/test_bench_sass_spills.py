"""bench/gpu/sass_spills.py without a GPU or nvdisasm: a synthetic `nvdisasm -c
--print-line-info` listing against a synthetic kernel source, so that the line mapping, the
start marker, the STL / LDL match and the wgmma count by shape are checked."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / "bench" / "gpu" / "sass_spills.py"

SASS = """\
        .text.dcp_attn_fwd_sm90:
        //## File "/x/attn_fwd_sm90", line 2
        /*0000*/                   LDL R0, [R1] ;
        //## File "/x/attn_fwd_sm90", line 5
        /*0010*/                   STL [R1+0x4], R2 ;
        /*0020*/                   FMUL R3, R3, R4 ;
        //## File "/x/attn_fwd_sm90", line 6
        /*0030*/              @!P0 LDL.LU R5, [R1+0x4] ;
        /*0040*/                   LDS R6, [R7] ;
        //## File "/x/attn_fwd_sm90", line 3
        /*0048*/                   STL [R1+0x8], R9 ;
        //## File "/x/attn_fwd_sm90", line 6
        /*0050*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8].tnspB, R24 ;
        /*0060*/                   HGMMA.64x128x16.F32.BF16 R24, gdesc[UR12].tnspB, R24, gsb0 ;
        /*0070*/                   HGMMA.64x64x16.F32.BF16 R88, gdesc[UR16], RZ, !UPT ;
"""


def kernels(tmp_path):
    # attn_fwd_sm90 is common.cuh + mma.cuh + sm90.cuh + attn_fwd_sm90.cu: one line each before.
    tmp_path.mkdir()
    for name in ("common.cuh", "mma.cuh", "sm90.cuh"):
        (tmp_path / name).write_text(f"// {name}\n")
    (tmp_path / "attn_fwd_sm90.cu").write_text("// head\n// ---- consumers\nx = 1;\ny = 2;\n")
    return tmp_path


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True)


def test_counts_spills_from_the_marker_on(tmp_path):
    k = kernels(tmp_path / "k")
    (tmp_path / "k.sass").write_text(SASS)
    # Concatenated: lines 1-3 the headers, 4 "// head", 5 the marker, 6 "x = 1;".
    r = run(tmp_path / "k.sass", "attn_fwd_sm90", "--kernels", k, "--from", "---- consumers", "-v")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    # The STL at 0x48 carries a header's line (3, inlined) but lies inside the marker's code;
    # the LDL at 0x0 (line 2) lies before it.
    assert out[-2] == "3 spill instructions (STL/LDL) in the code of line 5 on, of 9 instructions"
    # The wgmmas by shape: what a timing-only ablation must leave as it was.
    assert out[-1] == "wgmma: 2 HGMMA.64x128x16.F32.BF16, 1 HGMMA.64x64x16.F32.BF16"
    assert out[0].startswith("0x00010 STL [R1+0x4], R2") and out[0].endswith("line 5: // ---- consumers")
    assert out[1].startswith("0x00030 @!P0 LDL.LU R5, [R1+0x4]") and out[1].endswith("line 6: x = 1;")
    assert out[2].startswith("0x00048 STL [R1+0x8], R9") and out[2].endswith("line 3: // sm90.cuh")


def test_bad_input_names_the_problem(tmp_path):
    k = kernels(tmp_path / "k")
    (tmp_path / "k.sass").write_text(SASS)
    r = run(tmp_path / "k.sass", "attn_fwd_sm90", "--kernels", k, "--from", "no such line")
    assert r.returncode != 0 and "no line of attn_fwd_sm90's source contains 'no such line'" in r.stderr
    r = run(tmp_path / "k.sass", "nope", "--kernels", k)
    assert r.returncode != 0 and "unknown kernel 'nope'" in r.stderr
    (tmp_path / "empty.sass").write_text("nothing here\n")
    r = run(tmp_path / "empty.sass", "attn_fwd_sm90", "--kernels", k, "--from", "head")
    assert r.returncode != 0 and "no instructions" in r.stderr
