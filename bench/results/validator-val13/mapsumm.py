#!/usr/bin/env python3
"""mapsumm.py rows [bin]: per (topology, budget, planner) and mode, the median over rounds of
plan / validate wall ms and CPU ms; ratios validate ÷ plan by CPU (single-threaded modes: the
planning thread's CPU against the process's CPU while validating) and by wall."""
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
keys = sorted({k[:3] for k in g}, key=lambda k: (topo_order.get(k[0], 9), k[1], pl_order.get(k[2], 9)))
hdr = "| topology | tokens | planner | plan ms (CPU) |" + "".join(f" {m} validate ms (CPU) | {m} ÷ |" for m in modes) + " runs | load |"
print(hdr); print("|" + "---|" * (hdr.count("|") - 1))
for k in keys:
    line = f"| {k[0]} | {k[1]//1000}K | {k[2]} |"
    plan = [v[0] for m in modes for v in g.get(k + (m,), [])]
    pcpu = [v[2] for m in modes if m in ("seq", "ahead") for v in g.get(k + (m,), [])]
    pc = st.median(pcpu) if pcpu else float("nan")
    line += f" {st.median(plan):.2f} ({pc:.2f}) |"
    loads = []
    n = 0
    for m in modes:
        v = g.get(k + (m,), [])
        if not v:
            line += " – | – |"; continue
        n = max(n, len(v))
        vw = st.median(x[1] for x in v); vc = st.median(x[3] for x in v)
        loads += [x[4] for x in v]
        if m in ("seq", "ahead"):
            line += f" {vw:.2f} ({vc:.2f}) | **{vc/pc:.2f}** |"
        else:
            pw = st.median(x[0] for x in v)
            line += f" {vw:.2f} | {vw/st.median(plan):.2f} (wall) |"
    line += f" {n} | {min(loads):.1f}–{max(loads):.1f} |"
    print(line)
