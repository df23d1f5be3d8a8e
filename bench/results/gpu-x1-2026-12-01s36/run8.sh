#!/usr/bin/env bash
# s36 call 8 (1x H200): timeout 200 bash .s36/run8.sh
# Calls 6-7: under whole lists any document with a partial kv tile (8 096 / 8 128 / 8 160
# tokens: 32 / 64 / 96 keys in it) runs its backward at 1.5x (D 128) / 1.9x (D 64) the time of
# 8 192 tokens, whatever the mask's source or form. Timing-only ablations (wrong results) in dcp5
# (b59af17 plus BWD_T_NOMASK, default 0): 1 = the producer stages no mask, 2 = the consumers also
# take partial tiles as full. Whole lists, alternated x2, D 128 and D 64.
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp5.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=full@8096,full@8192,blockwise
for HD in 128 64; do
  timeout 80 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 50 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c8_d$HD.tgz \
    whole:DCP_CUDA_BWD_ORDER=whole noload:DCP_CUDA_BWD_ORDER=whole,bwd:BWD_T_NOMASK=1 nomask:DCP_CUDA_BWD_ORDER=whole,bwd:BWD_T_NOMASK=2 cut
done
