#!/usr/bin/env bash
# Session 42: D clusters (DCP_CUDA_BWD_CLUSTER_DSM = K, kernels/attn_bwd_cluster_sm90.cu CL_DSM):
# K clusters of the clustered backward compute D for the pairs while the others run them,
# against the D pre-pass, in one device call; adapted from ../gpu-x1-2026-12-02s41/cl_dd.sh
# (the same four steps, both head dims):
#   K=4 TAG=s42c3 DCP_GZ=.s42/dcp.gz timeout 590 bash bench/results/gpu-x1-2026-12-02s42/cl_dsm.sh
# 1. CPU f64 checks with DCP_CUDA_BWD_CLUSTER_DSM=$K on documents of 129-256 tokens (launches that
#    cluster): CONFIGS, each "HEAD_DIM DTYPE KV_HEADS BATCH ENV" (BATCH pair: 150 documents,
#    pair300: 300; ENV a VAR=VALUE for that run or -), and 150 mixed short documents at D 64
#    (launches that do not cluster); op times name the launches (no BwdDd where D is in the kernel).
# 2. memcheck / racecheck with the kernel's D on the pair documents, D 64 and D 128.
# 3. Op times of works1000 (1000 documents of 256 tokens), D 128 and D 64, pre-pass against kernel D.
# 4. Alternated A/B x3 (bench/gpu/ab_rounds.py) of VARIANTS (ab_rounds' NAME:ENV=V,bwd:DEF=V form)
#    on works1000, 1333 x 192, 1600 x 160 and onework (which does not cluster).
# Writes $OUT/$TAG.tgz (or /tmp/${TAG}_out) and prints the summary last.
set -u
TAG=${TAG:-cl_dsm}
K=${K:-4}
OUTD=${OUT:-/tmp/${TAG}_out}
R=/tmp/$TAG; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:?a gzipped release binary of this tree} > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
CONFIGS=${CONFIGS:-"64 bf16 2 pair -;64 f16 8 pair300 -;64 bf16 1 pair300 -;128 bf16 2 pair -;128 f16 1 pair300 -;128 bf16 8 pair300 -;64 f16 2 pair -"}
VARIANTS=${VARIANTS:-"base:DCP_CUDA_BWD_CLUSTER_DSM=0 k2:DCP_CUDA_BWD_CLUSTER_DSM=2 k4:DCP_CUDA_BWD_CLUSTER_DSM=4 k6:DCP_CUDA_BWD_CLUSTER_DSM=6"}
summ() {
  python3 - "$1" "$2" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
c = [r.get("check") or {} for r in rows]
ok = sum(1 for x in c if x.get("pass"))
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"{sys.argv[2]}: {ok}/{len(rows)} pass; worst rel err " + " ".join(f"{k}={v:.1e}" for k, v in w.items()))
PY
}
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"
export DCP_CUDA_BWD_CLUSTER_DSM=$K

echo "== 1. kernel D against CPU f64 t=$((SECONDS-T0))s"
IFS=';' read -ra CFG <<< "$CONFIGS"
for cfg in "${CFG[@]}"; do
  set -- $cfg; n=d$1_$2_kv$3_$4$( [ $5 != - ] && echo _env ); e=""; [ $5 != - ] && e=$5
  env $e timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_$n --json $R/pair.jsonl > $R/pair_$n.log 2>&1
  echo "$n rc=$? ops: $(cat $R/ops_$n/* 2>/dev/null | grep -o 'launch:[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  grep -E "FAIL|panic|rror" $R/pair_$n.log | head -3
done
summ $R/pair.jsonl "pair documents, kernel D, vs CPU f64" | tee -a $R/summary.txt
timeout 60 $D bench-gpu --batches $R/short.json --head-dim 64 --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/short.jsonl > $R/short_d64.log 2>&1; echo "short rc=$?"
summ $R/short.jsonl "short documents D 64 (kernel D on) vs CPU f64" | tee -a $R/summary.txt

echo "== 2. sanitizers, kernel D, pair documents t=$((SECONDS-T0))s"
for hd in 64 128; do for tool in memcheck racecheck; do
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim $hd --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_${tool}_$hd.txt 2>&1; echo "$tool D$hd rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_${tool}_$hd.txt | head -4 | sed "s/^/$tool D$hd: /" | tee -a $R/summary.txt
done; done

echo "== 3. op times, works1000 t=$((SECONDS-T0))s"
for hd in 128 64; do for v in 0 $K; do
  DCP_CUDA_BWD_CLUSTER_DSM=$v timeout 60 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 2 --repeats 5 --op-times $R/wops_${hd}_$v --json $R/wops.jsonl > $R/wops_${hd}_$v.log 2>&1; echo "D$hd dd=$v rc=$?"
  python3 bench/gpu/op_times.py $R/wops_${hd}_$v --top 8 2>&1 | grep "bwd" | sed "s/^/D$hd dd=$v: /" | tee -a $R/summary.txt
done; done
tar czf $OUTD/$TAG.tgz -C /tmp $TAG

echo "== 4. A/B x3 t=$((SECONDS-T0))s"
unset DCP_CUDA_BWD_CLUSTER_DSM
for hd in 128 64; do
  left=$((575 - (SECONDS-T0)))
  [ $left -lt 60 ] && { echo "D$hd A/B skipped: $left s left"; continue; }
  dl=$(( hd == 128 ? left / 2 - 25 : left - 40 ))
  timeout $((dl + 30)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s $dl --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,onework --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu --field fwd_tflops_per_gpu $VARIANTS > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -16 $R/ab$hd.out
  tar czf $OUTD/$TAG.tgz -C /tmp --exclude='*/kernels_*' $TAG
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
