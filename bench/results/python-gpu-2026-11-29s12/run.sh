#!/usr/bin/env bash
# Early check: the Python package's GPU test on one GPU (world 1; world 2 skips), plus a short selftest.
set -u
source bench/gpu/env.sh
OUT=${OUT:?}
P=.pdev/s12
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $P/whl/dcp-*.whl 2>&1 | tail -2
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 200 python3 -m pytest -q -rs test_gpu.py 2>&1 | tail -30 ) | tee $OUT/pytest_gpu.txt
timeout 60 $P/dcp bench-gpu --selftest 4 --planners dcp,local --json $OUT/st.jsonl 2>&1 | tail -3
