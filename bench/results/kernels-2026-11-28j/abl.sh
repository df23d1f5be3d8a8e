#!/usr/bin/env bash
# session 7: backward ablations (nf no full-wait proxy fence, nq no dQ output, ne no ex2, nd no dS fence: timing only)
# and nm (full tiles without the mask select: correct, selftested)
set -u
source bench/gpu/env.sh
B=.pdev/dcp; T0=$SECONDS
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit --format=csv,noheader
for v in base nf nq ne nd nm base; do
  echo "== $v t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=.pdev/vb/$v timeout 90 $B kernel-bench --shapes causal32k,causal128k --repeats 3 --json $OUT/kb_$v.jsonl 2>&1 | grep -E '^causal|rror'
done
echo "== selftest nm t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=.pdev/vb/nm DCP_CUDA_FAMILY=sm90 timeout 90 $B bench-gpu --selftest 6 --planners local,zigzag --timeout-s 60 --json $OUT/st_nm.jsonl 2>&1 | grep -E 'passed|FAIL|rror' | tail -3
echo "== done t=$((SECONDS-T0))"
