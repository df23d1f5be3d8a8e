#!/usr/bin/env bash
# Session 12 last call (1 GPU): bench/gpu/x1_final.sh on merged main (LIMIT 230), then
# compute-sanitizer memcheck / racecheck on a case whose forward takes FWD_PP's turn (half-tile
# kernel, tasks of >= 4 tiles) and whose backward runs split dK/dV ownership: one 1024-token
# sequence, causal and lambda, D 128, checked against the CPU f64 reference.
set -u
P=.pdev/s12f
export DCP=$P/dcp WHEEL=$P/whl
OUT=${OUT:?}
T0=$SECONDS
LIMIT=${LIMIT:-230} bash bench/gpu/x1_final.sh
source bench/gpu/env.sh
J=$OUT/pp; mkdir -p $J
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo '{"batches": [[1024]]}' > $J/b.json
for tool in memcheck racecheck; do
  [ $((SECONDS - T0)) -lt 290 ] || break
  echo "== $tool on FWD_PP turns (1024 causal + lambda, D 128) t=$((SECONDS-T0))s"
  timeout -k 5 45 $CS --tool $tool --print-limit 5 $DCP bench-gpu --batches $J/b.json --masks causal,lambda:128:256 --planners local --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 40 --json $J/$tool.jsonl > $J/$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $J/$tool.txt | head -4
  echo "checks passed: $(grep -c '"pass":true' $J/$tool.jsonl 2>/dev/null) of $(wc -l < $J/$tool.jsonl 2>/dev/null)"
done
tar czf $OUT/pp.tgz -C $OUT pp && rm -rf $J
echo "== all done t=$((SECONDS-T0))s"
