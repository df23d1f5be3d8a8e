#!/usr/bin/env bash
# s23 call 3 (1x H200): timeout 400 bash .s23/run3.sh (carry [".s23"]).
# Builds bench/proto/w3 (nvcc, sm_90a) for NC 2 and 3, checks each against its fp32 reference,
# times them alternated, and main's works1000 / onework (dcp kernel-bench) in the same call.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
which nvcc; nvcc --version | tail -2
for nc in 2 3; do
  echo "== build NC=$nc t=$((SECONDS - T0))"
  timeout 120 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 -DNC=$nc -o $R/w3_$nc bench/proto/w3/w3.cu -lcuda > $R/build_$nc.log 2>&1
  echo "rc=$?"; grep -E "error|w3_fwd|spill|Used|C75" $R/build_$nc.log | head -12
done
for r in 1 2 3; do
  for nc in 2 3; do
    [ -x $R/w3_$nc ] || continue
    echo "== w3 NC=$nc round $r t=$((SECONDS - T0))"
    timeout 60 $R/w3_$nc 1000 20 | tee -a $R/w3.jsonl; echo "rc=${PIPESTATUS[0]}"
  done
  echo "== dcp round $r t=$((SECONDS - T0))"
  timeout 90 .s23/dcp_main kernel-bench --shapes works1000,onework --head-dim 128 --repeats 3 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
tar czf "$OUTD/s23c3.tgz" -C /tmp s23c3
echo "done t=$((SECONDS - T0))"
