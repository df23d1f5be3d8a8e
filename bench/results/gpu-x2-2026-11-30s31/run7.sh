#!/usr/bin/env bash
# s30 call 7 (2x H200): LIMIT=150 timeout 165 bash .s30/run7.sh
# Prepared, not run in session 30 (no device time left). Written for the forward's long tasks
# first; now meant for the forward's KV units (c599530; carry its release build as .s31/dcp7.gz):
# dcp's own placements of the matrix batches 3, 6 and 7 (one or four long sequences) under
# causal-blockwise, lambda and causal, checked once, then base (budgets 0) against def alternated
# x2; kernel-bench x1 each.
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-150}
R=/tmp/s31c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c7.tgz" --exclude=s31c7/dcp -C /tmp s31c7; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s31/dcp7.gz > $D && chmod +x $D
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
keep = [keep[j] for j in (3, 6, 7)]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
venv() { case $1 in base) echo "DCP_CUDA_FWD_L2_MB=0 DCP_CUDA_BWD_L2_MB=0";; def) echo "";; esac; }
M=causal-blockwise,lambda,causal
echo "== checked t=$((SECONDS - T0))"
timeout 60 $D launch -n 2 -- bench-gpu --batches "$R/b.json" --masks $M --planners dcp --check \
  --warmup 1 --repeats 3 --timeout-s 55 --json "$R/mx_def_0.jsonl" > "$R/mx_def_0.log" 2>&1; echo "rc=$?"
for r in 1 2; do for v in base def; do if left 25; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $D launch -n 2 -- bench-gpu --batches "$R/b.json" --masks $M --planners dcp \
    --warmup 1 --repeats 3 --timeout-s 35 --json "$R/mx_${v}_$r.jsonl" > "$R/mx_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
snap
for v in base def; do if left 15; then
  env $(venv $v) timeout 20 $D kernel-bench --shapes causal@2048x125,packed --repeats 3 --json "$R/kb_${v}_1.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror'
fi; done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
rows = lambda f: [json.loads(l) for l in open(f) if l.strip()]
ck = [x.get("check") or {} for x in rows(R + "/mx_def_0.jsonl") if x.get("kind") == "bench"]
print(f"checks (def): {sum(1 for x in ck if x.get('pass'))} / {len(ck)} pass")
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(R + "/mx_*_[12].jsonl"):
    v = f.split("/mx_")[1].split("_")[0]
    for x in rows(f):
        if x.get("kind") == "bench":
            t[(x["mask"], x["batch"])][v].append((x["fwd_ms"], x["bwd_ms"]))
print("| mask | batch | base | def | def ÷ base |\n|---|---|---|---|---|")
for (m, b), d in sorted(t.items()):
    if not d.get("base") or not d.get("def"): continue
    mb = [statistics.mean(x[i] for x in d["base"]) for i in (0, 1)]
    md = [statistics.mean(x[i] for x in d["def"]) for i in (0, 1)]
    print(f"| {m} | {b} | {mb[0]:.2f} / {mb[1]:.2f} | {md[0]:.2f} / {md[1]:.2f} | {md[0] / mb[0]:.3f} / {md[1] / mb[1]:.3f} |")
PY
echo "== done t=$((SECONDS - T0))"
snap
