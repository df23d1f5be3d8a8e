#!/usr/bin/env bash
# Session 5 final call (2x H200): merged main (batched merges, staging-copy model, op times,
# executor host stats, helpers' branches): selftest, per-op timings of the lambda training
# batches and shared-question, and a short 2-GPU training run that records prepare time per step.
set -u
source bench/gpu/env.sh
T0=$SECONDS
bash .pdev/diag.sh 2>&1 | grep -vE '^\| shared-question' | tail -40
echo "== kernel-bench (t=$((SECONDS-T0)))"
DCP_CUDA_FAMILY=sm90 timeout -k 5 60 .pdev/dcp kernel-bench --shapes causal32k,packed,lambda --repeats 3 --timeout-s 55 --json $OUT/kbench.jsonl 2>&1 | tail -5
echo "== training, ldc lambda, world 2, dcp vs ulysses, 8 steps (t=$((SECONDS-T0)))"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .pdev/whl/dcp-*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
eval "$(python3 -m dcp.env)"
timeout -k 10 200 torchrun --nproc-per-node 2 examples/train.py --planner dcp,ulysses --dataset ldc --mask lambda --steps 8 --warmup 2 --out $OUT/train_w2.json 2>&1 | grep -E "^(step|summary|model)|Error|error" | cut -c1-230
echo "== end (t=$((SECONDS-T0)))"
