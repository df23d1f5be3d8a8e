#!/usr/bin/env bash
# Session 47, call 2: the one-step forward waits for tile 0's S alone and runs tile 0's maximum
# and exponentials under tile 1's S (FWD_ONE_EARLY 1). CPU f64 checks on 256-token documents
# (every task one step) with it on, at the default limit and at 0 (the raise-and-scale path taken
# for about half the rows); sanitizers; then alternated A/B of the forward against the default.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s47c2; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s47/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
summ() { python3 bench/gpu/check_summary.py "$1" "$2"; }
python3 -c "
import json
json.dump({'batches': [[256] * 200]}, open('$R/d200.json', 'w'))
json.dump({'batches': [[256] * 60 + [200, 256, 129, 256, 384, 256]]}, open('$R/d66.json', 'w'))"
for v in "e 8" "e0 0"; do set -- $v; K=$R/k$1; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i "1i #define FWD_ONE_EARLY 1\n#define FWD_ONE_EARLY_LIM $2" $K/attn_fwd_sm90.cu; done
echo "== CPU f64 t=$((SECONDS-T0))s"
for cfg in "128 bf16 2 d200 e" "128 f16 8 d66 e" "128 bf16 1 d200 e0" "128 f16 2 d66 e0" "64 bf16 2 d200 e" "64 f16 8 d66 e0" "64 bf16 1 d200 e0"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/k$5 timeout 100 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3_$4_$5.log 2>&1
  echo "D$1 $2 kv$3 $4 $5 rc=$?"
done
summ $R/chk.jsonl "FWD_ONE_EARLY: 256-token documents vs CPU f64" | tee -a $R/summary.txt
echo "== sanitizers t=$((SECONDS-T0))s"
for hd in 128 64; do for tool in memcheck racecheck; do
  DCP_CUDA_KERNELS=$R/ke0 timeout -k 5 70 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/d66.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_${tool}_$hd.txt 2>&1
  echo "$tool D$hd rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | tail -1)" | tee -a $R/summary.txt
done; done
tar czf $OUT/s47c2.tgz -C /tmp --exclude='k' --exclude='*/k' --exclude='ke*' s47c2
V="base early:fwd:FWD_ONE_EARLY=1 early0:fwd:FWD_ONE_EARLY=1,fwd:FWD_ONE_EARLY_LIM=0"
for hd in 128 64; do
  DL=110
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout $((DL + 60)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds 6 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,blocks256,onework --warmup 10 --repeats 20" \
    --field fwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'fwd_tflops' $R/kb$hd.out
  tar czf $OUT/s47c2.tgz -C /tmp --exclude='*/k' --exclude='ke*' s47c2
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
