#!/usr/bin/env bash
# kd128 call 2: D 128 combinations (P = BWD_PSCALE 1 + BWD_LSE_GUARD 0) of step order, dV no-wait, mask branch,
# 24/240 against main's kernel (base), alternated twice; selftest of A1n.
set -u
R=/tmp/r2; mkdir -p $R; snap() { tar czf $OUT/r2.tgz -C /tmp r2; }
source bench/gpu/env.sh
B=.kd128/dcp; V=.kd128/v2; T0=$SECONDS
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
kb() { echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  DCP_CUDA_KERNELS=$V/$1 timeout 30 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $R/kb2_$4.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
summ() { python3 -c "import json; r=[json.loads(l) for l in open('$1')]; c=[x.get('check') or {} for x in r]; print('$2: %d/%d pass, worst o %.1e dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o',0) or 0 for x in c]+[0]), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"; }
C=causal32k,causal128k
for v in base A1 A1n A2 A2n B0 B2 A1nr; do kb $v 128 $C ${v}_a; done
snap
for v in base A1nr B2 B0 A2n A2 A1n A1 base; do kb $v 128 $C ${v}_b; done
snap
echo "== selftest A1n t=$((SECONDS-T0))"
DCP_CUDA_KERNELS=$V/A1n DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 12 --planners local,zigzag,dcp --timeout-s 35 --json $R/st2_A1n.jsonl > /dev/null 2>&1; echo rc=$?; summ $R/st2_A1n.jsonl "selftest A1n"
snap
echo "== done t=$((SECONDS-T0))"
