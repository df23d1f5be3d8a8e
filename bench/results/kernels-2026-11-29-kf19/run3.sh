#!/usr/bin/env bash
# kf19 call 3 (1x H200): LIMIT=50 timeout 56 bash .kf19/run3.sh   (carry [".kf19"]).
# The per-phase profile of main 31a2eaa's forward (FWD_OPF in) on works1000 and causal-blockwise:
# .kf19/dcp_prof = main's source + kf13b's prof_host.diff (gpu.rs dump hook, measurement only);
# .kf19/prof = main's kernels through main's bench/gpu/fwd_prof.py (clock stamps in launch 2 of
# each module). Raw dumps gzipped and snapped before anything else; summaries made off the device.
set -u
OUTD=${OUT:-/tmp/kf19_out}
LIMIT=${LIMIT:-50}
R=/tmp/kf19c3; rm -rf "$R"; mkdir -p "$R/pf" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf19c3.tgz" -C /tmp kf19c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
echo "== profile t=$((SECONDS - T0))"
DCP_CUDA_KERNELS=.kf19/prof DCP_CUDA_PROF_DUMP="$R/pf" timeout 40 .kf19/dcp_prof kernel-bench \
  --shapes works1000,blockwise --head-dim 128 --repeats 3 --json "$R/kb_prof.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
for f in "$R"/pf/*.bin; do [ -f "$f" ] && timeout 8 gzip -1 "$f"; done
ls -la "$R/pf"
snap
if left 12; then
  echo "== unprofiled t=$((SECONDS - T0))"
  timeout 10 .kf19/dcp_prof kernel-bench --shapes works1000,blockwise --head-dim 128 --repeats 3 \
    --json "$R/kb_base.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
fi
echo "== done t=$((SECONDS - T0))"
snap
