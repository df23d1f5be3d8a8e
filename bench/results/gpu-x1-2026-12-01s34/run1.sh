#!/usr/bin/env bash
# s34 call 1 (1x H200): timeout 560 bash .s34/run1.sh
# D 64 forward: the switches tuned at D 128 (FWD_FASTDESC, FWD_SPLIT 2 with NOMAX / EPRE,
# FWD_LAZY, FWD_FIRST0), never measured at D 64 with today's kernels (4 K/V stages since session
# 29), in both the plain and the short-task kernel (kernel directories whose attn_fwd_sm90.cu
# defines them first), and FWD_ONE at D 64 (DCP_CUDA_FWD_SHORT_ONE=1, opt-in in this binary).
# 1) each variant's D 64 short / odd documents against the CPU f64 reference; 2) kernel-bench at
# D 64, variants alternated in rotating order, 3 rounds; table of forward TFLOP/s / base.
set -u
OUTD=${OUT:-/tmp/s34_out}
R=/tmp/s34c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s34c1.tgz" --exclude=s34c1/dcp --exclude=s34c1/k -C /tmp s34c1; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s34/dcp1.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SRC=crates/dcp-cuda/kernels/attn_fwd_sm90.cu
mk() { local v=$1; shift; mkdir -p $R/k/$v; : > $R/k/$v/attn_fwd_sm90.cu
  for d in "$@"; do echo "#define $d" >> $R/k/$v/attn_fwd_sm90.cu; done
  [ $# -gt 0 ] && cat $SRC >> $R/k/$v/attn_fwd_sm90.cu || rm $R/k/$v/attn_fwd_sm90.cu; }
mk base
mk fd "FWD_FASTDESC 1"
mk fdsp "FWD_FASTDESC 1" "FWD_SPLIT 2"
mk fdspl "FWD_FASTDESC 1" "FWD_SPLIT 2" "FWD_LAZY 1"
mk d128 "FWD_FASTDESC 1" "FWD_SPLIT 2" "FWD_LAZY 1" "FWD_FIRST0 1"
mk first0 "FWD_FIRST0 1"
mk lazy "FWD_LAZY 1"
# name:kernel dir:extra env
VS="base:base:X=1 fd:fd:X=1 fdsp:fdsp:X=1 fdspl:fdspl:X=1 d128:d128:X=1 first0:first0:X=1 lazy:lazy:X=1
one:base:DCP_CUDA_FWD_SHORT_ONE=1,DCP_CUDA_FWD_SHORT_DEFS=FWD_FASTDESC=1 fdone:fd:DCP_CUDA_FWD_SHORT_ONE=1
d128one:d128:DCP_CUDA_FWD_SHORT_ONE=1"
envof() { echo "DCP_CUDA_KERNELS=$R/k/$2 DCP_CUDA_FAMILY=sm90 ${3//,/ }"; }
python3 -c "
import json; L=[256]*24+[255,257,128,129,384,512,130,1,2,64,200,300]
json.dump({'batches': [L*3]}, open('$R/short.json','w'))"
echo "== checks vs CPU f64, D 64 t=$((SECONDS-T0))"
for e in $VS; do IFS=: read n k x <<< "$e"
  env $(envof $n $k $x) timeout 90 $D bench-gpu --batches $R/short.json --head-dim 64 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 80 --json $R/chk_$n.jsonl > $R/chk_$n.log 2>&1
  echo "chk $n rc=$? $(grep -cE '"pass":true' $R/chk_$n.jsonl)/$(grep -c . $R/chk_$n.jsonl) pass; $(grep -E 'FAIL|panic|rror' $R/chk_$n.log | head -2) t=$((SECONDS-T0))"
done
snap
SH=works1000,full@128x2000,causal@256x1000,full@384x600,causal@1024x64,packed,causal32k,lambda,blockwise,onework,sharedq
arr=($VS); n=${#arr[@]}
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 430 ] && break
  for ((i = 0; i < n; i++)); do e=${arr[$(((i + (r - 1) * 3) % n))]}; IFS=: read v k x <<< "$e"
    env $(envof $v $k $x) timeout 60 $D kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10 --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1
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
vs.sort(key=lambda v: v != "base")
print("| D 64 fwd TFLOP/s | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
g = collections.defaultdict(list)
for s, d in t.items():
    b = statistics.mean(d["base"])
    for v in vs:
        if d[v]: g[v].append(statistics.mean(d[v]) / b)
    print("| %s | " % s + " | ".join("%.0f (%.3f)" % (statistics.mean(d[v]), statistics.mean(d[v]) / b) if d[v] else "-" for v in vs) + " |")
print("| geomean | " + " | ".join("%.3f" % statistics.geometric_mean(g[v]) if g[v] else "-" for v in vs) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
