#!/usr/bin/env python3
"""Local-memory spills of a kernel's SASS, by the source line they come from (no GPU needed).

    NVRTC_CUBIN_DIR=DIR python3 bench/gpu/nvrtc_check.py LIBNVRTC INCLUDE sm_90a -DHEAD_DIM=128 ...
    nvdisasm -c --print-line-info DIR/attn_bwd_cluster_sm90.cubin > K.sass
    python3 bench/gpu/sass_spills.py K.sass attn_bwd_cluster_sm90 [--kernels DIR] [--from TEXT] [--to TEXT] [-v]

Prints the number of STL / LDL instructions in the code from the first line containing the --from
TEXT (default: the backward kernels' consumer branch, "---------------- consumers") to the first
line after it containing the --to TEXT (default "}  // consumers", the clustered backward's; where
no line has it, the end): from the first to the last instruction whose source line is in that
span, helpers inlined from headers included, in the source as NVRTC compiled it (the files nvrtc_check.py concatenates for that kernel, from
--kernels, default this tree's), and with -v each one with its innermost line; then the kernel's
wgmma instructions (HGMMA) by shape. Compare those before trusting a timing-only ablation: in
session 47 a switch that dropped the clustered backward's dK/dV output let ptxas delete the dK and
dV wgmmas (12 HGMMA.64x128x16 at D 128 gone), so its "gain" was two of the five GEMMs.
"""

import argparse
import os
import re
import sys

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates", "dcp-cuda", "kernels")
# The files of each kernel's NVRTC source, in nvrtc_check.py's (and the executor's) order.
SOURCES = {
    "util": ["common.cuh", "util.cu"],
    "attn_fwd": ["common.cuh", "mma.cuh", "attn_fwd.cu"],
    "attn_bwd": ["common.cuh", "mma.cuh", "attn_bwd.cu"],
    "attn_fwd_sm90": ["common.cuh", "mma.cuh", "sm90.cuh", "attn_fwd_sm90.cu"],
    "attn_bwd_sm90": ["common.cuh", "mma.cuh", "sm90.cuh", "bwd_sm90.cuh", "attn_bwd_sm90.cu"],
    "attn_bwd_cluster_sm90": ["common.cuh", "mma.cuh", "sm90.cuh", "bwd_sm90.cuh", "attn_bwd_cluster_sm90.cu"],
}
LINE = re.compile(r'//## File "')  # a line-info comment; its `line N` numbers, innermost first
INLINED = re.compile(r'line (\d+)')
INSN = re.compile(r"^\s+/\*([0-9a-f]+)\*/\s+(.*?)\s*;")


def source_lines(kernel, kdir):
    if kernel not in SOURCES:
        raise SystemExit(f"sass_spills.py: unknown kernel {kernel!r} (one of {', '.join(SOURCES)})")
    text = "".join(open(os.path.join(kdir, f)).read() for f in SOURCES[kernel])
    return text.replace("#pragma once", "").split("\n")


def instructions(sass_text):
    """(address, instruction, [innermost line, ..., outermost line]) in address order."""
    cur, out = [], []
    for line in sass_text.split("\n"):
        if LINE.search(line):
            cur = [int(x) for x in INLINED.findall(line)]
            continue
        m = INSN.match(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2), list(cur)))
    return out


def spills(insns, first_line, last_line=None):
    """The STL / LDL between the first and the last instruction whose line is from `first_line` to
    `last_line` (None: the end), whatever their own line: nvdisasm names only the innermost line,
    so a spill in a helper inlined from a header (bwd_sm90.cuh's bwd_probs_fast, say) carries the
    header's line, before the marker (session 48: the clustered backward's ten spills of its P,dS
    phase at D 64 were missed that way). The end bounds the range where code after the branch
    (the kernel's closing cluster barrier) is laid out after another branch's code."""
    inside = [a for a, _, c in insns if c and c[-1] >= first_line and (last_line is None or c[-1] <= last_line)]
    if not inside:
        return []
    lo, hi = min(inside), max(inside)
    return [(a, ins, c) for a, ins, c in insns if re.match(r"(@!?U?P\w+\s+)?(STL|LDL)\b", ins) and lo <= a <= hi]


def hgmma_summary(insns):
    """The HGMMA instructions by shape and types, e.g. '12 HGMMA.64x128x16.F32.BF16, ...'."""
    shapes = {}
    for _, ins, _ in insns:
        m = re.search(r"\bHGMMA\.[0-9A-Zx.]+", ins)
        if m:
            key = m.group(0).rstrip(".")
            shapes[key] = shapes.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(shapes.items())) or "none"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sass")
    ap.add_argument("kernel")
    ap.add_argument("--kernels", default=KERNELS)
    ap.add_argument("--from", dest="start", default="---------------- consumers")
    ap.add_argument("--to", dest="end", default="}  // consumers",
                    help="the branch's last line (default: the clustered backward's; not found: the end)")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args(argv)
    lines = source_lines(a.kernel, a.kernels)
    first = next((i for i, l in enumerate(lines, 1) if a.start in l), None)
    if first is None:
        raise SystemExit(f"sass_spills.py: no line of {a.kernel}'s source contains {a.start!r}")
    last = next((i for i, l in enumerate(lines, 1) if i > first and a.end and a.end in l), None)
    insns = instructions(open(a.sass).read())
    if not insns:
        raise SystemExit(f"sass_spills.py: no instructions in {a.sass} (nvdisasm -c --print-line-info output?)")
    found = spills(insns, first, last)
    if a.v:
        for addr, ins, c in found:
            print(f"{addr:#07x} {ins:<32} | line {c[0]}: {lines[c[0] - 1].strip()[:70]}")
    span = f"lines {first}-{last}" if last else f"line {first} on"
    print(f"{len(found)} spill instructions (STL/LDL) in the code of {span}, of {len(insns)} instructions")
    print("wgmma:", hgmma_summary(insns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
