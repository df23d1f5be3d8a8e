#!/usr/bin/env bash
# Four GPUs: the paper's attention matrix (issue 13). longalign and ldc × length scales 0.5, 1, 2,
# 4 (5 batches each, bench/gpu/x4_batches.json) × masks causal, lambda, shared-question,
# causal-blockwise × planners ring, zigzag, ulysses, usp, local, dcp (block sizes 1024, 2048,
# 4096). Every output is checked (--check: against the single-GPU `local` plan on the same
# inputs). Writes $OUT/x4_matrix.jsonl (bench-gpu records + one `launch` record per call with its
# wall time), then $OUT/gpu-4x.md and its plots via `dcp gpu-report`.
#
# Two launches per mask keep start-up (~6 s each: NCCL init, NVRTC) to 8 calls and run each
# static plan once:  A: ring,zigzag,ulysses,usp,local,dcp at block 1024;  B: dcp at 2048,4096.
#
# Time budget. Kernels: 160 (batch, mask) pairs × 8 plan runs × (WARMUP 1 + REPEATS 3 + 1 checked
# run) × ~30 ms mean fwd+bwd on 4 GPUs ≈ 190 s. But bench-gpu's host work dominates today
# (measured on 4× H200, bench/results/gpu-2026-11-28-x4probe): ~2 s per plan run (inputs made on
# the host element by element, set-up, checked rerun, outputs compared on one core) and ~3 s per
# reference (once per batch and block size), so the whole matrix takes ~75 min of wall time. It
# fits 10 minutes once bench-gpu builds inputs and compares outputs on the 64 cores (or the GPU)
# and makes the reference once per batch. Until then run it in pieces that fit one device call,
# e.g. PER_CELL=1 with one mask per call (~4 min each), and join the pieces' JSON with
# `dcp gpu-report --input a.jsonl,b.jsonl,... --batches <any piece's x4_batches.json>`.
# Each `launch` record says what its call took.
#
# Run from the repository root with the release binary (target/release/dcp):
#   bash bench/gpu/x4_matrix.sh     (env: WORLD, PER_CELL, REPEATS, WARMUP, MASKS, STATIC)
set -uo pipefail
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
W=${WORLD:-4}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
MASKS=${MASKS:-causal lambda shared-question causal-blockwise}
PER_CELL=${PER_CELL:-5}
STATIC=${STATIC:-ring,zigzag,ulysses,usp,local}
J=$OUT/x4_matrix.jsonl
# The batches of this run: the first PER_CELL of each (data set, scale) cell, labels kept.
BATCHES=$OUT/x4_batches.json
python3 - "$PER_CELL" > "$BATCHES" <<'PY' || exit 1
import json, sys
k = int(sys.argv[1])
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < k]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, sys.stdout)
PY
echo "{\"kind\": \"meta\", \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"gpus\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs)\", \"warmup\": $WARMUP, \"repeats\": $REPEATS}" >> "$J"
rc=0
launch() { # NAME MASK PLANNERS BLOCKS
  local t0 t1 st
  t0=$(date +%s.%N)
  timeout ${LAUNCH_TIMEOUT:-420} $DCP launch -n "$W" -- bench-gpu --batches "$BATCHES" --mask "$2" \
    --planners "$3" --block-sizes "$4" --check --warmup "$WARMUP" --repeats "$REPEATS" \
    --json "$J" 2>&1 | grep -v '^\[rank 0\] {' | tail -${TAILB:-4}
  st=${PIPESTATUS[0]}
  t1=$(date +%s.%N)
  [ "$st" -eq 0 ] || rc=1
  echo "{\"kind\": \"launch\", \"name\": \"$1\", \"mask\": \"$2\", \"planners\": \"$3\", \"block_sizes\": \"$4\", \"world\": $W, \"status\": $st, \"wall_s\": $(awk "BEGIN{print $t1 - $t0}")}" >> "$J"
}
T0=$(date +%s)
for m in $MASKS; do
  launch static+dcp1024 "$m" "$STATIC,dcp" 1024
  launch dcp2048+4096 "$m" dcp 2048,4096
done
echo "matrix: $(( $(date +%s) - T0 )) s wall for $W GPUs"
$DCP gpu-report --input "$J" --batches "$BATCHES" --out "$OUT/gpu-4x.md" || rc=1
exit $rc
