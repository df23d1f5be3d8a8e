#!/usr/bin/env bash
# Session 43, call 1: the backward's D pre-pass, three ways against the default (dcp_bwd_dd):
# DD_AHEAD 1 / 2 (util.cu: the next tile's work searched, and with 2 its descriptor prefetched,
# while this tile's loads fly) and the bulk-copy pass (DCP_CUDA_BWD_DD_BULK = stages: one CTA
# per SM streaming tiles through shared memory). CPU f64 checks and sanitizers of each, op times
# of works1000 (BwdDd / BwdDdBulk) at D 128 and 64, then kernel-bench A/B rounds.
#   git apply bench/results/gpu-x1-2026-12-03s43/dd_variants.diff  (the variants; not in the tree)
#   DCP_GZ=.s43/dcp.gz timeout 590 bash bench/results/gpu-x1-2026-12-03s43/dd_pass.sh
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/ddx; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/ddx_out}; mkdir -p $OUTD
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:?} > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for v in base ah1 ah2; do cp -r crates/dcp-cuda/kernels $R/k$v; done
sed -i '1i #define DD_AHEAD 1' $R/kah1/util.cu; sed -i '1i #define DD_AHEAD 2' $R/kah2/util.cu
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))
json.dump({'batches': [[3000, 517, 4096]]}, open('$R/mid.json', 'w'))"
venv() { case $1 in base) echo "DCP_CUDA_KERNELS=$R/kbase";; ah1) echo "DCP_CUDA_KERNELS=$R/kah1";; ah2) echo "DCP_CUDA_KERNELS=$R/kah2";;
  bk*) echo "DCP_CUDA_KERNELS=$R/kbase DCP_CUDA_BWD_DD_BULK=${1#bk}";; esac; }
echo "== 1. CPU f64 checks t=$((SECONDS-T0))s"
for v in ah2 bk6 bk2; do
  for c in "128 bf16 2 pair full" "64 bf16 2 pair full" "64 f16 1 short full,causal,causal-blockwise:128:2" "128 bf16 8 short full,causal" "128 f16 2 mid causal,lambda"; do set -- $c
    env $(venv $v) timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks $5 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/cops_${v}_$1_$4 --json $R/chk_$v.jsonl > $R/chk_${v}_$1_$2_$4.log 2>&1
    echo "$v D$1 $2 kv$3 $4 rc=$? ops: $(cat $R/cops_${v}_$1_$4/* 2>/dev/null | grep -o 'launch:BwdDd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  done
  python3 -c "
import json
rows = [json.loads(l) for l in open('$R/chk_$v.jsonl')]
c = [r.get('check') or {} for r in rows]
print('$v checks:', sum(1 for x in c if x.get('pass')), '/', len(rows), 'pass; worst dq/dkv', max([x.get('dq', 0) or 0 for x in c] + [0]), max([x.get('dkv', 0) or 0 for x in c] + [0]))" | tee -a $R/summary.txt
done
echo "== 2. sanitizers t=$((SECONDS-T0))s"
for vb in "bk6 pair 128" "bk6 short 64" "ah2 short 64"; do set -- $vb
  for tool in memcheck racecheck; do
    env $(venv $1) timeout -k 5 80 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/$2.json --head-dim $3 --masks full,causal --planners local --warmup 0 --repeats 1 --timeout-s 70 > $R/san_$1_$2_$tool.txt 2>&1; echo "$tool $1 $2 rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" $R/san_$1_$2_$tool.txt | head -3 | sed "s/^/$tool $1 $2: /" | tee -a $R/summary.txt
  done
done
echo "== 3. op times works1000 t=$((SECONDS-T0))s"
for round in 1 2; do for hd in 128 64; do for v in base ah1 ah2 bk3 bk5 bk7; do
  env $(venv $v) timeout 40 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10 --op-times $R/o_${v}_${hd}_$round --json $R/w.jsonl > $R/w_${v}_${hd}_$round.log 2>&1
  echo "r$round D$hd $v: $(python3 -c "
import json
r = [json.loads(l) for l in open('$R/o_${v}_${hd}_$round/ops_rank0.jsonl')][-1]
d = {o['op'].split(':')[1]: 1000 * (o['end_ms'] - o['start_ms']) for o in r['bwd']}
print(' '.join(f'{k} {v:.1f} us' for k, v in d.items()), f\"bwd {r['bwd_ms']:.3f} ms\")" 2>&1)" | tee -a $R/summary.txt
done; done; done
tar czf $OUTD/ddx.tgz -C /tmp --exclude='ddx/k*' ddx
echo "== 4. A/B t=$((SECONDS-T0))s"
left=$((570 - (SECONDS-T0)))
if [ $left -gt 90 ]; then
  timeout $((left - 10)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab --deadline-s $((left - 50)) --run-timeout 45 --rounds 3 \
    --bench "kernel-bench --head-dim 128 --shapes works1000,packed,causal@512x256,onework --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu base ah2:util:DD_AHEAD=2 bk5:DCP_CUDA_BWD_DD_BULK=5 > $R/ab.out 2>&1; echo "A/B rc=$?"; tail -12 $R/ab.out
fi
tar czf $OUTD/ddx.tgz -C /tmp --exclude='ddx/k*' --exclude='ddx/ab/k' ddx
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
