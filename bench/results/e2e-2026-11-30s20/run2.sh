#!/usr/bin/env bash
# Session 20, call 2 (CPU only, the device host's quiet Xeon): does the heap layout of the plan
# move validation? validator_bench validates the planner's plan as built (base), a fresh deep copy
# (--relayout: each device's forward then backward, compact), or a copy with every device's forward
# first and then every backward (--relayout2: the order validation reads them). 131K, 8x8 and 32x8,
# three rounds alternated, one process per (round, variant, topology).
set -u
T0=$SECONDS; LIMIT=${LIMIT:-200}
R=$OUT/r; mkdir -p $R
VB=.lead/validator_bench
(lscpu | grep -E "Model name|^CPU\(s\)|L2"; uptime) | tee $R/cpu.txt
for round in 1 2 3; do
  for T in 32x8 8x8; do
    for v in base relayout relayout2; do
      [ $((SECONDS - T0)) -lt $((LIMIT - 20)) ] || break 3
      f=""; [ $v != base ] && f="--$v"
      timeout 60 $VB --budgets 131072 --count 2 --repeats 5 --interleave --topology $T --threads 1 --planners ring,zigzag,usp $f > $R/vb_${T}_${v}_$round.txt 2>&1
    done
  done
done
echo "t=$((SECONDS-T0))"
python3 - $R <<'PY' | tee $R/table.txt
import glob, os, re, statistics, sys
R = sys.argv[1]; rows = {}
for f in glob.glob(f"{R}/vb_*.txt"):
    T, v, rnd = re.match(r".*/vb_(\w+?)_(\w+)_(\d)\.txt", f).groups()
    for l in open(f):
        c = [x.strip() for x in l.split("|")]
        if len(c) > 13 and c[1] in ("ring", "zigzag", "usp"):
            rows.setdefault((T, c[1], c[3], v), []).append((float(c[10]), float(c[12])))
print("| topology | planner | batch | variant | runs | plan CPU ms (median) | validate CPU ms (median) | ratio |")
print("|---|---|---|---|---|---|---|---|")
for k in sorted(rows):
    p = statistics.median(x[0] for x in rows[k]); q = statistics.median(x[1] for x in rows[k])
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {len(rows[k])} | {p:.2f} | {q:.2f} | {q/p:.2f} |")
PY
tar czf $OUT/all.tgz -C $OUT r && rm -rf $R
