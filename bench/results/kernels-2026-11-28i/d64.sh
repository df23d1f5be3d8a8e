#!/usr/bin/env bash
source bench/gpu/env.sh
B=.pdev/new/dcp
for v in cur v0 epi ce cur v0; do
  E=""; [ $v != cur ] && E="DCP_CUDA_KERNELS=.pdev/v/$v"; [ $v = v0 ] && E="$E DCP_CUDA_BWD_CTAS=0"
  echo "== $v"
  env $E timeout 60 $B kernel-bench --shapes causal32k,causal128k --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror'
done
echo "== selftest epi/ce (D64 and 128)"
for v in epi ce; do env DCP_CUDA_KERNELS=.pdev/v/$v timeout 60 $B bench-gpu --selftest 6 --planners local,zigzag 2>&1 | grep -E 'passed|FAIL|rror' | tail -2; done
