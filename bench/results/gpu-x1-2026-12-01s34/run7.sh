#!/usr/bin/env bash
# s34 call 7 (1x H200): timeout 250 bash .s34/run7.sh
# Is D 128 packed's forward bimodal (c2, c6: 608-679 TFLOP/s between runs of one variant)? Eight
# processes each of kernel-bench packed (20 repeats) with the defaults, with L2 windows off
# (DCP_CUDA_FWD_L2_MB=0) and with no final window (DCP_CUDA_FWD_L2_TAIL=0), alternated; the SM
# clock and power right after each.
set -u
OUTD=${OUT:-/tmp/s34_out}
R=/tmp/s34c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s34/dcp4.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
for r in 1 2 3 4 5 6 7 8; do
  [ $((SECONDS - T0)) -gt 180 ] && break
  for v in def l2off tail0; do
    case $v in def) x=X=1;; l2off) x=DCP_CUDA_FWD_L2_MB=0;; tail0) x=DCP_CUDA_FWD_L2_TAIL=0;; esac
    env $x DCP_CUDA_FAMILY=sm90 timeout 40 $D kernel-bench --shapes packed --warmup 3 --repeats 20 --json $R/kb_${v}_$r.jsonl > $R/kb_${v}_$r.log 2>&1
    echo "$v $r $(python3 -c "import json; x=json.loads(open('$R/kb_${v}_$r.jsonl').readline()); print('fwd %.0f bwd %.0f' % (x['fwd_tflops_per_gpu'], x['bwd_tflops_per_gpu']))") $(nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader) t=$((SECONDS - T0))"
  done
done
timeout 10 tar czf "$OUTD/s34c7.tgz" --exclude=s34c7/dcp -C /tmp s34c7
