#!/usr/bin/env bash
# Session 39, call 2: owned dK/dV rows in the D 64 clustered backward, and session 38's question again.
#   timeout 580 bash bench/results/gpu-x1-2026-12-01s39/run2.sh
# Needs .s39/dcp.gz (this tree), .s39/dcp_c1.gz (call 1's binary: clusters at D 64, dK/dV by
# atomics into fp32 scratch), and for part 5 .s38/dcp.gz, .s38/dcp_prof.gz (run8.sh's binaries).
# 1. CPU f64 checks: pair documents at D 64 (bf16 8:2, f16 1:1, bf16 8:1, and with
#    DCP_CUDA_BWD_CONVERT=0: owned rows stored into fp32 scratch, the float2 store path), D 128
#    (regression), 150 mixed short documents at D 64, a small selftest.
# 2. memcheck / racecheck on the D 64 pair documents.
# 3. Op times of works1000 at D 64.
# 4. Alternated A/B, call 1's binary against this one, ×3: D 64 works1000, onework, blocks256,
#    packed; D 128 works1000, onework.
# 5. Time left: session 38's run8.sh (its records were lost with that session).
set -u
OUTD=${OUT:-/tmp/s39_out}
R=/tmp/s39c2; rm -rf $R; mkdir -p $R $OUTD
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
D=/tmp/dcp_new; gunzip -c .s39/dcp.gz > $D && chmod +x $D
B=/tmp/dcp_c1; gunzip -c .s39/dcp_c1.gz > $B && chmod +x $B
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
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

echo "== 1. pair documents vs CPU f64 t=$((SECONDS-T0))s"
for cfg in "64 bf16 2 pair -" "64 f16 8 pair300 -" "64 bf16 1 pair300 -" "64 bf16 2 pair DCP_CUDA_BWD_CONVERT=0" "128 bf16 2 pair -"; do
  set -- $cfg; n=d$1_$2_kv$3$( [ $5 != - ] && echo _conv0 ); e=""; [ $5 != - ] && e=$5
  env $e timeout 60 $D bench-gpu --batches $R/$4.json --head-dim $1 --dtype $2 --kv-heads $3 --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_$n --json $R/pair.jsonl > $R/pair_$n.log 2>&1
  echo "$n rc=$? ops: $(cat $R/ops_$n/* 2>/dev/null | grep -o 'launch:[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
  grep -E "FAIL|panic|rror" $R/pair_$n.log | head -3
done
summ $R/pair.jsonl "pair documents vs CPU f64" | tee -a $R/summary.txt
timeout 60 $D bench-gpu --batches $R/short.json --head-dim 64 --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/short.jsonl > $R/short_d64.log 2>&1; echo "short rc=$?"
summ $R/short.jsonl "short documents D 64 vs CPU f64" | tee -a $R/summary.txt
timeout -k 5 90 $D bench-gpu --selftest 4 --planners dcp,local,zigzag --json $R/st.jsonl > $R/st.log 2>&1; echo "selftest rc=$?"
summ $R/st.jsonl "selftest w1" | tee -a $R/summary.txt

echo "== 2. sanitizers, D 64 pair documents t=$((SECONDS-T0))s"
for tool in memcheck racecheck; do
  timeout -k 5 100 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 64 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 90 > $R/san_$tool.txt 2>&1; echo "$tool rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_$tool.txt | head -4 | sed "s/^/$tool: /" | tee -a $R/summary.txt
done

echo "== 3. op times, works1000 D 64 t=$((SECONDS-T0))s"
for v in c1 new; do
  b=$D; [ $v = c1 ] && b=$B
  timeout 60 $b bench-gpu --batches $R/works.json --head-dim 64 --masks full --planners local --warmup 2 --repeats 5 --op-times $R/wops_$v --json $R/wops_$v.jsonl > $R/wops_$v.log 2>&1; echo "$v rc=$?"
  python3 bench/gpu/op_times.py $R/wops_$v --top 8 2>&1 | grep "bwd" | sed "s/^/$v: /"
done

echo "== 4. A/B call 1 -> this t=$((SECONDS-T0))s"
for i in 1 2 3; do
  for v in c1 new; do
    b=$D; [ $v = c1 ] && b=$B
    timeout 40 $b kernel-bench --shapes works1000,onework,blocks256,packed --head-dim 64 --warmup 3 --repeats 10 --json $R/ab_${v}_$i.jsonl > /dev/null 2>&1 || echo "$v $i d64 failed"
    timeout 40 $b kernel-bench --shapes works1000,onework --head-dim 128 --warmup 3 --repeats 10 --json $R/ab_${v}_$i.jsonl > /dev/null 2>&1 || echo "$v $i d128 failed"
  done
done
python3 - $R <<'PY' | tee $R/ab.md
import glob, json, os, sys, statistics as st
d = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(d, "ab_*.jsonl"))):
    v = os.path.basename(p).split("_")[1]
    for l in open(p):
        r = json.loads(l)
        if r.get("kind") == "bench":
            runs.setdefault((r.get("shape"), r.get("head_dim"), v), []).append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
print("| shape | D | bwd call 1 | bwd this | ratio | fwd ratio |")
print("|---|---|---|---|---|---|")
for s, hd in sorted({k[:2] for k in runs}, key=lambda x: (-x[1], x[0])):
    b, n = runs.get((s, hd, "c1"), []), runs.get((s, hd, "new"), [])
    if b and n:
        fb, bb = st.median(x[0] for x in b), st.median(x[1] for x in b)
        fn, bn = st.median(x[0] for x in n), st.median(x[1] for x in n)
        print(f"| {s} | {hd} | {' '.join(f'{x[1]:.0f}' for x in b)} | {' '.join(f'{x[1]:.0f}' for x in n)} | {bn / bb:.3f} | {fn / fb:.3f} |")
PY
tar czf $OUTD/c2.tgz -C /tmp s39c2

echo "== 5. run8.sh (session 38's question) t=$((SECONDS-T0))s"
if [ $((SECONDS-T0)) -lt 330 ]; then
  OUT=$OUTD timeout $((560 - (SECONDS-T0))) bash bench/results/gpu-x1-2026-12-01s37/run8.sh > /tmp/run8.out 2>&1; echo "run8 rc=$?"
  tail -60 /tmp/run8.out
else
  echo "skipped: not enough time left"
fi
echo "== done t=$((SECONDS-T0))s"
cat $R/summary.txt $R/ab.md
