#!/usr/bin/env bash
# kbw16 call 1 (1x H200): LIMIT=60 timeout 70 bash .kbw16/run1.sh   (carry [".kbw16"]), from /work/main.
# .kbw16/dcp_base = main 7cd68d5's release binary. Per-op breakdown of one 32K sequence's backward
# (causal-blockwise 256:2, lambda, causal; D 128, local plan) on main, and the same with main's
# opt-in dQ conversion by the last writer (DCP_CUDA_BWD_CONVERT=1: counters, conversions at the
# task end) for blockwise and causal.
set -u
OUTD=${OUT:-/tmp/kbw16_out}
R=/tmp/kbw16c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kbw16c1.tgz" -C /tmp kbw16c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-60}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
B=.kbw16/dcp_base
timeout 5 python3 -c "
import json
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
for v in base conv; do
  e=; [ $v = conv ] && e=DCP_CUDA_BWD_CONVERT=1
  m=causal-blockwise,lambda,causal; [ $v = conv ] && m=causal-blockwise,causal
  if ! left 14; then continue; fi
  echo "== ops $v t=$((SECONDS - T0))"
  env $e timeout 25 $B bench-gpu --batches "$R/b32k.json" --masks $m --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
for v in base conv; do [ -d "$R/ops_$v" ] && { echo "-- ops $v"; timeout 5 python3 .kbw16/ops.py "$R/ops_$v" | grep bwd | cut -c1-160; }; done
echo "== done t=$((SECONDS - T0))"
snap
