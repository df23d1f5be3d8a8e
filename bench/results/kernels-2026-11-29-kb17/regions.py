#!/usr/bin/env python3
"""kb17: per-SASS stall samples of an ncu source page (csv or csv.gz) summed over address ranges.

    regions.py NCU_SRC_CSV NAME=LO-HI [NAME=LO-HI ...]     (hex offsets from the kernel's start)

Call 2's blockwise profile of da76aba's plain kernel (offline SASS from sass.py, same NVRTC 13.0:
0 opcode mismatches, src_lines.py) used: setup=0-890 header=890-14b0 steploop=14b0-c730
lastdq=c730-fa70 dqout=fa70-10180 eptr=10180-10640 red=10640-21ae0 staged=21ae0-228b0
producer=228b0-27f10.
"""
import collections, csv, gzip, io, sys

fn = sys.argv[1]
txt = (gzip.open(fn, "rt") if fn.endswith(".gz") else open(fn)).read()
rows = list(csv.reader(io.StringIO(txt[txt.find('"Address"'):])))
hdr = rows[0]
ix = {h: i for i, h in enumerate(hdr)}
st_cols = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]
R = [(a.split("=")[0], *(int(x, 16) for x in a.split("=")[1].split("-"))) for a in sys.argv[2:]]
S = collections.Counter(); E = collections.Counter(); ST = collections.defaultdict(collections.Counter)
base = None; tot = 0
for r in rows[1:]:
    if len(r) < len(hdr):
        continue
    try:
        a = int(r[ix["Address"]], 16)
    except ValueError:
        continue
    base = a if base is None else base
    off = a - base
    s = int(r[ix["Warp Stall Sampling (All Samples)"]] or 0)
    tot += s
    for name, lo, hi in R:
        if lo <= off < hi:
            S[name] += s
            E[name] += int(r[ix["Instructions Executed"]] or 0)
            for c in st_cols:
                ST[name][c[6:]] += int(r[ix[c]] or 0)
print("total samples", tot)
for name, lo, hi in R:
    top = " ".join(f"{k}:{v}" for k, v in ST[name].most_common(4) if v)
    print(f"{name:10s} {S[name]:7d} {S[name] / max(tot, 1) * 100:5.1f}%  warp-instr={E[name]:10d} | {top}")
