#!/usr/bin/env bash
# Session 5 diagnostic call: selftest after the merges, then per-op timings (bench-gpu --op-times)
# of (a) the lambda training batches where dcp lost to Ulysses in training (16/4 heads, as
# examples/train.py), (b) shared-question ring-style forwards that ran at half their simulated speed.
set -u
source bench/gpu/env.sh
export DCP=.pdev/dcp   # after env.sh, which sets DCP=target/release/dcp when unset
W=${W:-$(nvidia-smi -L | wc -l)}
J=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1; echo "world $W"
t0=$(date +%s)
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest world $W"
timeout -k 5 90 $DCP launch -n $W -- bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest.jsonl > /tmp/st.log 2>&1; echo "rc=$?"; summ $J/selftest.jsonl "selftest w$W"; grep -E "FAIL|rror|panic" /tmp/st.log | head -3
echo "== training batches, lambda, 16/4 heads, op times  t=$(( $(date +%s) - t0 ))s"
timeout 200 $DCP launch -n $W -- bench-gpu --batches .pdev/trainb.json --mask lambda --heads 16 --kv-heads 4 --planners dcp,ulysses,local,dcp-only --warmup 1 --repeats 3 --json $J/trainb.jsonl --op-times $J/ops_train 2>&1 | grep -v '^\[rank 0\] {' | tail -32
echo "== shared-question, op times  t=$(( $(date +%s) - t0 ))s"
timeout 150 $DCP launch -n $W -- bench-gpu --batches .pdev/sq.json --mask shared-question --planners ring,zigzag,ulysses,local,dcp --warmup 1 --repeats 3 --json $J/sq.jsonl --op-times $J/ops_sq 2>&1 | grep -v '^\[rank 0\] {' | tail -18
python3 bench/gpu/op_times.py $J/ops_sq --top 3 > $J/ops_sq.md 2>&1
python3 bench/gpu/op_times.py $J/ops_train --top 3 > $J/ops_train.md 2>&1
tar czf $J/ops.tgz -C $J ops_sq ops_train && rm -rf $J/ops_sq $J/ops_train
head -c 5000 $J/ops_sq.md
echo "== done t=$(( $(date +%s) - t0 ))s"
