#!/usr/bin/env bash
# Two GPUs: the SAME 0.85B model trained on one causal sequence of SEQ (131 072) tokens with dcp
# plans and with PyTorch's own context_parallel (bench/gpu/e2e_same_model.py: only the attention
# differs), then examples/train.py --seq-len SEQ --planner dcp (the example's model, chunked CE).
# Run from the repository root with PyTorch installed:
#
#   WHEEL=DIR [NPROC=2] [OUT=dir] [LIMIT=300] [SEQ=131072] [FLASH=0|1] [PROFILE=0|1] bash bench/gpu/x2_e2e.sh
#
# Stages, each its own torchrun under `timeout`, skipped (and said so) when LIMIT seconds from the
# start would not leave it its usual time:
#   e2e_dcp    sides dcp, zigzag (one process: same weights, same sequence)        ~100-120 s
#   e2e_cp     sides cp:cudnn (+ cp:flash with FLASH=1, ~+75 s)                    ~60 s
#   train      examples/train.py --seq-len SEQ --planner dcp --steps 8 --warmup 3 ~70 s
# PROFILE=1: the dcp and cp:cudnn sides run one more (untimed) step under torch.profiler and print
# their top kernels by device time (~+15-25 s each). Then the table (e2e_same_model.py --report:
# every side's median step, attention ms vs the rest, memory, losses; sides whose first-step loss /
# gradient norms disagree with cp:cudnn's, or train.py's first loss with the e2e dcp side's, are
# flagged and make the exit status 1).
# Files in $OUT (6): e2e.jsonl, e2e_dcp.log, e2e_cp.log, train.log, train_dcp.json, table.txt.
# CPU smoke test (no GPU): DEVICE=cpu SMOKE="--layers 2 --hidden 64 ..." (model arguments given to
# both scripts): the e2e stages run on gloo with NPROC ranks, train.py runs one process.
set -uo pipefail
W=${WHEEL:-${1:-}}
[ -n "$W" ] || { echo "usage: WHEEL=DIR bash bench/gpu/x2_e2e.sh (DIR holds the dcp wheel)"; exit 2; }
OUT=${OUT:-/tmp/dcp-x2-e2e}; mkdir -p "$OUT"
NPROC=${NPROC:-2}; SEQ=${SEQ:-131072}; LIMIT=${LIMIT:-300}; FLASH=${FLASH:-0}; DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-}
# the two scripts next to this one (so a copy of bench/gpu/ and examples/ elsewhere runs as is);
# bench/gpu/env.sh is the repository's (run from its root)
HERE=$(cd "$(dirname "$0")" && pwd)
E2E_PY=$HERE/e2e_same_model.py; TRAIN_PY=${TRAIN_PY:-$HERE/../../examples/train.py}
for f in "$E2E_PY" "$TRAIN_PY" bench/gpu/env.sh; do [ -f "$f" ] || { echo "!! $f not found"; exit 2; }; done
T0=$(date +%s)
python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$W"/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, dcp; print(f"torch {torch.__version__}, dcp {dcp.__version__}")' || exit 1
rc=0
PORT=$((29400 + RANDOM % 200))
stage() { # NAME NEEDS_S TIMEOUT_S CMD... : runs CMD > $OUT/NAME.log under timeout, prints what matters
  local name=$1 need=$2 secs=$3; shift 3
  local left=$((LIMIT - ($(date +%s) - T0)))
  if [ "$left" -lt "$need" ]; then
    echo "!! $name skipped: ${left}s left of LIMIT=$LIMIT, it needs ~${need}s"; rc=1; return
  fi
  [ "$secs" -gt "$left" ] && secs=$left
  echo "== $name (timeout ${secs}s, t=$(($(date +%s) - T0))s)"
  timeout -k 10 "$secs" "$@" > "$OUT/$name.log" 2>&1
  local r=$?
  # the per-step lines, compact; the process's own table; any error
  python3 - "$OUT/$name.log" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip()
    if line.startswith("{"):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "step" in d and "summary" not in d:
            print(f"  {d['side']:<9} step {d['step']} loss {d['loss']:.4f} {d['step_ms']:8.1f} ms  "
                  f"attn {d['attn_fwd_ms']:7.1f} + {d['attn_bwd_ms']:7.1f} ms  |g| {d['grad_norm']:.4f}")
        elif "error" in d:
            print(f"  !! {d['side']}: {d['error']}")
        elif "profile" in d:
            print(f"  profile of one more {d['profile']} step: {d['total_ms']:.1f} ms of {d['by']} in all; "
                  "the ops that launched most:")
            for name, ms, n in d["top"][:16]:
                print(f"    {ms:9.1f} ms {n:6d}x  {name[:100]}")
            if d.get("top_kernels"):
                print("  the longest kernels:")
                for name, ms, n in d["top_kernels"][:8]:
                    print(f"    {ms:9.1f} ms {n:6d}x  {name[:100]}")
    elif line.startswith(("model", "step", "summary", "!!")) or "Error" in line or "Traceback" in line:
        print("  " + line[:300])
PY
  if [ "$r" -ne 0 ]; then
    echo "!! $name failed (rc $r$([ "$r" -eq 124 ] && echo ', timed out')); last lines of $OUT/$name.log:"
    grep -v '^{' "$OUT/$name.log" | tail -8 | cut -c1-300
    rc=1
  fi
}
E2E="$E2E_PY --seq-len $SEQ --steps 8 --warmup 3 --device $DEVICE --jsonl $OUT/e2e.jsonl $SMOKE"
rm -f "$OUT/e2e.jsonl"
P_DCP=; P_CP=; [ "${PROFILE:-0}" = 1 ] && { P_DCP="--profile dcp"; P_CP="--profile cp:cudnn"; }
stage e2e_dcp 100 200 torchrun --nproc-per-node "$NPROC" --master-port $PORT $E2E --sides dcp,zigzag $P_DCP
CP=cp:cudnn; [ "$FLASH" = 1 ] && CP=cp:cudnn,cp:flash
stage e2e_cp 60 $([ "$FLASH" = 1 ] && echo 190 || echo 110) torchrun --nproc-per-node "$NPROC" --master-port $((PORT + 1)) $E2E --sides $CP $P_CP
TRAIN="$TRAIN_PY --seq-len $SEQ --planner dcp --steps 8 --warmup 3 --out $OUT/train_dcp.json --device $DEVICE $SMOKE"
if [ "$DEVICE" = cpu ]; then
  stage train 30 120 python3 $TRAIN  # train.py's CPU path is one process
else
  stage train 70 130 torchrun --nproc-per-node "$NPROC" --master-port $((PORT + 2)) $TRAIN
fi
echo "== table (t=$(($(date +%s) - T0))s)"
python3 "$E2E_PY" --report "$OUT/e2e.jsonl" "$OUT/train_dcp.json" 2>&1 | tee "$OUT/table.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
echo "total $(($(date +%s) - T0))s, rc $rc"
exit $rc
