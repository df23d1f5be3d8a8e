#!/usr/bin/env bash
# kbb14 call 1 (1x H200): LIMIT=165 timeout 175 bash .kbb14/run1.sh   (carry [".kbb14"]), from /work/main.
# Binary .kbb14/dcp = branch kbb14 (half-step backward kernel, BWD_HALF, on by default for launches
# with >= 5 % half steps). Variants (one binary, alternated):
#   base : DCP_CUDA_BWD_HALF=0            (main's launches and kernels: SASS-identical main kernel)
#   new  : no variable                    (half-step kernel where a launch has >= 5 % half steps)
#   hz   : DCP_CUDA_KERNELS=.kbb14/kz     (half steps without the half dQ: the skipped warpgroup
#                                          stores zero dS, both dQ over all 128 keys)
# Correctness runs force the half kernel on every launch with a half step (DCP_CUDA_BWD_HALF=0.001).
set -u
OUTD=${OUT:-/tmp/kbb14_out}
R=/tmp/kbb14c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbb14c1.tgz" -C /tmp kbb14c1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_HALF DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN
T0=$SECONDS
LIMIT=${LIMIT:-165}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kbb14/dcp
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
venv() {
  case "$1" in
    base) echo DCP_CUDA_BWD_HALF=0;;
    hz) echo DCP_CUDA_KERNELS=.kbb14/kz;;
    newf) echo DCP_CUDA_BWD_HALF=0.001;;
    hzf) echo DCP_CUDA_BWD_HALF=0.001 DCP_CUDA_KERNELS=.kbb14/kz;;
    *) echo KBB14_NEW=1;;
  esac
}
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
declare -A OK
chk() {  # variant tag args...
  local v=$1 tag=$2; shift 2
  echo "== $tag t=$((SECONDS - T0))"
  env $(venv $v) "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
# 1. correctness of new (forced onto every launch with a half step)
chk newf st_new env DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 35
chk newf chk4k_new timeout 40 $B bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --op-times "$R/chk4k_new_ops"
chk newf short_new timeout 40 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1
chk newf shortnc_new env DCP_CUDA_BWD_CHAIN=0 timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times "$R/shortnc_new_ops"
if ! grep -q FAIL "$R/summ.txt" && [ -s "$R/st_new.jsonl" ] && [ -s "$R/chk4k_new.jsonl" ] && [ -s "$R/short_new.jsonl" ] && [ -s "$R/shortnc_new.jsonl" ]; then OK[new]=1; fi
snap
# 2. correctness of hz
if left 110; then
  chk hzf chk4k_hz timeout 30 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
    --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1
  chk hzf shortnc_hz env DCP_CUDA_BWD_CHAIN=0 timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks causal,causal-blockwise:128:2 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1
  if ! grep "_hz" "$R/summ.txt" | grep -q FAIL && [ -s "$R/chk4k_hz.jsonl" ] && [ -s "$R/shortnc_hz.jsonl" ]; then OK[hz]=1; fi
fi
OK[base]=1
snap
# 3. kernel-bench, alternated
SH=blockwise,lambda,packed,causal32k,sharedq,works1000,onework
kb() {
  local v=$1 tag=$2
  if [ -z "${OK[$v]:-}" ]; then echo "== skip $v (check)"; return; fi
  echo "== $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 30 $B kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new hz base new hz base new; do i=$((i + 1)); if left 42; then kb $v "${v}-d128_$i"; fi; done
snap
# 4. op times (one 32K sequence: causal-blockwise and lambda, D 128)
for v in base new hz; do
  if [ -z "${OK[$v]:-}" ] || ! left 34; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda --planners local --block-sizes 1024 \
    --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
# 5. sanitizers on new (forced), a 1024-token causal-blockwise 128:2 sequence (half steps in every task)
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "${OK[new]:-}" ] && [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    if ! left 14; then continue; fi
    echo "== $tool new t=$((SECONDS - T0))"
    env DCP_CUDA_BWD_HALF=0.001 timeout -k 3 $((LIMIT - (SECONDS - T0) - 8)) "$CS" --tool $tool --print-limit 5 $B bench-gpu \
      --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
      --timeout-s 60 --op-times "$R/san_${tool}_ops" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  done
fi
snap
echo "== summary"
cat "$R/summ.txt"
timeout 10 python3 .kbb14/table.py "$R" 128
for v in base new hz; do [ -d "$R/ops_$v" ] && { echo "-- ops $v"; timeout 10 python3 .kbb14/ops.py "$R/ops_$v" | grep bwd; }; done
for d in chk4k_new_ops shortnc_new_ops; do [ -d "$R/$d" ] && { echo "-- $d"; timeout 10 python3 .kbb14/ops.py "$R/$d" | grep bwd | cut -c1-150; }; done
echo "== done t=$((SECONDS - T0))"
snap
