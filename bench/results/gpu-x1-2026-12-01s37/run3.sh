#!/usr/bin/env bash
# s37 call 3 (1x H200): timeout 200 bash bench/results/gpu-x1-2026-12-01s37/run3.sh
# Call 2: moving the consumers' mask read (BWD_BITS_AT) changed nothing; the S+dP wgmmas of a
# partial step stay slow. Call 1: sel (mask staged and read, all bits set) slow, nomask (nothing
# staged or read) fast. Which half costs: the producer's staging or the consumers' read?
# variants/bwd_t_mv.diff (this tree, applied): BWD_T_MV bit flags, timing only (see the diff).
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 90 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 60 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c3_w$HD.tgz \
    base:$W noload:$W,bwd:BWD_T_MV=1 ldg:$W,bwd:BWD_T_MV=2 nolds:$W,bwd:BWD_T_MV=4 m0:$W,bwd:BWD_T_MV=8 none:$W,bwd:BWD_T_MV=5
done
for HD in 128 64; do cat $R/w$HD/table.md; done
