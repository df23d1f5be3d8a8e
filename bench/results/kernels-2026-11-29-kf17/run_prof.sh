#!/usr/bin/env bash
# kf17, for the next session (NOT run): the profile call 2 lost, in the order that brings the dumps back.
# LIMIT=40 timeout 45 bash .kf17/run_prof.sh   (carry [".kf17"]) with
#   .kf17/dcp_prof = a release build with ../kernels-2026-11-29-kf13b/prof_host.diff applied to gpu.rs,
#   .kf17/v2/prof  = python3 bench/gpu/fwd_prof.py crates/dcp-cuda/kernels .kf17/v2/prof  (main's kernels + stamps).
# Summarise here afterwards: for f in .../pf/*.bin.gz; do gunzip -k $f; python3 bench/gpu/fwd_prof_sum.py ${f%.gz} LABEL; done
# (pure Python, ~1 min per 24-MB dump: too slow for the device's time limit).
set -u
OUTD=${OUT:-/tmp/kf17_out}
LIMIT=${LIMIT:-40}
R=/tmp/kf17p; rm -rf "$R"; mkdir -p "$R/pf" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf17p.tgz" -C /tmp kf17p; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
echo "== profile t=$((SECONDS - T0))"
DCP_CUDA_KERNELS=.kf17/v2/prof DCP_CUDA_PROF_DUMP="$R/pf" timeout 25 .kf17/dcp_prof kernel-bench --shapes blockwise,works1000 \
  --head-dim 128 --repeats 3 --json "$R/kb_prof.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
for f in "$R"/pf/*.bin; do [ -f "$f" ] && gzip -1 "$f"; done
ls -la "$R/pf"
echo "== done t=$((SECONDS - T0))"
snap
