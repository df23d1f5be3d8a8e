#!/usr/bin/env bash
# k64 call 2: D 64 variants (f = descriptors from fixed bases, p = next S/dP issued before the dQ store,
# q1/q2 = one/two q tiles per step, r = setmaxnreg 24/240) vs main (base); D 128 with the descriptors; selftests.
set -u
source bench/gpu/env.sh
B=.k64/dcp; V=.k64/v2; T0=$SECONDS
export DCP_CUDA_BWD_SMEM=232448
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$V/$1 timeout 60 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $OUT/kb2_$4.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
C=causal32k,causal128k
kb base 64 $C base_a
for v in q1f q1pf q1p q2f q2fr q2o0fr q1pfr; do kb $v 64 $C $v; done
kb base 64 $C base_b
kb q1pf 64 $C q1pf_b
kb q2f 64 $C q2f_b
for v in q1pf q2f; do echo "== selftest $v t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$V/$v DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 8 --planners local,zigzag --timeout-s 35 --json $OUT/st2_$v.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st2_$v.jsonl "selftest $v"; done
kb base 128 $C base128
kb f128 128 $C f128
kb base 128 $C base128b
kb f128 128 $C f128b
echo "== selftest f128 t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=$V/f128 DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 8 --planners local,zigzag --timeout-s 35 --json $OUT/st2_f128.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st2_f128.jsonl "selftest f128"
kb base 64 packed,lambda,blockwise basesp
kb q1pf 64 packed,lambda,blockwise q1pfsp
kb q2f 64 packed,lambda,blockwise q2fsp
echo "== done t=$((SECONDS-T0))"
