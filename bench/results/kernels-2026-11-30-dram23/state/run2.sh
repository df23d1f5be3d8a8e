#!/usr/bin/env bash
# s23 call 2 (1x H200): timeout 400 bash .s23/run2.sh  (carry [".s23"]).
# .s23/dcp_main = main 116379c release (kernels as 5c0b05e). The state of issue 10's short-task
# targets with PyTorch on the same shapes: works1000 / onework, blocks256 / full8k (1024 works
# of 256x256 over one sequence), blockwise / causal32k, D 128; works1000 / onework at D 64.
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=.s23/dcp_main
SH=works1000,onework,blocks256,full8k,blockwise,causal32k
for r in 1 2; do
  echo "== d128 round $r t=$((SECONDS - T0))"
  timeout 120 $D kernel-bench --shapes $SH --head-dim 128 --repeats 3 --json "$R/kb_d128_r$r.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== d64 t=$((SECONDS - T0))"
timeout 60 $D kernel-bench --shapes works1000,onework --head-dim 64 --repeats 3 --json "$R/kb_d64.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
echo "== torch t=$((SECONDS - T0))"
timeout 150 python3 bench/gpu/torch_ref.py "$R/kb_d128_r1.jsonl" "$R/torch_d128.jsonl" 2>&1 | tail -3
tar czf "$OUTD/s23c2.tgz" -C /tmp s23c2
echo "done t=$((SECONDS - T0))"
