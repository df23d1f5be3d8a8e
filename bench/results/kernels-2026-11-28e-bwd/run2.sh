#!/usr/bin/env bash
# kbwd call 2: dQ by TMA tensor reductions; drain diagnostic; profiles.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd; DCP=$K/dcp; O0=${OUT:-/tmp/o}; O=/tmp/r2; mkdir -p $O $O0
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
for spec in "vT:4:causal32k,causal128k,packed,lambda,small1000,full8k" "v0:0:causal32k,causal128k,packed,lambda" \
            "vT0:4:causal32k,causal128k,packed,lambda" "vND:0:causal32k,lambda" "v3:0:causal32k,lambda"; do
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
for m in "--head-dim 64" "--kv-heads 8" "--dtype f16"; do
  echo "== vT $m (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/vT DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k $m \
    --repeats 3 --timeout-s 35 --json $O/kbench_vT_models.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
echo "== mma selftest (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=mma timeout -k 5 60 $DCP bench-gpu --selftest 3 --planners local,zigzag --timeout-s 30 \
  --json $O/selftest_mma.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -3
summ $O/selftest_mma.jsonl mma
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck memcheck; do
  echo "== $tool vT (t=$((SECONDS-T0))s)"
  DCP_CUDA_KERNELS=$K/v/vT DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local --timeout-s 50 > $O/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $O/san_$tool.txt | head -6
done
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "== ncu durations small1000 vT (t=$((SECONDS-T0))s)"
DCP_CUDA_KERNELS=$K/v/vT DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $NCUB --clock-control none --metrics gpu__time_duration.sum \
  --csv $DCP kernel-bench --shapes small1000 --repeats 1 --warmup 0 --timeout-s 80 > $O/ncu_small.csv 2>&1
python3 - $O/ncu_small.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
agg = collections.OrderedDict()
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except ValueError: continue
    if r[ui] == "nsecond": v /= 1e3
    elif r[ui] == "msecond": v *= 1e3
    agg.setdefault(r[ki], []).append(v)
for k, v in agg.items(): print(f"{k[:40]:40} n={len(v):3} total {sum(v):9.1f} us  max {max(v):8.1f} us")
PY
echo "== ncu profile causal32k vT (t=$((SECONDS-T0))s)"
DCP_CUDA_KERNELS=$K/v/vT DCP_CUDA_FAMILY=sm90 timeout -k 5 150 $NCUB --clock-control none \
  --section SpeedOfLight --section WarpStateStats --section SourceCounters --section MemoryWorkloadAnalysis -o $O/ncu_vT \
  -k regex:attn_bwd_sm90 -c 1 $DCP kernel-bench --shapes causal32k --repeats 1 --warmup 0 --timeout-s 140 > $O/ncu_vT.log 2>&1
timeout 60 $NCUB -i $O/ncu_vT.ncu-rep > $O/ncu_vT.txt 2>&1
timeout 90 $NCUB -i $O/ncu_vT.ncu-rep --page source --csv --print-source sass > $O/ncu_src_vT.csv 2>&1
grep -E "Duration|Throughput|Stall|Warp Cycles|Issued|Executed Ipc|Bank|Shared" $O/ncu_vT.txt | head -24
rm -f $O/ncu_vT.ncu-rep
tar czf $O0/r2.tgz -C /tmp r2
echo "== end (t=$((SECONDS-T0))s)"
