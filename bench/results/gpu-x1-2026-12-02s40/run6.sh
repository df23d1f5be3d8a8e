#!/usr/bin/env bash
# Session 40, call 6 (the budget's last ~4 minutes): FWD_HALFBITS at D 64, now that D 64 launches
# with up to 2.5 half tiles per q tile take the half-tile kernel (on at D 128 since session 17:
# causal-blockwise +1.1 %). Alternated x2, CPU f64 check each.
#   timeout 170 bash bench/results/gpu-x1-2026-12-02s40/run6.sh
set -u
OUTD=${OUT:-/tmp/s40_out}
R=/tmp/s40c6; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=/tmp/dcp; gunzip -c .s40/dcp.gz > $D && chmod +x $D
python3 -c "
import json
json.dump({'batches': [[2048], [512, 384, 300, 700] * 5]}, open('$R/chk.json', 'w'))"
timeout 150 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s 110 --run-timeout 40 --rounds 2 \
  --bench "kernel-bench --head-dim 64 --shapes causal32k,sharedq,causal@512x500,packed,blockwise --warmup 2 --repeats 8" \
  --check "--batches $R/chk.json --head-dim 64 --masks causal,shared-question" \
  --snap $OUTD/c6.tgz --field fwd_tflops_per_gpu \
  base hb:DCP_CUDA_FWD_HALFBITS=1
tar czf $OUTD/c6.tgz -C /tmp --exclude='*/k' s40c6
grep -h "check" $R/ab/ab_rounds.log
cat $R/ab/table.md
