#!/usr/bin/env bash
# s49 call 4 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s49/c4.sh
# Call 3: with CL_ACQ_LATE the first Q/dO copies left at -700 clk (D 128), but the stage's small
# rows still waited behind the D flags' acquire (~4 200 clk of dependent loads), and the K/V
# copies, issued after it, took ~6 000 clk to the first step (from HBM: BWD_KV_PF is off).
# CL_EARLY_CLAIM N claims the next pair N stages earlier and acquires its D flags then; with
# BWD_KV_PF 1 the K/V tiles are prefetched into L2 at that claim. CL_ST_NA is now on at D 64 too
# (the binary's base).
# A: timeline, works1000, D 128 / 64: ec4kv (CL_EARLY_CLAIM 4, BWD_KV_PF 1).
# B: CPU f64 checks of ec4kvve (+ CL_V_EARLY) and ec4kv, full and causal; racecheck, memcheck.
# C: A/B alternated x3: D 128 base / kvpf / ec4kv / ec4kvve; D 64 base / ec2kv / ec4kv / ec4kvve.
set -u
OUTD=${OUT:-/tmp/s49_out}
R=/tmp/s49c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s49/dcp.gz > $D && chmod +x $D
P=/tmp/dcp_prof; gunzip -c .s49/dcp_prof.gz > $P && chmod +x $P
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
kdir() {  # kdir NAME DEFINES...: the tree's kernels with #defines in front of bwd_sm90.cuh
  local K=$R/$1; shift; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/
  for d in "$@"; do sed -i "1i #define ${d/=/ }" $K/bwd_sm90.cuh; done
}
kdir kec4kv CL_EARLY_CLAIM=4 BWD_KV_PF=1; kdir kec4kvve CL_EARLY_CLAIM=4 BWD_KV_PF=1 CL_V_EARLY=1
echo "== A: timeline t=${SECONDS}s"
python3 bench/gpu/bwd_prof.py --cluster --timeline $R/kec4kv $R/p_kec4kv > /dev/null
for hd in 128 64; do
  mkdir -p $R/pf_$hd
  DCP_CUDA_KERNELS=$R/p_kec4kv DCP_CUDA_PROF_DUMP=$R/pf_$hd timeout 60 $P kernel-bench --head-dim $hd --shapes works1000 \
    --warmup 2 --repeats 5 > $R/kb_$hd.log 2>&1; echo "prof ec4kv D$hd rc=$?"; tail -1 $R/kb_$hd.log
  for f in $R/pf_$hd/*.bin; do
    [ "$(stat -c %s $f)" = 823680 ] && grep -q CL_DSM ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
  done > $R/sum_$hd.txt
  grep -A12 "^producer" $R/sum_$hd.txt; grep "boundary extra\|at a boundary" $R/sum_$hd.txt
done
echo "== B: checks t=${SECONDS}s"
python3 -c "
import json, random
random.seed(4951)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for cfg in "kec4kvve 64 bf16 2" "kec4kvve 128 f16 8" "kec4kv 64 f16 1" "kec4kv 128 bf16 4"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/$1 timeout 100 $D bench-gpu --batches $R/m300.json --head-dim $2 --dtype $3 --kv-heads $4 --masks full,causal --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3_$4.log 2>&1
  echo "$1 D$2 $3 kv$4 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_EARLY_CLAIM 4 + BWD_KV_PF 1 (and + CL_V_EARLY 1) vs CPU f64" | tee $R/summary.txt
for cfg in "kec4kvve 64 racecheck" "kec4kvve 128 racecheck" "kec4kvve 128 memcheck"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/$1 timeout -k 5 70 $CS --tool $3 --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $2 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_$1_$3_$2.txt 2>&1
  echo "$1 $3 D$2 rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_$1_$3_$2.txt | tail -1)" | tee -a $R/summary.txt
done
tar czf $OUTD/c4a.tgz -C /tmp --exclude='s49c4/p_*' --exclude='s49c4/kec*' s49c4
echo "== C: A/B t=${SECONDS}s"
EC4="bwd:CL_EARLY_CLAIM=4,bwd:BWD_KV_PF=1"
for hd in 128 64; do
  if [ $hd = 128 ]; then V="base kvpf:bwd:BWD_KV_PF=1 ec4kv:$EC4 ec4kvve:$EC4,bwd:CL_V_EARLY=1"; DL=$(( (540 - SECONDS) / 2 - 30 ))
  else V="base ec2kv:bwd:CL_EARLY_CLAIM=2,bwd:BWD_KV_PF=1 ec4kv:$EC4 ec4kvve:$EC4,bwd:CL_V_EARLY=1"; DL=$((540 - SECONDS - 40)); fi
  timeout $((DL + 35)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 40 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/kb$hd.out
  tar czf $OUTD/c4.tgz -C /tmp --exclude='s49c4/p_*' --exclude='s49c4/kec*' --exclude='*/k' s49c4
done
echo "== done t=${SECONDS}s"
cat $R/summary.txt
