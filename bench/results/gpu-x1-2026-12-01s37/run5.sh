#!/usr/bin/env bash
# s37 call 5 (1x H200): timeout 560 bash bench/results/gpu-x1-2026-12-01s37/run5.sh
# Call 4: a partial step's mask bits reach registers 3 120 clk after the stage lands (full steps
# reach that point at 506), from shared memory or from global memory alike: the read waits while
# the tensor cores stream operands. BWD_BITS_PF (variants/bwd_bits_pf.diff = this tree): read the
# next step's mask words a step ahead (1: after the dS store, 2: before the step's last wait).
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s37/dcp_prof.gz > $P && chmod +x $P
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
B=bench/results/gpu-x1-2026-12-01s37
source $B/bits_prof.sh
for V in 1 2; do mk_bits_prof crates/dcp-cuda/kernels $R/k$V; sed -i "1i #define BWD_BITS_PF $V" $R/k$V/attn_bwd_sm90.cu; done
for V in 1 2; do for HD in 128 64; do
  mkdir -p $R/pf$V.d$HD
  DCP_CUDA_KERNELS=$R/k$V DCP_CUDA_PROF_DUMP=$R/pf$V.d$HD DCP_CUDA_BWD_ORDER=whole timeout 40 $P kernel-bench \
    --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb$V.d$HD.log 2>&1; echo "prof PF$V D$HD rc=$?"
  for f in $R/pf$V.d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 $B/bits_sum.py $f; done
done; done 2>&1 | tee $R/bits.txt
tar czf $OUTD/c5_prof.tgz -C /tmp s37c5/bits.txt $(cd /tmp; ls -d s37c5/pf*)
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 70 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 45 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c5_w$HD.tgz \
    base:$W pf1:$W,bwd:BWD_BITS_PF=1 pf2:$W,bwd:BWD_BITS_PF=2
done
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 190 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 140 --run-timeout 60 --rounds 3 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal,causal-blockwise,lambda" \
    --field bwd_tflops_per_gpu --snap $OUTD/c5_d$HD.tgz \
    base pf1:bwd:BWD_BITS_PF=1 pf2:bwd:BWD_BITS_PF=2 pf1r:DCP_CUDA_TILE_MASKS=0,bwd:BWD_BITS_PF=1
done
cat $R/bits.txt
for HD in 128 64; do cat $R/w$HD/table.md; done
for HD in 128 64; do grep -h "check" $R/d$HD/ab_rounds.log; cat $R/d$HD/table.md; done
