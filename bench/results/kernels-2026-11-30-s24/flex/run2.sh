#!/usr/bin/env bash
# s24 call 2 (1x H200): timeout 580 bash .s24/run2.sh
# .s24/dcp_hb without DCP_CUDA_DEBUG_HALFBOTH = main b1333e9. Every kernel-bench shape at D 128
# (2 rounds), then torch_ref --flex (flash, cuDNN, FlexAttention) on round 1's batches.
set -u
OUTD=${OUT:-/tmp/s24_out}
R=/tmp/s24c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=.s24/dcp_hb
SH=works1000,onework,blocks256,full8k,packed,blockwise,lambda,sharedq,causal32k
for r in 1 2; do
  echo "== main round $r t=$((SECONDS - T0))"
  timeout 120 $D kernel-bench --shapes $SH --head-dim 128 --repeats 5 --json "$R/kb_r$r.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== torch t=$((SECONDS - T0))"
timeout $((560 - (SECONDS - T0))) python3 bench/gpu/torch_ref.py --flex "$R/kb_r1.jsonl" "$R/torch_flex.jsonl" 2>&1 | grep -v '^{' | tail -24
tar czf "$OUTD/s24c2.tgz" -C /tmp s24c2
echo "done t=$((SECONDS - T0))"
