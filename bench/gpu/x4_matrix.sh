#!/usr/bin/env bash
# Four GPUs: the paper's attention matrix (issue 13). longalign and ldc × length scales 0.5, 1, 2,
# 4 (5 batches each, bench/gpu/x4_batches.json) × masks causal, lambda, shared-question,
# causal-blockwise × planners ring, zigzag, ulysses, usp, local, dcp (block sizes 1024, 2048,
# 4096). Every output is checked (--check: against the single-GPU `local` plan on the same
# inputs). Writes $OUT/x4_matrix.jsonl (bench-gpu records + one `launch` record per call with its
# wall time), then $OUT/gpu-4x.md and its plots via `dcp gpu-report`.
#
# Two launches per mask keep start-up (NCCL init, NVRTC) to 8 calls and run each static plan once:
#   A: ring,zigzag,ulysses,usp,local,dcp at block 1024;  B: dcp at blocks 2048,4096.
# Budget (estimate from bench/results/gpu-h100.md, 2×H100, ×1 batches): zigzag fwd+bwd ≈ 56 ms
# (longalign causal) / 75 ms (ldc causal) / ≈ 25 ms (lambda) on 2 GPUs, so ≈ 30 ms mean per plan
# run on 4 GPUs over masks and scales. 160 (batch, mask) pairs × 8 plan runs × (WARMUP 1 +
# REPEATS 3 + 1 checked run) × 30 ms ≈ 190 s of kernels; host work per plan run (inputs,
# set-up, output comparison) and per batch (the reference) is not measured yet: the `launch`
# records say what each call took, and REPEATS / COUNT / MASKS / SCALES cut the matrix down if
# the first run overshoots 10 minutes. Run from the repository root with the release binary:
#   bash bench/gpu/x4_matrix.sh        (env: WORLD, REPEATS, WARMUP, MASKS, BATCHES, STATIC)
set -uo pipefail
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
W=${WORLD:-4}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
MASKS=${MASKS:-causal lambda shared-question causal-blockwise}
BATCHES=${BATCHES:-bench/gpu/x4_batches.json}
STATIC=${STATIC:-ring,zigzag,ulysses,usp,local}
J=$OUT/x4_matrix.jsonl
cp "$BATCHES" "$OUT/x4_batches.json"
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
