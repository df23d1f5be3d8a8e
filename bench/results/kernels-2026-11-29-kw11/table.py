#!/usr/bin/env python3
"""kw11 (from kbwd10): summary of a run directory (kernel-bench JSON per label, op times, checks)."""
import glob, json, os, re, sys
from collections import defaultdict

R = sys.argv[1]


def recs(p):
    try:
        return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
    except FileNotFoundError:
        return []


for d in (128, 64):
    t = defaultdict(lambda: defaultdict(list))
    shapes = []
    for p in sorted(glob.glob(f"{R}/kb_*_d{d}.jsonl")):
        lab = re.match(r".*/kb_(.*)_d\d+\.jsonl", p).group(1)
        for r in recs(p):
            t[lab][r["shape"]].append((r["bwd_ms"], r["bwd_tflops_per_gpu"], r["fwd_ms"]))
            if r["shape"] not in shapes:
                shapes.append(r["shape"])
    if not t:
        continue
    print(f"\n## D {d}: backward ms (TFLOP/s) per run, in call order; fwd ms of the first run")
    print("| label | " + " | ".join(shapes) + " |")
    print("|---|" + "---|" * len(shapes))
    for lab in t:
        cells = []
        for s in shapes:
            v = t[lab].get(s)
            cells.append(", ".join(f"{b:.3f} ({tf:.0f})" for b, tf, _ in v) + (f"; f {v[0][2]:.3f}" if v else "") if v else "")
        print(f"| {lab} | " + " | ".join(cells) + " |")
    if t.get("base") or t.get("dnbase"):
        print("\nbest bwd ms ratio to the best base of the same shapes (lower is faster):")
        for lab in t:
            base = t.get("dnbase" if lab.startswith("dn") else "base") or {}
            row = []
            for s in shapes:
                if s in t[lab] and s in base:
                    row.append(f"{s} {min(x[0] for x in t[lab][s]) / min(x[0] for x in base[s]):.3f}")
            print(f"  {lab}: " + ", ".join(row))

print("\n## backward op times (last run, ms): local plan")
for dd in sorted(glob.glob(f"{R}/ops_*")):
    if not os.path.isdir(dd):
        continue
    for p in glob.glob(f"{dd}/ops_rank*.jsonl"):
        for r in recs(p):
            ops = r.get("bwd", [])
            span = max([o["end_ms"] for o in ops] + [0])
            parts = ", ".join(f"{o['instr_kind']}:{o['op'].replace('launch:', '')} {o['end_ms'] - o['start_ms']:.3f}" for o in ops)
            print(f"{os.path.basename(dd)} {r.get('mask')} bwd {r.get('bwd_ms', 0):.3f} ms, span {span:.3f}: {parts}")

print("\n## checks")
for p in sorted(glob.glob(f"{R}/chk_*.jsonl") + glob.glob(f"{R}/st_*.jsonl")):
    c = [x.get("check") or {} for x in recs(p)]
    bad = [x for x in recs(p) if not (x.get("check") or {}).get("pass")]
    print(f"{os.path.basename(p)}: {sum(1 for x in c if x.get('pass'))}/{len(c)} pass; worst dq {max([x.get('dq', 0) or 0 for x in c] + [0]):.1e} dkv {max([x.get('dkv', 0) or 0 for x in c] + [0]):.1e}"
          + (f"; FAILED: {[(b.get('planner'), b.get('mask'), b.get('case')) for b in bad[:5]]}" if bad else ""))
print("\n## torch")
for r in recs(f"{R}/torch.jsonl"):
    print(r.get("mask"), r.get("tokens"), {k: round(v, 3) for k, v in r.items() if isinstance(v, float) and ("ms" in k or "tflops" in k)})
