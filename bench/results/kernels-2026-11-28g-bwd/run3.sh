#!/usr/bin/env bash
# kbwd2 call 3: wD = main + the dQ reductions' barrier and issue moved to the next step (after its
# S^T/dP^T issue); interleaved with main's kernel (v0); sanitizers on wD; ncu source profile of v0.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd2; DCP=$K/dcp; O=/tmp/r3; mkdir -p $O ${OUT:-/tmp/o}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
echo "== selftest wD"
DCP_CUDA_KERNELS=$K/v/wD DCP_CUDA_FAMILY=sm90 timeout -k 5 50 $DCP bench-gpu --selftest 4 --planners local,zigzag \
  --timeout-s 30 --json $O/selftest_wD.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -5
python3 -c "import json; r=[json.loads(l) for l in open('$O/selftest_wD.jsonl')]; c=[x.get('check') or {} for x in r]; print('selftest wD: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"
i=0
for v in v0 wD v0 wD v0 wD; do
  i=$((i+1)); echo "== $v #$i (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k,causal128k \
    --repeats 3 --timeout-s 35 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
for v in v0 wD; do
  echo "== $v packed, lambda (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/$v DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes packed,lambda \
    --repeats 3 --timeout-s 35 --json $O/kbench_pl_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck memcheck; do
  echo "== $tool wD (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/wD DCP_CUDA_FAMILY=sm90 timeout -k 5 30 $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local --timeout-s 25 > $O/san_${tool}_wD.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $O/san_${tool}_wD.txt | head -4
done
NCUB=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "== ncu v0 (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $NCUB --clock-control none --section SpeedOfLight --section WarpStateStats \
  --section SourceCounters -o $O/ncu_v0 -k regex:attn_bwd_sm90 -c 1 $DCP kernel-bench --shapes causal32k --repeats 1 \
  --warmup 0 --timeout-s 35 > $O/ncu_v0.log 2>&1
timeout 20 $NCUB -i $O/ncu_v0.ncu-rep > $O/ncu_v0.txt 2>&1
timeout 20 $NCUB -i $O/ncu_v0.ncu-rep --page source --csv --print-source sass > $O/ncu_src_v0.csv 2>&1
rm -f $O/ncu_v0.ncu-rep
grep -E "Duration|Throughput|Warp Cycles" $O/ncu_v0.txt | head -8
tar czf ${OUT:-/tmp/o}/r3.tgz -C /tmp r3
echo "== end (t=$((SECONDS-T0))s)"
