#!/usr/bin/env bash
# kb14 call 4 (1x H200): LIMIT=45 timeout 52 bash .kb14/run4.sh   (carry [".kb14"]), from /work/main.
# Timing-only ablations of the cluster kernel's dQ path (call 3: without any dQ exchange or store the
# kernel lost 600 us), read through DCP_CUDA_KERNELS; binary .kb14/dcp = call 2's.
#   cl     : DCP_CUDA_BWD_CLUSTER=1
#   noxchg : cl + .kb14/v/noxchg (no exchange: rank 1 sends nothing, rank 0 neither waits nor hands back,
#            still sums a stale block, converts and stores)
#   nost   : cl + .kb14/v/nost   (the exchange and the sum, but no 16-byte dQ stores)
set -u
OUTD=${OUT:-/tmp/kb14_out}
R=/tmp/kb14c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb14c4.tgz" -C /tmp kb14c4; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS
T0=$SECONDS
LIMIT=${LIMIT:-45}
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
for v in cl noxchg nost cl noxchg nost; do
  i=$((i + 1))
  if left 8; then
    echo "== $v works1000 t=$((SECONDS - T0))"
    env $(venv $v) timeout 15 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
      --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  fi
done
echo "== done t=$((SECONDS - T0))"
snap
