#!/usr/bin/env bash
# Session 17 last call (2x H200): merged main (kf17 forward defaults, kb17 backward with BWD_EPI17
# flipped to 1) checked against the CPU f64 reference and by compute-sanitizer, then the same-model
# end-to-end step against PyTorch context_parallel (bench/gpu/x2_e2e.sh), then, if time is left, an
# alternated kernel-bench A/B against session 16's main (BASE).
set -u
P=.pdev/s17f
source bench/gpu/env.sh
OUT=${OUT:?}; T0=$SECONDS; LIMIT=${LIMIT:-440}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
J=$OUT/chk; mkdir -p $J
DCP=$P/dcp
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | head -1
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
echo "== selftest world 1 sm90 t=$((SECONDS-T0))s"
CUDA_VISIBLE_DEVICES=0 timeout -k 5 60 $DCP bench-gpu --selftest 12 --planners dcp,zigzag,ring,local,usp --json $J/st.jsonl > $J/st.log 2>&1; echo "rc=$?"
summ $J/st.jsonl "selftest sm90 w1" | tee -a $J/summary.txt; grep -E "FAIL|panic|rror" $J/st.log | head -3
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[4096]]}, open('$J/splitk.json', 'w'))
json.dump({'batches': [[1024]]}, open('$J/b1k.json', 'w'))
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$J/short.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$J/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$J/pair300.json', 'w'))"
export CUDA_VISIBLE_DEVICES=0
echo "== split-K, short, pair documents vs CPU f64 t=$((SECONDS-T0))s"
timeout 40 $DCP bench-gpu --batches $J/splitk.json --masks causal,full,causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json $J/chk.jsonl > $J/splitk.log 2>&1; echo "splitk rc=$?"
timeout 40 $DCP bench-gpu --batches $J/short.json --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/chk.jsonl > $J/short.log 2>&1; echo "short rc=$?"
timeout 40 $DCP bench-gpu --batches $J/pair.json --head-dim 128 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/chk.jsonl > $J/pair.log 2>&1; echo "pair rc=$?"
timeout 40 $DCP bench-gpu --batches $J/pair300.json --head-dim 128 --dtype f16 --kv-heads 1 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/chk.jsonl > $J/pair_f16.log 2>&1; echo "pair f16 rc=$?"
grep -E "FAIL|panic|rror" $J/splitk.log $J/short.log $J/pair.log $J/pair_f16.log | head -3
summ $J/chk.jsonl "split-K 4096 (4 masks) + 150 short (4 masks) + pair bf16 + pair f16 kv1" | tee -a $J/summary.txt
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  echo "== $tool: plain backward (BWD_EPI17), blockwise + lambda, 1024 tokens t=$((SECONDS-T0))s"
  timeout -k 2 30 $CS --tool $tool --print-limit 5 $DCP bench-gpu --batches $J/b1k.json --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 --timeout-s 28 --op-times $J/san_${tool}_ops > $J/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_$tool.txt | head -4 | sed "s/^/b1k $tool: /" | tee -a $J/summary.txt
  echo "== $tool: pair documents (clusters) t=$((SECONDS-T0))s"
  timeout -k 2 30 $CS --tool $tool --print-limit 5 $DCP bench-gpu --batches $J/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 28 > $J/san_pair_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/san_pair_$tool.txt | head -4 | sed "s/^/pair $tool: /" | tee -a $J/summary.txt
done
echo "plain backward kernels in the sanitizer run: $(cat $J/san_memcheck_ops/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $J/summary.txt
unset CUDA_VISIBLE_DEVICES
E=$((LIMIT - (SECONDS - T0) - 45))
echo "== e2e (LIMIT $E) t=$((SECONDS-T0))s"
OUT=$OUT/e2e LIMIT=$E WHEEL=$P/whl bash bench/gpu/x2_e2e.sh
if left 35; then
  echo "== A/B kernel-bench base / new t=$((SECONDS-T0))s"
  for v in base new; do
    B=$P/dcp; [ $v = base ] && B=$P/base
    CUDA_VISIBLE_DEVICES=0 timeout 30 $B kernel-bench --shapes blockwise,works1000,onework,causal32k,lambda,packed --repeats 3 --timeout-s 28 --json $J/ab_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd" | sed "s/^/$v /"
  done
fi
cat $J/summary.txt
tar czf $OUT/chk.tgz -C $OUT chk && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
