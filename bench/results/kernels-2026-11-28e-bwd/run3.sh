#!/usr/bin/env bash
# kbwd call 3: dQ tensor reductions issued by the consumers; step orders; PyTorch side by side.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd; DCP=$K/dcp; O0=${OUT:-/tmp/o}; O=/tmp/r3; mkdir -p $O $O0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
ALL=causal32k,causal128k,packed,lambda,small1000,full8k
for spec in "vC0:4:$ALL" "v0:0:$ALL" "vC4:4:$ALL" "vC3:4:$ALL" "vT0:0:causal32k,lambda" "vC2:2:causal32k,lambda"; do
  IFS=: read v nst sh <<< "$spec"
  echo "== $v (t=$((SECONDS-T0))s)"
  if [ $nst -gt 0 ]; then
    DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP bench-gpu --selftest $nst \
      --planners local,zigzag --timeout-s 30 --json $O/selftest_$v.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5
    summ $O/selftest_$v.jsonl $v
  fi
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP kernel-bench --shapes $sh \
    --repeats 3 --timeout-s 80 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -8
done
for v in vC0 vC4 v0; do
  for m in "--head-dim 64" "--kv-heads 8" "--dtype f16" "--head-dim 64 --kv-heads 8 --dtype f16"; do
    echo "== $v $m (t=$((SECONDS-T0))s)"
    DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k $m \
      --repeats 3 --timeout-s 35 --json $O/kbench_${v}_models.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
  done
done
echo "== mma selftest (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=mma timeout -k 5 60 $DCP bench-gpu --selftest 3 --planners local,zigzag --timeout-s 30 \
  --json $O/selftest_mma.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -3
summ $O/selftest_mma.jsonl mma
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for v in vC0 vC4; do
  for tool in racecheck memcheck; do
    echo "== $tool $v (t=$((SECONDS-T0))s)"
    DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $CS --tool $tool --print-limit 5 \
      $DCP bench-gpu --selftest 2 --planners local --timeout-s 50 > $O/san_${tool}_$v.txt 2>&1
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $O/san_${tool}_$v.txt | head -4
  done
done
echo "== torch (t=$((SECONDS-T0))s)"
cat $O/kbench_v0.jsonl $O/kbench_v0_models.jsonl > $O/torch_in.jsonl
timeout -k 5 150 python3 $K/torch_ref.py $O/torch_in.jsonl $O/torch.jsonl 2>&1 | tail -14
tar czf $O0/r3.tgz -C /tmp r3
echo "== end (t=$((SECONDS-T0))s)"
