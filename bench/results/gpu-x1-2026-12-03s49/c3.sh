#!/usr/bin/env bash
# s49 call 3 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s49/c3.sh
# Call 2: CL_V_EARLY issued V ~1 950 clk before the last step's end (D 128), yet the first step
# came no earlier: the first Q/dO stage's issue moved to +4 200 (it was +2 060), and that stage
# (64 KiB) is what the first step waits for. In both builds that issue follows a chain of
# dependent global loads after the descriptors (~4 700 clk at D 128, ~5 300 at D 64): the D
# block's words, the acquire of each D unit's flag (CL_DSM), the tile list. CL_ACQ_LATE issues
# the first step's Q/dO copies before V and before the D flags (only the small rows need them).
# New producer stamp 6: the first step's Q/dO copies issued.
# A: timeline, works1000, D 128 / 64: acq (CL_ACQ_LATE) and acqve (+ CL_V_EARLY).
# B: CPU f64 checks (acqve: 4 configs, full and causal; acq: 2), selftest (acqve), memcheck
#    (acqve, both head dims), racecheck (acq and acqve, D 64; acqve D 128).
# C: A/B alternated x3: D 128 base / acq / acqve; D 64 base / acq / acqve / acqna (+ CL_ST_NA).
set -u
OUTD=${OUT:-/tmp/s49_out}
R=/tmp/s49c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
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
kdir kacq CL_ACQ_LATE=1; kdir kacqve CL_ACQ_LATE=1 CL_V_EARLY=1
echo "== A: timeline t=${SECONDS}s"
for k in kacq kacqve; do
  python3 bench/gpu/bwd_prof.py --cluster --timeline $R/$k $R/p_$k > /dev/null
  for hd in 128 64; do
    mkdir -p $R/pf_${k}_$hd
    DCP_CUDA_KERNELS=$R/p_$k DCP_CUDA_PROF_DUMP=$R/pf_${k}_$hd timeout 60 $P kernel-bench --head-dim $hd --shapes works1000 \
      --warmup 2 --repeats 5 > $R/kb_${k}_$hd.log 2>&1; echo "prof $k D$hd rc=$?"; tail -1 $R/kb_${k}_$hd.log
    for f in $R/pf_${k}_$hd/*.bin; do
      [ "$(stat -c %s $f)" = 823680 ] && grep -q CL_DSM ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
    done > $R/sum_${k}_$hd.txt
    grep -A12 "^producer" $R/sum_${k}_$hd.txt; grep "boundary extra" $R/sum_${k}_$hd.txt
  done
done
echo "== B: checks t=${SECONDS}s"
python3 -c "
import json, random
random.seed(4950)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for cfg in "kacqve 64 bf16 2" "kacqve 64 f16 8" "kacqve 128 bf16 1" "kacqve 128 f16 4" "kacq 64 bf16 4" "kacq 128 bf16 2"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/$1 timeout 100 $D bench-gpu --batches $R/m300.json --head-dim $2 --dtype $3 --kv-heads $4 --masks full,causal --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3_$4.log 2>&1
  echo "$1 D$2 $3 kv$4 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_ACQ_LATE 1 (with and without CL_V_EARLY 1) vs CPU f64" | tee $R/summary.txt
DCP_CUDA_KERNELS=$R/kacqve timeout 120 $D bench-gpu --selftest 8 --planners ring,zigzag,local --json $R/selftest.jsonl > $R/selftest.log 2>&1; echo "selftest acqve rc=$?" | tee -a $R/summary.txt; tail -2 $R/selftest.log
for cfg in "kacqve 128 memcheck" "kacqve 64 memcheck" "kacqve 128 racecheck" "kacqve 64 racecheck" "kacq 64 racecheck"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/$1 timeout -k 5 70 $CS --tool $3 --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $2 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_$1_$3_$2.txt 2>&1
  echo "$1 $3 D$2 rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_$1_$3_$2.txt | tail -1)" | tee -a $R/summary.txt
done
tar czf $OUTD/c3a.tgz -C /tmp --exclude='s49c3/p_*' --exclude='s49c3/kacq*' s49c3
echo "== C: A/B t=${SECONDS}s"
for hd in 128 64; do
  if [ $hd = 128 ]; then V="base acq:bwd:CL_ACQ_LATE=1 acqve:bwd:CL_ACQ_LATE=1,bwd:CL_V_EARLY=1"; DL=$(( (560 - SECONDS) * 2 / 5 - 30 ))
  else V="base acq:bwd:CL_ACQ_LATE=1 acqve:bwd:CL_ACQ_LATE=1,bwd:CL_V_EARLY=1 acqna:bwd:CL_ACQ_LATE=1,bwd:CL_ST_NA=1"; DL=$((560 - SECONDS - 40)); fi
  timeout $((DL + 35)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 40 --rounds 4 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/kb$hd.out
  tar czf $OUTD/c3.tgz -C /tmp --exclude='s49c3/p_*' --exclude='s49c3/kacq*' --exclude='*/k' s49c3
done
echo "== done t=${SECONDS}s"
cat $R/summary.txt
