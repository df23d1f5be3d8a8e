#!/usr/bin/env python3
"""pairmap.py rows base new: map2.sh rows ("bin mode topo planner budget batch plan_ms validate_ms
plan_cpu_ms validate_cpu_ms load1"); per (topology, planner) the medians of the paired quotients
new / base (same round) of the validation CPU ms and of the planning CPU ms, and the medians of
each binary's validate / plan CPU ratio."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 11]
base, new = sys.argv[2], sys.argv[3]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    g[(r[2], r[3])][r[0]].append((float(r[8]), float(r[9]), float(r[10])))
print("| topology | planner | rounds | load | base ÷ | new ÷ | validate new / base | plan new / base | ÷ new / base |")
print("|---|---|---|---|---|---|---|---|---|")
key = lambda k: (int(k[0].split('x')[0]), k[1])
for k in sorted(g, key=key):
    b, n = g[k][base], g[k][new]
    m = min(len(b), len(n))
    if m == 0: continue
    v = st.median(y[1] / x[1] for x, y in zip(b[:m], n[:m]))
    p = st.median(y[0] / x[0] for x, y in zip(b[:m], n[:m]))
    q = st.median((y[1] / y[0]) / (x[1] / x[0]) for x, y in zip(b[:m], n[:m]))
    rb = st.median(x[1] / x[0] for x in b[:m]); rn = st.median(y[1] / y[0] for y in n[:m])
    L = [x[2] for x in b[:m] + n[:m]]
    print(f"| {k[0]} | {k[1]} | {m} | {min(L):.1f}–{max(L):.1f} | {rb:.2f} | {rn:.2f} | {v:.3f} | {p:.3f} | {q:.3f} |")
