#!/usr/bin/env bash
# kb15 call 1 (1x H200): LIMIT=185 timeout 192 bash .kb15/run1.sh  (carry [".kb15"]), from /work/main.
# Binary .kb15/dcp = branch kb15 (= main 6c49ccb). Profile where works1000's backward time goes.
#  1. ncu (full sections + per-SASS source page) of the cluster kernel (DCP_CUDA_BWD_CLUSTER=1, sr0), works1000
#  2. timing, alternated: chain | sr0 | nf (no proxy fence) | nw (dq_fin protocol only) | nodq (no dq_put/dq_fin)
#  3. ncu of the chain kernel on works1000, 4. ncu of the main kernel on onework
set -u
OUTD=${OUT:-/tmp/kb15_out}
R=/tmp/kb15c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb15c1.tgz" -C /tmp kb15c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM
T0=$SECONDS
LIMIT=${LIMIT:-185}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb15/dcp
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
echo "ncu: $NCUB"
SEC="--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section MemoryWorkloadAnalysis_Chart --section WarpStateStats --section SchedulerStats --section InstructionStats --section SourceCounters --section LaunchStats"
prof() { # name kernel-regex shape env...
  local n=$1 k=$2 sh=$3; shift 3
  if ! left 40; then echo "skip ncu $n"; return; fi
  echo "== ncu $n t=$((SECONDS - T0))"
  env "$@" timeout -k 5 75 $NCUB --clock-control none --import-source no $SEC \
    -o $R/ncu_$n -k regex:$k -c 1 $B kernel-bench --shapes $sh --head-dim 128 --repeats 1 --warmup 0 --timeout-s 200 > $R/ncu_$n.log 2>&1
  echo "rc=$? t=$((SECONDS - T0))"
  timeout 40 $NCUB -i $R/ncu_$n.ncu-rep --print-details all > $R/ncu_$n.txt 2>&1
  timeout 40 $NCUB -i $R/ncu_$n.ncu-rep --page raw --csv > $R/ncu_$n.raw.csv 2>&1
  timeout 60 $NCUB -i $R/ncu_$n.ncu-rep --page source --csv --print-source sass > $R/ncu_src_$n.csv 2>&1
  grep -E "Duration|SM Frequency|Throughput|Busy|Warp Cycles|Issued Ipc|Bank|Stall" $R/ncu_$n.txt | head -24
  timeout 30 python3 bench/gpu/ncu_summary.py $NCUB $R/ncu_$n.ncu-rep 30 > $R/ncu_sum_$n.txt 2>&1; head -50 $R/ncu_sum_$n.txt
  snap
}
prof cl attn_bwd_cluster works1000 DCP_CUDA_BWD_CLUSTER=1
venv() {
  case "$1" in
    sr0) echo DCP_CUDA_BWD_CLUSTER=1;;
    nf|nw|nodq) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb15/v/$1;;
    *) echo KB15_CHAIN=1;;
  esac
}
i=0
for v in chain sr0 nf nw nodq sr0 nf nw nodq; do
  i=$((i + 1))
  if ! left 95; then continue; fi
  echo "== $v works1000 t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +|rror|panic'
done
snap
prof one dcp_attn_bwd_sm90 onework
prof chain dcp_attn_bwd_sm90 works1000
echo "== done t=$((SECONDS - T0))"
timeout 20 python3 - "$R" <<'PY'
import json, glob, sys, os, collections
d = sys.argv[1]; t = collections.defaultdict(list)
for f in sorted(glob.glob(d + '/kb_*.jsonl')):
    v = os.path.basename(f).split('_')[1]
    for l in open(f):
        if l.strip().startswith('{'):
            r = json.loads(l); t[v].append('%.3f' % r.get('bwd_ms', 0) if 'bwd_ms' in r else str({k: r[k] for k in r if 'bwd' in k}))
for v, xs in t.items(): print('%-6s works1000 bwd: %s' % (v, ' '.join(xs)))
PY
snap
