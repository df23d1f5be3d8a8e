#!/usr/bin/env bash
# s24 call 1 (1x H200): timeout 560 bash .s24/run1.sh
# .s24/dcp_hb = main b1333e9 + bench-only DCP_CUDA_DEBUG_HALFBOTH (exec.rs: a half tile where one
# warpgroup sees both halves and the other one becomes wg0 half 0 / wg1 half 1: results wrong,
# times a both-half step). Alternated x3 on blockwise/lambda/sharedq/causal32k; then
# torch_ref --flex on the main records.
set -u
OUTD=${OUT:-/tmp/s24_out}
R=/tmp/s24c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
D=.s24/dcp_hb
SH=blockwise,lambda,sharedq,causal32k
for r in 1 2 3; do
  echo "== main round $r t=$((SECONDS - T0))"
  timeout 90 $D kernel-bench --shapes $SH --head-dim 128 --repeats 5 --json "$R/kb_main_r$r.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  echo "== halfboth round $r t=$((SECONDS - T0))"
  DCP_CUDA_DEBUG_HALFBOTH=1 timeout 90 $D kernel-bench --shapes $SH --head-dim 128 --repeats 5 --json "$R/kb_hb_r$r.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== flex t=$((SECONDS - T0))"
timeout $((540 - (SECONDS - T0))) python3 bench/gpu/torch_ref.py --flex "$R/kb_main_r1.jsonl" "$R/torch_flex.jsonl" 2>&1 | grep -v '^{' | tail -12
tar czf "$OUTD/s24c1.tgz" -C /tmp s24c1
echo "done t=$((SECONDS - T0))"
