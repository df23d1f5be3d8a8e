#!/usr/bin/env bash
# Session 47, call 3 (timing only, results wrong by design): what a clustered backward task's
# boundary costs on short documents. CL_ABL_NOKV: K/V (and the peer's K) loaded for a CTA's first
# task only, so no task waits for its K/V load; CL_ABL_NOEPI: no dK/dV output. Alternated
# against the default at D 128 and D 64.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s47c3; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s47/dcp.gz > $D && chmod +x $D
V="base nokv:bwd:CL_ABL_NOKV=1 noepi:bwd:CL_ABL_NOEPI=1 both:bwd:CL_ABL_NOKV=1,bwd:CL_ABL_NOEPI=1"
for hd in 64 128; do
  DL=120
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout $((DL + 60)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s47c3.tgz -C /tmp --exclude='*/k' s47c3
done
echo "== done t=$((SECONDS-T0))s"
