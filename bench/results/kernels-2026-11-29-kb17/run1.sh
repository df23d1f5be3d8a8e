#!/usr/bin/env bash
# kb17 call 1 (1x H200): LIMIT=190 timeout 200 bash .kb17/run1.sh   (carry [".kb17"]), from /work/main.
# .kb17/dcp = branch kb17's release binary (the plain D 128 backward with BWD_STSM, BWD_TQ_SMEM,
# BWD_XINFO: `new`, the built-in kernels); kernel directories read through DCP_CUDA_KERNELS:
#   base : main 9f1d8d9's kernels (the host's extra 9.3 KiB of shared memory is unused by them)
#   cl   : new + the dK/dV segment-pointer cleanup (b90_seg_ptr shared by b90_dkv_ptr and both
#          kernels' epilogue pointer; cluster and plain SASS differ from new: timed on works1000 and
#          blockwise)
#   pf   : new + BWD_KVL2_PF 1 (L2 prefetch of the next task's K/V at the claim; blockwise)
# 1. checks of new (CPU f64): selftest 4, 4096-token causal-blockwise (split-K forward) + lambda,
#    150 short documents unchained (plain kernel) and chained, pair documents bf16 / f16-kv1; cl:
#    selftest 2 + pair bf16. 2. kernel-bench base/new/cl/pf alternated x3. 3. memcheck + racecheck
#    (new, plain kernel). 4. op times base/new (32K blockwise, lambda). 5. ncu per-SASS samples of the
#    blockwise backward (new).
set -u
OUTD=${OUT:-/tmp/kb17_out}
R=/tmp/kb17c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb17c1.tgz" -C /tmp kb17c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER
T0=$SECONDS
LIMIT=${LIMIT:-190}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
B=.kb17/dcp
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith('{')]
except (OSError, ValueError):
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
ok = len(r) > 0 and all(x.get('pass') for x in c)
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
chk() {  # tag cmd...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
chk st env DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 35
chk chk4k timeout 30 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 25 --op-times "$R/chk4k_ops"
chk shortnc env DCP_CUDA_BWD_CHAIN=0 timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --op-times "$R/shortnc_ops"
chk short timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25
chk pair timeout 25 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 20 --op-times "$R/pair_ops"
chk pairf16 timeout 25 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 20 --op-times "$R/pairf16_ops"
OK=1; grep -q FAIL "$R/summ.txt" && OK=
for f in st chk4k shortnc short pair pairf16; do [ -s "$R/$f.jsonl" ] || OK=; done
echo "checks ok (new): ${OK:-no}"
chk cl_st env DCP_CUDA_KERNELS=.kb17/cl DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 2 --planners local,dcp --timeout-s 25
chk cl_pair env DCP_CUDA_KERNELS=.kb17/cl timeout 25 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 20
CLOK=1; grep "^cl_" "$R/summ.txt" | grep -q FAIL && CLOK=
for f in cl_st cl_pair; do [ -s "$R/$f.jsonl" ] || CLOK=; done
echo "checks ok (cl): ${CLOK:-no}"
echo "kernels: $(cat $R/chk4k_ops/* $R/shortnc_ops/* $R/pair_ops/* 2>/dev/null | grep -o '"op":"launch:[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a "$R/summ.txt"
snap
venv() { case "$1" in new) echo;; *) echo DCP_CUDA_KERNELS=.kb17/$1;; esac; }
i=0
for rnd in 1 2 3; do
  for v in base new cl pf; do
    i=$((i + 1))
    case $v in
      new) [ -n "$OK" ] || continue; SH=blockwise,causal32k,lambda,packed,onework,works1000;;
      base) SH=blockwise,causal32k,lambda,packed,onework,works1000;;
      cl) [ -n "$CLOK" ] || continue; SH=works1000,blockwise;;
      pf) [ -n "$OK" ] || continue; SH=blockwise;;
    esac
    left 95 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 30 $B kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$OK" ] && [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    left 60 || continue
    echo "== $tool t=$((SECONDS - T0))"
    timeout -k 2 25 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
      --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
      --timeout-s 22 --op-times "$R/san_${tool}_ops" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  done
fi
snap
for v in new base; do
  left 50 || continue
  echo "== ops $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda --planners local \
    --head-dim 128 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
if [ -n "$OK" ] && [ -n "$NCUB" ] && left 40; then
  echo "== ncu new blockwise t=$((SECONDS - T0))"
  timeout -k 3 $((LIMIT - (SECONDS - T0) - 14)) $NCUB --clock-control none --import-source no \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section SourceCounters --section LaunchStats \
    -o $R/ncu_new -k regex:attn_bwd_sm90 -c 1 $B kernel-bench --shapes blockwise --head-dim 128 --repeats 1 --warmup 0 --timeout-s 100 > $R/ncu_new.log 2>&1
  echo "rc=$? t=$((SECONDS - T0))"
  timeout 8 $NCUB -i $R/ncu_new.ncu-rep --page source --csv --print-source sass > $R/ncu_src_new.csv 2>&1; gzip -f $R/ncu_src_new.csv
  timeout 5 $NCUB -i $R/ncu_new.ncu-rep > $R/ncu_new.txt 2>&1
  grep -E "Duration|SM Frequency|Warp Cycles|Issued Ipc|No Eligible" $R/ncu_new.txt | head -8
  rm -f $R/ncu_new.ncu-rep
fi
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 5 python3 bench/results/kernels-2026-11-29-kbb14/table.py "$R" 128 | head -12
for v in base new; do [ -d "$R/ops_$v" ] && { echo "-- ops $v"; timeout 5 python3 bench/results/kernels-2026-11-29-kbb14/ops.py "$R/ops_$v" | grep bwd | cut -c1-170; }; done
echo "== done t=$((SECONDS - T0))"
snap
