"""Simulated vs measured forward/backward times per batch and planner.

Usage: python3 bench/gpu/sim_vs_measured.py MEASURED.jsonl SIMULATED.jsonl
MEASURED: `dcp bench-gpu --json` lines; SIMULATED: `dcp simulate --json` lines, each prefixed
with "ds" and "m" (dataset, mask) keys. Prints a markdown table and the error summary."""
import json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (records.py beside this file)
from records import open_record  # (either file may be gzipped)

meas = [json.loads(l) for l in open_record(sys.argv[1]) if l.strip()]
sim = [json.loads(l) for l in open_record(sys.argv[2]) if l.strip()]
key = lambda ds, m, b, p: (ds, m, b, p)
S = {key(r["ds"], r["m"], r["batch"], r["planner"]): r for r in sim}
rows, errs = [], []
for r in meas:
    if r.get("kind") != "bench":
        continue
    ds = r["source"].replace("x1", "")
    s = S.get(key(ds, r["mask"], r["batch"], r["planner"]))
    if not s:
        continue
    ef = s["fwd_ms"] / r["fwd_ms"] - 1
    eb = s["bwd_ms"] / r["bwd_ms"] - 1
    errs.append((r["planner"], ef, eb))
    rows.append(f"| {ds} | {r['mask']} | {r['batch']} | {r['planner']} | {r['fwd_ms']:.2f} | {s['fwd_ms']:.2f} | {ef*100:+.0f}% | {r['bwd_ms']:.2f} | {s['bwd_ms']:.2f} | {eb*100:+.0f}% |")
print("| dataset | mask | batch | planner | fwd measured ms | fwd simulated ms | err | bwd measured ms | bwd simulated ms | err |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
allf = [abs(e[1]) for e in errs] + [abs(e[2]) for e in errs]
print(f"\n{len(errs)} batch×planner pairs; mean |error| {sum(allf)/len(allf)*100:.1f}%, max {max(allf)*100:.1f}%, within ±15%: {sum(1 for x in allf if x <= 0.15)}/{len(allf)}")
for p in sorted(set(e[0] for e in errs)):
    v = [abs(e[1]) for e in errs if e[0] == p] + [abs(e[2]) for e in errs if e[0] == p]
    print(f"- {p}: mean |error| {sum(v)/len(v)*100:.1f}%, max {max(v)*100:.1f}%")
