#!/usr/bin/env bash
# kbb14 call 3 (1x H200): LIMIT=75 timeout 85 bash .kbb14/run3.sh   (carry [".kbb14"]), from /work/main.
# Binary .kbb14/dcp = this branch's final build (half steps opt-in, the hz form as BWD_HALF).
# Diagnostic: Nsight Compute on causal 32K's backward kernel (0.4 % half steps):
#   base : no variable (main's kernel)
#   hzf  : DCP_CUDA_BWD_HALF=0.001 (the BWD_HALF build forced onto the launch)
#   newf : DCP_CUDA_BWD_HALF=0.001 DCP_CUDA_KERNELS=.kbb14/k9 (call 1's `new` kernel, commit 5735abd)
# instructions executed, cycles and warp stall reasons: where the half builds' full steps lose.
# Then selftest 2 of the final binary's defaults (CPU f64).
set -u
OUTD=${OUT:-/tmp/kbb14_out}
R=/tmp/kbb14c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbb14c3.tgz" -C /tmp kbb14c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_HALF DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN
T0=$SECONDS
LIMIT=${LIMIT:-75}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kbb14/dcp
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
venv() {
  case "$1" in
    hzf) echo DCP_CUDA_BWD_HALF=0.001;;
    newf) echo DCP_CUDA_BWD_HALF=0.001 DCP_CUDA_KERNELS=.kbb14/k9;;
    *) echo KBB14_BASE=1;;
  esac
}
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
M=smsp__inst_executed.sum,smsp__cycles_active.avg,gpu__time_duration.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
for v in base hzf newf; do
  if ! left 22; then continue; fi
  echo "== ncu $v t=$((SECONDS - T0))"
  env $(venv $v) timeout -k 3 20 $NCUB --clock-control none --section WarpStateStats --metrics $M -o "$R/ncu_$v" \
    -k regex:attn_bwd_sm90 -c 1 $B kernel-bench --shapes causal32k --head-dim 128 --repeats 1 --warmup 0 \
    > "$R/ncu_$v.log" 2>&1; echo "rc=$?"
  timeout 15 $NCUB -i "$R/ncu_$v.ncu-rep" > "$R/ncu_$v.txt" 2>&1
  grep -E "inst_executed|cycles_active|duration|hmma|Stall|Warp Cycles|Issued Warp|spends" "$R/ncu_$v.txt" | head -16
  snap
done
if left 12; then
  echo "== selftest 2, final defaults t=$((SECONDS - T0))"
  DCP_CUDA_FAMILY=sm90 timeout $((LIMIT - (SECONDS - T0) - 2)) $B bench-gpu --selftest 2 --planners local,zigzag --timeout-s 30 \
    --json "$R/st_fin.jsonl" > "$R/st_fin.log" 2>&1; echo "rc=$?"
  tail -3 "$R/st_fin.log"
fi
echo "== done t=$((SECONDS - T0))"
snap
