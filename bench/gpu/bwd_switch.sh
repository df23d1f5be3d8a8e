#!/usr/bin/env bash
# One device call that tries a switch of the clustered (or any) backward against its default:
# correctness with the switch on, sanitizers, op times, then an alternated A/B. Written from the
# session 40-42 records' scripts (gpu-x1-2026-12-02s41/cl_dd.sh and its two session-42 copies),
# which differed only in the values below.
#
#   SWITCH=DCP_CUDA_BWD_CLUSTER_DSM ON=4 TAG=s42c3 DCP_GZ=.s42/dcp.gz \
#     timeout 590 bash bench/gpu/bwd_switch.sh
#
# Set (environment):
#   SWITCH    the variable under test (required), OFF / ON its two values (default 0 / 1)
#   DCP_GZ    a gzipped release binary of the tree (required; stage it untracked, e.g. .sNN/)
#   HDS       head dims of steps 2-4 (default "128 64"); SAN_HDS step 2's alone (default HDS);
#             SHORT_HD the short documents' (64)
#   CONFIGS   step 1's runs, ";"-separated "HEAD_DIM DTYPE KV_HEADS BATCH ENV" (BATCH pair: 150
#             documents of 129-256 tokens, pair300: 300 of them; ENV a VAR=VALUE for that run
#             or -); default: both head dims, GQA 1, 2 and 8, bf16 and f16
#   VARIANTS  ab_rounds.py's NAME:SPEC,... list (default "base:SWITCH=OFF on:SWITCH=ON")
#   SHAPES    kernel-bench shapes of the A/B (default works1000,full@160x1600,onework)
#   BUDGET_S  seconds the call may use before the A/B stops starting rounds (default 575)
#   TAG, OUT  the run's name (default bwd_switch) and where its tarball goes ($OUT: the device
#             call's folder; else /tmp/${TAG}_out)
#   WORK      where the run's folder $TAG and the unpacked binary `dcp` go (default /tmp)
#
# Steps:
# 1. CPU f64 checks with SWITCH=ON on documents of 129-256 tokens (full mask: launches that
#    cluster), CONFIGS; then 150 mixed short documents at SHORT_HD (launches that do not
#    cluster); op times name the launches that ran.
# 2. memcheck / racecheck with SWITCH=ON on the pair documents, each head dim of SAN_HDS.
# 3. Op times of works1000 (1000 documents of 256 tokens) with SWITCH=OFF and ON.
# 4. Alternated A/B x3 (bench/gpu/ab_rounds.py) of VARIANTS on SHAPES, backward and forward
#    TFLOP/s; with two head dims the first gets half the time left.
# Writes $OUT/$TAG.tgz (without the variants' kernel copies) and prints the summary last.
set -u
: "${SWITCH:?the switch variable under test}"
OFF=${OFF:-0}
ON=${ON:-1}
TAG=${TAG:-bwd_switch}
HDS=${HDS:-"128 64"}
SAN_HDS=${SAN_HDS:-$HDS}
SHORT_HD=${SHORT_HD:-64}
SHAPES=${SHAPES:-works1000,full@160x1600,onework}
BUDGET_S=${BUDGET_S:-575}
OUTD=${OUT:-/tmp/${TAG}_out}
WORK=${WORK:-/tmp}
R=$WORK/$TAG; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=$WORK/dcp; gunzip -c ${DCP_GZ:?a gzipped release binary of this tree} > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
CONFIGS=${CONFIGS:-"64 bf16 2 pair -;64 f16 8 pair300 -;64 bf16 1 pair300 -;128 bf16 2 pair -;128 f16 1 pair300 -;128 bf16 8 pair300 -;64 f16 2 pair -"}
VARIANTS=${VARIANTS:-"base:$SWITCH=$OFF on:$SWITCH=$ON"}
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"
export "$SWITCH=$ON"

echo "== 1. $SWITCH=$ON against CPU f64 t=$((SECONDS-T0))s"
IFS=';' read -ra CFG <<< "$CONFIGS"
for cfg in "${CFG[@]}"; do
  set -- $cfg; n=d$1_$2_kv$3_$4$( [ $5 != - ] && echo _env ); e=""; [ $5 != - ] && e=$5
  env $e timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_$n --json $R/pair.jsonl > $R/pair_$n.log 2>&1
  echo "$n rc=$? ops: $(cat $R/ops_$n/* 2>/dev/null | grep -o 'launch:[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  grep -E "FAIL|panic|rror" $R/pair_$n.log | head -3
done
summ $R/pair.jsonl "pair documents, $SWITCH=$ON, vs CPU f64" | tee -a $R/summary.txt
timeout 60 $D bench-gpu --batches $R/short.json --head-dim $SHORT_HD --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/short.jsonl > $R/short_d$SHORT_HD.log 2>&1; echo "short rc=$?"
summ $R/short.jsonl "short documents D $SHORT_HD ($SWITCH=$ON) vs CPU f64" | tee -a $R/summary.txt

echo "== 2. sanitizers, $SWITCH=$ON, pair documents t=$((SECONDS-T0))s"
for hd in $SAN_HDS; do for tool in memcheck racecheck; do
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_${tool}_$hd.txt 2>&1; echo "$tool D$hd rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_${tool}_$hd.txt | head -4 | sed "s/^/$tool D$hd: /" | tee -a $R/summary.txt
done; done

echo "== 3. op times, works1000 t=$((SECONDS-T0))s"
for hd in $HDS; do for v in $OFF $ON; do
  env "$SWITCH=$v" timeout 60 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 2 --repeats 5 --op-times $R/wops_${hd}_$v --json $R/wops.jsonl > $R/wops_${hd}_$v.log 2>&1; echo "D$hd $SWITCH=$v rc=$?"
  python3 bench/gpu/op_times.py $R/wops_${hd}_$v --top 8 2>&1 | grep "bwd" | sed "s/^/D$hd $SWITCH=$v: /" | tee -a $R/summary.txt
done; done
tar czf $OUTD/$TAG.tgz -C $WORK $TAG

echo "== 4. A/B x3 t=$((SECONDS-T0))s"
unset "$SWITCH"
read -ra HD <<< "$HDS"
for hd in "${HD[@]}"; do
  left=$((BUDGET_S - (SECONDS-T0)))
  [ $left -lt 60 ] && { echo "D$hd A/B skipped: $left s left"; continue; }
  dl=$(( ${#HD[@]} > 1 && hd == ${HD[0]} ? left / 2 - 25 : left - 40 ))
  timeout $((dl + 30)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s $dl --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes $SHAPES --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu $VARIANTS > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -16 $R/ab$hd.out
  tar czf $OUTD/$TAG.tgz -C $WORK --exclude='*/ab*/k' $TAG
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
