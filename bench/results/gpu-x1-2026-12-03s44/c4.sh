set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/c4; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/c4_out}; mkdir -p $OUTD
exec > >(tee "$R/run.log") 2>&1
D=/tmp/dcp; gunzip -c .s44/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))"
ops() { cat $1/* 2>/dev/null | grep -o 'launch:Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' '; }
for c in "128 bf16 2 pair" "64 f16 8 pair300" "128 f16 1 pair300"; do set -- $c
  DCP_CUDA_BWD_CLUSTER_DSM=2 DCP_CUDA_BWD_PIECE_LOG=1 timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/cops_$1_$2_$4 --json $R/chk.jsonl > $R/chk_$1_$2_$4.log 2>&1
  echo "D$1 $2 kv$3 $4 rc=$? ops: $(ops $R/cops_$1_$2_$4) $(grep -o 'plan [SN][a-z]*([^)]*' $R/chk_$1_$2_$4.log | head -1 | cut -c1-120)"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "D clusters 2, vs CPU f64" | tee -a $R/summary.txt
for tool in memcheck racecheck; do
  DCP_CUDA_BWD_CLUSTER_DSM=2 timeout -k 5 90 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 80 --op-times $R/sops_$tool > $R/san_$tool.txt 2>&1; echo "$tool rc=$? ops: $(ops $R/sops_$tool)"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" $R/san_$tool.txt | head -3 | sed "s/^/$tool D128 pair, D clusters 2: /" | tee -a $R/summary.txt
done
V="off:DCP_CUDA_BWD_CLUSTER_DSM=0 k3:DCP_CUDA_BWD_CLUSTER_DSM=3 k6:DCP_CUDA_BWD_CLUSTER_DSM=6 pf1:DCP_CUDA_BWD_CLUSTER_DSM=6,bwd:DSM_PF=1 pf2:DCP_CUDA_BWD_CLUSTER_DSM=6,bwd:DSM_PF=2 poll:DCP_CUDA_BWD_CLUSTER_DSM=6,bwd:DSM_POLL=1 both:DCP_CUDA_BWD_CLUSTER_DSM=6,bwd:DSM_PF=2,bwd:DSM_POLL=1"
for hd in 128 64; do
  left=$((330 - (SECONDS-T0))); [ $left -lt 40 ] && continue
  dl=$(( hd == 128 ? left * 6 / 10 : left - 20 ))
  timeout $((dl + 40)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s $dl --run-timeout 30 --rounds 2 \
    --bench "kernel-bench --head-dim $hd --shapes works1000 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu $V > $R/ab$hd.out 2>&1
  echo "D$hd rc=$? t=$((SECONDS-T0))"; tail -5 $R/ab$hd.out
done
tar czf $OUTD/c4.tgz -C /tmp --exclude='c4/ab*/k' c4
cat $R/summary.txt
