#!/usr/bin/env bash
# Two GPUs: random-case correctness for every planner, then the MISSION workloads (longalign and
# ldc ×1, causal and lambda, 131072-token budget) per planner with a check against the single-GPU
# `local` plan, the PyTorch reference on the same batches (one GPU), and the calibration profile.
set -uo pipefail
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
P=${PLANNERS:-ring,zigzag,local,dcp}
timeout 200 $DCP launch -n 2 -- bench-gpu --selftest ${SELFTEST:-6} --planners $P --json $OUT/selftest_x2.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -28
for ds in longalign ldc; do for m in causal lambda; do
  timeout 240 $DCP launch -n 2 -- bench-gpu --dataset $ds --count ${COUNT:-2} --mask $m --planners $P --check --warmup 1 --repeats 3 --json $OUT/bench_x2.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -${TAILB:-12}
done; done
timeout 120 $DCP launch -n 2 -- calibrate --out $OUT/profile_x2.json --lens 4096,16384,65536 2>&1 | grep -E 'tflops|gbps|_us' | head -12
timeout 200 python3 bench/gpu/torch_ref.py $OUT/bench_x2.jsonl $OUT/torch_x2.jsonl 2>&1 | tail -7
