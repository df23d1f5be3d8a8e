#!/usr/bin/env bash
# Session 16: alternated A/B of merged main (NEW) against the session's starting main 7cd68d5 (BASE),
# D 128 bf16 GQA 8:2, kernel-bench --repeats 3, B N B N B N; each run's JSON written to $OUT at once.
set -u
P=.pdev/s16f
source bench/gpu/env.sh
T0=$SECONDS; LIMIT=${LIMIT:-60}
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > $OUT/card.txt 2>&1
for i in 2 3; do
  for v in new base; do
    [ $((SECONDS - T0)) -lt $((LIMIT - 18)) ] || break
    b=$P/base; [ $v = new ] && b=$P/dcp
    timeout 25 $b kernel-bench --shapes works1000,blockwise,onework,causal32k,lambda,packed --head-dim 128 --repeats 3 --json $OUT/ab_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v$i /"
  done
done
echo "t=$((SECONDS - T0))"
