#!/usr/bin/env bash
# kb21 call 1 (1 GPU): LIMIT=100 timeout 106 bash .kb21/run1.sh   (carry [".kb21"]), from /work/main.
# The ceiling of taking the dQ zero out of the plain backward: base (defaults) against
# nz = DCP_CUDA_BWD_DQ_NOZERO_WRONG=1 (the D pass does not zero the fp32 dQ rows: TIMING ONLY,
# results wrong), alternated x3 on blockwise / lambda / causal32k / onework; op times of blockwise.
set -u
OUTD=${OUT:-/tmp/kb21_out}
R=/tmp/kb21c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb21c1.tgz" -C /tmp kb21c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER DCP_CUDA_PDL DCP_CUDA_BWD_DD_ZERO DCP_CUDA_COPY_BATCH DCP_CUDA_BWD_DQ_NOZERO_WRONG
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
T0=$SECONDS
LIMIT=${LIMIT:-100}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
B=.kb21/dcp
timeout 10 python3 -c "
import json
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
venv() { case "$1" in base) echo DCP_CUDA_BWD_DQ_NOZERO_WRONG=0;; nz) echo DCP_CUDA_BWD_DQ_NOZERO_WRONG=1;; esac; }
for v in base nz; do
  left 80 || continue
  echo "== ops $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 30 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise --planners local \
    --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
i=0
for rnd in 1 2 3; do
  for v in base nz; do
    i=$((i + 1)); left 14 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 13 $B kernel-bench --shapes blockwise,lambda,onework,causal32k --head-dim 128 \
      --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
snap
echo "== summary t=$((SECONDS - T0))"
timeout 10 python3 .kb21/ab.py "$R" | tee "$R/ab.txt"
timeout 5 python3 .kb21/ops.py "$R/ops_base" "$R/ops_nz" 2>&1 | grep bwd
echo "== done t=$((SECONDS - T0))"
snap
