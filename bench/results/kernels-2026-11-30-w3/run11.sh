#!/usr/bin/env bash
# s23 call 11 (1x H200): timeout 300 bash .s23/run11.sh (carry [".s23"]).
# The prototype as committed: builds every mode and checks those with a reference once.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c11; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
declare -A DEF=([n2]="-DNC=2" [n3]="-DNC=3" [pp]="-DNC=2 -DW3_PP=1" [e2]="-DNC=2 -DW3_EARLY=2" [b2]="-DNC=2 -DW3_MODE=1" [o2]="-DNC=2 -DW3_MODE=2 -DW3_SEQ=8192 -DW3_UNROLL=0")
for v in n2 n3 pp e2 b2 o2; do
  timeout 120 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 ${DEF[$v]} -o $R/w3_$v bench/proto/w3/w3.cu -lcuda > $R/build_$v.log 2>&1 || { echo "build $v failed"; tail -5 $R/build_$v.log; continue; }
  grep -A2 "Compiling entry function 'w3_fwd'" $R/build_$v.log | grep -E "spill" | sed "s/^/$v: /"
  timeout 60 $R/w3_$v 1000 10 | sed "s/^{/{\"variant\": \"$v\", /" | tee -a $R/w3.jsonl | cut -c1-60,150-290; echo "$v rc=${PIPESTATUS[0]}"
done
rm -f $R/w3_*[a-z0-9]
tar czf "$OUTD/s23c11.tgz" -C /tmp s23c11
