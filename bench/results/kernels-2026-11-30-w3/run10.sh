#!/usr/bin/env bash
# s23 call 10 (1x H200): timeout 400 bash .s23/run7.sh (carry [".s23"]).
# The SM clock of the lean forward on onework's shape (W3_MODE 2: one 8 192-token full-mask sequence)
# against works1000's (mode 0), NC 2 and NC 3, with main's works1000 / onework.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
declare -A DEF=([o2]="-DNC=2 -DW3_MODE=2 -DW3_SEQ=8192 -DW3_UNROLL=0" [n2]="-DNC=2" [n3]="-DNC=3")
VARS="o2 n2 n3"
for v in $VARS; do
  timeout 120 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 ${DEF[$v]} -o $R/w3_$v bench/proto/w3/w3.cu -lcuda > $R/build_$v.log 2>&1 || { echo "build $v failed"; tail -5 $R/build_$v.log; }
done
mark() { echo "$1 $(date +%s.%N)" >> $R/marks.txt; }
sleep 1
for r in 1 2 3; do
  for v in $VARS; do
    mark "start w3_$v"
    timeout 60 $R/w3_$v 1000 20 | sed "s/^{/{\"variant\": \"$v\", /" >> $R/w3.jsonl
    mark "end w3_$v"
    sleep 0.5
  done
  for sh in $([ $r = 1 ] && echo onework works1000); do
    mark "start dcp_$sh"
    timeout 90 .s23/dcp_main kernel-bench --shapes $sh --head-dim 128 --repeats 3 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
    mark "end dcp_$sh"
    sleep 0.5
  done
done
python3 - $R <<'PY' | tee $R/table.txt
import sys, json, collections, statistics
R = sys.argv[1]
v = collections.defaultdict(list)
for l in open(R + "/w3.jsonl"):
    r = json.loads(l); v[r["variant"]].append(r)
for k, x in v.items():
    print(f"{k:5} TF {' '.join('%.1f' % r['tflops'] for r in x)}  mean {statistics.mean(r['tflops'] for r in x):.1f}  MHz {' '.join('%.0f' % r['sm_mhz'] for r in x)}  pass {x[0]['pass']}")
PY
rm -f $R/w3_*[a-z0-9]
tar czf "$OUTD/s23c10.tgz" -C /tmp s23c10
echo "done t=$((SECONDS - T0))"
