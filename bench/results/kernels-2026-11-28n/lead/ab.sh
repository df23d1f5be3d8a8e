#!/usr/bin/env bash
# A/B of the forward kernel before (ea62882) and after kfwd9 (embedded), 1 GPU, packed/causal32k/works1000/lambda
set -u
source bench/gpu/env.sh
OUT=${OUT:?}; J=$OUT/ab; mkdir -p $J
B=.pdev/s9c/dcp
for r in 1 2; do
  for v in new old; do
    E=X_AB=1; [ $v = old ] && E=DCP_CUDA_KERNELS=.pdev/s9c/old
    echo "== $v round $r"
    env $E timeout 60 $B kernel-bench --shapes packed,causal32k,works1000,lambda --head-dim 128 --repeats 3 --json $J/kb_${v}_$r.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  done
done
tar czf $OUT/ab.tgz -C $OUT ab
