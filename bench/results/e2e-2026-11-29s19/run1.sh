#!/usr/bin/env bash
# Session 19 call 1 (2x H200): main 31a2eaa + the page-locked staging pool for descriptor arenas
# (DCP_CUDA_PINNED_STAGING, default 1) + alloc_s in executor_stats. Checks at world 1 and 2
# against the CPU f64 reference (also the first GPU run of ae0362f's shared peer wait), then
# examples/train.py on the same longalign batches: pageable vs pinned staging with the next plan
# prepared during the backward, the pool raised to 32 GB, and pinned without prepare-ahead.
set -u
P=.pdev/s19a; DCP=$P/dcp
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-330}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $P/whl/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
J=$OUT/r; mkdir -p $J
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $J/gpu.txt
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
CUDA_VISIBLE_DEVICES=0 timeout -k 5 80 $DCP bench-gpu --selftest 8 --planners dcp,zigzag,ring,local,usp --json $J/st1.jsonl > $J/st1.log 2>&1; echo "rc=$?"
summ $J/st1.jsonl "selftest sm90 w1" | tee -a $J/summary.txt
echo "== selftest w2 t=$((SECONDS-T0))s"
timeout -k 5 90 $DCP launch -n 2 -- bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/st2.jsonl > $J/st2.log 2>&1; echo "rc=$?"
summ $J/st2.jsonl "selftest w2" | tee -a $J/summary.txt
port=29570
run_train() {  # name, env..., -- extra args
  local name=$1; shift
  left 50 || { echo "skip train $name"; return; }
  echo "== train $name t=$((SECONDS-T0))s"
  port=$((port + 1))
  env "$@" timeout -k 5 100 torchrun --nproc-per-node 2 --master-port $port examples/train.py --planner dcp --dataset longalign --mask causal --steps 8 --warmup 2 $EXTRA --out $J/train_$name.json > $J/train_$name.log 2>&1; echo "rc=$?"
}
EXTRA="" run_train pageable_1 DCP_CUDA_PINNED_STAGING=0
EXTRA="" run_train pinned_1 DCP_CUDA_PINNED_STAGING=1
EXTRA="" run_train pinned_pool32g DCP_CUDA_PINNED_STAGING=1 DCP_CUDA_POOL_MB=32768
EXTRA="--no-prepare-ahead" run_train pinned_noahead DCP_CUDA_PINNED_STAGING=1
EXTRA="" run_train pageable_2 DCP_CUDA_PINNED_STAGING=0
EXTRA="" run_train pinned_2 DCP_CUDA_PINNED_STAGING=1
python3 - $J <<'PY' | tee $J/train_table.txt
import glob, json, os, sys
J = sys.argv[1]
print("train.py longalign causal dcp, 2 GPUs, mean of steps 2-7 (rank 0)")
for f in sorted(glob.glob(os.path.join(J, "train_*.json"))):
    st = json.load(open(f))["steps"]; s = st[2:]
    m = lambda k: sum(r.get(k, 0) for r in s) / len(s)
    print(f"  {os.path.basename(f)[6:-5]:15} step {m('step_s')*1e3:7.1f} ms | prepare {m('prepare_s')*1e3:6.1f} ms (wait {m('prepare_wait_s')*1e3:.1f}, "
          f"{m('pool_misses'):.1f} misses {m('alloc_s')*1e3:.1f} ms alloc, evict {m('evict_s')*1e3:.1f}) | loss {st[-1]['loss']:.4f} | steps " + " ".join(f"{r['step_s']*1e3:.0f}" for r in st))
PY
echo "== summary"; cat $J/summary.txt
tar czf $OUT/all.tgz -C $OUT r && rm -rf $J
echo "total $((SECONDS-T0))s"
