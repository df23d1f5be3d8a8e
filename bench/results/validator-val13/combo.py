#!/usr/bin/env python3
"""combo.py final_map.txt: one table of base (v13_base) and new (v13_b) from the alternated
final map: per-run ratio medians (single-threaded by CPU, 2-thread by wall), ≤ 1.0 in bold."""
import sys, statistics as st, collections
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 11]
g = collections.defaultdict(list)
for r in rows:
    g[(r[0], r[1], r[2], int(r[4]), r[3])].append([float(x) for x in r[6:11]])
def ratio(b, m, k):
    v = g.get((b, m) + k, [])
    if not v: return None
    if m in ("seq", "ahead"):
        return st.median(x[3] / x[2] for x in v)
    return st.median(x[1] / x[0] for x in v)
def val(b, m, k):
    v = g.get((b, m) + k, [])
    return st.median(x[3] for x in v) if v else None
to = {"4x8": 0, "8x8": 1, "16x8": 2, "32x8": 3}; po = {"ring": 0, "zigzag": 1, "usp": 2, "dcp": 3}
keys = sorted({k[2:] for k in g}, key=lambda k: (to[k[0]], k[1], po[k[2]]))
f = lambda x: "–" if x is None else (f"**{x:.2f}**" if x <= 1.0 else f"{x:.2f}")
print("| topology | tokens | planner | base seq ÷ (CPU) | new seq ÷ (CPU) | new ahead ÷ (CPU) | base auto2 ÷ (wall) | base phases2 ÷ (wall) | new auto2 ÷ (wall) | new phases2 ÷ (wall) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for k in keys:
    bs, ns, na = ratio("v13_base", "seq", k), ratio("v13_b", "seq", k), ratio("v13_b", "ahead", k)
    vb, va = val("v13_base", "seq", k), val("v13_b", "ahead", k)
    ch = f"{100*(va/vb-1):+.0f} %" if vb and va else "–"
    print(f"| {k[0]} | {k[1]//1000}K | {k[2]} | {f(bs)} | {f(ns)} | {f(na)} | {f(ratio('v13_base','auto2',k))} | {f(ratio('v13_base','phases2',k))} | {f(ratio('v13_b','auto2',k))} | {f(ratio('v13_b','phases2',k))} |")
