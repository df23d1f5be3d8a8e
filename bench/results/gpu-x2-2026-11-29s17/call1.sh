#!/usr/bin/env bash
# Session 17 call 1 (2x H200): issue 10's headline at world 2 (x4_headline.sh N=2), packed batches at
# world 2 against the flash-varlen floor, one training step on one 131K causal sequence against
# PyTorch context_parallel (x4_train.sh seq, NPROC=2). main 9f1d8d9 (= session 16's kernels).
set -u
P=.pdev/s17a
OUT=${OUT:?}; LIMIT=${LIMIT:-560}; T0=$SECONDS
export DCP=$P/dcp WHEEL=$P/whl PEER_CP=$P/peers/torch_cp.py
N=2 OUT=$OUT timeout $((LIMIT - 330)) bash bench/gpu/x4_headline.sh
source bench/gpu/env.sh
J=$OUT/packed; mkdir -p $J
python3 - $J/packed.json <<'PY'
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 25, 35)]}, open(sys.argv[1], "w"))
PY
echo "== packed world 2 (local, zigzag, dcp; checked) t=$((SECONDS-T0))s"
timeout 120 $DCP launch -n 2 -- bench-gpu --batches $J/packed.json --masks causal --planners local,zigzag,dcp --check --warmup 1 --repeats 3 --json $J/packed_x2.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -14
echo "== flash varlen floor, one GPU t=$((SECONDS-T0))s"
timeout 60 python3 $P/peers/ideal_attn.py $J/packed.json 5 > $J/ideal.jsonl 2>&1; tail -3 $J/ideal.jsonl
tar czf $OUT/packed.tgz -C $OUT packed && rm -rf $J
left=$((LIMIT - (SECONDS - T0)))
echo "== train seq world 2 (left ${left}s) t=$((SECONDS-T0))s"
[ $left -gt 60 ] && NPROC=2 OUT=$OUT/train PEER=$P/peers/torch_e2e.py timeout $left bash bench/gpu/x4_train.sh $P/whl seq
echo "== all done t=$((SECONDS-T0))s"
