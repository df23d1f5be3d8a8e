#!/usr/bin/env bash
# Checks of the embedded backward kernels on one GPU in one call: sm90 selftest (8 cases, local and
# zigzag), kernel-bench (6 shapes, and hd64 / GQA 1 / f16 on causal 32K), the mma.sync selftest,
# compute-sanitizer racecheck + memcheck, and (ncu) the per-kernel durations of small1000 and full8k.
#   DCP=path/to/dcp OUT=dir bash bench/gpu/bwd_verify.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/env.sh"  # sets DCP (default target/release/dcp)
O=${OUT:-/tmp/bwdverify}; mkdir -p $O
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
T0=$SECONDS
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
echo "== selftest sm90 (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP bench-gpu --selftest 8 --planners local,zigzag --timeout-s 40 \
  --json $O/selftest_emb.jsonl 2>&1 | grep -E "FAIL|rror|panic|^bench-gpu" | head -5
summ $O/selftest_emb.jsonl emb
echo "== kernel-bench (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=sm90 timeout -k 5 90 $DCP kernel-bench --shapes causal32k,causal128k,packed,lambda,small1000,full8k \
  --repeats 3 --timeout-s 80 --json $O/kbench_emb.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -8
for m in "--head-dim 64" "--kv-heads 8" "--dtype f16" "--head-dim 64 --kv-heads 8 --dtype f16"; do
  echo "== $m (t=$((SECONDS-T0))s)"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 40 $DCP kernel-bench --shapes causal32k $m --repeats 3 --timeout-s 35 \
    --json $O/kbench_emb_models.jsonl 2>&1 | grep -E "^[a-z0-9]+ +fwd|rror" | head -3
done
echo "== mma selftest (t=$((SECONDS-T0))s)"
DCP_CUDA_FAMILY=mma timeout -k 5 60 $DCP bench-gpu --selftest 3 --planners local,zigzag --timeout-s 30 \
  --json $O/selftest_mma.jsonl 2>&1 | grep -E "FAIL|rror|panic" | head -3
summ $O/selftest_mma.jsonl mma
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in racecheck memcheck; do
  echo "== $tool (t=$((SECONDS-T0))s)"
  DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $CS --tool $tool --print-limit 5 \
    $DCP bench-gpu --selftest 2 --planners local --timeout-s 50 > $O/san_$tool.txt 2>&1
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL| ok " $O/san_$tool.txt | head -6
done
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "== ncu kernel durations, small1000 then full8k (t=$((SECONDS-T0))s)"
for sh in small1000 full8k; do
  DCP_CUDA_FAMILY=sm90 timeout -k 5 60 $NCUB --clock-control none --metrics gpu__time_duration.sum --csv \
    $DCP kernel-bench --shapes $sh --repeats 1 --warmup 0 --timeout-s 55 > $O/ncu_$sh.csv 2>&1
  python3 - $O/ncu_$sh.csv $sh <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value"); ui = h.index("Metric Unit")
agg = collections.OrderedDict()
for r in rows[1:]:
    try: v = float(r[vi].replace(",", ""))
    except (ValueError, IndexError): continue
    v = v / 1e3 if r[ui] == "nsecond" else v * 1e3 if r[ui] == "msecond" else v
    agg.setdefault(r[ki][:40], []).append(v)
print(sys.argv[2], "kernels (us):", "; ".join(f"{k} x{len(v)} {sum(v):.0f}" for k, v in agg.items()))
PY
done
echo "== end (t=$((SECONDS-T0))s)"
