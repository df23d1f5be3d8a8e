#!/usr/bin/env bash
# kf20 call 2 (1x H200): LIMIT=22 timeout 25 bash .kf20/run2.sh   (carry [".kf20"]).
# works1000 only: base / ppx (the short kernel with FWD_PP compiled in, FWD_PP_MIN 1000: no task
# takes the turn; SASS = pp's but for the one compare) / pp (FWD_PP_MIN 2), alternated.
set -u
OUTD=${OUT:-/tmp/kf20_out}
LIMIT=${LIMIT:-22}
R=/tmp/kf20c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
D=.kf20/dcp
venv() { case $1 in base) echo DCP_CUDA_FWD_SHORT_PP=0;; ppx) echo DCP_CUDA_FWD_SHORT_PP=1000;; pp) echo DCP_CUDA_FWD_SHORT_PP=2;; esac; }
i=0
kb() {
  local v=$1 to=${2:-8}
  i=$((i + 1))
  echo "== $v $i t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
kb base 12
for v in ppx pp ppx base pp base ppx pp; do if left 6; then kb $v; fi; done
timeout 3 python3 .kf20/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
echo "== done t=$((SECONDS - T0))"
timeout 3 tar czf "$OUTD/kf20c2.tgz" -C /tmp kf20c2
