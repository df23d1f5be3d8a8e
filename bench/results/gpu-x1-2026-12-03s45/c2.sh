#!/usr/bin/env bash
# Session 45, call 2: how many D clusters each shape wants (DCP_CUDA_BWD_CLUSTER_DSM forced 3-7
# against auto and off), at D 128 and 64, on uniform document lengths (kernel-bench) and on a
# mixed batch of 129-256-token documents (bench-gpu), plus auto's pick per launch.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s45c2; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s45/dcp.gz > $D && chmod +x $D
python3 -c "
import json, random
random.seed(45)
json.dump({'batches': [[random.randint(129, 256) for _ in range(1300)]]}, open('$R/mixed.json', 'w'))"
SH=works1000,full@160x1600,full@200x1000,full@240x1100
V="off:DCP_CUDA_BWD_CLUSTER_DSM=0 auto:DCP_CUDA_BWD_CLUSTER_DSM=auto"
for k in 3 4 5 6 7; do V="$V k$k:DCP_CUDA_BWD_CLUSTER_DSM=$k"; done
echo "== auto's picks t=$((SECONDS-T0))s"
for hd in 128 64; do
  DCP_CUDA_BWD_PIECE_LOG=1 timeout 60 $D kernel-bench --head-dim $hd --shapes $SH --warmup 0 --repeats 1 2>&1 | grep -E "D clusters|^\|" | sed "s/^/D$hd: /"
  DCP_CUDA_BWD_PIECE_LOG=1 timeout 60 $D bench-gpu --batches $R/mixed.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 2>&1 | grep "D clusters" | sed "s/^/D$hd mixed: /"
done | tee $R/picks.txt
for hd in 128 64; do
  echo "== D$hd kernel-bench sweep t=$((SECONDS-T0))s"
  timeout 170 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s 100 --run-timeout 40 --rounds 2 \
    --bench "kernel-bench --head-dim $hd --shapes $SH --warmup 3 --repeats 10" --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  tail -9 $R/kb$hd.out
  echo "== D$hd mixed sweep t=$((SECONDS-T0))s"
  timeout 100 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/mx$hd --deadline-s 55 --run-timeout 30 --rounds 2 \
    --bench "bench-gpu --batches $R/mixed.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10" --field bwd_tflops_per_gpu $V > $R/mx$hd.out 2>&1
  tail -4 $R/mx$hd.out
  tar czf $OUT/s45c2.tgz -C /tmp --exclude='*/k' s45c2
done
echo "== done t=$((SECONDS-T0))s"
