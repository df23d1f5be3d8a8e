#!/usr/bin/env bash
# Session 44, calls 2 and 5 (kept as it ran in call 5; bench/gpu/bwd_switch.sh, which already did
# the same steps for any backward switch, is the reusable form). D clusters beside the pairs
# (DCP_CUDA_BWD_CLUSTER_DSM, kernels/attn_bwd_cluster_sm90.cu CL_DSM) on one GPU: CPU f64 checks with them forced on (the op times name the launches),
# memcheck and racecheck on a small case (150 pair documents, which take D clusters once the
# pairs go in D order), op times of works1000 and 1 600 documents of 160 tokens for k = 0 (the
# pre-pass) and K_LIST, then alternated rounds of the backward (ab_rounds.py) for V128 / V64.
#   DCP_GZ=.sNN/dcp.gz [K=2] [K_LIST="auto"] [V128="..."] [V64="..."] [ROUNDS=2] [BUDGET_S=330] \
#     timeout 400 bash bench/results/gpu-x1-2026-12-03s44/dsm.sh
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/dsm; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/dsm_out}; mkdir -p $OUTD
exec > >(tee "$R/run.log") 2>&1
BUDGET_S=${BUDGET_S:-330}
K=${K:-2}
K_LIST=${K_LIST:-"auto"}
V128=${V128:-"off:DCP_CUDA_BWD_CLUSTER_DSM=0 auto:DCP_CUDA_BWD_CLUSTER_DSM=auto k4:DCP_CUDA_BWD_CLUSTER_DSM=4 k6:DCP_CUDA_BWD_CLUSTER_DSM=6"}
V64=${V64:-"off:DCP_CUDA_BWD_CLUSTER_DSM=0 auto:DCP_CUDA_BWD_CLUSTER_DSM=auto k3:DCP_CUDA_BWD_CLUSTER_DSM=3"}
ROUNDS=${ROUNDS:-2}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:?} > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))
json.dump({'batches': [[160] * 1600]}, open('$R/w160.json', 'w'))"
ops() { cat $1/* 2>/dev/null | grep -o 'launch:Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' '; }
echo "== 1. checks, DCP_CUDA_BWD_CLUSTER_DSM=$K t=$((SECONDS-T0))s"
for c in "128 bf16 2 pair full $K" "64 f16 8 pair300 full $K" "128 f16 1 pair300 full $K" "64 bf16 2 pair full $K" "128 bf16 2 works full $K" "64 bf16 2 w160 full auto"; do set -- $c
  DCP_CUDA_BWD_CLUSTER_DSM=$6 DCP_CUDA_BWD_PIECE_LOG=1 timeout 90 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks $5 --planners local --check --cpu-check-tokens 60000 --warmup 0 --repeats 1 --op-times $R/cops_$1_$2_$4 --json $R/chk.jsonl > $R/chk_$1_$2_$4.log 2>&1
  echo "D$1 $2 kv$3 $4 k=$6 rc=$? ops: $(ops $R/cops_$1_$2_$4) $(grep -o 'plan Some([^)]*' $R/chk_$1_$2_$4.log | head -1 | cut -c1-160)"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "D clusters $K, vs CPU f64" | tee -a $R/summary.txt
echo "== 2. sanitizers t=$((SECONDS-T0))s"
for tool in memcheck racecheck; do
  DCP_CUDA_BWD_CLUSTER_DSM=$K timeout -k 5 90 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 80 --op-times $R/sops_$tool > $R/san_$tool.txt 2>&1; echo "$tool rc=$? ops: $(ops $R/sops_$tool)"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" $R/san_$tool.txt | head -3 | sed "s/^/$tool D128 pair: /" | tee -a $R/summary.txt
done
echo "== 3. op times t=$((SECONDS-T0))s"
for b in works w160; do for hd in 128 64; do for k in 0 $K_LIST; do
  [ $((SECONDS-T0)) -gt $((BUDGET_S / 2)) ] && { echo "op times $b D$hd k=$k skipped"; continue; }
  DCP_CUDA_BWD_CLUSTER_DSM=$k DCP_CUDA_BWD_PIECE_LOG=1 timeout 40 $D bench-gpu --batches $R/$b.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10 --op-times $R/o_${b}_${hd}_$k --json $R/w.jsonl > $R/w_${b}_${hd}_$k.log 2>&1
  echo "$b D$hd k=$k: $(python3 -c "
import json
r = [json.loads(l) for l in open('$R/o_${b}_${hd}_$k/ops_rank0.jsonl')][-1]
d = {o['op'].split(':')[1]: 1000 * (o['end_ms'] - o['start_ms']) for o in r['bwd']}
print(' '.join(f'{k} {v:.1f} us' for k, v in d.items()), f\"bwd {r['bwd_ms']:.3f} ms\")" 2>&1) $(grep -o 'k: [0-9]*, pair_clusters: [0-9]*, unit_shift: [0-9]*, unit0: [0-9]*, n_units: [0-9]*' $R/w_${b}_${hd}_$k.log | head -1)" | tee -a $R/summary.txt
done; done; done
tar czf $OUTD/dsm.tgz -C /tmp dsm
echo "== 4. A/B t=$((SECONDS-T0))s"
for hd in 128 64; do
  left=$((BUDGET_S - (SECONDS-T0))); [ $left -lt 40 ] && { echo "D$hd A/B skipped"; continue; }
  dl=$(( hd == 128 ? left / 2 - 10 : left - 20 ))
  V=$V128; [ $hd = 64 ] && V=$V64
  timeout $((dl + 25)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s $dl --run-timeout 30 --rounds $ROUNDS \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600,full@200x1000,onework --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu $V > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -9 $R/ab$hd.out
  tar czf $OUTD/dsm.tgz -C /tmp --exclude='dsm/ab*/k' dsm
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
