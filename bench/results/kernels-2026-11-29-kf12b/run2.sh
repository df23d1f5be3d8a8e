#!/usr/bin/env bash
# kf12b call 2 (1x H200): LIMIT=50 timeout 55 bash .kf12b/run2.sh   (carry [".kf12b"]).
# 1. Call 1's split-K check timed out (30 s) on its third mask (causal-blockwise) for ep and ept:
#    that case alone, with a deadline, for ep, then (if it fails) ep with DCP_CUDA_FWD_HALF=0
#    (plain kernel). 2. epx = ep without the S issue (pre always false): the machinery's
#    cost without the overlap; kernel-bench base / epx / ep alternated on four shapes.
set -u
B=${B:-.kf12b/dcp}; KD=${KD:-.kf12b}; OUTD=${OUT:-/tmp/kf12b_out}
LIMIT=${LIMIT:-50}
R=/tmp/kf12bc2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf12bc2.tgz" -C /tmp kf12bc2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
run_v() {
  local v=$1; shift
  case $v in
    base) env "$@" ;;
    ep|epx) env DCP_CUDA_KERNELS="$KD/$v" "$@" ;;
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
echo '{"batches": [[4096]]}' > "$R/splitk.json"
sk() {
  local v=$1 tag=$2; shift 2
  echo "== split-K causal-blockwise $tag t=$((SECONDS - T0))"
  run_v $v "$@" timeout -k 2 16 "$B" bench-gpu --batches "$R/splitk.json" --masks causal-blockwise --planners local --head-dim 128 \
    --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 12 --json "$R/splitk_$tag.jsonl" > "$R/splitk_$tag.log" 2>&1
  local rc=$?; echo "rc=$rc"; grep -E "rror|panic|FAIL|timed|deadline" "$R/splitk_$tag.log" | head -3
  grep -o '"pass":[a-z]*' "$R/splitk_$tag.jsonl" 2>/dev/null | head -2
  return $rc
}
sk ep ep || sk ep ep_half0 DCP_CUDA_FWD_HALF=0
snap
SH=causal32k,blockwise,works1000,onework
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  run_v "$v" timeout 25 "$B" kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base epx ep base ep epx base; do i=$((i + 1)); if left 8; then kb $v "${v}_$i"; fi; done
echo "== done t=$((SECONDS - T0))"
snap
