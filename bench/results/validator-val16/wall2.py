#!/usr/bin/env python3
"""wall2.py rows bin: map2 rows (bin mode topo planner budget batch plan_ms validate_ms
plan_cpu_ms validate_cpu_ms load1); per cell, with the one-thread run-ahead row (mode ahead) and
the two-thread row (mode ahead2) of the same round: the one-thread CPU ratio validate ÷ plan,
and the two-thread wall ratio (validation wall of ahead2) ÷ (planning CPU of the one-thread
process: a process that started a second thread plans slower, glibc's malloc then locks)."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 11]
b = sys.argv[2]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    if r[0] != b: continue
    g[(r[2], int(r[4]), r[3])][r[1]].append((float(r[6]), float(r[7]), float(r[8]), float(r[9]), float(r[10])))
print("| topology | tokens | planner | rounds | one thread: validate CPU ÷ plan CPU | one thread: validate wall ms | two threads: validate wall ms | two threads: validate wall ÷ plan CPU | two threads: wall ÷ one thread wall (median of pairs) | two threads: CPU ms | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for k in sorted(g, key=lambda k: ({"4x8":0,"8x8":1,"16x8":2,"32x8":3}.get(k[0],9), k[1], k[2])):
    a, t = g[k]["ahead"], g[k]["ahead2"]
    m = min(len(a), len(t))
    if m == 0: continue
    r1 = [x[3] / x[2] for x in a[:m]]
    r2 = [y[1] / x[2] for x, y in zip(a[:m], t[:m])]
    q = [y[1] / x[1] for x, y in zip(a[:m], t[:m])]
    loads = [x[4] for x in a[:m] + t[:m]]
    print(f"| {k[0]} | {k[1]//1000}K | {k[2]} | {m} | {st.median(r1):.2f} | {st.median(x[1] for x in a[:m]):.2f} | {st.median(y[1] for y in t[:m]):.2f} | {st.median(r2):.2f} | {st.median(q):.2f} | {st.median(y[3] for y in t[:m]):.2f} | {min(loads):.1f}–{max(loads):.1f} |")
