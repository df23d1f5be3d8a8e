#!/usr/bin/env bash
# 2x H200 (DCP=binary, WHL=wheel folder): executor selftest at world 2 with every planner, two
# checked ldc batches, the Python GPU test, a training smoke and the matrix harness at world 2.
set -uo pipefail
export DCP=${DCP:-target/release/dcp}; WHL=${WHL:-.pdev/whl}
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
T0=$SECONDS
echo "== selftest world 2 (t=$((SECONDS-T0)))"
timeout -k 5 150 $DCP launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $OUT/selftest_w2.jsonl > /tmp/st.log 2>&1; echo "rc=$?"
python3 -c "
import json; r=[json.loads(l) for l in open('$OUT/selftest_w2.jsonl')]; c=[x.get('check') or {} for x in r]
print('selftest w2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max(x.get('dq',0) or 0 for x in c), max(x.get('dkv',0) or 0 for x in c), max(x.get('o',0) or 0 for x in c)))
bad=[(x['name'],x['planner']) for x in r if not (x.get('check') or {}).get('pass')]; print('fails:', bad[:10])" 2>&1 | tail -3
grep -E "FAIL|rror|panic" /tmp/st.log | head -5
echo "== ldc 2 batches world 2, every planner, checked (t=$((SECONDS-T0)))"
timeout -k 5 240 $DCP launch -n 2 -- bench-gpu --dataset ldc --count 2 --masks causal,lambda --planners dcp,ring,zigzag,ulysses,usp,local --block-sizes 1024 --warmup 1 --repeats 2 --check --json $OUT/bench_w2.jsonl > /tmp/b.log 2>&1; echo "rc=$?"
grep -v '^\[rank 0\] {' /tmp/b.log | grep -E "ldcx|FAIL|rror|plan runs" | grep -v "rank 1" | cut -c1-170 | head -30
echo "== python GPU test (t=$((SECONDS-T0)))"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $WHL/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
timeout -k 5 200 python3 -m pytest -q -x python/tests/test_gpu.py 2>&1 | tail -3
echo "== train smoke world 2 (t=$((SECONDS-T0)))"
timeout -k 5 150 torchrun --nproc-per-node 2 examples/train.py --planner dcp,ring,zigzag,ulysses,usp --layers 4 --steps 6 --warmup 2 --mask lambda --out $OUT/train_w2.json 2>&1 | grep -E "^(summary)|Error|error|Traceback" | cut -c1-260
echo "== matrix harness world 2, 1 batch per cell, causal+lambda (t=$((SECONDS-T0)))"
WORLD=2 PER_CELL=1 MASKS="causal lambda" PROFILE=1 LAUNCH_TIMEOUT=200 REPORT_LINES=40 bash bench/gpu/x4_matrix.sh 2>&1 | tail -45
echo "== done (t=$((SECONDS-T0)))"
