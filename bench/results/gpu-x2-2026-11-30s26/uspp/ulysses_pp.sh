#!/usr/bin/env bash
# Prepared in session 25 for a later call on 2x H200 (not run: no device time was left).
# Copy a release `dcp` of main (with ulysses-pp) to .s26/dcp; run as
#   timeout 500 bash .s26/ulysses_pp.sh
# What it measures: `ulysses-pp` against `ulysses` on the matrix's index-0 batches (longalign and
# ldc at scales 0.5-4, 4 masks), alternated x2, every output checked against the one-GPU local
# plan; then op times of both on two batches. The simulator predicts forwards 4-13 % and
# backwards 1-5 % faster (bench/results/gpu-x2-2026-11-30s25/README.md is where to record it).
set -u
OUTD=${OUT:-/tmp/s26_out}
R=/tmp/uspp; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DCP=.s26/dcp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
for round in 1 2; do
  for p in ulysses ulysses-pp; do
    timeout 150 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal,lambda,shared-question,causal-blockwise \
      --planners $p --check --warmup 1 --repeats 3 --json "$R/${p}_$round.jsonl" > "$R/${p}_$round.log" 2>&1
    echo "$p/$round rc=$? $(grep -h -E 'plan runs|FAIL' "$R/${p}_$round.log" | tail -1)"
  done
done
timeout 120 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal,shared-question --planners ulysses,ulysses-pp \
  --warmup 1 --repeats 2 --op-times "$R/ops" --json "$R/ops.jsonl" > "$R/ops.log" 2>&1; echo "ops rc=$?"
python3 - "$R" <<'PY'
import json, sys, collections, math
R = sys.argv[1]
t = collections.defaultdict(list)
for p in ("ulysses", "ulysses-pp"):
    for r in (1, 2):
        for l in open(f"{R}/{p}_{r}.jsonl"):
            x = json.loads(l)
            if x.get("kind") == "bench":
                t[(x["mask"], x["batch"], p)].append((x["fwd_ms"], x["bwd_ms"]))
for m in ("causal", "lambda", "shared-question", "causal-blockwise"):
    rf, rb = [], []
    for (mm, b, p), v in t.items():
        if mm != m or p != "ulysses" or (m, b, "ulysses-pp") not in t: continue
        u = [sum(x[i] for x in v) / len(v) for i in (0, 1)]
        q = [sum(x[i] for x in t[(m, b, "ulysses-pp")]) / len(t[(m, b, "ulysses-pp")]) for i in (0, 1)]
        rf.append(q[0] / u[0]); rb.append(q[1] / u[1])
    g = lambda a: math.exp(sum(map(math.log, a)) / len(a)) if a else float("nan")
    print(f"{m:16} ulysses-pp / ulysses: fwd {g(rf):.3f} ({min(rf, default=0):.3f}-{max(rf, default=0):.3f}), bwd {g(rb):.3f} over {len(rf)} batches")
PY
python3 bench/gpu/op_times.py "$R/ops" | head -20
cd /tmp && tar czf "$OUTD/uspp.tgz" uspp
