#!/usr/bin/env bash
# s23 call 5 (1x H200): timeout 400 bash .s23/run4.sh (carry [".s23"]).
# bench/proto/w3 variants (nvcc, sm_90a): n2 (NC 2), e2 (NC 2, both S at once, tile 0 P by shared memory), n3 (NC 3);
# each checked against its fp32 reference, timed alternated x3, with main's works1000 / onework.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
declare -A DEF=([n2]="-DNC=2" [e2]="-DNC=2 -DW3_EARLY=2" [n3]="-DNC=3")
VARS="n2 e2 n3"
for v in $VARS; do
  echo "== build $v (${DEF[$v]}) t=$((SECONDS - T0))"
  timeout 120 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 ${DEF[$v]} -o $R/w3_$v bench/proto/w3/w3.cu -lcuda > $R/build_$v.log 2>&1
  echo "rc=$?"; grep -A2 "Compiling entry function 'w3_fwd'" $R/build_$v.log | grep -E "spill|Used|C75"; grep -E "error|C75" $R/build_$v.log | head -5
done
for r in 1 2 3; do
  for v in $VARS; do
    [ -x $R/w3_$v ] || continue
    echo "== $v round $r t=$((SECONDS - T0))"
    timeout 60 $R/w3_$v 1000 20 | sed "s/^{/{\"variant\": \"$v\", /" | tee -a $R/w3.jsonl; echo "rc=${PIPESTATUS[0]}"
  done
  echo "== dcp round $r t=$((SECONDS - T0))"
  timeout 90 .s23/dcp_main kernel-bench --shapes works1000,onework --head-dim 128 --repeats 3 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
rm -f $R/w3_*[a-z0-9]
tar czf "$OUTD/s23c5.tgz" -C /tmp s23c5
echo "done t=$((SECONDS - T0))"
