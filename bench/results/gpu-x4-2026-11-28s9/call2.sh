#!/usr/bin/env bash
# session 9 final 4-GPU call: headline with merged kernels, sparse kernel-bench, end-to-end training
# of one 131K causal sequence (dcp vs PyTorch context_parallel + cuDNN), lambda training dcp vs ulysses.
set -u
P=${P:-.pdev/s9b}
export DCP=$P/dcp WHEEL=$P/whl PEER_CP=$P/torch_cp.py
OUT=${OUT:?}
T0=$SECONDS
bash bench/gpu/x4_headline.sh
source bench/gpu/env.sh
J=$OUT/c2; mkdir -p $J
LIMIT=${LIMIT:-480}; left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  echo "== $tool t=$((SECONDS-T0))s"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 --planners local,zigzag,dcp --timeout-s 90 > $J/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL|passed" $J/san_$tool.txt | head -6
done
python3 - $J/packed.json <<'PY' || exit 1
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 6, 25, 26, 35)]}, open(sys.argv[1], "w"))
PY
echo "== packed checked, local/zigzag/dcp t=$((SECONDS-T0))s"
timeout 150 $DCP launch -n 4 -- bench-gpu --batches $J/packed.json --masks causal,lambda --planners local,zigzag,dcp --check --warmup 1 --repeats 2 --json $J/packed_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -32
echo "== kernel-bench sparse d128 t=$((SECONDS-T0))s"
timeout 60 $DCP kernel-bench --shapes causal32k,sharedq,blockwise,works1000,onework --head-dim 128 --repeats 3 --json $J/kb_sparse.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
timeout 40 $DCP kernel-bench --shapes causal32k,blockwise,works1000,onework --head-dim 64 --repeats 3 --json $J/kb_sparse64.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $WHEEL/dcp-*.whl 2>/dev/null
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
echo "== train one 131K causal sequence, dcp t=$((SECONDS-T0))s"
timeout -k 10 150 torchrun --nproc-per-node 4 examples/train.py --planner dcp --seq-len 131072 --steps 8 --warmup 3 --out $J/seq_dcp.json 2>&1 | grep -E "^(model|summary)|Error|error|Traceback" | cut -c1-300
echo "== torch context_parallel cudnn e2e t=$((SECONDS-T0))s"
timeout -k 10 120 torchrun --nproc-per-node 4 $P/torch_e2e.py cudnn 131072 2>&1 | grep '^{' | tee -a $J/torch_cp.jsonl
left 150 && echo "== train longalign lambda dcp,ulysses t=$((SECONDS-T0))s"
left 150 && timeout -k 10 150 torchrun --nproc-per-node 4 examples/train.py --planner dcp,ulysses --dataset longalign --mask lambda --steps 14 --warmup 2 --out $J/train_longalign_lambda.json 2>&1 | grep -E "^(model|summary)|Error|error|Traceback" | cut -c1-300
python3 bench/gpu/train_report.py $J 2>&1 | tail -12
tar czf $OUT/c2.tgz -C $OUT c2 && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
