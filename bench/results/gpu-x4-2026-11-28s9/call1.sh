#!/usr/bin/env bash
# session 9 call 1: headline (kfwd forward on 4 GPUs) + dcp saved-KV A/B on packed batches + sparse kernel-bench baseline
set -u
P=.pdev/s9
export DCP=$P/dcp WHEEL=$P/whl PEER_CP=$P/torch_cp.py
OUT=${OUT:?}
T0=$SECONDS
bash bench/gpu/x4_headline.sh
source bench/gpu/env.sh
J=$OUT/ab; mkdir -p $J
python3 - $J/packed.json <<'PY' || exit 1
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 6, 25, 26, 35)]}, open(sys.argv[1], "w"))
PY
echo "== kernel-bench sparse d128 t=$((SECONDS-T0))s"
timeout 60 $DCP kernel-bench --shapes causal32k,sharedq,blockwise,works1000,onework --head-dim 128 --repeats 3 --json $J/kb_sparse.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
timeout 60 python3 bench/gpu/torch_ref.py $J/kb_sparse.jsonl $J/torch_sparse.jsonl 2>&1 | tail -2
for sv in on off; do
  X=(); [ $sv = off ] && X=(--no-saved-kv)
  echo "== packed dcp saved-kv=$sv t=$((SECONDS-T0))s"
  timeout 150 $DCP launch -n 4 -- bench-gpu --batches $J/packed.json --masks causal,lambda,causal-blockwise --planners dcp "${X[@]}" --check --warmup 1 --repeats 3 --json $J/packed_$sv.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -18
done
echo "== flash varlen floor t=$((SECONDS-T0))s"
timeout 60 python3 $P/ideal_attn.py $J/packed.json 5 > $J/ideal.jsonl 2>&1; tail -3 $J/ideal.jsonl
tar czf $OUT/ab.tgz -C $OUT ab && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
