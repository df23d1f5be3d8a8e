#!/usr/bin/env bash
# s36 call 10, prepared and NOT run (the session's device time ran out): timeout 90 bash run10.sh
# Needs .s36/dcp_prof.gz: a release build with bench/results/kernels-2026-11-29-kf13b/prof_host.diff applied.
# Per-step clock stamps of the backward's consumers (bench/gpu/bwd_prof.py, new) on onework
# (8 096 tokens, full mask) under whole lists: the partial kv tile's list beside the full ones in
# one launch, D 128 and D 64. Binary: 1fb374a's tree with kf13b's prof_host.diff (the g_pf dump).
set -u
OUTD=${OUT:-/tmp/s36_out}
R=/tmp/s36c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=/tmp/dcp_prof; gunzip -c .s36/dcp_prof.gz > $D && chmod +x $D
python3 bench/gpu/bwd_prof.py crates/dcp-cuda/kernels $R/k
for HD in 128 64; do
  mkdir -p $R/pf_d$HD
  DCP_CUDA_KERNELS=$R/k DCP_CUDA_PROF_DUMP=$R/pf_d$HD DCP_CUDA_BWD_ORDER=whole timeout 40 $D kernel-bench \
    --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb_d$HD.log 2>&1; echo "D$HD rc=$?"; tail -2 $R/kb_d$HD.log
  ls $R/pf_d$HD | head; for f in $R/pf_d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 bench/gpu/bwd_prof_sum.py $f; done
done
tar czf $OUTD/c10.tgz -C /tmp s36c10
