#!/usr/bin/env bash
# session 7: cost of the per-element mask of partial tiles (timing-only variant: partial tiles treated as full)
set -u
source bench/gpu/env.sh
T0=$SECONDS
for v in base nomask base nomask; do
  echo "== $v t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=.pdev/vm/$v timeout 90 .pdev/new/dcp kernel-bench --shapes blockwise,lambda,sharedq,causal32k,packed --repeats 3 --json $OUT/km_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
echo "== done t=$((SECONDS-T0))"
