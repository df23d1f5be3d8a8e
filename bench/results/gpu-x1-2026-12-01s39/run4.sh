#!/usr/bin/env bash
# Session 39, call 6 (the last 263 s of device time): a short first look at next_fwd64.sh's question,
# the D 64 forward of 500 full 512-token documents (0.95x cuDNN in call 4).
#   timeout 165 bash bench/results/gpu-x1-2026-12-01s39/run4.sh
# Needs .s39/dcp.gz (81b70f8a's release build; the forward is unchanged since).
# ab_rounds.py: base, DCP_CUDA_FWD_SHORT=4 (4-tile tasks on the short-task kernel), DCP_CUDA_FWD_HALF=1;
# CPU f64 checks of each variant on 60 documents of 300-1024 tokens, then 2 alternated rounds.
set -u
OUTD=${OUT:-/tmp/s39_out}
R=/tmp/s39c6; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s39/dcp.gz > $D && chmod +x $D
python3 -c "
import json
L = [512, 384, 300, 511, 450, 1024, 700]
json.dump({'batches': [[L[i % len(L)] for i in range(60)]]}, open('$R/chk.json', 'w'))"
timeout 150 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s 120 --run-timeout 30 --rounds 2 \
  --bench "kernel-bench --head-dim 64 --shapes full@512x500,full@384x666,causal@512x500 --warmup 3 --repeats 10" \
  --check "--batches $R/chk.json --head-dim 64 --masks full,causal" \
  --field fwd_tflops_per_gpu --snap $OUTD/c6.tgz \
  base s4:DCP_CUDA_FWD_SHORT=4 half:DCP_CUDA_FWD_HALF=1
tar czf $OUTD/c6.tgz -C /tmp s39c6
grep -h "check" $R/ab/ab_rounds.log
cat $R/ab/table.md
