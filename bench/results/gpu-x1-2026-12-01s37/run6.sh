#!/usr/bin/env bash
# s37 call 6 (1x H200): timeout 200 bash bench/results/gpu-x1-2026-12-01s37/run6.sh
# Call 5: read a whole step ahead, the mask words still arrive ~3 100 clk after the stage lands,
# so it is not the read's position. BWD_T_MV=64 (variants/bwd_t_mv3.diff = this tree): every step,
# full or partial, reads its mask word and selects branch-free (precomputed masks only; full
# tiles OR all ones), so partial and full steps run one instruction stream. With
# BWD_MASK_BRANCH=0 at D 128 too.
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
W=DCP_CUDA_BWD_ORDER=whole
timeout 70 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w128 --deadline-s 45 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim 128 --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c6_w128.tgz \
    base:$W br0:$W,bwd:BWD_MASK_BRANCH=0 m64br0:$W,bwd:BWD_MASK_BRANCH=0,bwd:BWD_T_MV=64 m64:$W,bwd:BWD_T_MV=64
timeout 60 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w64 --deadline-s 40 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim 64 --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c6_w64.tgz \
    base:$W m64:$W,bwd:BWD_T_MV=64
for HD in 128 64; do cat $R/w$HD/table.md; done
