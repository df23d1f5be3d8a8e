#!/usr/bin/env python3
"""Compare two `bench_dcp` JSONL outputs (before, after): per (group, preset) mean cost,
geo-mean cost ratio after/before, mean / max ms, feasibility. Usage: cmp2d.py BEFORE AFTER"""
import json
import math
import sys
from collections import defaultdict


def load(p):
    out = {}
    for line in open(p):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            out[(r["instance"], r["preset"])] = r
    return out


b, a = load(sys.argv[1]), load(sys.argv[2])
groups = defaultdict(list)
for key in a:
    if key in b:
        groups[(key[1], key[0].split("/")[0])].append(key)
order = {"Fast": 0, "Default": 1, "Quality": 2}
print("| instances | preset | mean cost before (MB) | after (MB) | after/before (geo-mean) | ms before (mean / max) | ms after (mean / max) | caps respected |")
print("|---|---|---|---|---|---|---|---|")
allr = defaultdict(list)
for (p, g) in sorted(groups, key=lambda x: (order.get(x[0], 9), x[1])):
    ks = groups[(p, g)]
    if any("cost" not in b[k] or "cost" not in a[k] for k in ks):
        print(f"| {g} | {p} | error |")
        continue
    cb = sum(b[k]["cost"] for k in ks) / len(ks) / 1e6
    ca = sum(a[k]["cost"] for k in ks) / len(ks) / 1e6
    lr = [math.log(a[k]["cost"] / b[k]["cost"]) for k in ks]
    allr[p] += lr
    gm = math.exp(sum(lr) / len(lr))
    mb = [b[k]["ms"] for k in ks]
    ma = [a[k]["ms"] for k in ks]
    feas = all(a[k]["feasible"] for k in ks)
    print(f"| {g} | {p} | {cb:.0f} | {ca:.0f} | **{gm:.3f}** | {sum(mb)/len(mb):.1f} / {max(mb):.1f} | {sum(ma)/len(ma):.1f} / {max(ma):.1f} | {feas} |")
for p, lr in sorted(allr.items(), key=lambda x: order.get(x[0], 9)):
    print(f"ALL {p}: geo-mean after/before {math.exp(sum(lr) / len(lr)):.3f}")
