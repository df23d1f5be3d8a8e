#!/usr/bin/env bash
# s48, prepared for the next session (not run; ~1.5 min): timeout 150 bash bench/results/gpu-x1-2026-12-03s48/c8.sh
# The clustered backward's task boundary at D 128 (call 2: ~9 000 clk per 16-step task, 3 428 of
# them waiting for the next task's K/V after the epilogue): when does the producer claim the next
# pair, load its descriptors, issue its first Q/dO stage and its K/V, against the consumers' task
# boundary? `bwd_prof.py --timeline --cluster` now stamps the producer too (g_pf grows to
# [132][3][65][8], 823 680 bytes); `bwd_prof_sum.py --timeline` prints its events in clocks from
# the end of the task before's last step. Needs a measurement binary: a release build with
# ../kernels-2026-11-29-kf13b/prof_host.diff applied, staged as .s48/dcp_prof.gz (or DCP_PROF_GZ).
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c ${DCP_PROF_GZ:-.s48/dcp_prof.gz} > $P && chmod +x $P
python3 bench/gpu/bwd_prof.py --cluster --timeline crates/dcp-cuda/kernels $R/pc
for hd in 128 64; do
  mkdir -p $R/pf_$hd
  DCP_CUDA_KERNELS=$R/pc DCP_CUDA_PROF_DUMP=$R/pf_$hd timeout 60 $P kernel-bench --head-dim $hd --shapes works1000 \
    --warmup 2 --repeats 5 > $R/kb_$hd.log 2>&1; echo "prof D$hd rc=$?"; tail -1 $R/kb_$hd.log
  for f in $R/pf_$hd/*.bin; do
    [ "$(stat -c %s $f)" = 823680 ] && grep -q CL_DSM ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
  done | tee $R/sum_$hd.txt
done
tar czf $OUTD/c8.tgz -C /tmp --exclude=s48c8/pc s48c8
echo "== done t=${SECONDS}s"
