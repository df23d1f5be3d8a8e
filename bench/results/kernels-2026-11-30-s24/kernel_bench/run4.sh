#!/usr/bin/env bash
# s24 call 4 (1x H200): timeout 590 bash .s24/run4.sh
# The kernel-bench script as committed (FlexAttention added), on main's binary (.s24/dcp_main =
# b1333e9's Rust and kernels): sm90 selftest 10, all nine shapes, memcheck + racecheck, torch
# flash / cuDNN / FlexAttention, the side-by-side table.
set -u
export OUT=${OUT:-/tmp/s24c4}
T0=$SECONDS
DCP=.s24/dcp_main FLEX=1 SELFTEST_FAMILIES=sm90 BENCH_FAMILIES=sm90 REPEATS=5 \
  SHAPES=works1000,onework,blocks256,full8k,packed,blockwise,lambda,sharedq,causal32k \
  SELFTEST_T=150 BENCH_T=120 SAN_T=100 TORCH_T=180 \
  bash bench/gpu/kernel_bench.sh 2>&1 | tee $OUT/run.log | grep -v '^{'
echo "done t=$((SECONDS - T0))"
