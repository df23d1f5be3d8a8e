#!/usr/bin/env bash
# s37 call 1 (1x H200): timeout 400 bash bench/results/gpu-x1-2026-12-01s37/run1.sh
# Why a partial kv tile's backward step costs 1.5x (D 128) / 2x (D 64) a full one.
# A: per-step clock stamps (bench/gpu/bwd_prof.py) on onework under whole lists (.s37/dcp_prof.gz:
#    74d19ab plus kernels-2026-11-29-kf13b/prof_host.diff).
# B: the timing-only ablations of variants/bwd_t_nomask2.diff (applied to this copy's kernel
#    sources, which ab_rounds.py copies; default 0 = the kernel as it is), with the fixed bwd: defines:
#    nomask (2: partial taken as full), sel (3: masked path, all bits set), tiny (4: masked P = 2^-100),
#    br (BWD_MASK_BRANCH flipped), under whole lists; cut = the default order. .s37/dcp.gz = 74d19ab.
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s37/dcp_prof.gz > $P && chmod +x $P
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
python3 bench/gpu/bwd_prof.py crates/dcp-cuda/kernels $R/k
for HD in 128 64; do
  mkdir -p $R/pf_d$HD
  DCP_CUDA_KERNELS=$R/k DCP_CUDA_PROF_DUMP=$R/pf_d$HD DCP_CUDA_BWD_ORDER=whole timeout 40 $P kernel-bench \
    --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb_d$HD.log 2>&1; echo "prof D$HD rc=$?"; tail -2 $R/kb_d$HD.log
  ls -la $R/pf_d$HD | head; for f in $R/pf_d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 bench/gpu/bwd_prof_sum.py $f | tee $R/pf_d$HD.sum.txt; done
done
tar czf $OUTD/c1_prof.tgz -C /tmp s37c1/pf_d128 s37c1/pf_d64 s37c1/kb_d128.log s37c1/kb_d64.log $(cd /tmp; ls s37c1/*.sum.txt 2>/dev/null)
git apply bench/results/gpu-x1-2026-12-01s37/variants/bwd_t_nomask2.diff && echo "diff applied"
SH=full@8096,full@8192
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  if [ $HD = 128 ]; then BR=0; else BR=1; fi
  timeout 130 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 90 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c1_d$HD.tgz \
    whole:$W nomask:$W,bwd:BWD_T_NOMASK=2 sel:$W,bwd:BWD_T_NOMASK=3 tiny:$W,bwd:BWD_T_NOMASK=4 \
    br$BR:$W,bwd:BWD_MASK_BRANCH=$BR br${BR}sel:$W,bwd:BWD_MASK_BRANCH=$BR,bwd:BWD_T_NOMASK=3 cut
done
git checkout crates/dcp-cuda/kernels
cat $R/pf_d*.sum.txt 2>/dev/null | head -60
cat $R/d128/table.md $R/d64/table.md
