#!/usr/bin/env bash
# s37 call 2 (1x H200): timeout 560 bash bench/results/gpu-x1-2026-12-01s37/run2.sh
# Call 1: a partial tile's step is slow in the S+dP phase (D 128: 3 119 against 702 clk), and
# only when the step reads its mask bits from shared memory between issuing S^T, dP^T and waiting
# for them (sel/tiny slow, nomask fast). BWD_BITS_AT (this tree, default 0 = as before): 1 reads
# them before issuing, 2 after the wait. .s37/dcp.gz = 74d19ab (the kernel sources come from
# this tree through DCP_CUDA_KERNELS, which ab_rounds.py writes per variant).
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s37/dcp_prof.gz > $P && chmod +x $P
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
# A: stamps with BWD_BITS_AT=1 (whole lists, onework)
python3 bench/gpu/bwd_prof.py crates/dcp-cuda/kernels $R/k
sed -i '1i #define BWD_BITS_AT 1' $R/k/attn_bwd_sm90.cu
for HD in 128 64; do
  mkdir -p $R/pf_d$HD
  DCP_CUDA_KERNELS=$R/k DCP_CUDA_PROF_DUMP=$R/pf_d$HD DCP_CUDA_BWD_ORDER=whole timeout 40 $P kernel-bench \
    --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb_d$HD.log 2>&1; echo "prof D$HD rc=$?"; tail -1 $R/kb_d$HD.log
  for f in $R/pf_d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 bench/gpu/bwd_prof_sum.py $f > $R/pf_d$HD.sum.txt; done
  head -20 $R/pf_d$HD.sum.txt
done
tar czf $OUTD/c2_prof.tgz -C /tmp s37c2/pf_d128 s37c2/pf_d64 s37c2/kb_d128.log s37c2/kb_d64.log $(cd /tmp; ls s37c2/*.sum.txt 2>/dev/null)
# B: whole lists, the masked list alone sets the time
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 70 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 45 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c2_w$HD.tgz \
    w0:$W w1:$W,bwd:BWD_BITS_AT=1 w2:$W,bwd:BWD_BITS_AT=2
done
# C: the default order, checks against the CPU f64 reference, every shape
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 200 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 150 --run-timeout 60 --rounds 3 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal,causal-blockwise,lambda" \
    --field bwd_tflops_per_gpu --snap $OUTD/c2_d$HD.tgz \
    b0 b1:bwd:BWD_BITS_AT=1 b2:bwd:BWD_BITS_AT=2
done
grep -h "checks\|FAIL\|passed" $R/d*/chk_*.jsonl 2>/dev/null | head -3
for HD in 128 64; do cat $R/w$HD/table.md; done
for HD in 128 64; do cat $R/d$HD/table.md; done
