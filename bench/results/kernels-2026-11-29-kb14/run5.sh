#!/usr/bin/env bash
# kb14 call 5 (1x H200): LIMIT=24 timeout 30 bash .kb14/run5.sh   (carry [".kb14"]), from /work/main.
# Timing-only variants of rank 0's dQ output (call 4: neither the exchange nor the 16-byte stores is the
# cost), read through DCP_CUDA_KERNELS; binary .kb14/dcp = call 2's.
#   cl : DCP_CUDA_BWD_CLUSTER=1 (sum written back into the staging block, named barrier, 16-byte stores)
#   d4 : cl + .kb14/v/d4 (the kernel's other path: sum in registers, 4-byte stores; no write-back, no barrier)
#   d8 : cl + .kb14/v/d8 (sum in registers, a pair swapped with lane t4 ^ 1, 8-byte stores; bf16 only)
set -u
OUTD=${OUT:-/tmp/kb14_out}
R=/tmp/kb14c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb14c5.tgz" -C /tmp kb14c5; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS
T0=$SECONDS
LIMIT=${LIMIT:-24}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb14/dcp
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
venv() {
  case "$1" in
    cl) echo DCP_CUDA_BWD_CLUSTER=1;;
    *) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb14/v/$1;;
  esac
}
i=0
for v in cl d4 d8 cl d4 d8; do
  i=$((i + 1))
  if left 3; then
    echo "== $v works1000 t=$((SECONDS - T0))"
    env $(venv $v) timeout 15 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
      --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  fi
done
echo "== done t=$((SECONDS - T0))"
snap
