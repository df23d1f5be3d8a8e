#!/usr/bin/env bash
# PREPARED for the next session, not run (session 37's device time was spent):
#   timeout 420 bash bench/results/gpu-x1-2026-12-01s37/run8.sh
# Needs, built from 367af58 or later (DCP_CUDA_TILE_MASKS=all is host code):
#   .s38/dcp.gz       cargo build --release; gzip -c target/release/dcp
#   .s38/dcp_prof.gz  the same with kernels-2026-11-29-kf13b/prof_host.diff applied to gpu.rs
# Question: does a step whose partial tile has a precomputed mask cost what a full step does?
# (Session 37 measured only tiles evaluated from their ranges: +2 600 clk per tile per step.)
# A: bits stamps (bwd_prof.py --bits) on onework under whole lists, masks off (1: below the
#    threshold) and on (all), D 128 and D 64. B: whole lists full@8096 / full@8192 with 1 and
#    all. C: default order, CPU f64 checks, every shape, 1 against all (the threshold's A/B).
set -u
OUTD=${OUT:-/tmp/s38_out}
R=/tmp/s38c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s38/dcp_prof.gz > $P && chmod +x $P
D=/tmp/dcp; gunzip -c .s38/dcp.gz > $D && chmod +x $D
python3 bench/gpu/bwd_prof.py --bits crates/dcp-cuda/kernels $R/k
for TM in 1 all; do for HD in 128 64; do
  mkdir -p $R/pf_$TM.d$HD
  DCP_CUDA_TILE_MASKS=$TM DCP_CUDA_KERNELS=$R/k DCP_CUDA_PROF_DUMP=$R/pf_$TM.d$HD DCP_CUDA_BWD_ORDER=whole \
    timeout 40 $P kernel-bench --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb_$TM.d$HD.log 2>&1
  echo "== masks $TM D$HD rc=$?"
  for f in $R/pf_$TM.d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 bench/gpu/bwd_prof_sum.py --bits --ctas 2 $f; done
done; done 2>&1 | tee $R/bits.txt
tar czf $OUTD/c8_prof.tgz -C /tmp s38c8/bits.txt
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 45 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 30 --run-timeout 20 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c8_w$HD.tgz \
    m1:$W,DCP_CUDA_TILE_MASKS=1 mall:$W,DCP_CUDA_TILE_MASKS=all
done
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 150 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 110 --run-timeout 60 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal,causal-blockwise,lambda" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu --snap $OUTD/c8_d$HD.tgz \
    m1 mall:DCP_CUDA_TILE_MASKS=all
done
cat $R/bits.txt
for HD in 128 64; do cat $R/w$HD/table.md; done
for HD in 128 64; do grep -h "check" $R/d$HD/ab_rounds.log; cat $R/d$HD/table.md; done
