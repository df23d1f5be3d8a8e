#!/usr/bin/env bash
# s36 call 7 (1x H200): timeout 200 bash .s36/run7.sh
# Call 6: under whole lists onework's backward is 1.55x (D 128) / 2.0x (D 64) full8k's time,
# and neither the mask's source nor its form in the exponent changes that. Is it the masked
# kv tile list at all? Full-mask documents of 8 096 / 8 128 / 8 160 / 8 192 tokens (a last kv
# tile of 32 / 64 / 96 / 128 keys; a partial 64-row q tile at 8 096 and 8 160 only), whole
# lists and the default cuts, D 128 and D 64, alternated x2. dcp4 (b59af17).
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s36/dcp4.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
SH=full@8096,full@8128,full@8160,full@8192
for HD in 128 64; do
  timeout 80 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 50 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --field bwd_ms --snap $OUTD/c7_d$HD.tgz \
    whole:DCP_CUDA_BWD_ORDER=whole cut
done
