#!/usr/bin/env bash
# s31 call 10 (1x H200): timeout 150 bash .s31/run10.sh
# Where a works1000 forward task's ~8 000 clk go: per-task clock stamps (bench/gpu/fwd_prof.py's
# measurement kernel, with this session's FWD_ONE slots; binary = main + kf13b's prof_host.diff),
# summarised by bench/gpu/fwd_prof_sum.py; works1000 and causal 500 x 512 (plain steps).
set -u
OUTD=${OUT:-/tmp/s31_out}
R=/tmp/s31c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
DP=$R/dcp_prof; gunzip -c .s31/dcp_prof.gz > $DP && chmod +x $DP
for s in works1000 causal@512x500; do
  n=${s/@/_}
  echo "== timing $s (embedded kernels, then the stamped ones)"
  timeout 40 $DP kernel-bench --shapes $s --repeats 3 2>&1 | grep -E '^[a-z0-9@x]+ +fwd'
  mkdir -p $R/pf_$n
  DCP_CUDA_PROF_DUMP=$R/pf_$n DCP_CUDA_KERNELS=.s31/pfk timeout 40 $DP kernel-bench --shapes $s --repeats 3 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror'
  for f in $R/pf_$n/*.bin; do
    echo "-- $f $(cat ${f%.bin}.txt | cut -c1-200)"
    timeout 60 python3 bench/gpu/fwd_prof_sum.py $f "$s $(basename $f)" 2>&1 | tee $R/sum_${n}_$(basename ${f%.bin}).txt | head -60
  done
  rm -f $R/pf_$n/*.bin
done
tar czf "$OUTD/s31c10.tgz" --exclude=s31c10/dcp_prof -C /tmp s31c10
