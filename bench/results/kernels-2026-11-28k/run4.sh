#!/usr/bin/env bash
# k64 call 4 (run3.sh's timing half, whose new-binary runs failed on an unset variable): old (main's kernels) vs new, alternated.
set -u
R=/tmp/r4; mkdir -p $R; snap() { tar czf $OUT/r4.tgz -C /tmp r4; }
source bench/gpu/env.sh
OLD=".k64/dcp"; NEW=".k64/new/dcp"; T0=$SECONDS
kb() { echo "== $1 d$3 $4 t=$((SECONDS-T0))"
  env ${5:-} timeout 30 $2 kernel-bench --shapes $4 --head-dim $3 --repeats 3 --json $R/kb4_$1_d$3.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'; }
C=causal32k,causal128k
kb new1 $NEW 64 $C
kb old1 $OLD 64 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new2 $NEW 64 $C
kb new1 $NEW 128 $C
kb old1 $OLD 128 $C DCP_CUDA_KERNELS=.k64/v3/base
kb new2 $NEW 128 $C
snap
kb newsp $NEW 64 packed,lambda,blockwise
snap
echo "== done t=$((SECONDS-T0))"
