#!/usr/bin/env bash
# s33 call 7 (1x H200): timeout 400 bash .s33/run6.sh
# Confirmation of call 6 (x3), with DCP_CUDA_FWD_SHORT=5 (tasks of up to 5 tiles).
# D 64 works1000 forward is 0.84x cuDNN (call 5: 273 against 325 TFLOP/s) while D 128's is
# 1.08x. D 64's short-task forward runs main's plain kernel (DCP_CUDA_FWD_SHORT 0 at D 64 since
# session 11, stages 4:4 since session 29). Host switches only, alternated x2 over D 64 shapes.
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c7.tgz" --exclude=s33c7/dcp -C /tmp s33c7; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp2.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=works1000,full@128x2000,full@384x600,full@512x500,full@640x400,causal@256x1000,causal@1024x64,packed
kb() { local t=$1; shift; env "$@" timeout 60 $D kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10 --json $R/kb_${t}.jsonl > $R/kb_${t}.log 2>&1; echo "kb $t rc=$? t=$((SECONDS - T0))"; }
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 300 ] && break
  kb base_$r X=1
  kb short3_$r DCP_CUDA_FWD_SHORT=3
  kb short5_$r DCP_CUDA_FWD_SHORT=5
  kb short3rel1_$r DCP_CUDA_FWD_SHORT=3 DCP_CUDA_FWD_SHORT_LATEREL=1
  snap
done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
vs = []
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    v = f.rsplit("/", 1)[1][3:].rsplit("_", 1)[0]
    if v not in vs: vs.append(v)
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") == "bench": t[x["shape"]][v].append(x["fwd_tflops_per_gpu"])
vs.sort(key=lambda v: v != "base")
print("| D 64 fwd TFLOP/s | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
for s, d in t.items():
    b = statistics.mean(d["base"])
    print("| %s | " % s + " | ".join("%.0f (%.3f)" % (statistics.mean(d[v]), statistics.mean(d[v]) / b) for v in vs) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
