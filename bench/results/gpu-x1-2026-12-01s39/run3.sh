#!/usr/bin/env bash
# Session 39, call 4: owned dK/dV rows in D 64 launches that do not cluster (DCP_CUDA_BWD_OWN_D64).
#   timeout 560 bash bench/results/gpu-x1-2026-12-01s39/run3.sh
# Needs .s39/dcp.gz (this tree, release).
# 1. memcheck / racecheck with DCP_CUDA_BWD_OWN_D64=1 on 150 mixed short documents at D 64.
# 2. ab_rounds.py at D 64, base (off) against own (DCP_CUDA_BWD_OWN_D64=1): CPU f64 checks of each
#    variant (one 4096-token sequence, three documents, 150 mixed short documents; full, causal,
#    causal-blockwise, lambda), then 3 alternated rounds over long and short-document shapes.
# 3. PyTorch flash / cuDNN on the short-document shapes at D 64.
set -u
OUTD=${OUT:-/tmp/s39_out}
R=/tmp/s39c4; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp_new; gunzip -c .s39/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
S = [L[i % len(L)] for i in range(150)]
json.dump({'batches': [S]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096], [2000, 1500, 700], S]}, open('$R/chk.json', 'w'))"

echo "== 1. sanitizers, OWN_D64=1, D 64 short documents t=$((SECONDS-T0))s"
for tool in memcheck racecheck; do
  DCP_CUDA_BWD_OWN_D64=1 timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/short.json --head-dim 64 --masks full,causal --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_$tool.txt 2>&1; echo "$tool rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_$tool.txt | head -4 | sed "s/^/$tool: /" | tee -a $R/summary.txt
done

echo "== 2. A/B D 64 t=$((SECONDS-T0))s"
SH=full@128x2000,full@512x500,causal@512x500,causal@1024x250,works1000,onework,packed,causal32k,lambda,blockwise
timeout 330 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s 260 --run-timeout 60 --rounds 3 \
  --bench "kernel-bench --head-dim 64 --shapes $SH --warmup 3 --repeats 10" \
  --check "--batches $R/chk.json --head-dim 64 --masks full,causal,causal-blockwise,lambda" \
  --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu \
  base own:DCP_CUDA_BWD_OWN_D64=1
tar czf $OUTD/c4.tgz -C /tmp s39c4

echo "== 3. torch D 64 short documents t=$((SECONDS-T0))s"
if [ $((SECONDS-T0)) -lt 470 ]; then
  DCP_CUDA_BWD_OWN_D64=1 timeout 40 $D kernel-bench --shapes full@128x2000,full@512x500,causal@512x500,causal@1024x250 --head-dim 64 --repeats 5 --json $R/kb64.jsonl 2>&1 | grep -E '^[a-z0-9@]+ +fwd|rror|panic'
  timeout $((540 - (SECONDS-T0))) python3 bench/gpu/torch_ref.py $R/kb64.jsonl $R/torch64.jsonl 2>&1 | tail -6
fi
tar czf $OUTD/c4.tgz -C /tmp s39c4
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
grep -h "check" $R/ab/ab_rounds.log
cat $R/ab/table.md
