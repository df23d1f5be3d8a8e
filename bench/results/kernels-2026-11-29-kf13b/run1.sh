#!/usr/bin/env bash
# kf13b call 1 (1x H200): LIMIT=110 timeout 120 bash .kf13b/run1.sh   (carry [".kf13b"]).
# .kf13b/dcp = branch kf13b at cb1bbd9 (= main), unmodified; .kf13b/dcp_prof = the same plus
# prof_host.diff (DCP_CUDA_PROF_DUMP: each module's g_pf written at exit); .kf13b/prof = main's
# kernels through prof13.py (clock stamps per task and warpgroup in launch 2 of each module).
set -u
OUTD=${OUT:-/tmp/kf13b_out}
LIMIT=${LIMIT:-110}
R=/tmp/kf13bc1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf13bc1.tgz" -C /tmp kf13bc1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
SH=works1000,blockwise,onework,causal32k
kb() {
  local v=$1 tag=$2
  echo "== $v $tag t=$((SECONDS - T0))"
  if [ "$v" = base ]; then
    timeout 40 .kf13b/dcp kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|^[a-z0-9]+ +sm|rror|panic'
  else
    mkdir -p "$R/pf_$tag"
    DCP_CUDA_KERNELS=.kf13b/prof DCP_CUDA_PROF_DUMP="$R/pf_$tag" timeout 40 .kf13b/dcp_prof kernel-bench --shapes "$SH" \
      --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|^[a-z0-9]+ +sm|rror|panic'
  fi
}
kb base base-d128_1
kb prof prof-d128_2
snap
if left 60; then kb base base-d128_3; fi
if left 45; then kb prof prof-d128_4; fi
ls -la "$R"/pf_*
# summaries of the first prof process's dumps, in parallel
P1="$R/pf_prof-d128_2"
for f in "$P1"/*.bin; do
  [ -f "$f" ] || continue
  lab=$(cat "${f%.bin}.txt" | tr -d '\n' | sed 's/("HEAD_DIM", "128"), ("FWD_WARPS", "4"), ("FWD_MT", "2"), ("BWD_WARPS", "4"), ("BWD_BR", "64")//')
  (timeout 60 python3 .kf13b/pf_sum.py "$f" "$lab" > "${f%.bin}.sum" 2>&1) &
done
wait
cat "$P1"/*.sum
for f in "$R"/pf_*/*.bin; do gzip -1 "$f"; done
timeout 10 python3 .kf13b/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
echo "== done t=$((SECONDS - T0))"
snap
cp -r "$R" "$OUTD/" 2>/dev/null
