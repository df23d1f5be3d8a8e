#!/usr/bin/env bash
# Four GPUs (NPROC=4, the default; NPROC=2 for two): end-to-end training measurements of issue 11 with examples/train.py (0.85B Llama-style
# decoder: 16 layers, hidden 2048, 16/4 heads, D 128, bf16, AdamW, activation checkpointing).
# Run from the repository root on a machine with 4 GPUs and PyTorch, in pieces that each fit one
# 10-minute device call:
#
#   bash bench/gpu/x4_train.sh WHEEL_DIR PART      PART: longalign | ldc | ref | loss | seq | all
#
#   longalign / ldc  planners PLANNERS (default dcp,ring,zigzag,ulysses; one process, same batches and
#                    initial weights) on 131 072-token batches, masks MASKS (default causal lambda), STEPS (default 22) steps of which
#                    WARMUP (2) are excluded from the averages  -> $OUT/train_<data>_<mask>.json
#   ref = loss + seq (a) the loss curve: 50 steps of dcp on 4 GPUs against the single-GPU run of the
#                    same model on the same data (PyTorch SDPA per sequence; 32 768-token longalign
#                    batches so that 50 single-GPU steps fit the call)  -> $OUT/loss_{dcp,single}.json
#                    (b, PART seq) one causal sequence of SEQ (131 072) tokens: ours (dcp, zigzag) and PyTorch's own
#                    context_parallel with flash and cuDNN SDPA (/work/shared/peers/torch_e2e.py, or
#                    PEER=path)  -> $OUT/seq_dcp.json, $OUT/torch_cp.jsonl
#
# With 4 planners one (data, mask) cell takes ~4 min on 4x H200: run MASKS=causal and MASKS=lambda
# in separate calls. Prints a table last (bench/gpu/train_report.py). Environment: STEPS, WARMUP, SEQ, PEER, COST (a
# `dcp calibrate` <profile>.cost.json for dcp's planner), DCP (a
# dcp binary: when set, `dcp bench-gpu --selftest 4` runs first as a check of the executor).
set -uo pipefail
W=${1:?usage: bench/gpu/x4_train.sh WHEEL_DIR longalign|ldc|ref|loss|seq|all}
PART=${2:-all}
OUT=${OUT:-/tmp/dcp-x4-train}; mkdir -p "$OUT"; export OUT
STEPS=${STEPS:-22}; WARMUP=${WARMUP:-2}; SEQ=${SEQ:-131072}; NPROC=${NPROC:-4}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$W"/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
rc=0
if [ -n "${DCP_BIN:-}" ]; then
  echo "== executor selftest (1 process, every planner vs the CPU reference)"
  timeout -k 5 120 "$DCP_BIN" bench-gpu --selftest 4 --planners dcp,ring,zigzag,local,ulysses,usp \
    --json "$OUT/selftest.jsonl" 2>&1 | tail -3 || rc=1
fi
T=(timeout -k 10)
train() { # NAME SECONDS ARGS...
  local name=$1 secs=$2; shift 2
  echo "== $name"
  "${T[@]}" "$secs" "$@" --out "$OUT/$name.json" 2>&1 | grep -E "^(model|summary)|Error|error|Traceback" | cut -c1-300
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "!! $name failed"; rc=1; }
}
TR="torchrun --nproc-per-node $NPROC examples/train.py"
for data in longalign ldc; do
  [ "$PART" = "$data" ] || [ "$PART" = all ] || continue
  for mask in ${MASKS:-causal lambda}; do
    train "train_${data}_${mask}" 400 $TR --planner ${PLANNERS:-dcp,ring,zigzag,ulysses} --dataset "$data" --mask "$mask" \
      --steps "$STEPS" --warmup "$WARMUP" ${COST:+--cost-model "$COST"}
  done
done
case "$PART" in ref|loss|all)
  train loss_dcp 120 $TR --planner dcp --budget 32768 --steps 50 --warmup 2
  train loss_single 200 python3 examples/train.py --single-gpu-reference --budget 32768 --steps 50 --warmup 2
esac
case "$PART" in ref|seq|all)
  train seq_dcp 150 $TR --planner dcp,zigzag --seq-len "$SEQ" --steps 8 --warmup 3
  PEER=${PEER:-/work/shared/peers/torch_e2e.py}
  if [ -f "$PEER" ]; then
    for be in cudnn flash; do
      echo "== torch context_parallel $be"
      "${T[@]}" 150 torchrun --nproc-per-node $NPROC "$PEER" "$be" "$SEQ" 2>&1 | grep '^{' | tee -a "$OUT/torch_cp.jsonl"
    done
  else
    echo "!! no PyTorch context_parallel peer script at $PEER (set PEER=...)"; rc=1
  fi
esac
python3 bench/gpu/train_report.py "$OUT" || rc=1
exit $rc
