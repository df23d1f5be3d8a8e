#!/usr/bin/env bash
# s36 call 6 (1x H200): timeout 330 bash .s36/run6.sh
# Why does a masked backward step cost so much? Under DCP_CUDA_BWD_ORDER=whole (one task per kv
# tile list, one round: the makespan is the slowest list) onework's one masked list ran 1.55x
# (D 128) / 2.0x (D 64) the time of a full list (call 2). Diagnostic, dcp4 (b59af17): whole
# lists with the default masks, with the masks from the staged ranges (DCP_CUDA_TILE_MASKS=0),
# and with the other form of the mask in the exponent (BWD_MASK_BRANCH flipped); the default
# order for reference. Alternated x2 at D 128 and D 64.
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp4.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=onework,full8k,blockwise
for HD in 128 64; do
  MB=$([ $HD = 128 ] && echo 0 || echo 1)
  timeout 130 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 80 --run-timeout 40 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c6_d$HD.tgz \
    whole:DCP_CUDA_BWD_ORDER=whole ranges:DCP_CUDA_BWD_ORDER=whole,DCP_CUDA_TILE_MASKS=0 \
    branch:DCP_CUDA_BWD_ORDER=whole,bwd:BWD_MASK_BRANCH=$MB cut
done
