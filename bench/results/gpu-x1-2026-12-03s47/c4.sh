#!/usr/bin/env bash
# Session 47, call 4 (timing only, results wrong by design): call 3 found that without the
# dK/dV output (CL_ABL_NOEPI) works1000's backward runs ~20 % faster. Which part: the global
# stores alone (CL_ABL_NOSTG: staging kept, stores dropped) against the whole output.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s47c4; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s47/dcp.gz > $D && chmod +x $D
V="base noepi:bwd:CL_ABL_NOEPI=1 nostg:bwd:CL_ABL_NOSTG=1"
for hd in 128 64; do
  DL=75
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout $((DL + 60)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600 --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A7 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s47c4.tgz -C /tmp --exclude='*/k' s47c4
done
echo "== done t=$((SECONDS-T0))s"
