#!/usr/bin/env python3
"""pairms.py rows base new: bench4.sh rows; per (planner, batch) the medians of the paired
quotients new / base of the planning CPU ms and of the validation CPU ms (same round)."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 9]
base, new = sys.argv[2], sys.argv[3]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    g[(r[2], int(r[3]))][r[0] + ':' + r[1]].append((float(r[6]), float(r[7])))
print("| planner | batch | rounds | plan new / base | validate new / base |")
print("|---|---|---|---|---|")
for k in sorted(g):
    b, n = g[k][base], g[k][new]
    m = min(len(b), len(n))
    p = st.median(y[0] / x[0] for x, y in zip(b[:m], n[:m]))
    v = st.median(y[1] / x[1] for x, y in zip(b[:m], n[:m]))
    print(f"| {k[0]} | {k[1]} | {m} | {p:.3f} | {v:.3f} |")
