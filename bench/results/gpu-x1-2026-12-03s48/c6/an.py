#!/usr/bin/env python3
"""Session 48, call 6: warp-stall samples of the consumer step loop and of the P,dS phase, from
Nsight Compute's SASS source pages (src_cl.csv.gz: the clustered backward, src_pl.csv.gz: the
plain one, works1000 at D 64). Run from this directory: python3 an.py"""
import collections, csv, gzip, io, re

# The consumer step loop's rows in each listing (from the first step instruction to the loop's
# last barrier arrival; read off the listings).
LOOP = {"cl": (150, 5130), "pl": (150, 5010)}


def rows(name):
    r = list(csv.reader(io.TextIOWrapper(gzip.open(f"src_{name}.csv.gz"), encoding="utf-8")))
    hdr = r[1]
    H = {h: i for i, h in enumerate(hdr)}
    num = lambda v: float(v) if v not in ("", "-") else 0.0
    out = []
    for b in r[2:]:
        if len(b) == len(hdr):
            out.append((num(b[H["Warp Stall Sampling (All Samples)"]]), num(b[H["Instructions Executed"]]),
                        b[H["Source"]].strip(),
                        {h[6:]: num(b[H[h]]) for h in hdr if h.startswith("stall_") and "Not" not in h}))
    return out


for name in ("cl", "pl"):
    R = rows(name)
    lo, hi = LOOP[name]
    src = [x[2] for x in R]
    k_dv = next(k for k, s in enumerate(src) if re.search(r"HGMMA\.64x64x16\.F32\.BF16 R\d+, R\d+,", s))
    k_dep = max(k for k in range(k_dv) if "WARPGROUP.DEPBAR" in src[k])
    for title, a, b in (("step loop", lo, hi), ("P,dS (DEPBAR of S/dP .. first dV HGMMA)", k_dep, k_dv + 1)):
        st = collections.Counter()
        for x in R[a:b]:
            st.update(x[3])
        print(f"{name} {title}: {sum(x[0] for x in R[a:b]):.0f} samples of {sum(x[0] for x in R):.0f}; "
              + ", ".join(f"{k} {v:.0f}" for k, v in st.most_common(6)))
    top = sorted(range(lo, hi), key=lambda k: -R[k][3].get("long_sb", 0))[:4]
    for k in top:
        print(f"   long_sb {R[k][3]['long_sb']:6.0f} row {k} exe {R[k][1]:8.0f} {R[k][2][:60]}")
