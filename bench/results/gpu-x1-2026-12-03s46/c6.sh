#!/usr/bin/env bash
# Session 46, call 6: more bytes in flight per D SM. The D CTAs' stages as 6 x (2 x 16 KiB)
# (DSM_NS 6, DSM_CHUNK 16 KiB: 4 threads an item at D 128, 2 at D 64) instead of 3 x (2 x 32
# KiB), so ~160 KiB stay in flight while one stage is read instead of ~128. CPU f64 checks and
# sanitizers with it, then an alternated A/B against auto, with one and two D clusters fewer.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s46c6; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s46/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
summ() { python3 bench/gpu/check_summary.py "$1" "$2"; }
python3 -c "
import json, random
random.seed(46)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
K=$R/ks6; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i '1i #define DSM_NS 6\n#define DSM_CHUNK 16384u' $K/attn_bwd_cluster_sm90.cu
for cfg in "128 bf16 2" "64 f16 8"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$K DCP_CUDA_BWD_PIECE_LOG=1 timeout 60 $D bench-gpu --batches $R/m300.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1.log 2>&1
  echo "D$1 rc=$? $(grep -o 'plan Some(DsmPlan { k: [0-9]*' $R/chk_$1.log | head -1)"
done
summ $R/chk.jsonl "s6: mixed 129-256 documents vs CPU f64" | tee -a $R/summary.txt
for hd in 128 64; do for tool in memcheck racecheck; do
  DCP_CUDA_KERNELS=$K timeout -k 5 40 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 35 > $R/san_${tool}_$hd.txt 2>&1
  echo "s6 $tool D$hd rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | tail -1)" | tee -a $R/summary.txt
done; done
tar czf $OUT/s46c6.tgz -C /tmp --exclude='*/k' --exclude='ks6' s46c6
S6="bwd:DSM_NS=6,bwd:DSM_CHUNK=16384u"
for hd in 128 64; do
  if [ $hd = 128 ]; then V="auto s6:$S6 s6k4:$S6,DCP_CUDA_BWD_CLUSTER_DSM=4 s6k3:$S6,DCP_CUDA_BWD_CLUSTER_DSM=3"; DL=60
  else V="auto s6:$S6 s6k3:$S6,DCP_CUDA_BWD_CLUSTER_DSM=3 s6k2:$S6,DCP_CUDA_BWD_CLUSTER_DSM=2"; DL=50; fi
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout $((DL + 40)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 30 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600 --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A6 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s46c6.tgz -C /tmp --exclude='*/k' --exclude='ks6' s46c6
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
