#!/usr/bin/env bash
# kb17, NOT RUN (the helper's device budget was spent): the check BWD_EPI17 still owes before it
# becomes the default. From a tree with this branch merged, after building dcp:
#   mkdir -p .kb17/on && cp crates/dcp-cuda/kernels/* .kb17/on/ && sed -i '1i #define BWD_EPI17 1' .kb17/on/attn_bwd_sm90.cu
#   cp target/release/dcp .kb17/dcp
#   LIMIT=45 timeout 50 bash .kb17/run4.sh      (carry [".kb17"]; ~20-30 s on a warm H200)
# compute-sanitizer memcheck + racecheck of the plain D 128 kernel with BWD_EPI17 1 (the staged
# 16-bit epilogue, the shared task counters and extra info, the straight-line fp32 reductions) on
# one 1024-token sequence (causal-blockwise 128:2: stored 16-bit rows and a split sink list's fp32
# rows; lambda 32:256), plus the pair documents (clusters, with the b90_seg_ptr cleanup).
set -u
OUTD=${OUT:-/tmp/kb17_out}
R=/tmp/kb17c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS; LIMIT=${LIMIT:-45}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb17/dcp
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 10 || continue
  echo "== $tool plain, BWD_EPI17 1 t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kb17/on timeout -k 2 20 "$CS" --tool $tool --print-limit 5 $B bench-gpu --batches "$R/b1k.json" \
    --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 --timeout-s 18 \
    --op-times "$R/san_${tool}_ops" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4
done
for tool in memcheck racecheck; do
  left 10 || continue
  echo "== $tool pair documents (clusters) t=$((SECONDS - T0))"
  timeout -k 2 20 "$CS" --tool $tool --print-limit 5 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 18 > "$R/san_pair_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_pair_$tool.txt" | head -4
done
timeout 10 tar czf "$OUTD/kb17c4.tgz" -C /tmp kb17c4
