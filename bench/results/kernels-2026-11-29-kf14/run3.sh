#!/usr/bin/env bash
# kf14 call 3 (1x H200): LIMIT=60 timeout 65 bash .kf14/run3.sh   (carry [".kf14"]). Ablations only
# (kernel-bench, no check: the ablation kernels compute wrong results by design).
# v/base = main's kernels; v/nol = v/kv (FWD_KVREUSE 1, FWD_T2 0) whose producer loads no K/V after
# a CTA's first two tasks (every 2-tile task "reuses" whatever the stages hold); v/t2nol = the same
# on v/kvt2 (FWD_T2 2: the straight-line path whenever both stages are marked full).
set -u
OUTD=${OUT:-/tmp/kf14_out}
LIMIT=${LIMIT:-60}
R=/tmp/kf14c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf14c3.tgz" -C /tmp kf14c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
D=.kf14/dcp
SH=works1000,onework
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf14/v/$v timeout 20 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base nol t2nol t2nol nol base base nol t2nol; do i=$((i + 1)); if left 8; then kb $v "${v}-d128_$i"; fi; done
timeout 5 python3 .kf14/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
echo "== done t=$((SECONDS - T0))"
snap
