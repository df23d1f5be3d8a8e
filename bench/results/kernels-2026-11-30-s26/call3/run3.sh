#!/usr/bin/env bash
# Session 26, call 3 (1x H200): op times of the local plan's forward and backward for one
# causal-blockwise sequence at 32K, 128K and 256K and causal at 32K: how much of each backward is
# the passes over tokens (D pre-pass with the dQ zero, fills, conversions) rather than the kernel.
set -u
OUTD=${OUT:-/tmp/s26_out}; R=/tmp/s26c3; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee $R/run.log) 2>&1
source bench/gpu/env.sh
for spec in "causal-blockwise 32768" "causal-blockwise 131072" "causal-blockwise 262144" "causal 32768" "lambda 131072"; do
  set -- $spec
  echo "{\"batches\": [[$2]]}" > $R/b_$1_$2.json
  timeout 120 .s26/dcp bench-gpu --batches $R/b_$1_$2.json --masks $1 --planners local --warmup 1 --repeats 3 \
    --op-times $R/ops_$1_$2 --json $R/bench_$1_$2.jsonl > $R/log_$1_$2.txt 2>&1
  echo "== $1 $2 rc=$?"; python3 bench/gpu/op_times.py $R/ops_$1_$2 --top 10 2>&1 | head -40
done
cd /tmp && tar czf $OUTD/s26c3.tgz s26c3
