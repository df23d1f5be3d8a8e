#!/usr/bin/env bash
# s25 call 7 (2x H200): op times of the simulator's worst forward rows of the s25 matrix
# (ldc x2 batches 12/13, longalign x4 batch 6), causal-blockwise and shared-question.
set -u
OUTD=${OUT:-/tmp/s25_out}
R=/tmp/s25o7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DCP=.s25/dcp
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
want = [("ldc", 2, 0), ("ldc", 2, 1), ("longalign", 4, 0)]
keep = [i for i, l in enumerate(f["labels"]) if (l["dataset"], l["scale"], l["index"]) in want]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
timeout 150 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal-blockwise,shared-question \
  --planners ring,zigzag,ulysses,usp,local,dcp-only@1024,dcp@1024 --planner-profile .s25/prof/profile_x4.json \
  --warmup 1 --repeats 3 --op-times "$R/ops" --json "$R/rows.jsonl" > "$R/bench.log" 2>&1
echo "bench rc=$?"
python3 bench/gpu/op_times.py "$R/ops" 2>&1 | tail -40
cd /tmp && tar czf "$OUTD/s25o7.tgz" s25o7
