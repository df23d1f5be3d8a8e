#!/usr/bin/env bash
# kf12 call 3 (warm, checks of the candidate): LIMIT=40 timeout 45 bash .kf12/run3.sh
# c = FWD_PP 1 only in the half-tile kernel (FWD_HALF 1) at D 128, FWD_PP_AT 3, FWD_PP_MIN 4.
set -u
B=.kf12/dcp; OUTD=${OUT:-/tmp/kf12_out}; LIMIT=${LIMIT:-40}
R=/tmp/kf12c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
export DCP_CUDA_KERNELS=.kf12/c
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  echo "== $tool c selftest 2 t=$((SECONDS - T0))"
  DCP_CUDA_FAMILY=sm90 timeout -k 2 10 "$CS" --tool $tool --print-limit 5 "$B" bench-gpu --selftest 2 --planners local --timeout-s 9 > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL|pass" "$R/san_$tool.txt" | head -4
done
echo '{"batches": [[4096]]}' > "$R/splitk.json"
echo "== split-K c (causal, causal-blockwise, D 128) t=$((SECONDS - T0))"
timeout 20 "$B" bench-gpu --batches "$R/splitk.json" --masks causal,causal-blockwise --planners local --head-dim 128 \
  --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/splitk.jsonl" > "$R/splitk.log" 2>&1; echo "rc=$?"
grep -E "pass|FAIL|rror" "$R/splitk.log" | head -4; grep -c '"pass": *true' "$R/splitk.jsonl"
echo "== done t=$((SECONDS - T0))"
timeout 5 tar czf "$OUTD/kf12c3.tgz" -C /tmp kf12c3
