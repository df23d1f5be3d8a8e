#!/usr/bin/env bash
# ncu stall profiles of the sm90 backward (onework, blockwise, causal32k) for the next session's work
set -u
source bench/gpu/env.sh
OUT=${OUT:?}; R=$OUT/ncu; mkdir -p $R
B=.pdev/s9d/dcp
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2> /dev/null | head -1)
echo "ncu: $NCUB"
T0=$SECONDS
for sh in onework blockwise causal32k; do
  [ $((SECONDS - T0)) -lt 130 ] || break
  echo "== ncu bwd $sh t=$((SECONDS - T0))"
  timeout 50 "$NCUB" --clock-control none --section SpeedOfLight --section WarpStateStats --section SourceCounters \
    --section MemoryWorkloadAnalysis --section Occupancy -k regex:attn_bwd_sm90 -c 1 -o "$R/bwd_$sh" \
    "$B" kernel-bench --shapes $sh --repeats 1 --warmup 0 --timeout-s 45 > "$R/bwd_$sh.log" 2>&1
  echo "rc=$?"
  timeout 20 "$NCUB" -i "$R/bwd_$sh.ncu-rep" > "$R/bwd_$sh.txt" 2>&1
  timeout 30 python3 bench/gpu/ncu_summary.py "$NCUB" "$R/bwd_$sh.ncu-rep" 60 > "$R/bwd_${sh}_top.txt" 2>&1
  grep -E "Duration|Throughput|Warp Cycles|Issued|Executed Ipc|DRAM" "$R/bwd_$sh.txt" | head -12
  head -16 "$R/bwd_${sh}_top.txt"
  rm -f "$R/bwd_$sh.ncu-rep"
done
tar czf $OUT/ncu.tgz -C $OUT ncu
