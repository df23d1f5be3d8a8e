#!/usr/bin/env bash
# s33 call 10 (1x H200): timeout 230 bash .s33/run10.sh
# D 64's forward half-tile kernel (off there since session 11: lambda -5 %, blockwise -2 % with
# older kernels), with and without HALFBITS / HALF_SHORT, on the masked shapes; x2.
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c10.tgz" --exclude=s33c10/dcp -C /tmp s33c10; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp3.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=blockwise,lambda,sharedq,causal32k,causal@256x1000,causal@1024x64,packed
kb() { local t=$1; shift; env "$@" timeout 60 $D kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10 --json $R/kb_${t}.jsonl > $R/kb_${t}.log 2>&1; echo "kb $t rc=$? t=$((SECONDS - T0))"; }
for r in 1 2; do
  [ $((SECONDS - T0)) -gt 150 ] && break
  kb base_$r X=1
  kb half_$r DCP_CUDA_FWD_HALF=1
  kb halfbits_$r DCP_CUDA_FWD_HALF=1 DCP_CUDA_FWD_HALFBITS=1
  kb halfbitshs0_$r DCP_CUDA_FWD_HALF=1 DCP_CUDA_FWD_HALFBITS=1 DCP_CUDA_FWD_HALF_SHORT=0
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
