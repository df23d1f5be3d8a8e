#!/usr/bin/env bash
# One device call: the Python package on this machine's GPUs with a wheel built here. It does the
# health run of sessions 28, 32, 36 and 43 (their records' run5.sh / run4.sh / py.sh), which
# differed only in the values below.
#
#   (here)   cd python && maturin build --release && mkdir -p ../.sNN/whl && cp ../target/wheels/dcp-*.whl ../.sNN/whl/
#   (device) WHEEL=.sNN/whl TAG=sNNcK timeout 560 bash bench/gpu/python_gpu.sh
#
# Set (environment):
#   WHEEL    a folder holding one dcp-*.whl (required; stage it untracked, e.g. .sNN/whl)
#   NPROC    GPUs for the training runs (default 1); PLANNERS their planners (default dcp,local
#            on one GPU, dcp,zigzag on more)
#   STEPS    steps of the loss comparison (default 30); BUDGET tokens per batch (default 32768)
#   TAG, OUT the run's name (default python_gpu) and where its tarball goes ($OUT: the device
#            call's folder; else /tmp/${TAG}_out); WORK where the run's folder goes (default /tmp)
#
# Steps:
# 1. the whole python/tests suite, GPU tests included (tests that need more GPUs skip);
# 2. examples/train.py, longalign causal, 6 steps (2 warm-up) with each of PLANNERS;
# 3. STEPS steps of dcp on NPROC GPUs and of the single-GPU PyTorch-attention reference on the
#    same batches and weights, then bench/gpu/train_report.py's table and loss comparison.
# Writes $OUT/$TAG.tgz after each step and prints the results last.
set -u
: "${WHEEL:?a folder holding the dcp wheel (WHEEL=.sNN/whl)}"
TAG=${TAG:-python_gpu}
NPROC=${NPROC:-1}
if [ "$NPROC" -gt 1 ]; then PLANNERS=${PLANNERS:-dcp,zigzag}; else PLANNERS=${PLANNERS:-dcp,local}; fi
STEPS=${STEPS:-30}
BUDGET=${BUDGET:-32768}
OUTD=${OUT:-/tmp/${TAG}_out}
WORK=${WORK:-/tmp}
R=$WORK/$TAG; rm -rf "$R"; mkdir -p "$R/train" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/$TAG.tgz" -C "$WORK" "$TAG"; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
whl=$(ls "$WHEEL"/dcp-*.whl 2>/dev/null | head -1)
[ -n "$whl" ] || { echo "no dcp-*.whl in $WHEEL"; exit 2; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "$whl" || exit 1
export PYTHONPATH=$WORK/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
source bench/gpu/env.sh

echo "== 1. pytest t=$((SECONDS - T0))s"
( cd python/tests && timeout 300 python3 -m pytest -q -rs . > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -6 "$R/pytest.txt"
snap

# One training run: its name, a time limit, the command; prints the model and summary lines.
tr() {
  local name=$1 secs=$2; shift 2
  echo "-- $name"
  timeout -k 10 "$secs" "$@" --out "$R/train/$name.json" > "$R/train/$name.log" 2>&1; echo "$name rc=$?"
  grep -E "^(model|summary)|Error|Traceback" "$R/train/$name.log" | cut -c1-300 | tail -6
  snap
}
echo "== 2. train, $PLANNERS on $NPROC GPU(s) t=$((SECONDS - T0))s"
tr train_longalign_causal 150 torchrun --nproc-per-node "$NPROC" examples/train.py --planner "$PLANNERS" \
  --dataset longalign --mask causal --budget "$BUDGET" --steps 6 --warmup 2
echo "== 3. loss, dcp against the single-GPU reference t=$((SECONDS - T0))s"
tr loss_dcp 120 torchrun --nproc-per-node "$NPROC" examples/train.py --planner dcp --budget "$BUDGET" \
  --steps "$STEPS" --warmup 2
tr loss_single 120 python3 examples/train.py --single-gpu-reference --budget "$BUDGET" --steps "$STEPS" --warmup 2
python3 bench/gpu/train_report.py "$R/train" | tail -15
echo "== done t=$((SECONDS - T0))s"
snap
