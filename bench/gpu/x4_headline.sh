#!/usr/bin/env bash
# Four GPUs (N=2: two), one call (~2 min on 4x H200): issue 10's headline checks. Selftests at world N
# and 1, kernel-bench D 128 / D 64 against PyTorch on one GPU, the single-sequence table (32K, 64K,
# 128K causal; dcp and zigzag, checked, op times) against PyTorch `context_parallel` + cuDNN, dcp
# again (run-to-run spread), the Python GPU test with the wheel. Everything goes into one
# $OUT/headline.tgz (the device returns few files); the table is printed as it runs.
#
#   DCP=path/to/dcp WHEEL=dir/with/wheel PEER_CP=path/to/torch_cp.py OUT=dir bash bench/gpu/x4_headline.sh
# (first ran as .pdev/s8/x4c.sh in session 8: bench/results/gpu-x4-2026-11-28s8/call3/; shared/
# does not travel to the GPU machine: carry the binary, the wheel and the peer script.)
set -u
N=${N:-4}
B=${DCP:?set DCP to the dcp binary (e.g. a carried .pdev/dcp)}
W=${WHEEL:?set WHEEL to the folder holding the dcp wheel}
PEER_CP=${PEER_CP:?set PEER_CP to torch_cp.py (shared/peers, copied into a carried folder)}
source bench/gpu/env.sh
T0=$SECONDS; OUT=${OUT:-/tmp/x4_headline}; J=$OUT/headline; mkdir -p $J
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py" "$1" "$2"; }  # FILE LABEL: checks passed, worst errors
echo "== selftest world $N"
timeout -k 5 90 $B launch -n $N -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w$N.jsonl > $J/st$N.log 2>&1; echo "rc=$?"; summ $J/selftest_w$N.jsonl "selftest w$N"; grep -E "FAIL|panic|rror" $J/st$N.log | head -3
echo "== selftest world 1 t=$((SECONDS-T0))s"
timeout -k 5 70 $B bench-gpu --selftest 12 --planners dcp,zigzag,local,usp --json $J/selftest_w1.jsonl > $J/st1.log 2>&1; echo "rc=$?"; summ $J/selftest_w1.jsonl "selftest w1"; grep -E "FAIL|panic|rror" $J/st1.log | head -3
for d in 128 64; do
  echo "== kernel-bench d$d t=$((SECONDS-T0))s"
  timeout 40 $B kernel-bench --shapes causal32k,causal128k --head-dim $d --repeats 3 --json $J/kb_d$d.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
  timeout 50 python3 bench/gpu/torch_ref.py $J/kb_d$d.jsonl $J/torch_d$d.jsonl 2>&1 | tail -2
done
echo '{"batches": [[32768], [65536], [131072]]}' > /tmp/single.json
echo "== dcp single (checked, op times) t=$((SECONDS-T0))s"
timeout 170 $B launch -n $N -- bench-gpu --batches /tmp/single.json --mask causal --planners dcp,zigzag --check --warmup 1 --repeats 3 --json $J/single_x$N.jsonl --op-times $J/ops_single 2>&1 | grep -v '^\[rank 0\] {' | tail -8
echo "== torch context_parallel cudnn t=$((SECONDS-T0))s"
timeout 100 python3 -m torch.distributed.run --nproc-per-node $N $PEER_CP cudnn gqa 2>/dev/null | grep '^{' | tee -a $J/torch_cp.jsonl
echo "== dcp single again (timing only) t=$((SECONDS-T0))s"
timeout 100 $B launch -n $N -- bench-gpu --batches /tmp/single.json --mask causal --planners dcp --warmup 1 --repeats 5 --json $J/single_x${N}_b.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -4
python3 bench/gpu/op_times.py $J/ops_single > $J/ops_single.md 2>&1; grep -E "dcp.*bwd" $J/ops_single.md | head -3; rm -rf $J/ops_single
echo "== python GPU test (2 GPUs) t=$((SECONDS-T0))s"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $W/dcp-*.whl
( export PYTHONPATH=/tmp/site; eval "$(python3 -m dcp.env)"; cd python/tests && timeout 200 python3 -m pytest -q -x test_gpu.py 2>&1 | tail -3 ) | tee $J/pytest_gpu.txt
tar czf $OUT/headline.tgz -C $OUT headline && rm -rf $J
echo "== done t=$((SECONDS-T0))s"
