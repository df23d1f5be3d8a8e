#!/usr/bin/env bash
# s48 call 2 (1x H200): timeout 590 bash bench/results/gpu-x1-2026-12-03s48/c2.sh
# Call 1 located the D 64 pairs' loss: the clustered kernel's P,dS phase takes ~2 650 clk against
# ~1 800 in the plain kernel (same code, same instruction count), and ptxas spills 10 values
# (5 STL, 5 LDL) in that phase only in the clustered build: its consumers get 224 registers
# (producer 56), the plain D 64 kernel's 240 (producer 24). CL_CONS_REGS 232 (producer 40, new
# knob in bwd_sm90.cuh) leaves that phase without spills offline; the producer spills more.
# A: timeline stamps (now with the task loop's top) on works1000: D 64 base and 232, D 128 base.
# B: CPU f64 checks: D 64 with 232 (and 232 + CL_DQ_RELOAD 1), D 128 with CL_ST_NA 1;
#    memcheck / racecheck at D 64 with 232.
# C: A/B: D 64 base / r232 / r232+reload1 / reload1; D 128 base / stna. onework is the control.
# The tree has session 47's bwd_epi_next.diff applied (CL_DQ_RELOAD, CL_ST_NA switches).
set -u
OUTD=${OUT:-/tmp/s48_out}
R=/tmp/s48c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
P=/tmp/dcp_prof; gunzip -c .s48/dcp_prof.gz > $P && chmod +x $P
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
kdir() {  # kdir NAME DEFINES...: the tree's kernels with #defines in front of bwd_sm90.cuh
  local K=$R/$1; shift; mkdir -p $K; cp crates/dcp-cuda/kernels/* $K/
  for d in "$@"; do sed -i "1i #define ${d/=/ }" $K/bwd_sm90.cuh; done
}
kdir k232 CL_CONS_REGS=232; kdir k232r CL_CONS_REGS=232 CL_DQ_RELOAD=1; kdir kna CL_ST_NA=1
echo "== A: profiles t=${SECONDS}s"
python3 bench/gpu/bwd_prof.py --cluster --timeline crates/dcp-cuda/kernels $R/pc
python3 bench/gpu/bwd_prof.py --cluster --timeline $R/k232 $R/pc232
for v in "pc 64" "pc232 64" "pc 128"; do
  set -- $v
  mkdir -p $R/pf_$1_$2
  DCP_CUDA_KERNELS=$R/$1 DCP_CUDA_PROF_DUMP=$R/pf_$1_$2 timeout 60 $P kernel-bench --head-dim $2 --shapes works1000 \
    --warmup 2 --repeats 5 > $R/kb_$1_$2.log 2>&1; echo "prof $1 D$2 rc=$?"; tail -1 $R/kb_$1_$2.log
  for f in $R/pf_$1_$2/*.bin; do
    [ "$(stat -c %s $f)" = 549120 ] && grep -q CL_DSM ${f%.bin}.txt && python3 bench/gpu/bwd_prof_sum.py --timeline $f
  done | tee $R/sum_$1_$2.txt
done
echo "== B: checks t=${SECONDS}s"
python3 -c "
import json, random
random.seed(48)
json.dump({'batches': [[random.randint(129, 256) for _ in range(300)]]}, open('$R/m300.json', 'w'))
json.dump({'batches': [[random.randint(129, 256) for _ in range(150)]]}, open('$R/m150.json', 'w'))"
for cfg in "k232 64 bf16 2" "k232 64 f16 8" "k232 64 bf16 1" "k232r 64 bf16 2" "k232r 64 f16 4" "kna 128 bf16 2" "kna 128 f16 8"; do
  set -- $cfg
  DCP_CUDA_KERNELS=$R/$1 timeout 100 $P bench-gpu --batches $R/m300.json --head-dim $2 --dtype $3 --kv-heads $4 --masks full --planners local --check --cpu-check-tokens 200000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_$1_$2_$3_$4.log 2>&1
  echo "$1 D$2 $3 kv$4 rc=$?"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "CL_CONS_REGS 232 (D 64), + CL_DQ_RELOAD 1, CL_ST_NA 1 (D 128) vs CPU f64" | tee $R/summary.txt
for tool in memcheck racecheck; do
  DCP_CUDA_KERNELS=$R/k232r timeout -k 5 70 $CS --tool $tool --print-limit 5 $P bench-gpu --batches $R/m150.json --head-dim 64 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 > $R/san_$tool.txt 2>&1
  echo "$tool D64 k232r rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' $R/san_$tool.txt | tail -1)" | tee -a $R/summary.txt
done
tar czf $OUTD/c2a.tgz -C /tmp --exclude=s48c2/k232 --exclude=s48c2/k232r --exclude=s48c2/kna --exclude=s48c2/pc --exclude=s48c2/pc232 s48c2
echo "== C: A/B t=${SECONDS}s"
for hd in 64 128; do
  if [ $hd = 64 ]; then V="base r232:bwd:CL_CONS_REGS=232 r232r:bwd:CL_CONS_REGS=232,bwd:CL_DQ_RELOAD=1 reload:bwd:CL_DQ_RELOAD=1"; DL=150
  else V="base stna:bwd:CL_ST_NA=1"; DL=$((560 - SECONDS - 20)); fi
  timeout $((DL + 30)) python3 bench/gpu/ab_rounds.py --dcp $P --out $R/kb$hd --deadline-s $DL --run-timeout 50 --rounds 5 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 10 --repeats 20" \
    --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  grep -A8 'bwd_tflops' $R/kb$hd.out
  tar czf $OUTD/c2.tgz -C /tmp --exclude=s48c2/k232 --exclude=s48c2/k232r --exclude=s48c2/kna --exclude=s48c2/pc --exclude=s48c2/pc232 --exclude='*/k' s48c2
done
echo "== done t=${SECONDS}s"
cat $R/sum_*.txt $R/summary.txt
