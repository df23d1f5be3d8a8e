#!/usr/bin/env bash
# One GPU: kernel correctness (random cases vs CPU f64), memcheck on a tiny case, one 131072-token
# longalign batch (local plan = pure kernel time, checked against the CPU-free single-GPU path),
# and the PyTorch flash / cuDNN reference on the same batch.
set -uo pipefail
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "include: ${DCP_CUDA_INCLUDE:-none}"
timeout 240 $DCP bench-gpu --selftest ${SELFTEST:-8} --planners ring,zigzag,local --json $OUT/selftest.jsonl 2>&1 | tail -${TAILN:-30}
timeout 120 compute-sanitizer --tool memcheck --print-limit 5 $DCP bench-gpu --selftest 2 --planners ring 2>&1 | tail -6
timeout 200 $DCP bench-gpu --dataset longalign --count 1 --planners local --block-sizes 1024 --warmup 1 --repeats 3 --json $OUT/bench_x1.jsonl 2>&1 | tail -4
timeout 200 $DCP bench-gpu --dataset longalign --count 1 --mask lambda --planners local --block-sizes 1024 --warmup 1 --repeats 3 --json $OUT/bench_x1.jsonl 2>&1 | tail -3
timeout 150 python3 bench/gpu/torch_ref.py $OUT/bench_x1.jsonl $OUT/torch_x1.jsonl 2>&1 | tail -8
