#!/usr/bin/env python3
"""pair4.py rows base new: bench4.sh rows (bin mode planner batch plan_ms validate_ms plan_cpu
validate_cpu load); per (planner, batch), the i-th run of new paired with the i-th of base (same
round): medians of base ÷, new ÷ (validate CPU ÷ plan CPU) and of the paired quotient."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 9]
base, new = sys.argv[2], sys.argv[3]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    g[(r[2], int(r[3]))][r[0] + ':' + r[1]].append((float(r[6]), float(r[7]), float(r[8])))
print("| planner | batch | rounds | base ÷ | new ÷ | new ÷ / base ÷ (median of pairs) | load |")
print("|---|---|---|---|---|---|---|")
for k in sorted(g):
    b, n = g[k][base], g[k][new]
    m = min(len(b), len(n))
    if m == 0: continue
    rb = [v / p for p, v, _ in b[:m]]; rn = [v / p for p, v, _ in n[:m]]
    pr = st.median(y / x for x, y in zip(rb, rn))
    loads = [x[2] for x in b[:m] + n[:m]]
    print(f"| {k[0]} | {k[1]} | {m} | {st.median(rb):.3f} | {st.median(rn):.3f} | {pr:.3f} | {min(loads):.1f}–{max(loads):.1f} |")
