#!/usr/bin/env bash
# Two GPUs (session 10), end-of-session check of merged main in one call: the multi-device paths first
# (selftest at world 2 with every planner, packed 131K-token batches --check at world 2 for
# local/zigzag/ring/dcp x causal/lambda, and the same with the backward's executor transforms
# off, DCP_CUDA_BWD_FUSE_FILL=0 DCP_CUDA_BWD_CONVERT=0, as the A/B of correctness), then
# bench/gpu/x1_final.sh on GPU 0 (selftests, sanitizers, kernel-bench next to PyTorch).
# Env: DCP, WHEEL (optional), LIMIT (s, default 560), X1 (0: skip the one-GPU part). Results:
# $OUT/x2.tgz and $OUT/x1.tgz.
set -u
source bench/gpu/env.sh
OUT=${OUT:?}
T0=$SECONDS
LIMIT=${LIMIT:-560}
J=$OUT/x2; mkdir -p $J
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
echo "== selftest world 2 t=$((SECONDS-T0))s"
timeout -k 5 100 $DCP launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/st_w2.jsonl > $J/st_w2.log 2>&1; echo "rc=$?"
summ $J/st_w2.jsonl "selftest w2" | tee -a $J/summary.txt; grep -E "FAIL|panic|rror" $J/st_w2.log | head -3
echo "== selftest world 2, dQ by its last writer (opt-in) t=$((SECONDS-T0))s"
DCP_CUDA_BWD_CONVERT=1 timeout -k 5 60 $DCP launch -n 2 -- bench-gpu --selftest 4 --planners dcp,ring,zigzag,local --json $J/st_w2_conv.jsonl > $J/st_w2_conv.log 2>&1; echo "rc=$?"
summ $J/st_w2_conv.jsonl "selftest w2 BWD_CONVERT=1" | tee -a $J/summary.txt
python3 - $J/packed.json <<'PY' || exit 1
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 35)]}, open(sys.argv[1], "w"))
PY
echo "== packed --check world 2 t=$((SECONDS-T0))s"
timeout 150 $DCP launch -n 2 -- bench-gpu --batches $J/packed.json --masks causal,lambda --planners local,zigzag,ring,dcp --check --warmup 1 --repeats 2 --json $J/packed_w2.jsonl > $J/packed_w2.log 2>&1; echo "rc=$?"
summ $J/packed_w2.jsonl "packed w2 --check" | tee -a $J/summary.txt; grep -E "FAIL|panic|rror" $J/packed_w2.log | head -3
echo "== packed --check world 2, transforms off t=$((SECONDS-T0))s"
DCP_CUDA_BWD_FUSE_FILL=0 DCP_CUDA_BWD_CONVERT=0 timeout 100 $DCP launch -n 2 -- bench-gpu --batches $J/packed.json --masks causal --planners dcp --check --warmup 1 --repeats 2 --json $J/packed_w2_off.jsonl > $J/packed_w2_off.log 2>&1; echo "rc=$?"
summ $J/packed_w2_off.jsonl "packed w2 --check, transforms off" | tee -a $J/summary.txt
python3 - $J <<'PY' | tee $J/packed.md
import json, os, sys
d = sys.argv[1]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
print("| transforms | planner | mask | tokens | fwd ms | bwd ms | check |")
print("|---|---|---|---|---|---|---|")
for name, f in (("on", "packed_w2.jsonl"), ("off", "packed_w2_off.jsonl")):
    for r in rd(f):
        if r.get("kind") == "bench":
            ok = (r.get("check") or {}).get("pass")
            print(f"| {name} | {r.get('planner')} | {r.get('mask')} | {r.get('tokens')} | {r.get('fwd_ms', 0):.2f} | {r.get('bwd_ms', 0):.2f} | {ok} |")
PY
if [ -n "${WHEEL:-}" ] && [ -d "${WHEEL:-}" ]; then
  echo "== python GPU test (2 GPUs) t=$((SECONDS-T0))s"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $WHEEL/dcp-*.whl 2>/dev/null
  ( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 150 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -3 ) | tee $J/pytest_gpu.txt
fi
tar czf $OUT/x2.tgz -C $OUT x2 && rm -rf $J
[ "${X1:-1}" = 0 ] && { echo "== one-GPU part skipped (X1=0) t=$((SECONDS-T0))s"; exit 0; }
echo "== one-GPU part t=$((SECONDS-T0))s"
# (the Python test needs two GPUs: it ran above)
WHEEL= CUDA_VISIBLE_DEVICES=0 LIMIT=$((LIMIT - (SECONDS - T0))) bash bench/gpu/x1_final.sh
