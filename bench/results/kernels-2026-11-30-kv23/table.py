#!/usr/bin/env python3
"""kbw11 (copied by kbw11c): forward TFLOP/s per variant and shape (mean of runs, ratio to base) from a call's kb_*.jsonl.

    table.py DIR [D]
"""
import collections, glob, json, re, sys

R = sys.argv[1]
BASE = "base2" if glob.glob(f"{R}/kb_base2-*") else "base"
for d in ([int(sys.argv[2])] if len(sys.argv) > 2 else [128, 64]):
    data = collections.defaultdict(lambda: collections.defaultdict(list))
    order = []
    for f in sorted(glob.glob(f"{R}/kb_*-d{d}_*.jsonl"), key=lambda p: int(re.search(r"_(\d+)\.jsonl$", p).group(1))):
        v = re.search(r"kb_(\w+)-d", f).group(1)
        if v not in order:
            order.append(v)
        for line in open(f):
            r = json.loads(line)
            data[r["shape"]][v].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
    if not data:
        continue
    print(f"\n| D {d}, fwd TFLOP/s | " + " | ".join(data) + " |")
    print("|---" * (len(data) + 1) + "|")
    for v in order:
        cells = []
        for sh, vv in data.items():
            if v not in vv:
                cells.append("")
                continue
            m = sum(x[0] for x in vv[v]) / len(vv[v])
            b = sum(x[0] for x in vv[BASE]) / len(vv[BASE])
            cells.append(f"{m:.1f}" if v == BASE else f"{m:.1f} ({m / b:.3f})")
        n = len(next(iter(data.values()))[v])
        print(f"| {v} ({n}) | " + " | ".join(cells) + " |")
