#!/usr/bin/env bash
# s29 call 6 (1x H200): timeout 300 bash .s29/run6.sh
# Causal short documents run the half-tile kernel (FWD_LATEREL 2: the owed Q release at every
# task's start). A/B alternated x3 on .s29/dcp3.gz (967b551): base; half3 = the half kernel with
# FWD_LATEREL 3 (DCP_CUDA_KERNELS=.s29/k_half3, one define changed); nohalf = no half-tile kernel
# (DCP_CUDA_FWD_HALF=0: diagonal tiles as whole partial tiles, in the short kernel where tasks
# average <= 3 tiles).
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp3.gz > $D && chmod +x $D
SH=causal@128x2000,causal@256x1000,causal@512x500,causal@1024x250,blockwise,causal32k,lambda,sharedq,packed
declare -A V=([base]="" [half3]="DCP_CUDA_KERNELS=.s29/k_half3" [nohalf]="DCP_CUDA_FWD_HALF=0")
for i in 1 2 3; do
  for v in base half3 nohalf; do
    echo "== round $i variant $v"
    env ${V[$v]} timeout 80 $D kernel-bench --shapes $SH --head-dim 128 --repeats 3 \
      --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E 'rror|panic'
  done
done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []
for f in sorted(glob.glob(R + "/kb_*_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        v[r["shape"]][var].append(r["fwd_tflops_per_gpu"])
        if r["shape"] not in order: order.append(r["shape"])
print("forward TFLOP/s per round (mean ÷ base)")
print("| shape | base | half3 | nohalf |")
print("|---|---|---|---|")
for s in order:
    b = statistics.mean(v[s]["base"])
    print(f"| {s} | " + " | ".join(" ".join(f"{a:.0f}" for a in v[s][x]) + f" ({statistics.mean(v[s][x]) / b:.3f})" for x in ("base", "half3", "nohalf")) + " |")
PY
cd /tmp && tar czf "$OUTD/s29c6.tgz" --exclude=s29c6/dcp s29c6
