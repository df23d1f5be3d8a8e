#!/usr/bin/env bash
# kb14b call 2 (1x H200): LIMIT=50 timeout 55 bash .kb14b/run2.sh   (carry [".kb14b"]), from /work/main.
# Timing only, where sr0's remaining dQ cost is (binary = call 1's):
#   chain : main's chained backward
#   sr0   : DCP_CUDA_BWD_CLUSTER=1 + .kb14b/v/sr0 (split rows, finishing at once; call 1: kernel 1 699 us)
#   nf    : sr0 without the proxy fence (MEMBAR.ALL.CTA) before the hand-back arrive (the arrive
#           then issues before the block reads return: timing only)
#   nw    : ABLATION sr0 whose dq_fin keeps only the protocol (wait, arm, hand-back): no reads,
#           sums, fence or stores (wrong dQ, timing only)
set -u
OUTD=${OUT:-/tmp/kb14b_out}
R=/tmp/kb14bc2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb14bc2.tgz" -C /tmp kb14bc2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM
T0=$SECONDS
LIMIT=${LIMIT:-50}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb14b/dcp
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
venv() {
  case "$1" in
    sr0|nf|nw) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb14b/v/$1;;
    *) echo KB14B_CHAIN=1;;
  esac
}
i=0
for v in chain sr0 nf nw sr0 nf nw chain; do
  i=$((i + 1))
  if ! left 4; then continue; fi
  echo "== $v works1000 t=$((SECONDS - T0))"
  env $(venv $v) timeout $((LIMIT - (SECONDS - T0))) $B kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  snap
done
echo "== done t=$((SECONDS - T0))"
snap
