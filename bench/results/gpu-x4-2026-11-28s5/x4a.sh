#!/usr/bin/env bash
# Session 5, call 1 on 4x H200 (issue 10 items 5 and 6): selftest at 4 and 1 GPUs, one causal
# sequence (dcp, zigzag; every output checked), packed batches, PyTorch context_parallel with cuDNN
# and flash on the same single sequences, the one-GPU flash varlen floor.
set -u
source bench/gpu/env.sh
export DCP=.pdev/dcp
J=$OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
summ() { python3 -c "import json,sys; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst dq %.1e dkv %.1e o %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0]), max([x.get('o',0) or 0 for x in c]+[0])))" 2>&1 | tail -1; }
echo "== selftest world 4"
timeout -k 5 90 $DCP launch -n 4 -- bench-gpu --selftest 8 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w4.jsonl > /tmp/st4.log 2>&1; echo "rc=$?"; summ $J/selftest_w4.jsonl "selftest w4"; grep -E "FAIL|rror|panic" /tmp/st4.log | head -3
echo "== selftest world 1  t=$(( $(date +%s) - t0 ))s"
timeout -k 5 60 $DCP bench-gpu --selftest 6 --planners dcp,ring,zigzag,local,ulysses,usp --json $J/selftest_w1.jsonl > /tmp/st1.log 2>&1; echo "rc=$?"; summ $J/selftest_w1.jsonl "selftest w1"
echo "== single sequences  t=$(( $(date +%s) - t0 ))s"
timeout 170 $DCP launch -n 4 -- bench-gpu --batches .pdev/single.json --mask causal --planners dcp,zigzag --check --warmup 1 --repeats 3 --json $J/single_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -12
echo "== packed  t=$(( $(date +%s) - t0 ))s"
timeout 170 $DCP launch -n 4 -- bench-gpu --batches .pdev/packed.json --mask causal --planners local,zigzag,dcp --check --warmup 1 --repeats 3 --json $J/packed_x4.jsonl 2>&1 | grep -v '^\[rank 0\] {' | tail -19
for be in cudnn flash; do
echo "== torch context_parallel $be  t=$(( $(date +%s) - t0 ))s"
timeout 100 python3 -m torch.distributed.run --nproc-per-node 4 .pdev/torch_cp.py $be gqa 2>/dev/null | grep '^{' | tee -a $J/torch_cp.jsonl
done
echo "== flash varlen floor, one GPU  t=$(( $(date +%s) - t0 ))s"
timeout 60 python3 .pdev/ideal_attn.py .pdev/packed.json 5 > $J/ideal.jsonl 2>&1; tail -5 $J/ideal.jsonl
echo "== done t=$(( $(date +%s) - t0 ))s"
