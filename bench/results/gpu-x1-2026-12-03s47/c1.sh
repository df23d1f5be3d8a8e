#!/usr/bin/env bash
# Session 47, call 1: the D CTAs' register warps (CL_DSM_REG R: every R-th chunk of a unit read
# by warps 1-3 with register loads, beside the bulk-copy path). CPU f64 checks and sanitizers
# with it on, then alternated A/B against the default (auto) with the number of D clusters forced
# low, where D production bounds the kernel, so a faster D SM shows as time.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s47c1; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s47/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
summ() { python3 bench/gpu/check_summary.py "$1" "$2"; }
python3 -c "
import json, random
random.seed(47)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(700)]]}, open('$R/m700.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for r in 3 4; do K=$R/kreg$r; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i "1i #define CL_DSM_REG $r" $K/attn_bwd_cluster_sm90.cu; done
echo "== CPU f64 with CL_DSM_REG t=$((SECONDS-T0))s"
for cfg in "128 bf16 2 m300 3 auto" "128 f16 1 m700 4 3" "128 bf16 8 m700 3 2" "64 f16 8 m300 3 auto" "64 bf16 2 m700 4 2" "64 bf16 1 m300 3 3"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/kreg$5 DCP_CUDA_BWD_CLUSTER_DSM=$6 DCP_CUDA_BWD_PIECE_LOG=1 timeout 100 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3_$4_$5_$6.log 2>&1
  echo "D$1 $2 kv$3 $4 reg$5 dsm=$6 rc=$? $(grep -o 'plan Some(DsmPlan { k: [0-9]*' $R/chk_$1_$2_$3_$4_$5_$6.log | head -1)"
done
summ $R/chk.jsonl "reg: mixed 129-256 documents vs CPU f64" | tee -a $R/summary.txt
echo "== sanitizers t=$((SECONDS-T0))s"
for hd in 128 64; do for tool in memcheck racecheck; do
  DCP_CUDA_KERNELS=$R/kreg3 DCP_CUDA_BWD_PIECE_LOG=1 timeout -k 5 70 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_${tool}_$hd.txt 2>&1
  echo "$tool D$hd rc=$? $(grep -o "plan Some(DsmPlan { k: [0-9]*" $R/san_${tool}_$hd.txt | head -1) $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | tail -1)" | tee -a $R/summary.txt
done; done
tar czf $OUT/s47c1.tgz -C /tmp --exclude='kreg*' s47c1
S=DCP_CUDA_BWD_CLUSTER_DSM
V128="auto k3:$S=3 r4k3:$S=3,bwd:CL_DSM_REG=4 r3k3:$S=3,bwd:CL_DSM_REG=3 r4nb4k3:$S=3,bwd:CL_DSM_REG=4,bwd:CL_DSM_REG_NB=4 r4:bwd:CL_DSM_REG=4 r4k4:$S=4,bwd:CL_DSM_REG=4 r3k4:$S=4,bwd:CL_DSM_REG=3"
V64="auto k2:$S=2 r4k2:$S=2,bwd:CL_DSM_REG=4 r3k2:$S=2,bwd:CL_DSM_REG=3 r4:bwd:CL_DSM_REG=4 r3k3:$S=3,bwd:CL_DSM_REG=3"
for hd in 128 64; do
  if [ $hd = 128 ]; then DL=190; V=$V128; else DL=130; V=$V64; fi
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout $((DL + 60)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,full@200x1000 --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A12 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s47c1.tgz -C /tmp --exclude='kreg*' --exclude='*/k' s47c1
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
