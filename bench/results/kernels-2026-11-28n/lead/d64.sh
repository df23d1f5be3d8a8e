#!/usr/bin/env bash
set -u
source bench/gpu/env.sh
OUT=${OUT:?}; J=$OUT/d64; mkdir -p $J
B=.pdev/s9c/dcp
for r in 1 2; do
  for v in base ost; do
    E=X_AB=1; [ $v = ost ] && E=DCP_CUDA_KERNELS=.pdev/s9c/ost64
    echo "== $v round $r"
    env $E timeout 50 $B kernel-bench --shapes causal32k,causal128k,works1000,blockwise,packed --head-dim 64 --repeats 3 --json $J/kb_${v}_$r.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  done
done
echo "== selftest ost"
DCP_CUDA_KERNELS=.pdev/s9c/ost64 timeout 60 $B bench-gpu --selftest 8 --planners local,zigzag,dcp --json $J/st_ost.jsonl 2>&1 | tail -2
tar czf $OUT/d64.tgz -C $OUT d64
