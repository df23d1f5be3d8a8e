#!/usr/bin/env bash
# s37 call 4 (1x H200): timeout 560 bash bench/results/gpu-x1-2026-12-01s37/run4.sh
# Call 3: the cost is the consumers' read of the staged mask from shared memory (nolds: full
# speed; the producer's staging costs nothing). A: stamps with the clock once the bits are in
# registers (bits_prof.sh), base and BWD_T_MV=16 (the consumers read the precomputed mask from
# global memory). B: whole lists, base / g16 / g48 (16 + the producer stages no precomputed mask).
# C: default order, CPU f64 checks, every shape. variants/bwd_t_mv2.diff = this tree.
set -u
OUTD=${OUT:-/tmp/s37_out}
R=/tmp/s37c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s37/dcp_prof.gz > $P && chmod +x $P
D=/tmp/dcp; gunzip -c .s37/dcp.gz > $D && chmod +x $D
B=bench/results/gpu-x1-2026-12-01s37
source $B/bits_prof.sh
mk_bits_prof crates/dcp-cuda/kernels $R/k0
mk_bits_prof crates/dcp-cuda/kernels $R/k16 16
for V in 0 16; do for HD in 128 64; do
  mkdir -p $R/pf$V.d$HD
  DCP_CUDA_KERNELS=$R/k$V DCP_CUDA_PROF_DUMP=$R/pf$V.d$HD DCP_CUDA_BWD_ORDER=whole timeout 40 $P kernel-bench \
    --head-dim $HD --shapes onework --warmup 1 --repeats 3 > $R/kb$V.d$HD.log 2>&1; echo "prof MV$V D$HD rc=$?"
  for f in $R/pf$V.d$HD/*.bin; do [ $(stat -c %s $f) = 549120 ] && python3 $B/bits_sum.py $f; done
done; done 2>&1 | tee $R/bits.txt
tar czf $OUTD/c4_prof.tgz -C /tmp s37c4/bits.txt $(cd /tmp; ls -d s37c4/pf*)
W=DCP_CUDA_BWD_ORDER=whole
for HD in 128 64; do
  timeout 70 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/w$HD --deadline-s 45 --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $HD --shapes full@8096,full@8192 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --snap $OUTD/c4_w$HD.tgz \
    base:$W g16:$W,bwd:BWD_T_MV=16 g48:$W,bwd:BWD_T_MV=48
done
echo '{"batches": [[4096], [2000, 1500, 700]]}' > $R/chk.json
SH=onework,full8k,causal32k,packed,blockwise,lambda,sharedq,works1000
for HD in 128 64; do
  timeout 170 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/d$HD --deadline-s 120 --run-timeout 60 --rounds 3 \
    --bench "kernel-bench --head-dim $HD --shapes $SH --warmup 3 --repeats 10" \
    --check "--batches $R/chk.json --head-dim $HD --masks full,causal,causal-blockwise,lambda" \
    --field bwd_tflops_per_gpu --snap $OUTD/c4_d$HD.tgz \
    base g16:bwd:BWD_T_MV=16 g48:bwd:BWD_T_MV=48
done
cat $R/bits.txt
for HD in 128 64; do cat $R/w$HD/table.md; done
for HD in 128 64; do grep -h "check" $R/d$HD/ab_rounds.log; cat $R/d$HD/table.md; done
