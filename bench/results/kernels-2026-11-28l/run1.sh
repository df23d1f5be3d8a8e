#!/usr/bin/env bash
# kd128 call 1: D 128 backward variants (read through DCP_CUDA_KERNELS) against main's kernel (base), alternated;
# selftest of the combined variant; D 64 base vs all.
set -u
source bench/gpu/env.sh
B=.kd128/dcp; V=.kd128/v1; T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$V/$1 timeout 40 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $OUT/kb1_$4.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
C=causal32k,causal128k
kb base 128 $C base_a
for v in ps ng mb all r240 allr o1 allo1 allo1r; do kb $v 128 $C $v; done
kb base 128 $C base_b
for v in all allr allo1 allo1r r240; do kb $v 128 $C ${v}_b; done
kb base 128 $C base_c
echo "== selftest all t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=$V/all DCP_CUDA_FAMILY=sm90 timeout 45 $B bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 40 --json $OUT/st1_all.jsonl > /dev/null 2>&1; echo rc=$?; summ $OUT/st1_all.jsonl "selftest all"
kb base 64 $C base64
kb all 64 $C all64
echo "== done t=$((SECONDS-T0))"
