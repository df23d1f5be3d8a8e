#!/usr/bin/env bash
# session 8, x4 call 1: the Saved-buffer backward (dO-only all-to-all) on 4 GPUs: selftests at
# world 4 and 2, single causal sequences 32K/64K/128K (dcp, zigzag; checked, op times), PyTorch
# context_parallel + cuDNN on the same shapes, dcp again (spread), the Python GPU test (per-call
# saved tensors), validator_bench with threads (issue 12), training longalign causal dcp vs ulysses.
set -u
source bench/gpu/env.sh
S=.pdev/s8; B=$S/dcp; T0=$SECONDS; J=$OUT/r; mkdir -p $J
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | head -1; nproc
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest world 4"
timeout -k 5 90 $B launch -n 4 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w4.jsonl > $J/st4.log 2>&1; echo "rc=$?"; summ $J/selftest_w4.jsonl "selftest w4"; grep -E "FAIL|panic|rror" $J/st4.log | head -3
echo "== selftest world 2 t=$((SECONDS-T0))s"
timeout -k 5 70 $B launch -n 2 -- bench-gpu --selftest 6 --planners dcp,ulysses,usp,zigzag --json $J/selftest_w2.jsonl > $J/st2.log 2>&1; echo "rc=$?"; summ $J/selftest_w2.jsonl "selftest w2"; grep -E "FAIL|panic|rror" $J/st2.log | head -3
echo '{"batches": [[32768], [65536], [131072]]}' > /tmp/single.json
echo "== dcp single (checked, op times) t=$((SECONDS-T0))s"
timeout 170 $B launch -n 4 -- bench-gpu --batches /tmp/single.json --mask causal --planners dcp,zigzag --check --warmup 1 --repeats 3 --json $J/single_x4.jsonl --op-times $J/ops_single 2>&1 | grep -v '^\[rank 0\] {' | tail -8
echo "== torch context_parallel cudnn t=$((SECONDS-T0))s"
timeout 100 python3 -m torch.distributed.run --nproc-per-node 4 $S/torch_cp.py cudnn gqa 2>/dev/null | grep '^{' | tee -a $J/torch_cp.jsonl
echo "== dcp single again (timing only) t=$((SECONDS-T0))s"
timeout 100 $B launch -n 4 -- bench-gpu --batches /tmp/single.json --mask causal --planners dcp --warmup 1 --repeats 5 --json $J/single_x4_b.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -4
python3 bench/gpu/op_times.py $J/ops_single > $J/ops_single.md 2>&1; tail -30 $J/ops_single.md
echo "== python GPU test (2 GPUs) t=$((SECONDS-T0))s"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $S/whl/dcp-*.whl
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 200 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -4 )
echo "== validator threads t=$((SECONDS-T0))s"
for m in "--threads 1" "--threads 8 --mode phases" "--threads 8 --mode flow" "--threads 16 --mode flow"; do
  timeout 90 $S/validator_bench --budgets 131072 --count 1 --planners ring,zigzag,usp,dcp --repeats 3 $m 2>&1 | tail -6
done > $J/validator_threads.md; cat $J/validator_threads.md
echo "== train longalign causal dcp vs ulysses t=$((SECONDS-T0))s"
OUT=$J/train MASKS=causal STEPS=10 PLANNERS=dcp,ulysses timeout 200 bash bench/gpu/x4_train.sh $S/whl longalign 2>&1 | tail -6
tar czf $OUT/r.tgz -C $OUT r && rm -rf $J
echo "== done t=$((SECONDS-T0))s"
