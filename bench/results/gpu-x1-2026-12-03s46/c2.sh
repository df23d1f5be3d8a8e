#!/usr/bin/env bash
# Session 46, call 2: the number of D clusters under sustained timing (kernel-bench --warmup 20
# --repeats 20; session 45's sweep was burst, --warmup 3 --repeats 10), auto against k forced,
# at D 128 and 64, with the SM clock and power sampled beside the runs (nvidia-smi, 100 ms).
set -u
source bench/gpu/env.sh
T0=$SECONDS
R=/tmp/s46c2; rm -rf $R; mkdir -p $R
exec > >(tee "$R/run.log") 2>&1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp; gunzip -c .s46/dcp.gz > $D && chmod +x $D
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw --format=csv,noheader -lms 100 > $R/clock.csv 2>/dev/null &
SMI=$!
SH=works1000,full@160x1600,full@200x1000,onework
for hd in 128 64; do
  if [ $hd = 128 ]; then KS="4 5 6"; else KS="3 4 5"; fi
  V="auto:DCP_CUDA_BWD_CLUSTER_DSM=auto"; for k in $KS; do V="$V k$k:DCP_CUDA_BWD_CLUSTER_DSM=$k"; done
  echo "== D$hd sustained sweep t=$((SECONDS-T0))s"
  timeout 250 python3 bench/gpu/ab_rounds.py --dcp $D --out $R/kb$hd --deadline-s 200 --run-timeout 60 --rounds 3 \
    --bench "kernel-bench --head-dim $hd --shapes $SH --warmup 20 --repeats 20" --field bwd_tflops_per_gpu $V > $R/kb$hd.out 2>&1
  tail -8 $R/kb$hd.out
  tar czf $OUT/s46c2.tgz -C /tmp --exclude='*/k' s46c2
done
kill $SMI 2>/dev/null
python3 - $R/clock.csv <<'PY' | tee $R/clock.txt
import sys
rows = [l.split(", ") for l in open(sys.argv[1]) if l.count(",") == 2]
busy = [(int(c.split()[0]), float(p.split()[0])) for _, c, p in rows if float(p.split()[0]) > 300]
if busy:
    cs = sorted(c for c, _ in busy); ps = sorted(p for _, p in busy)
    q = lambda v, f: v[int(f * (len(v) - 1))]
    print(f"samples over 300 W: {len(busy)}; SM clock MHz p10/p50/p90 {q(cs,.1)}/{q(cs,.5)}/{q(cs,.9)}; power W p50/p90 {q(ps,.5):.0f}/{q(ps,.9):.0f}")
PY
tar czf $OUT/s46c2.tgz -C /tmp --exclude='*/k' s46c2
echo "== done t=$((SECONDS-T0))s"
