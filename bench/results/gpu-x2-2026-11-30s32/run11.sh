#!/usr/bin/env bash
# s32 call 11 (2x H200): timeout 200 bash .s32/run11.sh
# The final tree (5ff4f92 + records): selftest at world 1 with its binary, and python/tests'
# GPU tests (dcp.torch.attention on 1 and 2 GPUs, every planner and mask) with its wheel.
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c11; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c11.tgz" --exclude=s32c11/dcp -C /tmp s32c11; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s32/dcp9.gz > $D && chmod +x $D
echo "== selftest w1 t=$((SECONDS - T0))"
timeout 60 $D bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $R/st1.jsonl > $R/st1.log 2>&1; echo "rc=$?"
python3 -c "
import json
r = [json.loads(l) for l in open('$R/st1.jsonl') if l.strip()]
c = [x.get('check') or {} for x in r]
print('selftest w1: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s32/whl2/dcp-*.whl || exit 1
echo "== pytest test_gpu.py t=$((SECONDS - T0))"
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 120 python3 -m pytest -q -rs test_gpu.py > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -3 $R/pytest.txt
echo "== done t=$((SECONDS - T0))"
snap
