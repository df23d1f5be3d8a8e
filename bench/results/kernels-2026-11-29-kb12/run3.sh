#!/usr/bin/env bash
# kb12 call 3 (1x H200):  LIMIT=33 timeout 34 bash .kb12/run3.sh   (carry [".kb12"]).
# .kb12/dcp_new = branch kb12 with the new defaults (DCP_CUDA_BWD_OWN=split, BWD_EPI_B16V4 1); .kb12/dcp_main = main cf06c00.
# 1. compute-sanitizer memcheck (4096-token causal-blockwise + full check; 150 short documents, chains) and racecheck
#    (selftest 1) of the new defaults (no kernel-bench: the allowance's last ~35 s).
set -u
OUTD=${OUT:-/tmp/kb12_out}
R=/tmp/kb12c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb12c3.tgz" -C /tmp kb12c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
LIMIT=${LIMIT:-33}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
echo '{"batches": [[4096]]}' > "$R/b4k.json"
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
echo "== memcheck 4096 t=$((SECONDS - T0))"
timeout -k 2 13 "$CS" --tool memcheck --print-limit 5 .kb12/dcp_new bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,full \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 60 > "$R/san_mem4k.txt" 2>&1; echo "rc=$?"
grep -E "ERROR SUMMARY|Invalid|\"pass\":false" "$R/san_mem4k.txt" | head -4 | sed 's/^/4096: /' | tee -a "$R/summ.txt"
grep -c '"pass":true' "$R/san_mem4k.txt" | sed 's/^/4096 checks passed: /' | tee -a "$R/summ.txt"
echo "== memcheck short t=$((SECONDS - T0))"
timeout -k 2 9 "$CS" --tool memcheck --print-limit 5 .kb12/dcp_new bench-gpu --batches "$R/short.json" --masks full --head-dim 128 \
  --planners local --warmup 0 --repeats 1 --timeout-s 60 > "$R/san_memshort.txt" 2>&1; echo "rc=$?"
grep -E "ERROR SUMMARY|Invalid" "$R/san_memshort.txt" | head -4 | sed 's/^/short: /' | tee -a "$R/summ.txt"
echo "== racecheck t=$((SECONDS - T0))"
DCP_CUDA_FAMILY=sm90 timeout -k 2 7 "$CS" --tool racecheck --print-limit 5 .kb12/dcp_new bench-gpu --selftest 1 --planners local \
  --timeout-s 60 > "$R/san_race.txt" 2>&1; echo "rc=$?"
grep -E "RACECHECK SUMMARY|hazard" "$R/san_race.txt" | head -4 | tee -a "$R/summ.txt"
snap
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
