#!/usr/bin/env bash
# s27 call 1 (1x H200): timeout 500 bash .s27/run1.sh (carry [".s27"]).
# works1000's forward in the lean prototype: one step per task over both tiles (W3_ONE), with and
# without FA3's turn per S / P V, NC 2 and 3, against n2 / n3 and main's works1000 / onework.
set -u
OUTD=${OUT:-/tmp/s27_out}
R=/tmp/s27c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
gunzip -c .s27/dcp.gz > $R/dcp && chmod +x $R/dcp
declare -A DEF=([n2]="-DNC=2" [one2]="-DNC=2 -DW3_ONE=1" [onepp]="-DNC=2 -DW3_ONE=1 -DW3_PP=1" \
  [n3]="-DNC=3" [one3]="-DNC=3 -DW3_ONE=1" [one2a]="-DNC=2 -DW3_ONE=1 -DW3_ALIAS=1" [one3a]="-DNC=3 -DW3_ONE=1 -DW3_ALIAS=1" [n2a]="-DNC=2 -DW3_ALIAS=1")
VARS="n2 one2 onepp n3 one3 n2a one2a one3a"
for v in $VARS; do
  ( timeout 150 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 ${DEF[$v]} -o $R/w3_$v bench/proto/w3/w3.cu -lcuda > $R/build_$v.log 2>&1 || { echo "build $v failed"; tail -5 $R/build_$v.log; } ) &
  PIDS="${PIDS:-} $!"
done
wait $PIDS  # (not a bare wait: it would also wait for the tee of the process substitution)
echo "built t=$((SECONDS - T0))"
grep -h "spill\|Used" $R/build_*.log | sort | uniq -c | head -20
sleep 1
for r in 1 2 3; do
  for v in $VARS; do
    timeout 60 $R/w3_$v 1000 20 | sed "s/^{/{\"variant\": \"$v\", \"round\": $r, /" >> $R/w3.jsonl
    sleep 0.5
  done
  if [ $r != 2 ]; then
    for sh in onework works1000; do
      timeout 90 $R/dcp kernel-bench --shapes $sh --head-dim 128 --repeats 3 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
      sleep 0.5
    done
  fi
done
python3 - $R <<'PY' | tee $R/table.txt
import sys, json, collections, statistics
R = sys.argv[1]
v = collections.defaultdict(list)
for l in open(R + "/w3.jsonl"):
    r = json.loads(l); v[r["variant"]].append(r)
base = statistics.mean(r['tflops'] for r in v['n2']) if v['n2'] else None
for k, x in v.items():
    m = statistics.mean(r['tflops'] for r in x)
    print(f"{k:6} TF {' '.join('%.1f' % r['tflops'] for r in x)}  mean {m:.1f}  vs n2 {m/base:.3f}  MHz {' '.join('%.0f' % r.get('sm_mhz', 0) for r in x)}  pass {[r.get('pass') for r in x]}")
try:
    for l in open(R + "/kb.jsonl"):
        r = json.loads(l); print("dcp", r.get("shape"), round(r.get("fwd_tflops_per_gpu",0),1), round(r.get("bwd_tflops_per_gpu",0),1))
except Exception as e: print("kb", e)
PY
rm -f $R/w3_*[a-z0-9] $R/dcp
tar czf "$OUTD/s27c1.tgz" -C /tmp s27c1
echo "done t=$((SECONDS - T0))"
