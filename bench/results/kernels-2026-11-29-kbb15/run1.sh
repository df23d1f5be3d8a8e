#!/usr/bin/env bash
# kbb15 call 1 (1x H200): the fixed passes' microbenchmark (ddbench/: main's util.cu kernels vs
# the tiled D pre-pass and the 8-element converting copy, against read / write / copy floors).
#   LIMIT=100 timeout 110 bash .kbb15/run1.sh    (carry [".kbb15"]), from /work/main.
set -u
OUTD=${OUT:-/tmp/kbb15_out}; mkdir -p "$OUTD"
T0=$SECONDS
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,power.limit --format=csv | tee "$OUTD/card.txt"
cd .kbb15/ddbench || exit 1
timeout 90 nvcc -O3 -std=c++17 -arch=sm_90a -Xptxas -v -o /tmp/ddbench ddbench.cu > "$OUTD/build.log" 2>&1; echo "build rc=$? t=$((SECONDS - T0))"
grep -E "error" "$OUTD/build.log" | head -20
timeout 60 /tmp/ddbench 7 2>&1 | tee "$OUTD/ddbench.txt"
echo "== done t=$((SECONDS - T0))"
