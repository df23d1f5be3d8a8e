#!/usr/bin/env bash
# s33 call 4 (2x H200): timeout 500 bash .s33/run4.sh
# The tree with the 1 % piece-gain threshold (.s33/dcp2.gz, .s33/whl): selftest at world 2 and
# 1, checked multi-GPU plans (longalign x3, 114 710 tokens), python/tests' GPU tests.
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c4.tgz" --exclude=s33c4/dcp -C /tmp s33c4; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp2.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
st() { python3 -c "
import json
r = [json.loads(l) for l in open('$1') if l.strip()]
c = [x.get('check') or {} for x in r]
print('$2: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))"; }
echo "== selftest w2 t=$((SECONDS - T0))"
timeout 100 $D launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $R/st2.jsonl > $R/st2.log 2>&1; echo "rc=$?"; st $R/st2.jsonl "selftest w2"
echo "== selftest w1 t=$((SECONDS - T0))"
timeout 60 $D bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $R/st1.jsonl > $R/st1.log 2>&1; echo "rc=$?"; st $R/st1.jsonl "selftest w1"
snap
echo "== checked longalign x3 t=$((SECONDS - T0))"
DCP_CUDA_BWD_PIECE_LOG=1 timeout 150 $D launch -n 2 -- bench-gpu --dataset longalign --count 3 --masks causal,lambda,causal-blockwise --planners dcp,zigzag,ulysses --check --warmup 1 --repeats 3 --json $R/la.jsonl > $R/la.log 2>&1; echo "rc=$?"; st $R/la.jsonl "longalign checked"
echo '{"batches": [[114710]]}' > $R/b.json
DCP_CUDA_BWD_PIECE_LOG=1 timeout 90 $D launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners dcp,ulysses,zigzag,ring --check --warmup 2 --repeats 5 --json $R/mg.jsonl > $R/mg.log 2>&1; echo "rc=$?"; st $R/mg.jsonl "114710 checked"
grep -h 'dcp-cuda: backward' $R/la.log $R/mg.log | sed 's/.*launched/launched/' | sort | uniq -c
snap
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s33/whl/dcp-*.whl || exit 1
echo "== pytest test_gpu.py t=$((SECONDS - T0))"
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 150 python3 -m pytest -q -rs test_gpu.py > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -3 $R/pytest.txt
echo "== done t=$((SECONDS - T0))"
snap
