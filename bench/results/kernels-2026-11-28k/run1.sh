#!/usr/bin/env bash
# k64 call 1: D 64 backward with two q tiles per step (o1 = new default; o0, r240, epi4 variants) vs main (base),
# PyTorch flash/cuDNN at D 64, selftests + D 64 CPU checks of o1, D 128 unchanged check.
set -u
source bench/gpu/env.sh
B=.k64/dcp; V=.k64/v; T0=$SECONDS
export DCP_CUDA_BWD_SMEM=232448
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { # variant, head dim, shapes, tag
  echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$V/$1 timeout 60 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $OUT/kb_$4.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
kb base 64 causal32k,causal128k base64a
kb o1 64 causal32k,causal128k o1a
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
echo "== selftest o1 t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=$V/o1 DCP_CUDA_FAMILY=sm90 timeout 60 $B bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 50 --json $OUT/st_o1.jsonl > $OUT/st_o1.log 2>&1; echo rc=$?; summ $OUT/st_o1.jsonl "selftest o1"
echo "== torch t=$((SECONDS-T0))"
timeout 50 python3 bench/gpu/torch_ref.py $OUT/kb_base64a.jsonl $OUT/torch64.jsonl 2>&1 | tail -4
kb o0 64 causal32k,causal128k o0
kb r240 64 causal32k,causal128k r240
kb epi4 64 causal32k,causal128k epi4
kb base 64 causal32k,causal128k base64b
kb o1 64 causal32k,causal128k o1b
kb base 64 packed,lambda,blockwise basesp
kb o1 64 packed,lambda,blockwise o1sp
echo "== selftest o1 masks off t=$((SECONDS-T0))"
DCP_CUDA_TILE_MASKS=0 DCP_CUDA_KERNELS=$V/o1 DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 6 --planners local,zigzag --timeout-s 25 --json $OUT/st_o1_off.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st_o1_off.jsonl "selftest o1 masks off"
echo "== check d64 t=$((SECONDS-T0))"
echo '{"batches": [[3000], [1500, 700, 900]]}' > /tmp/c.json
DCP_CUDA_KERNELS=$V/o1 timeout 40 $B bench-gpu --batches /tmp/c.json --head-dim 64 --masks causal,causal-blockwise:128:2,lambda:64:512 --planners local,zigzag --check --cpu-check-tokens 3000 --warmup 0 --repeats 1 --json $OUT/chk_o1.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/chk_o1.jsonl "check d64 o1"
kb base 128 causal32k,causal128k base128
kb o1 128 causal32k,causal128k o1_128
echo "== done t=$((SECONDS-T0))"
