#!/usr/bin/env python3
"""wall4.py rows bin: bench4.sh rows; per (planner, batch), the bin's one-thread run-ahead run
(mode ahead) and its two-thread run (mode ahead2) of the same round: one-thread CPU ratio, and
the two-thread validation wall ÷ the one-thread process's planning CPU, and ÷ its validation wall."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 9]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    if r[0] != sys.argv[2]: continue
    g[(r[2], int(r[3]))][r[1]].append([float(x) for x in r[4:9]])
print("| planner | batch | rounds | one thread CPU ÷ | two threads wall ÷ plan CPU | two threads wall ÷ one thread wall | load |")
print("|---|---|---|---|---|---|---|")
for k in sorted(g):
    a, t = g[k]["ahead"], g[k]["ahead2"]
    m = min(len(a), len(t))
    if m == 0: continue
    print(f"| {k[0]} | {k[1]} | {m} | {st.median(x[3]/x[2] for x in a[:m]):.2f} | {st.median(y[1]/x[2] for x, y in zip(a[:m], t[:m])):.2f} | {st.median(y[1]/x[1] for x, y in zip(a[:m], t[:m])):.2f} | {min(x[4] for x in a[:m]+t[:m]):.1f}–{max(x[4] for x in a[:m]+t[:m]):.1f} |")
