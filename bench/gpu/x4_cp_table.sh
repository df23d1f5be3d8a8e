#!/usr/bin/env bash
# Four GPUs (WORLD=4, the default) or WORLD=2, one call (~2 min on 4x H200): issue 10's table and
# checks. Random selftest at WORLD and 1 GPUs (SELFTEST=0 skips both) (every mask kind, GQA, head dims 64/128, every planner, against the CPU f64 reference); one
# causal sequence of 32K, 64K, 114 710 (the fp32-accumulation check) and 128K tokens with dcp and
# zigzag (outputs checked); five packed 131K batches with local, zigzag and dcp (checked); PyTorch
# `context_parallel` with cuDNN and flash on the same single sequences (`bench/gpu/torch_cp_ref.py`;
# PEER_CP=path runs another script taking `BACKEND gqa` instead, e.g. shared/peers/torch_cp.py);
# SUSTAIN=N times the single sequences on both sides with N untimed and N timed runs (default:
# dcp 1 + 3, PyTorch 3 + 5; long launches run at the 700 W cap, so raise it for a sustained
# comparison); PyTorch flash varlen on one GPU for the packed batches (the
# floor ÷ 4; PEER_IDEAL, default /work/shared/peers/ideal_attn.py — shared/ does not travel to
# the GPU machine: copy the peer into a carried folder and point PEER_IDEAL at it); PACKED_MASKS
# (default causal; e.g. causal,lambda,causal-blockwise) the packed batches' masks (the flash floor
# is causal's); with OPS_TIMES=1 also per-op times
# (`bench-gpu --op-times`) of the single sequences. Writes JSON under $OUT and, last, both tables
# side by side (`bench/gpu/cp_table.py`, also as $OUT/table.md); copy what you keep to
# bench/results/ (bench/results/gpu-x4-2026-11-28s5/README.md is the last record).
#
#   DCP=path/to/dcp OUT=dir [WORLD=2] bash bench/gpu/x4_cp_table.sh
# (ran first as .pdev/x4a.sh in session 5.)
set -u
DCP=${DCP:?set DCP to the dcp binary (e.g. a carried .pdev/dcp)}
source bench/gpu/env.sh   # NCCL shim, NVRTC headers (keeps the DCP set above)
OUT=${OUT:-/tmp/x4_cp_table}; mkdir -p "$OUT"
WORLD=${WORLD:-4}
PEER_CP=${PEER_CP:-}
SUSTAIN=${SUSTAIN:-}
PEER_IDEAL=${PEER_IDEAL:-/work/shared/peers/ideal_attn.py}
J=$OUT
TMP=$(mktemp -d)
echo '{"batches": [[32768], [65536], [114710], [131072]]}' > "$TMP/single.json"
# longalign x1 #0 #1, ldc x1 #0 #1, ldc x4 #0 (one 122 042-token sequence) of x4_batches.json.
python3 - "$TMP/packed.json" <<'PY' || exit 1
import json, sys
f = json.load(open("bench/gpu/x4_batches.json"))
json.dump({"batches": [f["batches"][i] for i in (5, 6, 25, 26, 35)]}, open(sys.argv[1], "w"))
PY
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
if [ "${SELFTEST:-1}" != 0 ]; then
  echo "== selftest world $WORLD"
  timeout -k 5 90 $DCP launch -n $WORLD -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w$WORLD.jsonl > $TMP/st$WORLD.log 2>&1; echo "rc=$?"; summ $J/selftest_w$WORLD.jsonl "selftest w$WORLD"; grep -E "FAIL|rror|panic" $TMP/st$WORLD.log | head -3
  echo "== selftest world 1  t=$(( $(date +%s) - t0 ))s"
  timeout -k 5 60 $DCP bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w1.jsonl > $TMP/st1.log 2>&1; echo "rc=$?"; summ $J/selftest_w1.jsonl "selftest w1"
fi
OPS=()
[ "${OPS_TIMES:-0}" = 1 ] && OPS=(--op-times "$J/ops_single")
echo "== single sequences  t=$(( $(date +%s) - t0 ))s"
SW=(--warmup 1 --repeats 3); [ -n "$SUSTAIN" ] && SW=(--warmup "$SUSTAIN" --repeats "$SUSTAIN")
timeout 170 $DCP launch -n $WORLD -- bench-gpu --batches $TMP/single.json --mask causal --planners dcp,zigzag --check "${SW[@]}" --json $J/single_x$WORLD.jsonl "${OPS[@]}" 2>&1 | grep -v '^\[rank 0\] {' | tail -12
echo "== packed  t=$(( $(date +%s) - t0 ))s"
timeout 170 $DCP launch -n $WORLD -- bench-gpu --batches $TMP/packed.json --masks ${PACKED_MASKS:-causal} --planners local,zigzag,dcp --check --warmup 1 --repeats 3 --json $J/packed_x$WORLD.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -50
for be in cudnn flash; do
  echo "== torch context_parallel $be  t=$(( $(date +%s) - t0 ))s"
  if [ -n "$PEER_CP" ]; then
    timeout 100 python3 -m torch.distributed.run --nproc-per-node $WORLD "$PEER_CP" $be gqa 2>/dev/null | grep '^{' | tee -a $J/torch_cp.jsonl
  else
    ( [ -n "$SUSTAIN" ] && export TORCH_REF_WARMUP=$SUSTAIN TORCH_REF_REPEATS=$SUSTAIN
      timeout 170 python3 -m torch.distributed.run --nproc-per-node $WORLD bench/gpu/torch_cp_ref.py $be 32768 65536 131072 2>$J/torch_cp_$be.log ) | grep '^{' | tee -a $J/torch_cp.jsonl
  fi
done
if [ -f "$PEER_IDEAL" ]; then
  echo "== flash varlen floor, one GPU  t=$(( $(date +%s) - t0 ))s"
  timeout 60 python3 "$PEER_IDEAL" $TMP/packed.json 5 > $J/ideal.jsonl 2>&1; tail -3 $J/ideal.jsonl
fi
if [ ${#OPS[@]} -gt 0 ]; then
  python3 bench/gpu/op_times.py $J/ops_single > $J/ops_single.md 2>&1
  tar czf $J/ops_single.tgz -C $J ops_single && rm -rf $J/ops_single
fi
python3 bench/gpu/cp_table.py $J $WORLD | tee $J/table.md
echo "== done t=$(( $(date +%s) - t0 ))s"
