#!/usr/bin/env bash
# s48 call 1 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s48/c1.sh
# A: where the clustered backward's pairs lose per SM (session 47's arithmetic: ~0.90 of onework's
#    rate per SM at D 64, ~0.98 at D 128). Per-step clock stamps over each CTA's first 64 steps
#    across its tasks (bench/gpu/bwd_prof.py --cluster --timeline) on works1000, and the plain
#    kernel's first task (bwd_prof.py, first-task stamps) on onework, both head dims.
#    .s48/dcp_prof.gz = 28b1c237 plus kernels-2026-11-29-kf13b/prof_host.diff (dumps g_pf at exit
#    under DCP_CUDA_PROF_DUMP; otherwise the same binary).
# B: session 47's prepared c6.sh (CL_DQ_RELOAD, CL_ABL_NOEPI 3, CL_ST_NA) on the same binary.
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s48/dcp_prof.gz > $P && chmod +x $P
python3 bench/gpu/bwd_prof.py --cluster --timeline crates/dcp-cuda/kernels $R/kc
python3 bench/gpu/bwd_prof.py crates/dcp-cuda/kernels $R/kp
for HD in 64 128; do
  for v in "kc works1000" "kp onework"; do
    set -- $v
    mkdir -p $R/pf_$2_d$HD
    DCP_CUDA_KERNELS=$R/$1 DCP_CUDA_PROF_DUMP=$R/pf_$2_d$HD timeout 60 $P kernel-bench \
      --head-dim $HD --shapes $2 --warmup 2 --repeats 5 > $R/kb_$2_d$HD.log 2>&1; echo "prof $2 D$HD rc=$?"
    tail -3 $R/kb_$2_d$HD.log
    for f in $R/pf_$2_d$HD/*.bin; do
      [ "$(stat -c %s $f)" = 549120 ] || continue
      cat ${f%.bin}.txt
      if [ $1 = kc ]; then python3 bench/gpu/bwd_prof_sum.py --timeline $f; python3 bench/gpu/bwd_prof_sum.py --timeline --skip-tasks 0 $f | grep "step inside"
      else python3 bench/gpu/bwd_prof_sum.py $f --ctas 3; fi
    done | tee $R/sum_$2_d$HD.txt
  done
done
tar czf $OUTD/c1_prof.tgz -C /tmp s48c1
echo "== A done t=${SECONDS}s"
DCP_GZ=.s48/dcp_prof.gz timeout $((585 - SECONDS)) bash bench/results/gpu-x1-2026-12-03s47/c6.sh
cp /tmp/s47c6/run.log $OUTD/c6_run.log 2>/dev/null
echo "== all done t=${SECONDS}s"
cat $R/sum_*.txt | grep -v "^  SM" | head -80
