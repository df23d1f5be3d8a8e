#!/usr/bin/env bash
# s49 call 2 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s49/c2.sh
# CL_V_EARLY (attn_bwd_cluster_sm90.cu): the next task's V (and, D 128, K's half outside this
# CTA's dQ columns) loaded once the last dP has read V, not after the last dQ. Call 1's producer
# stamps (works1000, D 128): K/V issued ~2 600 clk after the last step, first step ~6 100 after.
# Binaries: .s49/dcp.gz (this tree: kernels embedded, CL_V_EARLY 0, host shared memory +16 for
# v_empty) and .s49/dcp_prof.gz (the same with prof_host.diff).
# A: producer / consumer timeline with CL_V_EARLY 1 on works1000 at D 128 and 64.
# B: selftest and CPU f64 checks with CL_V_EARLY 1 (D 64 / 128, bf16 / f16, GQA 1 / 2 / 4 / 8,
#    full and causal); memcheck and racecheck at both head dims.
# C: A/B alternated: D 128 base / ve; D 64 base / na (CL_ST_NA 1, call 1: +1.2 %) / ve / ve+na.
set -u
OUTD=${OUT:-/tmp/s49_out}
R=/tmp/s49c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
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
kdir kve CL_V_EARLY=1
echo "== A: timeline t=${SECONDS}s"
python3 bench/gpu/bwd_prof.py --cluster --timeline $R/kve $R/pc
for hd in 128 64; do
  mkdir -p $R/pf_$hd
  DCP_CUDA_KERNELS=$R/pc DCP_CUDA_PROF_DUMP=$R/pf_$hd timeout 60 $P kernel-bench --head-dim $hd --shapes works1000 \
    --warmup 2 --repeats 5 > $R/kb_$hd.log 2>&1; echo "prof ve D$hd rc=$?"; tail -1 $R/kb_$hd.log
  for f in $R/pf_$hd/*.bin; do
    [ "$(stat -c %s $f)" = 823680 ] && grep -q CL_DSM ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
  done | tee $R/sum_$hd.txt
done
echo "== B: checks t=${SECONDS}s"
DCP_CUDA_KERNELS=$R/kve timeout 120 $D bench-gpu --selftest 8 --planners ring,zigzag,local --json $R/selftest.jsonl > $R/selftest.log 2>&1; echo "selftest rc=$?"; tail -3 $R/selftest.log
python3 -c "
import json, random
random.seed(4949)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for cfg in "64 bf16 2" "64 f16 8" "64 bf16 1" "64 f16 4" "128 bf16 2" "128 f16 8" "128 bf16 1" "128 f16 4"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/kve timeout 100 $D bench-gpu --batches $R/m300.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full,causal --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3.log 2>&1
  echo "D$1 $2 kv$3 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_V_EARLY 1 vs CPU f64" | tee $R/summary.txt
for hd in 128 64; do for tool in memcheck racecheck; do
  DCP_CUDA_KERNELS=$R/kve timeout -k 5 70 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/m150.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_${tool}_$hd.txt 2>&1
  echo "$tool D$hd rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_${tool}_$hd.txt | tail -1)" | tee -a $R/summary.txt
done; done
tar czf $OUTD/c2a.tgz -C /tmp --exclude=s49c2/pc --exclude=s49c2/kve s49c2
echo "== C: A/B t=${SECONDS}s"
for hd in 128 64; do
  if [ $hd = 128 ]; then V="base ve:bwd:CL_V_EARLY=1"; DL=$(( (560 - SECONDS) * 2 / 5 - 30 ))
  else V="base na:bwd:CL_ST_NA=1 ve:bwd:CL_V_EARLY=1 vena:bwd:CL_V_EARLY=1,bwd:CL_ST_NA=1"; DL=$((560 - SECONDS - 40)); fi
  timeout $((DL + 35)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s $DL --run-timeout 40 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/kb$hd.out
  tar czf $OUTD/c2.tgz -C /tmp --exclude=s49c2/pc --exclude=s49c2/kve --exclude='*/k' s49c2
done
echo "== done t=${SECONDS}s"
cat $R/sum_*.txt $R/summary.txt
