#!/usr/bin/env bash
# session 7 last call (4 GPUs): selftests at world 4 and 2 with the precomputed tile masks, then packed 131K batches
# with lambda and causal-blockwise masks (zigzag, dcp; checked)
set -u
DCP=.pdev/new3/dcp
source bench/gpu/env.sh
T0=$SECONDS
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
timeout -k 5 60 $DCP launch -n 4 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $OUT/st_w4.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st_w4.jsonl "selftest w4"
timeout -k 5 45 $DCP launch -n 2 -- bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $OUT/st_w2.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st_w2.jsonl "selftest w2"
echo "== packed sparse t=$((SECONDS-T0))"
python3 - /tmp/packed.json <<'PY'
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 25)]}, open(sys.argv[1], "w"))
PY
timeout 80 $DCP launch -n 4 -- bench-gpu --batches /tmp/packed.json --masks lambda,causal-blockwise --planners zigzag,dcp --check --warmup 1 --repeats 3 --json $OUT/sparse_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | grep -E "packed|rror" | head -12
echo "== done t=$((SECONDS-T0))"
