#!/usr/bin/env python3
"""summ4.py rows: per (planner, batch) and variant (bin:mode), the median over runs of each run's
validate ÷ plan (wall, and CPU: process CPU while validating over the planning thread's CPU)."""
import sys, statistics as st, collections
g = collections.defaultdict(list)
order = []
for l in open(sys.argv[1]):
    f = l.split()
    if len(f) != 9: continue
    v = f[0] + ":" + f[1]
    if v not in order: order.append(v)
    g[(f[2], f[3], v)].append([float(x) for x in f[4:9]])
keys = sorted({k[:2] for k in g}, key=lambda k: (["ring", "zigzag", "usp", "dcp"].index(k[0]), k[1]))
print("| planner | batch | " + " | ".join(f"{v} plan ms | {v} validate ms | {v} ÷ wall | {v} ÷ CPU" for v in order) + " | runs | load |")
print("|" + "---|" * (2 + 4 * len(order) + 2))
for k in keys:
    cells, n, loads = [], 0, []
    for v in order:
        r = g.get(k + (v,), [])
        n = max(n, len(r)); loads += [x[4] for x in r]
        cells.append(f"{st.median(x[0] for x in r):.3f} | {st.median(x[1] for x in r):.3f} | {st.median(x[1]/x[0] for x in r):.2f} | **{st.median(x[3]/x[2] for x in r):.2f}**")
    print(f"| {k[0]} | {k[1]} | " + " | ".join(cells) + f" | {n} | {min(loads):.1f}–{max(loads):.1f} |")
