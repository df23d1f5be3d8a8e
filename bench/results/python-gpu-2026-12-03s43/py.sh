#!/usr/bin/env bash
# s43 call 2 (1x H200): timeout 560 bash .s43/py.sh
# The Python package on one GPU with a wheel of the tree at 20a997b (.s43/whl; the last GPU run
# of the package was session 36's, run5.sh there, which this repeats): the whole python/tests
# suite (the 2-GPU test skips), then examples/train.py end to end: longalign causal, dcp and
# local, 32K-token batches, 6 steps; then 30 steps of dcp against the single-GPU reference
# (PyTorch attention) on the same batches and weights.
set -u
OUTD=${OUT:-/tmp/s43_out}
R=/tmp/s43c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s43c2.tgz" -C /tmp s43c2; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s43/whl/dcp-*.whl || exit 1
echo "== pytest t=$((SECONDS - T0))"
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; source bench/gpu/env.sh; cd python/tests && \
  timeout 240 python3 -m pytest -q -rs . > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -6 "$R/pytest.txt"
snap
echo "== train t=$((SECONDS - T0))"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"; source bench/gpu/env.sh
mkdir -p $R/train
tr() { local name=$1 secs=$2; shift 2; echo "-- $name"
  timeout -k 10 $secs "$@" --out $R/train/$name.json > $R/train/$name.log 2>&1; echo "$name rc=$?"
  grep -E "^(model|summary)|Error|Traceback" $R/train/$name.log | cut -c1-300 | tail -6; snap; }
tr train_longalign_causal 150 torchrun --nproc-per-node 1 examples/train.py --planner dcp,local --dataset longalign \
  --mask causal --budget 32768 --steps 6 --warmup 2
tr loss_dcp 120 torchrun --nproc-per-node 1 examples/train.py --planner dcp --budget 32768 --steps 30 --warmup 2
tr loss_single 120 python3 examples/train.py --single-gpu-reference --budget 32768 --steps 30 --warmup 2
python3 bench/gpu/train_report.py $R/train | tail -15
echo "== done t=$((SECONDS - T0))"
snap
