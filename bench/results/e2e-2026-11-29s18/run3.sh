#!/usr/bin/env bash
# Session 18 call 3 (2x H200): preparing a program no longer waits for the GPU (pool buffers
# reused in stream order, the descriptor arena uploaded from page-locked memory). Checks: selftest
# at world 1 and 2 against the CPU f64 reference, the Python GPU test; then examples/train.py on
# the same packed longalign batches with DCP_CUDA_PREPARE_SYNC=1 (old) and 0 (new).
set -u
P=.pdev/s18c
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-300}
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $P/whl/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
mkdir -p $OUT/r
summ() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
c = [r.get("check") or {} for r in rows if "check" in r]
ok = sum(1 for x in c if x.get("pass"))
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"{sys.argv[2]}: {ok}/{len(c)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in w.items()))
PY
}
echo "== selftest w1 t=$((SECONDS-T0))s"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 70 $P/dcp bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $OUT/r/st1.jsonl > $OUT/r/st1.log 2>&1; echo "rc=$?"
summ $OUT/r/st1.jsonl "selftest w1"
echo "== selftest w2 t=$((SECONDS-T0))s"
timeout -k 5 90 $P/dcp launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $OUT/r/st2.jsonl > $OUT/r/st2.log 2>&1; echo "rc=$?"
summ $OUT/r/st2.jsonl "selftest w2"
echo "== pytest test_gpu.py t=$((SECONDS-T0))s"
( cd python/tests && timeout 120 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -3 ) | tee $OUT/r/pytest_gpu.txt
for mode in 1 0; do
  left=$((LIMIT - (SECONDS - T0)))
  [ $left -lt 75 ] && { echo "skip train PREPARE_SYNC=$mode: ${left}s left"; continue; }
  echo "== train.py longalign causal dcp, DCP_CUDA_PREPARE_SYNC=$mode t=$((SECONDS-T0))s"
  mkdir -p $OUT/r/sync$mode
  DCP_CUDA_PREPARE_SYNC=$mode OUT=$OUT/r/sync$mode PLANNERS=dcp MASKS=causal STEPS=8 WARMUP=2 NPROC=2 timeout -k 5 $((left - 5)) bash bench/gpu/x4_train.sh $P/whl longalign 2>&1 | grep -E "^\| longalign|!!|rror" | head -5
done
python3 - $OUT/r <<'PY'
import json, os, sys
print("step  tokens   step ms sync=1 / 0   prepare ms (wait) sync=1 / 0")
rs = {}
for m in ("1", "0"):
    f = os.path.join(sys.argv[1], f"sync{m}", "train_longalign_causal.json")
    if os.path.exists(f):
        rs[m] = json.load(open(f))["steps"]
if len(rs) == 2:
    for a, b in zip(rs["1"], rs["0"]):
        print(f"{a['step']:4d} {a['tokens']:7d}  {a['step_s']*1e3:8.1f} / {b['step_s']*1e3:8.1f}   "
              f"{a['prepare_s']*1e3:6.1f} ({a.get('prepare_wait_s', 0)*1e3:5.1f}) / {b['prepare_s']*1e3:6.1f} ({b.get('prepare_wait_s', 0)*1e3:5.1f})")
    for m in ("1", "0"):
        st = rs[m][2:]
        print(f"sync={m}: mean step (after 2) {sum(r['step_s'] for r in st)/len(st)*1e3:.1f} ms, "
              f"prepare {sum(r['prepare_s'] for r in st)/len(st)*1e3:.1f} ms (wait {sum(r.get('prepare_wait_s',0) for r in st)/len(st)*1e3:.1f})")
PY
tar czf $OUT/all.tgz -C $OUT r && rm -rf $OUT/r
echo "total $((SECONDS-T0))s"
