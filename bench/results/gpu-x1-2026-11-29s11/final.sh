#!/usr/bin/env bash
# Session 11 last call (1 GPU): bench/gpu/x1_final.sh on merged main; then, while time is left,
# (1) the opt-in half-tile forward kernel (DCP_CUDA_FWD_HALF=1, kbw11c; its launch path never ran
# on a GPU): selftest, split-K vs CPU f64, memcheck, kernel-bench base / half alternated; (2) the
# chain-DD L2-prefetch variant kw11b left untimed. Results: $OUT/x1.tgz, $OUT/extra.tgz.
set -u
P=.pdev/s11f
export DCP=$P/dcp WHEEL=$P/whl
OUT=${OUT:?}
T0=$SECONDS
TOTAL=${TOTAL:-270}
LIMIT=${LIMIT:-170} bash bench/gpu/x1_final.sh
source bench/gpu/env.sh
J=$OUT/extra; mkdir -p $J
left() { [ $((SECONDS - T0)) -lt $((TOTAL - $1)) ]; }
summ() { python3 -c "
import json, os
f = '$1'
r = [json.loads(l) for l in open(f)] if os.path.exists(f) else []
c = [x.get('check') or {} for x in r]
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ('o', 'dq', 'dkv')}
print('$2: %d/%d pass; worst ' % (sum(1 for x in c if x.get('pass')), len(c)) + ' '.join('%s=%.1e' % kv for kv in w.items()))" | tee -a $J/summary.txt; }
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo '{"batches": [[4096]]}' > $J/splitk.json
if left 60; then
  echo "== FWD_HALF=1 selftest t=$((SECONDS-T0))s"
  DCP_CUDA_FWD_HALF=1 timeout -k 5 40 $DCP bench-gpu --selftest 8 --planners dcp,zigzag,local --json $J/half_st.jsonl > $J/half_st.log 2>&1; echo "rc=$?"
  summ $J/half_st.jsonl "FWD_HALF=1 selftest"; grep -E "FAIL|panic|rror" $J/half_st.log | head -3
  DCP_CUDA_FWD_HALF=1 timeout 40 $DCP bench-gpu --batches $J/splitk.json --masks causal,causal-blockwise --planners local --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json $J/half_sk.jsonl > $J/half_sk.log 2>&1; echo "rc=$?"
  summ $J/half_sk.jsonl "FWD_HALF=1 split-K vs CPU f64"
  DCP_CUDA_FWD_HALF=1 DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $CS --tool memcheck --print-limit 5 $DCP bench-gpu --selftest 2 --planners local,zigzag --timeout-s 50 > $J/half_memcheck.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL" $J/half_memcheck.txt | head -3 | sed 's/^/FWD_HALF=1 /' | tee -a $J/summary.txt
fi
for v in base half base half; do
  left 30 || break
  E=""; [ $v = half ] && E="DCP_CUDA_FWD_HALF=1"
  env $E timeout 30 $DCP kernel-bench --shapes causal32k,sharedq,blockwise,lambda,packed --repeats 3 --json $J/kbh_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
done
if left 25; then
  echo "== chain DD + L2 prefetch variant vs CPU f64 t=$((SECONDS-T0))s"
  python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$J/short.json', 'w'))"
  DCP_CUDA_BWD_CHAIN_DD=1 DCP_CUDA_KERNELS=$P/pfk timeout 30 $DCP bench-gpu --batches $J/short.json --head-dim 128 --masks full,causal --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $J/pf_chk.jsonl > $J/pf_chk.log 2>&1; echo "rc=$?"
  summ $J/pf_chk.jsonl "chain DD + prefetch variant vs CPU f64"
fi
for v in base dd pf base dd pf; do
  left 10 || break
  case $v in
    base) E="";;
    dd) E="DCP_CUDA_BWD_CHAIN_DD=1";;
    pf) E="DCP_CUDA_BWD_CHAIN_DD=1 DCP_CUDA_KERNELS=$P/pfk";;
  esac
  env $E timeout 20 $DCP kernel-bench --shapes works1000,onework --repeats 3 --json $J/kbd_$v.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
done
tar czf $OUT/extra.tgz -C $OUT extra && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
cat $OUT/x1/summary.txt 2>/dev/null; tar xzf $OUT/extra.tgz -O extra/summary.txt 2>/dev/null
