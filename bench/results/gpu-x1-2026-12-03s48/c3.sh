#!/usr/bin/env bash
# s48 call 3 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s48/c3.sh
# The landed defaults (.s48/dcp.gz: this tree, the kernels embedded): CL_DQ_RELOAD on at D 64,
# CL_ST_NA on at D 128 (the clustered backward only).
# A: selftest (sm90 + mma.sync) and CPU f64 checks on 129-256-token documents (D 64 / 128, bf16 /
#    f16, GQA 1 / 2 / 4 / 8, full and causal masks), memcheck and racecheck at both head dims.
# B: A/B, alternated x5: the defaults against old (CL_DQ_RELOAD 0, CL_ST_NA 0: the SASS of main
#    at 28b1c237, identical offline), works1000 / 1 600 x 160 / onework at both head dims, and
#    causal32k / packed at D 128 (plain kernels, unchanged: a control).
# C: the D 64 P,dS question: the plain kernel's timeline on works1000 (DCP_CUDA_BWD_CLUSTER=0)
#    with .s48/dcp_prof.gz: is that phase ~2 650 clk there too (the data) or ~1 800 (the kernel)?
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s48/dcp.gz > $D && chmod +x $D
P=/tmp/dcp_prof; gunzip -c .s48/dcp_prof.gz > $P && chmod +x $P
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo "== C: plain kernel timeline on works1000 D64 t=${SECONDS}s"
python3 bench/gpu/bwd_prof.py --timeline crates/dcp-cuda/kernels $R/pp
for hd in 64 128; do
  mkdir -p $R/pf_plain_$hd
  DCP_CUDA_BWD_CLUSTER=0 DCP_CUDA_KERNELS=$R/pp DCP_CUDA_PROF_DUMP=$R/pf_plain_$hd timeout 60 $P kernel-bench --head-dim $hd \
    --shapes works1000 --warmup 2 --repeats 5 > $R/kb_plain_$hd.log 2>&1; echo "prof plain D$hd rc=$?"; tail -1 $R/kb_plain_$hd.log
  for f in $R/pf_plain_$hd/*.bin; do
    [ "$(stat -c %s $f)" = 549120 ] && cat ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
  done | tee $R/sum_plain_$hd.txt
done
echo "== A: checks t=${SECONDS}s"
timeout 150 $D bench-gpu --selftest 8 --planners ring,zigzag,local --json $R/selftest.jsonl > $R/selftest.log 2>&1; echo "selftest rc=$?"; tail -4 $R/selftest.log
python3 -c "
import json, random
random.seed(4848)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for cfg in "64 bf16 2" "64 f16 8" "64 bf16 1" "64 f16 4" "128 bf16 2" "128 f16 8" "128 bf16 1" "128 f16 4"; do
  set -- $cfg
  timeout 100 $D bench-gpu --batches $R/m300.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full,causal --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3.log 2>&1
  echo "D$1 $2 kv$3 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "defaults (reload D64, st_na D128) vs CPU f64" | tee $R/summary.txt
for hd in 128 64; do for tool in memcheck racecheck; do
  timeout -k 5 70 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_${tool}_$hd.txt 2>&1
  echo "$tool D$hd rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | tail -1)" | tee -a $R/summary.txt
done; done
tar czf $OUTD/c3a.tgz -C /tmp --exclude=s48c3/pp s48c3
echo "== B: A/B t=${SECONDS}s"
OLD="old:bwd:CL_DQ_RELOAD=0,bwd:CL_ST_NA=0"
for hd in 64 128; do
  if [ $hd = 64 ]; then SH=works1000,full@160x1600,onework; DL=$(( (560 - SECONDS) / 2 - 30 ))
  else SH=works1000,full@160x1600,onework,causal32k,packed; DL=$((560 - SECONDS - 40)); fi
  timeout $((DL + 35)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 60 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes $SH --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu base $OLD > $R/kb$hd.out 2>&1
  grep -A10 'bwd_tflops' $R/kb$hd.out
  tar czf $OUTD/c3.tgz -C /tmp --exclude=s48c3/pp --exclude='*/k' s48c3
done
echo "== done t=${SECONDS}s"
cat $R/sum_plain_*.txt $R/summary.txt
