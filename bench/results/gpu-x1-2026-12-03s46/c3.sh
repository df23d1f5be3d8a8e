#!/usr/bin/env bash
# Session 46, call 3: why works1000's D 128 backward varies by process under D clusters (call 2:
# 444-504 TFLOP/s, medians of 20 runs per process; the pre-pass alone was steady in session 45).
# Each round is a fresh process per variant: auto (base), noacq (the pairs never wait for D:
# timing only, kernels/attn_bwd_cluster_sm90.cu CL_DSM_NOACQ), k6, and off (the pre-pass).
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s46c3; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s46/dcp.gz > $D && chmod +x $D
V="auto noacq:bwd:CL_DSM_NOACQ=1 k6:DCP_CUDA_BWD_CLUSTER_DSM=6 off:DCP_CUDA_BWD_CLUSTER_DSM=0"
for hd in 128 64; do
  if [ $hd = 128 ]; then RD=7; DL=170; else RD=4; DL=90; fi
  echo "== D$hd t=$((SECONDS-T0))s"
  timeout $((DL + 60)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds $RD \
    --bench "kernel-bench --head-dim $hd --shapes works1000 --warmup 20 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A6 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s46c3.tgz -C /tmp --exclude='*/k' s46c3
done
echo "== done t=$((SECONDS-T0))s"
