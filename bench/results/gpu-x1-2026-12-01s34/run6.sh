#!/usr/bin/env bash
# s34 call 6 (1x H200): timeout 570 bash .s34/run6.sh
# D 128's short-task kernels (plain, one-step and half-tile, i.e. those with the host's
# FWD_LATEREL) without FWD_LAZY and / or FWD_FIRST0: at D 64 both cost the short-task kernel
# 1-3 % (calls 1-2). dcp4 = afef4a9 (comments only since dcp3). Checks vs CPU f64 at D 128,
# kernel-bench x3 alternated.
set -u
OUTD=${OUT:-/tmp/s34_out}
R=/tmp/s34c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s34c6.tgz" --exclude=s34c6/dcp --exclude=s34c6/k -C /tmp s34c6; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s34/dcp4.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SRC=crates/dcp-cuda/kernels/attn_fwd_sm90.cu
mkdir -p $R/k/base $R/k/nolazy $R/k/nofirst0 $R/k/neither
{ printf '#ifdef FWD_LATEREL\n#define FWD_LAZY 0\n#endif\n'; cat $SRC; } > $R/k/nolazy/attn_fwd_sm90.cu
{ printf '#ifdef FWD_LATEREL\n#define FWD_FIRST0 0\n#endif\n'; cat $SRC; } > $R/k/nofirst0/attn_fwd_sm90.cu
{ printf '#ifdef FWD_LATEREL\n#define FWD_LAZY 0\n#define FWD_FIRST0 0\n#endif\n'; cat $SRC; } > $R/k/neither/attn_fwd_sm90.cu
VS="new:base:X=1 nolazy:nolazy:X=1 nofirst0:nofirst0:X=1 neither:neither:X=1"
envof() { echo "DCP_CUDA_KERNELS=$R/k/$2 DCP_CUDA_FAMILY=sm90 ${3//,/ }"; }
python3 -c "
import json; L=[256]*24+[255,257,128,129,384,512,130,1,2,64,200,300,700,1000,1500,383,385,640]
json.dump({'batches': [L*2]}, open('$R/short.json','w'))"
chk() { local n=$1 k=$2 x=$3 hd=$4
  env $(envof $n $k $x) timeout 90 $D bench-gpu --batches $R/short.json --head-dim $hd --masks full,causal,causal-blockwise:128:2,sliding-window:100,lambda:16:300,shared-question \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 80 --json $R/chk_$n.jsonl > $R/chk_$n.log 2>&1
  echo "chk $n D$hd rc=$? $(grep -cE '"pass":true' $R/chk_$n.jsonl)/$(grep -c . $R/chk_$n.jsonl) pass; $(grep -E 'FAIL|panic|rror' $R/chk_$n.log | head -2) t=$((SECONDS-T0))"; }
echo "== checks vs CPU f64 t=$((SECONDS-T0))"
chk neither neither X=1 128
snap
SH=works1000,full@128x2000,causal@256x1000,full@384x600,causal@512x500,causal@1024x64,blocks256,packed,causal32k
arr=($VS); n=${#arr[@]}
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 300 ] && break
  for ((i = 0; i < n; i++)); do e=${arr[$(((i + r - 1) % n))]}; IFS=: read v k x <<< "$e"
    env $(envof $v $k $x) timeout 60 $D kernel-bench --head-dim 128 --shapes $SH --warmup 3 --repeats 10 --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1
    echo "kb $v $r rc=$? t=$((SECONDS - T0))"
  done
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
vs.sort(key=lambda v: v != "new")
print("| D 128 fwd TFLOP/s | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
g = collections.defaultdict(list)
for s, d in t.items():
    b = statistics.mean(d["new"])
    for v in vs:
        if d[v]: g[v].append(statistics.mean(d[v]) / b)
    print("| %s | " % s + " | ".join("%.0f (%.3f)" % (statistics.mean(d[v]), statistics.mean(d[v]) / b) if d[v] else "-" for v in vs) + " |")
print("| geomean | " + " | ".join("%.3f" % statistics.geometric_mean(g[v]) if g[v] else "-" for v in vs) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
