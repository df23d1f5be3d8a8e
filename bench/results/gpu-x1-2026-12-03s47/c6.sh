#!/usr/bin/env bash
# Session 47, prepared for the next session (not run: the device time was spent). Offline, ptxas
# spills one consumer register of the clustered backward (the dQ store's packed flags), stored
# once per task and reloaded by an LDL in every step's dQ store (D 128; two LDL per step at D 64).
# Does it cost anything, and what does the dK/dV output cost with its wgmmas kept?
#   reload: CL_DQ_RELOAD 1, the dQ destination read from shared memory at each store: no
#           consumer spill at D 128 (offline; at D 64 ptxas spills more), output unchanged;
#           2: the work's row count too (D 128: no consumer spill, 68 instead of 124 bytes
#           spilled in all; D 64: 12 consumer spill instructions against 9, two LDL per step)
#   epi3:   CL_ABL_NOEPI 3, dK/dV read (a checksum) but neither staged nor stored (timing only)
#   stna:   CL_ST_NA 1, the 16-byte dQ and dK/dV stores allocate no L1 line (if the spilled
#           line is evicted by them, this keeps the spill and removes the miss)
# (Not CL_ABL_NOEPI 1: with dK/dV unread ptxas deletes their wgmmas; every variant here keeps
# the base's HGMMA count, checked with bench/gpu/sass_spills.py.)
# Applies bwd_epi_next.diff (the switches) to the device's copy of the tree first.
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s47c6; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
git apply bench/results/gpu-x1-2026-12-03s47/bwd_epi_next.diff || exit 1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:-.s47/dcp.gz} > $D && chmod +x $D
python3 -c "
import json, random
random.seed(47)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))"
K=$R/kr; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/; sed -i '1i #define CL_DQ_RELOAD 2' $K/attn_bwd_cluster_sm90.cu
for cfg in "128 bf16 2" "128 f16 8" "64 bf16 2"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$K timeout 100 $D bench-gpu --batches $R/m300.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3.log 2>&1
  echo "reload D$1 $2 kv$3 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_DQ_RELOAD 2 vs CPU f64"
for hd in 128 64; do
  V="base reload:bwd:CL_DQ_RELOAD=1 reload2:bwd:CL_DQ_RELOAD=2 epi3:bwd:CL_ABL_NOEPI=3 stna:bwd:CL_ST_NA=1"
  echo "== D$hd A/B t=$((SECONDS-T0))s"
  timeout 200 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s 140 --run-timeout 50 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600 --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A7 'bwd_tflops' $R/kb$hd.out
  tar czf $OUT/s47c6.tgz -C /tmp --exclude='*/k' --exclude='kr' s47c6
done
echo "== done t=$((SECONDS-T0))s"
