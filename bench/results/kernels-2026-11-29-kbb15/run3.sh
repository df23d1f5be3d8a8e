#!/usr/bin/env bash
# kbb15 call 3 (1x H200): LIMIT=175 timeout 185 bash .kbb15/run3.sh   (carry [".kbb15"]), from /work/main.
# .kbb15/dcp_base = this branch's base (main 6c49ccb), .kbb15/dcp = the tiled D pre-pass and the
# 8-element copy (commit after 'call 2'). 1. microbenchmark with the final util.cu; 2. correctness
# of the new binary vs CPU f64 (selftest, 4096-token masks, 150 short documents chained and not,
# mma family); 3. kernel-bench base/new alternated x3; 4. op times; 5. memcheck + racecheck.
set -u
OUTD=${OUT:-/tmp/kbb15_out}
R=/tmp/kbb15c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbb15c3.tgz" -C /tmp kbb15c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-175}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
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
N=.kbb15/dcp; B=.kbb15/dcp_base
# 1. microbenchmark
( cd .kbb15/ddbench && timeout 60 nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/ddbench ddbench.cu > "$R/ddbuild.log" 2>&1 && timeout 30 /tmp/ddbench 5 > "$R/ddbench.txt" 2>&1 ); echo "ddbench rc=$? t=$((SECONDS - T0))"
grep -E "FAIL|checks|kbb15|main cap16|main 3/SM|copy main" "$R/ddbench.txt"
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))"
chk() {  # tag args...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
# 2. correctness of the new binary
chk st env DCP_CUDA_FAMILY=sm90 timeout 45 $N bench-gpu --selftest 6 --planners local,zigzag,dcp --timeout-s 40
chk st_mma env DCP_CUDA_FAMILY=mma timeout 30 $N bench-gpu --selftest 2 --planners local,zigzag --timeout-s 25
chk chk4k timeout 40 $N bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1
chk short timeout 40 $N bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1
chk shortnc env DCP_CUDA_BWD_CHAIN=0 timeout 30 $N bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1
OK=1; grep -q FAIL "$R/summ.txt" && OK=
for f in st chk4k short shortnc; do [ -s "$R/$f.jsonl" ] || OK=; done
snap
# 3. kernel-bench, alternated
SH=blockwise,lambda,packed,causal32k,sharedq,works1000,onework
i=0
for v in base new base new base new; do
  i=$((i + 1))
  if [ "$v" = new ] && [ -z "$OK" ]; then echo "== skip new (check)"; continue; fi
  if ! left 45; then continue; fi
  bin=$N; [ "$v" = base ] && bin=$B
  echo "== $v t=$((SECONDS - T0))"
  timeout 30 $bin kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
snap
# 4. op times (one 32K sequence causal-blockwise + lambda; works1000 as 1000 x 256 full)
for v in base new; do
  if ! left 30; then continue; fi
  bin=$N; [ "$v" = base ] && bin=$B
  echo "== op times $v t=$((SECONDS - T0))"
  timeout 15 $bin bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  timeout 15 $bin bench-gpu --batches "$R/w1000.json" --masks full --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/opsw_$v" --json "$R/opsw_$v.jsonl" > "$R/opsw_$v.log" 2>&1; echo "rc=$?"
done
snap
# 5. sanitizers on the new binary
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$OK" ] && [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    if ! left 14; then continue; fi
    echo "== $tool t=$((SECONDS - T0))"
    timeout -k 3 $((LIMIT - (SECONDS - T0) - 8)) "$CS" --tool $tool --print-limit 5 $N bench-gpu \
      --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local,zigzag --head-dim 128 --warmup 0 --repeats 1 \
      --timeout-s 60 > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  done
fi
snap
echo "== summary"
cat "$R/summ.txt"
timeout 10 python3 .kbb15/table.py "$R" 128
for v in base new; do
  [ -d "$R/ops_$v" ] && { echo "-- ops $v"; timeout 10 python3 .kbb15/ops.py "$R/ops_$v" | grep bwd; }
  [ -d "$R/opsw_$v" ] && { echo "-- opsw $v"; timeout 10 python3 .kbb15/ops.py "$R/opsw_$v" | grep bwd | cut -c1-200; }
done
echo "== done t=$((SECONDS - T0))"
snap
