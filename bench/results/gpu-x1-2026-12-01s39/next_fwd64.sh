#!/usr/bin/env bash
# Prepared in session 39, run in session 40 (call 3, bench/results/gpu-x1-2026-12-02s40/c3_fwd64/):
#   timeout 560 bash bench/results/gpu-x1-2026-12-01s39/next_fwd64.sh
# Needs .s40/dcp.gz: the tree's release binary (cargo build --release; gzip -c target/release/dcp).
# Question: the one row below cuDNN found in session 39, the D 64 forward of 500 full 512-token
# documents (367 against cuDNN's 386 TFLOP/s, call 4): which forward switch lifts it? Their tasks
# are 4 kv tiles (not "short" at D 64's threshold of 2). Variants, alternated x3 with CPU f64 checks:
# the short-task kernel up to 4 tiles (FWD_SHORT=4), the half-tile kernel (FWD_HALF=1, off at D 64
# since session 11), 2 K/V stages and 2 Q buffers (FWD_STAGES=2:2; 4:4 is D 64's default).
# Then PyTorch flash / cuDNN on the same documents.
set -u
OUTD=${OUT:-/tmp/s40_out}
R=/tmp/s40f; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s40/dcp.gz > $D && chmod +x $D
python3 -c "
import json
L = [512, 384, 300, 511, 450, 1024, 700]
json.dump({'batches': [[4096], [L[i % len(L)] for i in range(120)]]}, open('$R/chk.json', 'w'))"
SH=full@512x500,full@384x666,full@1024x250,causal@512x500,works1000,packed,causal32k
timeout 400 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s 330 --run-timeout 60 --rounds 3 \
  --bench "kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10" \
  --check "--batches $R/chk.json --head-dim 64 --masks full,causal,lambda" \
  --field fwd_tflops_per_gpu --field bwd_tflops_per_gpu \
  base s4:DCP_CUDA_FWD_SHORT=4 half:DCP_CUDA_FWD_HALF=1 st2:DCP_CUDA_FWD_STAGES=2:2
tar czf $OUTD/f.tgz -C /tmp s40f
if [ $((SECONDS-T0)) -lt 470 ]; then
  timeout 40 $D kernel-bench --shapes full@512x500,full@384x666,full@1024x250 --head-dim 64 --repeats 5 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9@]+ +fwd|rror|panic'
  timeout $((540 - (SECONDS-T0))) python3 bench/gpu/torch_ref.py $R/kb.jsonl $R/torch.jsonl 2>&1 | tail -5
fi
tar czf $OUTD/f.tgz -C /tmp s40f
grep -h "check" $R/ab/ab_rounds.log
cat $R/ab/table.md
