#!/usr/bin/env bash
# session 7 call 2: baseline kernel-bench + ncu of bwd 32K/128K (memory, pipes, stalls) and fwd/bwd of works1000 and blockwise
set -u
source bench/gpu/env.sh
B=.pdev/dcp; T0=$SECONDS
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
timeout 120 $B kernel-bench --shapes causal32k,causal128k,blockwise,works1000,onework,full8k --repeats 3 --json $OUT/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +|rror' | head -12
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
SEC="--section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats --section LaunchStats --section Occupancy"
prof() { # name kernel-regex shape
  echo "== ncu $1 (t=$((SECONDS-T0))s)"
  timeout -k 5 150 $NCUB --clock-control none $SEC --metrics smsp__inst_executed_pipe_lsu.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,smsp__cycles_active.avg,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__throughput.avg.pct_of_peak_sustained_active,lts__t_sectors_op_red.sum,lts__t_sectors_op_atom.sum,dram__bytes_read.sum,dram__bytes_write.sum -o $OUT/ncu_$1 -k regex:$2 -c 1 $B kernel-bench --shapes $3 --repeats 1 --warmup 0 --timeout-s 140 > $OUT/ncu_$1.log 2>&1
  timeout 60 $NCUB -i $OUT/ncu_$1.ncu-rep > $OUT/ncu_$1.txt 2>&1
  timeout 60 $NCUB -i $OUT/ncu_$1.ncu-rep --page raw --csv > $OUT/ncu_$1.raw.csv 2>&1
  grep -E "Duration|Throughput|Busy|Hit Rate|Warp Cycles|Executed Ipc|Pipe|Bank|gmma|sectors_op|dram__bytes|wavefronts" $OUT/ncu_$1.txt | head -30
  python3 bench/gpu/ncu_summary.py $NCUB $OUT/ncu_$1.ncu-rep 0 2>&1 | head -12
  rm -f $OUT/ncu_$1.ncu-rep.tmp
}
prof bwd32k attn_bwd_sm90 causal32k
prof bwd128k attn_bwd_sm90 causal128k
prof bwdw1000 attn_bwd_sm90 works1000
prof fwdw1000 attn_fwd_sm90 works1000
prof bwdblk attn_bwd_sm90 blockwise
prof fwdblk attn_fwd_sm90 blockwise
echo "== done t=$((SECONDS-T0))s"
