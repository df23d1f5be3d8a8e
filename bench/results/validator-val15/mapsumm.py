#!/usr/bin/env python3
"""mapsumm.py rows [bin]: per (topology, budget, planner) and mode, the median over runs of the
per-run ratio validate ÷ plan (the bench interleaves planning and validation in one process, so
a run's ratio is steadier than its absolute times under the VM's load). Single-threaded modes
(seq, ahead): CPU (validation's process CPU against planning's thread CPU); 2-thread modes: wall
against the same run's planning wall (planning then runs in a process with a pool: glibc's
locked malloc). Also the median validation CPU ms (wall for 2-thread modes)."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and len(l.split()) == 11]
if len(sys.argv) > 2:
    rows = [r for r in rows if r[0] == sys.argv[2]]
topo_order = {"4x8": 0, "8x8": 1, "16x8": 2, "32x8": 3}
pl_order = {"ring": 0, "zigzag": 1, "usp": 2, "dcp": 3}
g = collections.defaultdict(list)
for r in rows:
    g[(r[2], int(r[4]), r[3], r[1])].append([float(x) for x in r[6:11]])
modes = []
for k in g:
    if k[3] not in modes: modes.append(k[3])
one = lambda m: m in ("seq", "ahead", "flow1")
keys = sorted({k[:3] for k in g}, key=lambda k: (topo_order.get(k[0], 9), k[1], pl_order.get(k[2], 9)))
hdr = "| topology | tokens | planner | plan CPU ms |" + "".join(f" {m} {'CPU' if one(m) else 'wall'} ms | {m} ÷ |" for m in modes) + " runs | load |"
print(hdr); print("|" + "---|" * (hdr.count("|") - 1))
for k in keys:
    pcpu = [v[2] for m in modes if one(m) for v in g.get(k + (m,), [])]
    line = f"| {k[0]} | {k[1]//1000}K | {k[2]} | {st.median(pcpu) if pcpu else float('nan'):.2f} |"
    loads, n = [], 0
    for m in modes:
        v = g.get(k + (m,), [])
        if not v:
            line += " – | – |"; continue
        n = max(n, len(v)); loads += [x[4] for x in v]
        if one(m):
            line += f" {st.median(x[3] for x in v):.2f} | **{st.median(x[3]/x[2] for x in v):.2f}** |"
        else:
            line += f" {st.median(x[1] for x in v):.2f} | {st.median(x[1]/x[0] for x in v):.2f} |"
    line += f" {n} | {min(loads):.1f}–{max(loads):.1f} |"
    print(line)
