#!/usr/bin/env bash
# Four GPUs: the paper's attention matrix (issue 13). longalign and ldc × length scales 0.5, 1, 2,
# 4 (PER_CELL batches each, bench/gpu/x4_batches.json) × masks causal, lambda, shared-question,
# causal-blockwise × planners ring, zigzag, ulysses, usp, local (block 1024: they ignore the block
# size), dcp at blocks 1024, 2048, 4096, and dcp's own placement (`dcp-only`) at 1024 so that
# the report can tell whether dcp picked the measured-fastest of its candidates. Every output is
# checked (--check: against the single-GPU `local` plan on the same inputs).
#
# One `bench-gpu` launch runs everything (start-up ~6 s once). Per (mask, batch) it makes the
# inputs once in global token order and the reference once (one single-GPU run), and prepares
# the next (mask, batch)'s inputs and plans on a helper thread while the GPUs run the current
# one; inputs, gathers and checks run on the rank's share of the host cores; a plan's check is
# its first (warm-up) run. Host work per rank, measured without a GPU (`bench-gpu --host-only`,
# bench/results/gpu-x4-host/README.md): ~1.3 CPU s per (mask, batch) (mostly the inputs, made on
# the helper thread) and ~0.11 CPU s per plan run (input gathers, output checks), ~364 CPU s in
# all, spread over the rank's 16 cores. With kernels (~170 s), PCIe copies (~100 s), the 160
# references and plan set-up, the matrix is estimated at ~6-6.5 min on 4× H200 (not yet
# confirmed on the GPUs: the `launch` records and matrix.log's last line say what it took).
#
# PROFILE=1 first runs `dcp calibrate` on the GPUs (~20 s) and plans dcp with that profile's
# fitted kernel model and send/recv curve (--planner-profile); after the matrix it runs
# `dcp simulate` with the same profile on the same batches and plans (SIM=0 skips it), and
# `dcp gpu-report` adds the simulated-against-measured section.
#
# Writes into $RES (default /tmp/x4_matrix): x4_matrix.jsonl (bench-gpu records, one `meta`
# record and one `launch` record per GPU command with its wall time), matrix.log, gpu-4x.md and
# its plots, and with PROFILE=1 profile_x4.json (+ .cost.json) and sim_<mask>.jsonl; then
# copies gpu-4x.md and x4_matrix.jsonl to $OUT and packs all of $RES into $OUT/x4_matrix.tgz
# (a device call brings back at most 8 files).
#
# Run from the repository root with the release binary (target/release/dcp):
#   PROFILE=1 bash bench/gpu/x4_matrix.sh
# env: WORLD, PER_CELL, REPEATS, WARMUP, MASKS (space separated), STATIC, DCP_BLOCKS, OWN_BLOCKS
# (empty: no dcp-only runs), PROFILE, SIM, LAUNCH_TIMEOUT. Pieces made with the same PER_CELL
# join with `dcp gpu-report --input a.jsonl,b.jsonl --batches <a piece's x4_batches.json>`.
set -uo pipefail
OUT=${OUT:-/tmp/x4_out}
mkdir -p "$OUT"
source bench/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
W=${WORLD:-4}
WARMUP=${WARMUP:-1}
REPEATS=${REPEATS:-3}
MASKS=${MASKS:-causal lambda shared-question causal-blockwise}
PER_CELL=${PER_CELL:-5}
STATIC=${STATIC:-ring,zigzag,ulysses,usp,local}
DCP_BLOCKS=${DCP_BLOCKS:-1024+2048+4096}
OWN_BLOCKS=${OWN_BLOCKS-1024}
PROFILE=${PROFILE:-0}
SIM=${SIM:-1}
RES=${RES:-/tmp/x4_matrix}
mkdir -p "$RES"
J=$RES/x4_matrix.jsonl
# The batches of this run: the first PER_CELL of each (data set, scale) cell, labels kept.
BATCHES=$RES/x4_batches.json
python3 - "$PER_CELL" > "$BATCHES" <<'PY' || exit 1
import json, sys
k = int(sys.argv[1])
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < k]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, sys.stdout)
PY
echo "{\"kind\": \"meta\", \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"gpus\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs)\", \"warmup\": $WARMUP, \"repeats\": $REPEATS}" >> "$J"
rc=0
record() { # NAME MASKS PLANNERS STATUS T0
  echo "{\"kind\": \"launch\", \"name\": \"$1\", \"mask\": \"$2\", \"planners\": \"$3\", \"world\": $W, \"status\": $4, \"wall_s\": $(awk "BEGIN{print $(date +%s.%N) - $5}")}" >> "$J"
}
PP=()
PROF=$RES/profile_x4.json
if [ "$PROFILE" = 1 ]; then
  t0=$(date +%s.%N)
  timeout ${CALIBRATE_TIMEOUT:-90} $DCP launch -n "$W" -- calibrate --out "$PROF" > "$RES/calibrate.log" 2>&1
  st=$?
  python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print("calibrate:", {k: p.get(k) for k in ("name","attn_fwd_tflops","attn_bwd_tflops","launch_us","mem_gbps","intra_gbps","intra_latency_us")})' "$PROF" || tail -5 "$RES/calibrate.log"
  record calibrate - - "$st" "$t0"
  if [ "$st" -eq 0 ]; then PP=(--planner-profile "$PROF"); else rc=1; echo "calibrate failed: dcp plans with its built-in cost model"; fi
