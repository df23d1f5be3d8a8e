#!/usr/bin/env bash
# Prepared in session 25 for a later call on 2x H200 (not run: no device time was left).
# Before it: apply next/comm_reserve.diff, build, copy the binary to .s26/dcp_res and the s25
# matrix profile to .s26/prof/profile_x4.json; run as `timeout 400 bash .s25/res8.sh`.
# What it measures: DCP_CUDA_COMM_RESERVE (persistent attention launches issued while a transfer
# is in flight leave R SMs free), PDL off and NCCL_MAX_CTAS=8, alternated with the default
# (COMM_FIRST on, no reserve), on the batches whose dcp-only forwards the simulator
# under-predicts most (call 7), then op times of the default and reserve 16.
set -u
OUTD=${OUT:-/tmp/s26_out}
R=/tmp/s25r8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DCP=.s26/dcp_res
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
want = [("ldc", 2, 0), ("ldc", 2, 1), ("longalign", 4, 0), ("ldc", 4, 1), ("ldc", 0.5, 1)]
keep = [i for i, l in enumerate(f["labels"]) if (l["dataset"], l["scale"], l["index"]) in want]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
declare -A V=([base]="" [r8]="DCP_CUDA_COMM_RESERVE=8" [r16]="DCP_CUDA_COMM_RESERVE=16" [r8m16]="DCP_CUDA_COMM_RESERVE=8 NCCL_MAX_CTAS=16" [nopdl]="DCP_CUDA_PDL=0" [m8]="NCCL_MAX_CTAS=8")
run() { local tag=$1 sfx=$2
  env ${V[$tag]} timeout 60 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks causal,shared-question \
    --planners ring,ulysses,dcp-only@1024,dcp@1024 --planner-profile .s26/prof/profile_x4.json \
    --warmup 1 --repeats 3 --json "$R/${tag}_$sfx.jsonl" > "$R/${tag}_$sfx.log" 2>&1
  echo "$tag/$sfx rc=$?"; }
run base 1; run r16 1; run r8 1; run r8m16 1; run nopdl 1; run m8 1; run base 2; run r16 2
# op times of the default and the best-looking variant for the longalign x4 batch (dcp-only)
for t in base r16; do env ${V[$t]} timeout 60 $DCP launch -n 2 -- bench-gpu --batches "$R/b.json" --masks shared-question \
  --planners dcp-only@1024 --planner-profile .s26/prof/profile_x4.json --warmup 1 --repeats 2 --op-times "$R/ops_$t" \
  --json "$R/ops_$t.jsonl" > "$R/ops_$t.log" 2>&1; echo "ops $t rc=$?"; done
python3 - "$R" <<'PY'
import json, sys, glob, os, collections
R = sys.argv[1]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for p in glob.glob(f"{R}/*_[12].jsonl"):
    tag = os.path.basename(p).rsplit("_", 1)[0]
    for l in open(p):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        rows[(r["mask"], r["planner"], r["batch"])][tag].append((r["fwd_ms"], r["bwd_ms"]))
tags = ["r16", "r8", "r8m16", "nopdl", "m8"]
print(f"{'mask':16} {'planner':9} b  {'base fwd/bwd':>14} " + " ".join(f"{t:>12}" for t in tags))
for k in sorted(rows):
    d = rows[k]
    if "base" not in d: continue
    bf = sum(x[0] for x in d["base"]) / len(d["base"]); bb = sum(x[1] for x in d["base"]) / len(d["base"])
    cells = []
    for t in tags:
        if t in d:
            cells.append("%.3f/%.3f" % (sum(x[0] for x in d[t]) / len(d[t]) / bf, sum(x[1] for x in d[t]) / len(d[t]) / bb))
        else:
            cells.append("-")
    print(f"{k[0]:16} {k[1]:9} {k[2]}  {bf:6.2f}/{bb:6.2f} " + " ".join(f"{c:>12}" for c in cells))
PY
cd /tmp && tar czf "$OUTD/s25r8.tgz" s25r8
