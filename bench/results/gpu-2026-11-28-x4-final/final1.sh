#!/usr/bin/env bash
# Merged main on 4 GPUs: single causal sequences and packed batches (every output checked), PyTorch
# context_parallel (cuDNN) on the same single sequences, the flash varlen floor, and fault injection.
set -u
source bench/gpu/env.sh
export DCP=.dev/dcp
J=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
echo "== single sequences"
timeout 150 $DCP launch -n 4 -- bench-gpu --batches .dev/single.json --mask causal --planners dcp,zigzag --check --warmup 1 --repeats 3 --json $J/single_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -9
echo "== packed (longalign x1 #0,#1, ldc x1 #0,#1, ldc x4 #0 = one 122042-token sequence)  t=$(( $(date +%s) - t0 ))s"
timeout 170 $DCP launch -n 4 -- bench-gpu --batches .dev/packed.json --mask causal --planners local,zigzag,dcp --check --warmup 1 --repeats 3 --json $J/packed_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -19
echo "== torch context_parallel cudnn  t=$(( $(date +%s) - t0 ))s"
timeout 100 python3 -m torch.distributed.run --nproc-per-node 4 .dev/torch_cp.py cudnn gqa 2>/dev/null | grep '^{' | tee $J/torch_cp.jsonl
echo "== flash varlen floor, one GPU  t=$(( $(date +%s) - t0 ))s"
timeout 60 python3 .dev/ideal_attn.py .dev/packed.json 5 > $J/ideal.jsonl 2>&1; tail -3 $J/ideal.jsonl
echo "== faults  t=$(( $(date +%s) - t0 ))s"
OUT=$J timeout 280 env DCP=.dev/dcp EXTERNAL=1 KINDS="freeze crash exit nccl-error" PHASES="forward" CLEAN_EACH=0 bash bench/gpu/x4_faults.sh > $J/faults.log 2>&1; tail -14 $J/faults.log
echo "== done t=$(( $(date +%s) - t0 ))s"
