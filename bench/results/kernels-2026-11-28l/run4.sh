#!/usr/bin/env bash
# kd128 call 4 (call 3's timings, which failed on `env $5` under set -u): merged kernel (new binary, defaults)
# against main's kernel (same binary, DCP_CUDA_KERNELS=.kd128/v2/base) at D 128, alternated.
set -u
R=/tmp/r4; mkdir -p $R
source bench/gpu/env.sh
B=.kd128/dcp; OLDK=DCP_CUDA_KERNELS=.kd128/v2/base; T0=$SECONDS
kb() { echo "== $1 d$2 $3 t=$((SECONDS-T0))"
  env $4 timeout 20 $B kernel-bench --shapes $3 --head-dim $2 --repeats 3 --json $R/kb4_$1_d$2.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
C=causal32k,causal128k
kb old1 128 $C $OLDK; kb new1 128 $C X=1; kb old2 128 $C $OLDK; kb new2 128 $C X=1
kb oldsp 128 packed,lambda,blockwise $OLDK; kb newsp 128 packed,lambda,blockwise X=1
tar czf $OUT/r4.tgz -C /tmp r4; echo "== done t=$((SECONDS-T0))"
