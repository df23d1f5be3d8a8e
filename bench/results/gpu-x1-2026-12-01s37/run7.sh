#!/usr/bin/env bash
# s37 call 7 (1x H200): timeout 370 bash bench/results/gpu-x1-2026-12-01s37/run7.sh
# Call 6: reading every step's mask word branch-free (BWD_T_MV=64, timing only) ran onework's
# whole lists at full speed. BWD_MASK_READ (default 1 in .s37/dcp2.gz, this tree): the mask
# words are read before S^T, dP^T are issued and turned into bits by selects after they complete
# (ranges fallback behind a branch). mr0 = the kernel before. CPU f64 checks first.
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp2; gunzip -c .s37/dcp2.gz > $D && chmod +x $D
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 45 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 30 --run-timeout 20 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c7_w$HD.tgz \
    mr0:$W,bwd:BWD_MASK_READ=0 mr1:$W
done
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 140 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 100 --run-timeout 40 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal,causal-blockwise,lambda" \
    --field bwd_tflops_per_gpu --snap $OUTD/c7_d$HD.tgz \
    mr0:bwd:BWD_MASK_READ=0 mr1 mr1r:DCP_CUDA_TILE_MASKS=0
done
for HD in 128 64; do cat $R/w$HD/table.md; done
for HD in 128 64; do grep -h "check" $R/d$HD/ab_rounds.log; cat $R/d$HD/table.md; done
