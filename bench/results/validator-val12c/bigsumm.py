#!/usr/bin/env python3
"""bigsumm.py rows base new: per (planner, budget, batch) the median plan / validate ms of each
binary over rounds, validate / plan, and the validation change."""
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
base, new = sys.argv[2], sys.argv[3]
keys = sorted({(r[1], int(r[2]), r[3]) for r in rows}, key=lambda k: (k[1], k[0], k[2]))
print("| planner | budget | batch | base plan | base validate | base ÷ | new plan | new validate | new ÷ | validate change | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for k in keys:
    def m(b, i):
        v = [float(r[i]) for r in rows if (r[1], int(r[2]), r[3]) == k and r[0] == b]
        return st.median(v), len(v)
    (bp, n), (bv, _), (np_, _), (nv, _) = m(base, 4), m(base, 5), m(new, 4), m(new, 5)
    f = lambda x: f"{x:.1f}" if x >= 10 else f"{x:.3f}"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {f(bp)} | {f(bv)} | {bv/bp:.2f} | {f(np_)} | {f(nv)} | **{nv/np_:.2f}** | {100*(nv/bv-1):+.1f} % | {n} |")
