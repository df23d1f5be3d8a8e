#!/usr/bin/env python3
"""pair.py rows base new [mode]: per (topology, budget, planner), the i-th run of `new` paired
with the i-th run of `base` (same round, alternated): median over rounds of new ÷ base of the
per-run ratio validate ÷ plan (CPU), and of validation CPU; with both medians."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and len(l.split()) == 11]
base, new = sys.argv[2], sys.argv[3]
mode = sys.argv[4] if len(sys.argv) > 4 else None
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    if mode and r[1] != mode: continue
    g[(r[2], int(r[4]), r[3], r[1])][r[0]].append((float(r[8]), float(r[9]), float(r[10])))
print("| topology | tokens | planner | mode | rounds | base ÷ | new ÷ | new ÷ / base ÷ (median of pairs) | validation CPU new / base | load |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(g, key=lambda k: ({"4x8":0,"8x8":1,"16x8":2,"32x8":3}.get(k[0],9), k[1], k[2])):
    b, n = g[k][base], g[k][new]
    m = min(len(b), len(n))
    if m == 0: continue
    rb = [v/p for p, v, _ in b[:m]]; rn = [v/p for p, v, _ in n[:m]]
    pr = st.median(y/x for x, y in zip(rb, rn))
    vr = st.median(y[1]/x[1] for x, y in zip(b[:m], n[:m]))
    loads = [x[2] for x in b[:m] + n[:m]]
    print(f"| {k[0]} | {k[1]//1000}K | {k[2]} | {k[3]} | {m} | {st.median(rb):.2f} | {st.median(rn):.2f} | {pr:.3f} | {vr:.3f} | {min(loads):.1f}–{max(loads):.1f} |")
