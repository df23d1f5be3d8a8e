#!/usr/bin/env bash
# Session 20, call 3 (CPU only, the device host's quiet Xeon): call 2 found planning AND validation
# 30-40 % faster in processes that also made an untimed deep copy of each plan (--relayout), i.e.
# the heap's state moves both. Is it glibc malloc's trimming / mmap of large blocks? Variants:
# base; relayout; tun = GLIBC_TUNABLES mmap threshold 32 MiB (its maximum) + no trimming; thp = tun
# + malloc's transparent huge pages (glibc.malloc.hugetlb=1). 131K, 32x8 and 8x8, 3 rounds.
set -u
T0=$SECONDS; LIMIT=${LIMIT:-200}
R=$OUT/r; mkdir -p $R
VB=.lead/validator_bench
(lscpu | grep -E "Model name|^CPU\(s\)|L2"; uptime; ldd --version | head -1; cat /sys/kernel/mm/transparent_hugepage/enabled) | tee $R/cpu.txt
TUN=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295
for round in 1 2 3; do
  for T in 32x8 8x8; do
    for v in base relayout tun thp; do
      [ $((SECONDS - T0)) -lt $((LIMIT - 20)) ] || break 3
      f=""; t=""
      case $v in relayout) f=--relayout;; tun) t=$TUN;; thp) t=$TUN:glibc.malloc.hugetlb=1;; esac
      GLIBC_TUNABLES=$t timeout 60 /usr/bin/time -f "faults %R rss %M KB" -o $R/time_${T}_${v}_$round.txt $VB --budgets 131072 --count 2 --repeats 5 --interleave --topology $T --threads 1 --planners ring,zigzag,usp $f > $R/vb_${T}_${v}_$round.txt 2>&1 \
        || GLIBC_TUNABLES=$t timeout 60 $VB --budgets 131072 --count 2 --repeats 5 --interleave --topology $T --threads 1 --planners ring,zigzag,usp $f > $R/vb_${T}_${v}_$round.txt 2>&1
    done
  done
done
echo "t=$((SECONDS-T0))"
python3 - $R <<'PY' | tee $R/table.txt
import glob, re, statistics, sys
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
head -3 $R/time_32x8_*_1.txt 2>/dev/null
tar czf $OUT/all.tgz -C $OUT r && rm -rf $R
