#!/usr/bin/env bash
# Session 4 final call (2x H200): merged kernels (kfwd persistent forward, kbwd TMA dQ backward,
# not yet run as committed), forward split-K and the KV segment binary search.
set -uo pipefail
export DCP=${DCP:-target/release/dcp}
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader | head -1
T0=$SECONDS
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
echo "== selftest world 2 every planner (t=$((SECONDS-T0)))"
timeout -k 5 60 $DCP launch -n 2 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $OUT/selftest_w2.jsonl > /tmp/st.log 2>&1; echo "rc=$?"
summ $OUT/selftest_w2.jsonl "selftest w2"; grep -E "FAIL|rror|panic" /tmp/st.log | head -3
echo "== mma selftest (t=$((SECONDS-T0)))"
DCP_CUDA_FAMILY=mma timeout -k 5 40 $DCP bench-gpu --selftest 3 --planners local,zigzag --timeout-s 30 --json $OUT/selftest_mma.jsonl > /dev/null 2>&1; summ $OUT/selftest_mma.jsonl "mma"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck memcheck; do
  echo "== $tool (t=$((SECONDS-T0)))"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 45 $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 --planners local,zigzag --timeout-s 40 > /tmp/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" /tmp/san_$tool.txt | head -4
done
echo "== causal world 2: local, zigzag, dcp, dcp-only (t=$((SECONDS-T0)))"
WORLD=2 PER_CELL=1 MASKS="causal" STATIC=local,zigzag,ulysses DCP_BLOCKS=1024 PROFILE=0 LAUNCH_TIMEOUT=60 bash bench/gpu/x4_matrix.sh > /tmp/m.log 2>&1
grep -E "plan runs|passed|FAIL" /tmp/m.log | head -3
python3 - <<'PY'
import json
for l in open('/tmp/x4_matrix/x4_matrix.jsonl'):
    r=json.loads(l)
    if 'planner' in r and r['batch'] in (3,6,7):
        print('causal b%d %-8s fwd %7.2f (pred %6.2f) bwd %7.2f (pred %6.2f) %s' % (r['batch'], r['planner'], r['fwd_ms'], r['pred_fwd_ms'] or 0, r['bwd_ms'], r['pred_bwd_ms'] or 0, 'ok' if (r.get('check') or {}).get('pass') else 'CHECK?'))
PY
echo "== kernel-bench + torch (t=$((SECONDS-T0)))"
DCP_CUDA_FAMILY=sm90 timeout -k 5 80 $DCP kernel-bench --shapes causal32k,causal128k,packed,lambda,sharedq,blockwise,works1000,onework --repeats 3 --timeout-s 75 --json $OUT/kbench.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|^[a-z0-9]+ |rror" | head -10
for m in "--head-dim 64" "--kv-heads 8" "--dtype f16"; do
  DCP_CUDA_FAMILY=sm90 timeout -k 5 25 $DCP kernel-bench --shapes causal32k $m --repeats 3 --timeout-s 20 --json $OUT/kbench_models.jsonl 2>&1 | grep -E "^causal|rror" | head -2
done
timeout -k 5 60 python3 bench/gpu/torch_ref.py $OUT/kbench.jsonl $OUT/torch.jsonl 2>&1 | tail -9
echo "== end (t=$((SECONDS-T0)))"
