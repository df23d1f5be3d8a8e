#!/usr/bin/env bash
# kbwd call 1: backward variants A/B (one binary, kernels via DCP_CUDA_KERNELS).
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd; DCP=$K/dcp; O=${OUT:-/tmp/o}; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
for spec in "v0:causal32k,causal128k,packed,lambda,small1000,full8k" "v2:causal32k,lambda" \
            "v3:causal32k,causal128k,packed,lambda,small1000,full8k" "v3b:causal32k,lambda" \
            "v4:causal32k,causal128k,packed,lambda,small1000,full8k"; do
  v=${spec%%:*}; sh=${spec#*:}
  echo "== $v (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP bench-gpu --selftest 3 \
    --planners local,zigzag --timeout-s 30 --json $O/selftest_$v.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5
  summ $O/selftest_$v.jsonl $v
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP kernel-bench --shapes $sh \
    --repeats 3 --timeout-s 80 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -8
done
for v in v0 v4; do
  for m in "--head-dim 64" "--kv-heads 8" "--dtype f16"; do
    echo "== $v $m (t=$((SECONDS-T0))s)"
    DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k $m \
      --repeats 3 --timeout-s 35 --json $O/kbench_${v}_models.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
  done
done
for tool in racecheck memcheck; do
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  echo "== $tool v4 (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/v4 DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local --timeout-s 50 > $O/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $O/san_$tool.txt | head -6
done
echo "== end (t=$((SECONDS-T0))s)"
