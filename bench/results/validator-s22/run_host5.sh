#!/usr/bin/env bash
# Session 22, on the GPU machine's 16-core host, after Auto takes Threads::AheadPar (64+ devices,
# a pool of 4+ threads, blocks of 8+ devices): validate's own choice with rayon's global pool of
# 16 threads (validation from the main thread, as dcp runs it) against run-ahead on one thread
# (its choice before), alternated in 3 rounds of separate processes; 1M on 32x8 once.
# usage (repo root; validator_bench carried in DIR): VB=DIR/validator_bench run_host5.sh OUTDIR
set -uo pipefail
out=$1
VB=${VB:-target/release/examples/validator_bench}
mkdir -p "$out"
nproc > "$out/nproc.txt"; lscpu > "$out/lscpu.txt" 2>&1
T0=$SECONDS
one() {  # tag budget topology threads mode planners count
  timeout 120 "$VB" --budgets "$2" --count "$7" --repeats 5 --interleave --topology "$3" \
    --threads "$4" --mode "$5" --planners "$6" > "$out/vb_$1.txt" 2>&1
  echo "$1 done t=$((SECONDS - T0))"
}
for r in 1 2 3; do
  for T in 8x8 16x8 32x8; do
    one "131072_${T}_t1_ahead_r$r" 131072 $T 1 ahead ring,zigzag,usp,dcp 2
    one "131072_${T}_t16_auto_r$r" 131072 $T 16 auto ring,zigzag,usp,dcp 2
  done
done
one 1000000_32x8_t1_ahead_r1 1000000 32x8 1 ahead ring,zigzag,usp,dcp 1
one 1000000_32x8_t16_auto_r1 1000000 32x8 16 auto ring,zigzag,usp,dcp 1
( cd "$out" && tar czf ../vh5.tgz . )
python3 - "$out" <<'PY'
import glob, os, re, statistics as st, sys, collections
d = collections.defaultdict(list)
for f in glob.glob(os.path.join(sys.argv[1], "vb_*.txt")):
    m = re.match(r"vb_(\d+)_(\w+?)_t(\d+)_(\w+)_r\d+\.txt", os.path.basename(f))
    b, T, t, mode = m.groups()
    for l in open(f):
        c = [x.strip() for x in l.strip().strip("|").split("|")]
        if l.startswith("| ") and len(c) >= 15 and c[0] in ("ring", "zigzag", "usp", "dcp") and c[10] != "–":
            d[(b, T, c[0], c[2], mode)].append((float(c[8]), float(c[10]), float(c[13]), c[14]))
print("| tokens | topology | planner | batch | rounds | one thread, run ahead: val ÷ plan | Auto, 16 threads: val ÷ plan (order) |")
print("|---|---|---|---|---|---|---|")
for k in sorted({k[:4] for k in d}):
    a, u = d.get(k + ("ahead",), []), d.get(k + ("auto",), [])
    if not a or not u:
        continue
    f = lambda v: f"{st.median([x[2] for x in v]):.2f} ({min(x[2] for x in v):.2f}–{max(x[2] for x in v):.2f})"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {len(a)} | {f(a)} | {f(u)} ({u[0][3]}) |")
PY
