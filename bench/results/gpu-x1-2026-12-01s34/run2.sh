#!/usr/bin/env bash
# s34 call 2 (1x H200): timeout 570 bash .s34/run2.sh
# dcp2 = call 1's binary + new D 64 forward defaults (FWD_FASTDESC, FWD_SPLIT 2; FWD_LAZY in the
# plain kernel only) + the FWD_ONE kernel as its own short-task kernel, taken by launches with
# >= DCP_CUDA_FWD_SHORT_ONE_MIN % (50) of one-step tasks (before: compiled into every short-task
# launch at D 128). 1) checks vs CPU f64 (D 64 and D 128 short / odd documents), selftest,
# memcheck / racecheck of D 64 FWD_ONE; 2) kernel-bench D 64 variants x3 alternated (old
# defaults as a kernel directory, FWD_ONE at D 64, FWD_PREDESC, half kernel, SHORT=3); D 128
# FWD_ONE selection x3.
set -u
OUTD=${OUT:-/tmp/s34_out}
R=/tmp/s34c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s34c2.tgz" --exclude=s34c2/dcp --exclude=s34c2/k -C /tmp s34c2; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s34/dcp2.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SRC=crates/dcp-cuda/kernels/attn_fwd_sm90.cu
mk() { local v=$1; shift; mkdir -p $R/k/$v; : > $R/k/$v/attn_fwd_sm90.cu
  for d in "$@"; do echo "#define $d" >> $R/k/$v/attn_fwd_sm90.cu; done
  [ $# -gt 0 ] && cat $SRC >> $R/k/$v/attn_fwd_sm90.cu || rm $R/k/$v/attn_fwd_sm90.cu; }
mk base
mk old "FWD_FASTDESC 0" "FWD_SPLIT 0" "FWD_LAZY 0"
mk predesc "FWD_PREDESC 1"
VS="new:base:X=1 old:old:X=1 one50:base:DCP_CUDA_FWD_SHORT_ONE=1 one0:base:DCP_CUDA_FWD_SHORT_ONE=1,DCP_CUDA_FWD_SHORT_ONE_MIN=0
predesc:predesc:X=1 half:base:DCP_CUDA_FWD_HALF=1 halfbits:base:DCP_CUDA_FWD_HALF=1,DCP_CUDA_FWD_HALFBITS=1 short3:base:DCP_CUDA_FWD_SHORT=3"
V128="d128new:base:X=1 d128min0:base:DCP_CUDA_FWD_SHORT_ONE_MIN=0 d128off:base:DCP_CUDA_FWD_SHORT_ONE=0"
envof() { echo "DCP_CUDA_KERNELS=$R/k/$2 DCP_CUDA_FAMILY=sm90 ${3//,/ }"; }
python3 -c "
import json; L=[256]*24+[255,257,128,129,384,512,130,1,2,64,200,300]
json.dump({'batches': [L*3]}, open('$R/short.json','w'))
json.dump({'batches': [[256]*40+[128]*20+[300]]}, open('$R/one.json','w'))"
chk() { local n=$1 k=$2 x=$3 hd=$4
  env $(envof $n $k $x) timeout 90 $D bench-gpu --batches $R/short.json --head-dim $hd --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 80 --json $R/chk_$n.jsonl > $R/chk_$n.log 2>&1
  echo "chk $n D$hd rc=$? $(grep -cE '"pass":true' $R/chk_$n.jsonl)/$(grep -c . $R/chk_$n.jsonl) pass; $(grep -E 'FAIL|panic|rror' $R/chk_$n.log | head -2) t=$((SECONDS-T0))"; }
echo "== checks vs CPU f64 t=$((SECONDS-T0))"
for e in $VS; do IFS=: read n k x <<< "$e"; chk $n $k $x 64; done
for e in $V128; do IFS=: read n k x <<< "$e"; chk $n $k $x 128; done
echo "== selftest 24 (world 1) t=$((SECONDS-T0))"
DCP_CUDA_FAMILY=sm90 timeout 120 $D bench-gpu --selftest 24 --timeout-s 60 --json $R/selftest.jsonl > $R/selftest.log 2>&1
echo "selftest rc=$? $(grep -cE '"pass":true' $R/selftest.jsonl)/$(grep -c . $R/selftest.jsonl) pass; $(grep -E 'FAIL|panic' $R/selftest.log | head -2)"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do for hd in 64 128; do
  env DCP_CUDA_FWD_SHORT_ONE=1 timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/one.json --head-dim $hd --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_${tool}_$hd.txt 2>&1
  echo "$tool D$hd rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | head -2) t=$((SECONDS-T0))"
done; done
snap
SH=works1000,full@128x2000,causal@256x1000,full@384x600,causal@1024x64,packed,causal32k,lambda,blockwise,onework,sharedq
SH128=works1000,full@128x2000,causal@256x1000,full@384x600,blocks256,packed
arr=($VS); n=${#arr[@]}; a128=($V128)
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 480 ] && break
  for ((i = 0; i < n; i++)); do e=${arr[$(((i + (r - 1) * 3) % n))]}; IFS=: read v k x <<< "$e"
    env $(envof $v $k $x) timeout 60 $D kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10 --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1
    echo "kb $v $r rc=$? t=$((SECONDS - T0))"
  done
  for ((i = 0; i < 3; i++)); do e=${a128[$(((i + r - 1) % 3))]}; IFS=: read v k x <<< "$e"
    env $(envof $v $k $x) timeout 60 $D kernel-bench --head-dim 128 --shapes $SH128 --warmup 3 --repeats 10 --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1
    echo "kb $v $r rc=$? t=$((SECONDS - T0))"
  done
  snap
done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
for base, pre in (("new", ""), ("d128new", "d128")):
    t = collections.defaultdict(lambda: collections.defaultdict(list))
    vs = []
    for f in sorted(glob.glob(R + "/kb_*.jsonl")):
        v = f.rsplit("/", 1)[1][3:].rsplit("_", 1)[0]
        if v.startswith("d128") != bool(pre): continue
        if v not in vs: vs.append(v)
        for l in open(f):
            x = json.loads(l)
            if x.get("kind") == "bench": t[x["shape"]][v].append(x["fwd_tflops_per_gpu"])
    vs.sort(key=lambda v: v != base)
    print("\n| D %s fwd TFLOP/s | " % ("128" if pre else "64") + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
    g = collections.defaultdict(list)
    for s, d in t.items():
        b = statistics.mean(d[base])
        for v in vs:
            if d[v]: g[v].append(statistics.mean(d[v]) / b)
        print("| %s | " % s + " | ".join("%.0f (%.3f)" % (statistics.mean(d[v]), statistics.mean(d[v]) / b) if d[v] else "-" for v in vs) + " |")
    print("| geomean | " + " | ".join("%.3f" % statistics.geometric_mean(g[v]) if g[v] else "-" for v in vs) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
