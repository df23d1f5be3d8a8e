#!/usr/bin/env python3
"""kb18: per shape and variant the runs' fwd / bwd ms and mean TFLOP/s, ratio to the first variant.

    ab.py DIR     (reads DIR/kb_<variant>-d128_<i>.jsonl)
"""
import collections, glob, json, re, sys

R = sys.argv[1]
data = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for f in sorted(glob.glob(f"{R}/kb_*-d128_*.jsonl"), key=lambda p: int(re.search(r"_(\d+)\.jsonl$", p).group(1))):
    v = re.search(r"kb_(\w+)-d", f).group(1)
    order.append(v) if v not in order else None
    for line in open(f):
        r = json.loads(line)
        data[r["shape"]][v].append(r)
for k, name in (("bwd", "bwd"), ("fwd", "fwd")):
    print(f"\n| {name} ms (runs) / TFLOP/s mean | " + " | ".join(order) + " |")
    print("|---" * (len(order) + 1) + "|")
    for sh, vv in data.items():
        cells = []
        b = None
        for v in order:
            rs = vv.get(v, [])
            if not rs:
                cells.append("")
                continue
            ms = " ".join(f"{x[k + '_ms']:.3f}" for x in rs)
            t = sum(x[k + "_tflops_per_gpu"] for x in rs) / len(rs)
            b = t if b is None else b
            cells.append(f"{ms} / **{t:.1f}** ({t / b:.3f})")
        print(f"| {sh} | " + " | ".join(cells) + " |")
