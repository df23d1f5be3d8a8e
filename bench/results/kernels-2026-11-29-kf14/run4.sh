#!/usr/bin/env bash
# kf14 call 4 (1x H200): LIMIT=28 timeout 32 bash .kf14/run4.sh   (carry [".kf14"]). Ablations only
# (kernel-bench, no check: the ablation kernels compute wrong results by design).
# v/base = main's kernels; v/nol = v/kv (FWD_KVREUSE 1, FWD_T2 0) whose producer loads no K/V after
# a CTA's first two tasks (every 2-tile task "reuses" whatever the stages hold); v/t2nol = the same
# on v/kvt2 (FWD_T2 2: the straight-line path whenever both stages are marked full); v/t2seq = t2nol
# whose second S is issued only once the first has completed (ptxas spreads it over the first exponentials).
set -u
OUTD=${OUT:-/tmp/kf14_out}
LIMIT=${LIMIT:-28}
R=/tmp/kf14c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf14c4.tgz" -C /tmp kf14c4; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
D=.kf14/dcp
SH=works1000
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  DCP_CUDA_KERNELS=.kf14/v/$v timeout 12 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in nol t2seq t2nol t2seq nol; do i=$((i + 1)); if left 5; then kb $v "${v}-d128_$i"; fi; done
grep -h works1000 "$R"/../kf14c4/run.log 2>/dev/null; echo "== done t=$((SECONDS - T0))"
snap
