#!/usr/bin/env python3
"""kbw11b: per-op times (us) of each plan's backward and forward from an --op-times directory."""
import glob, json, sys
for p in sorted(glob.glob(sys.argv[1] + "/ops_rank*.jsonl")):
    for l in open(p):
        r = json.loads(l)
        for ph in ("fwd", "bwd"):
            ops = " + ".join(f"{o['op'].replace('launch:', '')} {1e3 * (o['end_ms'] - o['start_ms']):.1f}" for o in r[ph])
            print(f"{r['mask']} {ph} {r[ph + '_ms'] * 1e3:.0f} us: {ops}")
