#!/usr/bin/env bash
# s48 call 6 (1x H200): timeout 280 bash bench/results/gpu-x1-2026-12-03s48/c6.sh
# Diagnosis only: why the clustered backward's D 64 P,dS phase takes ~2 650 clk per step against
# ~1 800 in the plain kernel on the same works1000 data (calls 1-3). Nsight Compute's per-SASS
# warp-stall sampling (SourceCounters, WarpStateStats) of one launch of each kernel: the
# clustered (default) and the plain one (DCP_CUDA_BWD_CLUSTER=0), works1000, D 64, the landed
# defaults (.s48/dcp.gz). The source pages (CSV) are summed over the phase offline.
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c6; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s48/dcp.gz > $D && chmod +x $D
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "ncu: $NCU"
for v in "cl 1 attn_bwd_cluster" "pl 0 attn_bwd_sm90"; do
  set -- $v
  echo "== ncu $1 t=${SECONDS}s"
  DCP_CUDA_BWD_CLUSTER=$2 timeout -k 5 100 $NCU --clock-control none --import-source no --section WarpStateStats \
    --section SourceCounters --section SchedulerStats -o $R/ncu_$1 -k regex:$3 -c 1 $D kernel-bench --shapes works1000 \
    --head-dim 64 --repeats 1 --warmup 0 --timeout-s 80 > $R/ncu_$1.log 2>&1
  echo "rc=$? t=${SECONDS}s"; tail -3 $R/ncu_$1.log
  timeout 40 $NCU -i $R/ncu_$1.ncu-rep --print-details all > $R/ncu_$1.txt 2>&1
  timeout 60 $NCU -i $R/ncu_$1.ncu-rep --page source --csv --print-source sass > $R/src_$1.csv 2>&1
  timeout 30 $NCU -i $R/ncu_$1.ncu-rep --page raw --csv > $R/raw_$1.csv 2>&1
  grep -E "Warp Cycles|Issued|Eligible|Active Warps|No Eligible|Stall" $R/ncu_$1.txt | head -20
  timeout 30 python3 bench/gpu/ncu_summary.py $NCU $R/ncu_$1.ncu-rep 25 > $R/sum_$1.txt 2>&1; head -45 $R/sum_$1.txt
  tar czf $OUTD/c6.tgz -C /tmp --exclude='*.ncu-rep' s48c6
done
echo "== done t=${SECONDS}s"