fi
PLANNERS="$STATIC,dcp@$DCP_BLOCKS${OWN_BLOCKS:+,dcp-only@$OWN_BLOCKS}"
MASKS_CSV=$(echo $MASKS | tr ' ' ',')
T0=$(date +%s)
t0=$(date +%s.%N)
timeout ${LAUNCH_TIMEOUT:-480} $DCP launch -n "$W" -- bench-gpu --batches "$BATCHES" --masks "$MASKS_CSV" \
  --planners "$PLANNERS" --check --warmup "$WARMUP" --repeats "$REPEATS" "${PP[@]}" \
  --json "$J" > "$RES/matrix.log" 2>&1

st=$?
grep -v '^\[rank 0\] {' "$RES/matrix.log" | grep -E 'plan runs|FAIL|rror|failed|stalled' | tail -${TAILB:-8}
record matrix "$MASKS_CSV" "$PLANNERS" "$st" "$t0"
[ "$st" -eq 0 ] || rc=1
echo "matrix: $(( $(date +%s) - T0 )) s wall for $W GPUs"
SIMS=()
if [ "$PROFILE" = 1 ] && [ "$SIM" = 1 ] && [ ${#PP[@]} -gt 0 ]; then
  t0=$(date +%s.%N)
  for m in $MASKS; do
    $DCP simulate --batches "$BATCHES" --mask "$m" --topology 1x$W --profile "$PROF" "${PP[@]}" \
      --planners "$STATIC,dcp,dcp-only" --block-sizes "$(echo $DCP_BLOCKS | tr '+' ',')" \
      --json "$RES/sim_$m.jsonl" > /dev/null 2> "$RES/sim_$m.log" || { rc=1; tail -3 "$RES/sim_$m.log"; }
    SIMS+=(--sim "$RES/sim_$m.jsonl")
  done
  echo "simulate: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s"
fi
$DCP gpu-report --input "$J" --batches "$BATCHES" --out "$RES/gpu-4x.md" "${SIMS[@]}" > /dev/null || rc=1
sed -n '/^## Checks/,/^## Forward/p' "$RES/gpu-4x.md" | grep -v '^!\[' | head -${REPORT_LINES:-70}
cp "$RES/gpu-4x.md" "$J" "$OUT/" 2>/dev/null
tar czf "$OUT/x4_matrix.tgz" -C "$RES" .
exit $rc
