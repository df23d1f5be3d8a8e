#!/usr/bin/env bash
# Session 20, call 4 (CPU only, the device host's Xeon): hardware counters of planning and of
# validation per plan instruction (validator_bench --counters: perf_event_open on this thread,
# user space), 131K on 4x8 / 8x8 / 32x8 for ring, zigzag, usp; then 400K and 1M on 32x8 (where
# issue 12 section 1's ratio was met on the VM), ring and zigzag.
set -u
T0=$SECONDS; LIMIT=${LIMIT:-200}
R=$OUT/r; mkdir -p $R
VB=.lead/validator_bench
(lscpu | grep -E "Model name|^CPU\(s\)|L2|Flags" | cut -c1-200; uptime; cat /proc/sys/kernel/perf_event_paranoid) | tee $R/cpu.txt
for T in 4x8 8x8 32x8; do
  [ $((SECONDS - T0)) -lt $((LIMIT - 40)) ] || break
  timeout 80 $VB --budgets 131072 --count 2 --repeats 7 --interleave --topology $T --threads 1 --planners ring,zigzag,usp --counters > $R/hw_$T.txt 2> $R/hw_$T.err
done
head -3 $R/hw_4x8.err
for B in 400000 1000000; do
  [ $((SECONDS - T0)) -lt $((LIMIT - 40)) ] || break
  timeout 80 $VB --budgets $B --count 2 --repeats 5 --interleave --topology 32x8 --threads 1 --planners ring,zigzag --counters > $R/big_$B.txt 2> $R/big_$B.err
done
echo "t=$((SECONDS-T0))"
for f in $R/hw_*.txt $R/big_*.txt; do echo "== $(basename $f)"; grep -E "^\| (ring|zigzag|usp)" $f | awk -F'|' 'NF>13 {print $2,$4,$11,$13,$14} NF<=13 {print}'; done
tar czf $OUT/all.tgz -C $OUT r && rm -rf $R
