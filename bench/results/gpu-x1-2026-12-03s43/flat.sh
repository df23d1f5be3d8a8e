#!/usr/bin/env bash
# Session 43, call 3: the flat D pre-pass (dcp_bwd_dd_flat, DCP_CUDA_BWD_DD_FLAT=1, the tree's
# default) against the tiled one (=0): CPU f64 checks with it on (pair and short documents; the
# op times name the pass each launch took), memcheck (the kernel has no shared memory, so no
# racecheck), works1000's op times, A/B rounds at D 128 and 64. Ran with the kernel's first
# default, 5 CTAs per SM (DD_FLAT_MINB 5); calls 4-5 (README) moved it to 4.
#   DCP_GZ=.s43/dcp.gz timeout 280 bash bench/results/gpu-x1-2026-12-03s43/flat.sh
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/flat; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/flat_out}; mkdir -p $OUTD
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c ${DCP_GZ:?} > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"
export DCP_CUDA_BWD_DD_FLAT=1
echo "== 1. checks t=$((SECONDS-T0))s"
for c in "128 bf16 2 pair full" "64 f16 8 pair300 full" "64 bf16 1 pair full" "128 f16 2 short full,causal"; do set -- $c
  timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks $5 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/cops_$1_$2_$4 --json $R/chk.jsonl > $R/chk_$1_$2_$4.log 2>&1
  echo "D$1 $2 kv$3 $4 rc=$? ops: $(cat $R/cops_$1_$2_$4/* 2>/dev/null | grep -o 'launch:BwdDd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
done
python3 bench/gpu/check_summary.py $R/chk.jsonl "flat on, vs CPU f64" | tee -a $R/summary.txt
echo "== 2. memcheck t=$((SECONDS-T0))s"
timeout -k 5 80 $CS --tool memcheck --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 70 > $R/san_memcheck.txt 2>&1; echo "memcheck rc=$?"
grep -E "ERROR SUMMARY|Invalid" $R/san_memcheck.txt | head -3 | sed "s/^/memcheck D128 pair: /" | tee -a $R/summary.txt
echo "== 3. op times works1000 t=$((SECONDS-T0))s"
for hd in 128 64; do for v in 0 1; do
  DCP_CUDA_BWD_DD_FLAT=$v timeout 40 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10 --op-times $R/o_${hd}_$v --json $R/w.jsonl > $R/w_${hd}_$v.log 2>&1
  echo "D$hd flat=$v: $(python3 -c "
import json
r = [json.loads(l) for l in open('$R/o_${hd}_$v/ops_rank0.jsonl')][-1]
d = {o['op'].split(':')[1]: 1000 * (o['end_ms'] - o['start_ms']) for o in r['bwd']}
print(' '.join(f'{k} {v:.1f} us' for k, v in d.items()), f\"bwd {r['bwd_ms']:.3f} ms\")" 2>&1)" | tee -a $R/summary.txt
done; done
tar czf $OUTD/flat.tgz -C /tmp flat
echo "== 4. A/B t=$((SECONDS-T0))s"
unset DCP_CUDA_BWD_DD_FLAT
for hd in 128 64; do
  left=$((255 - (SECONDS-T0))); [ $left -lt 40 ] && { echo "D$hd A/B skipped"; continue; }
  dl=$(( hd == 128 ? left / 2 - 10 : left - 20 ))
  timeout $((dl + 25)) python3 bench/gpu/ab_rounds.py --dcp $D --out $R/ab$hd --deadline-s $dl --run-timeout 30 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes works1000,full@160x1600 --warmup 3 --repeats 10" \
    --field bwd_tflops_per_gpu base:DCP_CUDA_BWD_DD_FLAT=0 flat:DCP_CUDA_BWD_DD_FLAT=1 > $R/ab$hd.out 2>&1
  echo "D$hd A/B rc=$?"; tail -6 $R/ab$hd.out
  tar czf $OUTD/flat.tgz -C /tmp --exclude='flat/ab*/k' flat
done
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt
