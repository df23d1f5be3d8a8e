#!/usr/bin/env bash
# s28 call 7 (2x H200): timeout 300 bash .s28/run7.sh — the whole python/tests suite (GPU tests
# on 1 and 2 GPUs included) with the final tree's wheel (whole-row staging in the planner).
set -u
OUTD=${OUT:-/tmp/s28_out}
R=/tmp/s28c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
timeout 10 nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$R/card.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .s28/whl/dcp-*.whl || exit 1
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; source bench/gpu/env.sh; cd python/tests && \
  timeout 250 python3 -m pytest -q -rs . > "$R/pytest.txt" 2>&1; echo "pytest rc=$?" )
tail -4 "$R/pytest.txt"
tar czf "$OUTD/s28c7.tgz" -C /tmp s28c7
