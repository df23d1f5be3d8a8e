#!/usr/bin/env bash
# kbw11c call 2 (1x H200):  bash .kbw11c/run2.sh   (carry [".kbw11c"]). Binary .kbw11c/dcp2 = branch kbw11c
# with the half tiles as a kernel of their own (opt-in DCP_CUDA_FWD_HALF=1; default: main's kernel).
# 1. selftest 2 (local) with DCP_CUDA_FWD_HALF=1 vs CPU f64; 2. kernel-bench blockwise,works1000,lambda
# default (off) / on (D 128): the dispatch (works1000 keeps the plain kernel).
set -u
B=${B:-.kbw11c/dcp2}; OUTD=${OUT:-/tmp/kbw11c2_out}
R=/tmp/kbw11c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 5 tar czf "$OUTD/kbw11c2.tgz" -C /tmp kbw11c2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
echo "== selftest on t=$((SECONDS - T0))"
DCP_CUDA_FWD_HALF=1 timeout 8 "$B" bench-gpu --selftest 2 --planners local --timeout-s 7 \
  --json "$R/st_on.jsonl" > "$R/st_on.log" 2>&1; echo "rc=$?"
grep -E "^case|FAIL|rror|panic" "$R/st_on.log" | head -4
for v in off on; do
  [ $((SECONDS - T0)) -lt 12 ] || break
  echo "== $v d128 t=$((SECONDS - T0))"
  if [ $v = on ]; then e=1; else e=0; fi
  DCP_CUDA_FWD_HALF=$e timeout 5 "$B" kernel-bench --shapes blockwise,works1000 --head-dim 128 --repeats 2 \
    --json "$R/kb_$v.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== done t=$((SECONDS - T0))"
snap
