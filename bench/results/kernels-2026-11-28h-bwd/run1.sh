#!/usr/bin/env bash
# kbwd3 call 1: persistent sm90 backward. v0 = main's kernel (file, one CTA per task:
# DCP_CUDA_BWD_CTAS=0); vP = this branch's embedded kernel (persistent, red.v4 dK/dV epilogue);
# vP2 = vP with the float2-atomic epilogue; vP1 = vP launched one CTA per task.
set -uo pipefail
source bench/gpu/env.sh
K=.kbwd3; DCP=$K/dcp; O=${OUT:-/tmp/o}; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('selftest $2: %d/%d pass, worst dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
venv() { case $1 in v0) echo "DCP_CUDA_KERNELS=$K/v/v0 DCP_CUDA_BWD_CTAS=0";; vP) echo "";; vP2) echo "DCP_CUDA_KERNELS=$K/v/vP2";; vP1) echo "DCP_CUDA_BWD_CTAS=0";; esac; }
for spec in vP:8 vP2:4; do
  IFS=: read v n <<< "$spec"
  echo "== selftest $v (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $DCP bench-gpu --selftest $n --planners local,zigzag \
    --timeout-s 40 --json $O/selftest_$v.jsonl > $O/selftest_$v.log 2>&1; echo "rc $?"
  grep -E "FAIL|rror|panic" $O/selftest_$v.log | head -5; summ $O/selftest_$v.jsonl $v
done
ALL=causal32k,causal128k,packed,lambda,blockwise,full8k,blocks256,works1000
for v in v0 vP vP2 vP1; do
  echo "== kbench $v (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout -k 5 100 $DCP kernel-bench --shapes $ALL --repeats 3 \
    --timeout-s 90 --json $O/kbench_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +sm90|rror" | head -10
done
for v in v0 vP; do
  echo "== kbench2 $v (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $DCP kernel-bench --shapes causal32k,causal128k,blocks256 --repeats 3 \
    --timeout-s 50 --json $O/kbench2_$v.jsonl 2>&1 | grep -E "^[a-z0-9]+ +sm90|rror" | head -4
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck memcheck; do
  echo "== $tool vP (t=$((SECONDS-T0))s)"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $CS --tool $tool --print-limit 5 $DCP bench-gpu --selftest 2 \
    --planners local --timeout-s 80 > $O/san_$tool.txt 2>&1; echo "rc $?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL| ok " $O/san_$tool.txt | head -6
done
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for v in v0 vP; do for sh in works1000 blocks256; do
  echo "== ncu $v $sh (t=$((SECONDS-T0))s)"
  env $(venv $v) DCP_CUDA_FAMILY=sm90 timeout -k 5 50 $NCUB --clock-control none --metrics gpu__time_duration.sum --csv \
    $DCP kernel-bench --shapes $sh --repeats 1 --warmup 0 --timeout-s 45 > $O/ncu_${v}_$sh.csv 2>&1
  python3 - $O/ncu_${v}_$sh.csv "$v $sh" <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
if not rows: print(sys.argv[2], "no ncu rows"); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
agg = collections.OrderedDict()
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except (ValueError, IndexError): continue
    v = v / 1e3 if r[ui] == "nsecond" else v * 1e3 if r[ui] == "msecond" else v
    agg.setdefault(r[ki][:24], []).append(v)
print(sys.argv[2], "kernels (us, all runs):", "; ".join(f"{k} x{len(v)} {sum(v):.0f}" for k, v in agg.items()))
PY
done; done
python3 - $O v0 vP vP2 vP1 <<'PY'
import json, os, sys
d, vs = sys.argv[1], sys.argv[2:]
def rd(n):
    p = os.path.join(d, n)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
print("\nbwd TFLOP/s (fwd) per shape; second process in []")
for v in vs:
    a = {r["shape"]: r for r in rd(f"kbench_{v}.jsonl")}
    b = {r["shape"]: r for r in rd(f"kbench2_{v}.jsonl")}
    cells = []
    for s, r in a.items():
        c = f"{s} {r['bwd_tflops_per_gpu']:.0f} ({r['fwd_tflops_per_gpu']:.0f})"
        if s in b: c += f" [{b[s]['bwd_tflops_per_gpu']:.0f}]"
        cells.append(c)
    print(f"{v:4} | " + " | ".join(cells))
PY
echo "== end (t=$((SECONDS-T0))s)"
