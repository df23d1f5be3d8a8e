#!/usr/bin/env python3
"""kb18: op spans and the gaps between them (us) of the last run of each backward in op-times dirs.

    ops.py DIR...
"""
import glob, json, sys

for d in sys.argv[1:]:
    for f in sorted(glob.glob(f"{d}/*.jsonl")):
        rows = [json.loads(l) for l in open(f) if l.strip()]
        last = {}
        for r in rows:
            last[r.get("mask")] = r
        for r in last.values():
            for ph in ("fwd", "bwd"):
                ops = r.get(ph) or []
                s, prev = [], 0.0
                for o in ops:
                    s.append(f"gap {1e3 * (o['start_ms'] - prev):.1f} {o['op'].replace('launch:', '')} {1e3 * (o['end_ms'] - o['start_ms']):.1f}")
                    prev = o["end_ms"]
                tot = r.get(ph + "_ms") or 0
                print(f"{d.split('/')[-1]} {r.get('mask')} {ph} {1e3 * tot:.1f} us: " + ", ".join(s) + f", end gap {1e3 * (tot - prev):.1f}")
