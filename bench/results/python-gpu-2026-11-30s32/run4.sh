#!/usr/bin/env bash
# s32 call 4 (2x H200): timeout 560 bash .s32/run4.sh
# The Python package on GPUs with this tree's wheel (.s32/whl; the planner's new default rates
# 650 / 540): the whole python/tests suite (GPU tests on 1 and 2 GPUs included), then a short
# end-to-end training run on 2 GPUs (examples/train.py through bench/gpu/x4_train.sh: longalign,
# causal and lambda, dcp and zigzag, 8 steps).
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c4.tgz" -C /tmp s32c4; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s32/whl/dcp-*.whl || exit 1
echo "== pytest t=$((SECONDS - T0))"
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; source bench/gpu/env.sh; cd python/tests && \
  timeout 300 python3 -m pytest -q -rs . > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -6 "$R/pytest.txt"
snap
echo "== train t=$((SECONDS - T0))"
OUT=$R/train NPROC=2 MASKS="causal lambda" PLANNERS=dcp,zigzag STEPS=8 WARMUP=2 timeout $((540 - (SECONDS - T0))) \
  bash bench/gpu/x4_train.sh .s32/whl longalign > "$R/train.log" 2>&1; echo "train rc=$?"
tail -30 "$R/train.log"
echo "== done t=$((SECONDS - T0))"
snap
