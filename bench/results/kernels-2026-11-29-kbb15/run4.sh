#!/usr/bin/env bash
# kbb15 call 4 (1x H200): LIMIT=68 timeout 72 bash .kbb15/run4.sh   (carry [".kbb15"]), from /work/main.
# .kbb15/dcp = the final branch (tiled D pre-pass with the base-address path for back-to-back
# rows), .kbb15/dcp_base = main 6c49ccb. Correctness first (selftest 4, 4096-token masks, 150
# short documents vs CPU f64), then kernel-bench base/new alternated x2, works1000 op times,
# memcheck + racecheck.
set -u
OUTD=${OUT:-/tmp/kbb15_out}
R=/tmp/kbb15c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kbb15c4.tgz" -C /tmp kbb15c4; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
LIMIT=${LIMIT:-68}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
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
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))"
chk() {
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
chk st env DCP_CUDA_FAMILY=sm90 timeout 25 $N bench-gpu --selftest 4 --planners local,zigzag,dcp --timeout-s 20
chk chk4k timeout 20 $N bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1
chk short timeout 25 $N bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1
OK=1; grep -q FAIL "$R/summ.txt" && OK=
for f in st chk4k short; do [ -s "$R/$f.jsonl" ] || OK=; done
snap
SH=works1000,blockwise,lambda,causal32k
i=0
for v in base new base new; do
  i=$((i + 1))
  if [ "$v" = new ] && [ -z "$OK" ]; then echo "== skip new (check)"; continue; fi
  if ! left 12; then continue; fi
  bin=$N; [ "$v" = base ] && bin=$B
  echo "== $v t=$((SECONDS - T0))"
  timeout 15 $bin kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
snap
for v in base new; do
  if ! left 7; then continue; fi
  bin=$N; [ "$v" = base ] && bin=$B
  timeout 8 $bin bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 2 \
    --op-times "$R/opsw_$v" --json "$R/opsw_$v.jsonl" > "$R/opsw_$v.log" 2>&1; echo "ops $v rc=$?"
done
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "$OK" ] && [ -n "$CS" ]; then
  for tool in memcheck racecheck; do
    if ! left 5; then continue; fi
    timeout -k 2 $((LIMIT - (SECONDS - T0) - 2)) "$CS" --tool $tool --print-limit 5 $N bench-gpu \
      --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local,zigzag --head-dim 128 --warmup 0 --repeats 1 \
      --timeout-s 30 > "$R/san_$tool.txt" 2>&1; echo "$tool rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  done
fi
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 5 python3 .kbb15/table.py "$R" 128 | head -6
for v in base new; do [ -d "$R/opsw_$v" ] && timeout 5 python3 .kbb15/ops.py "$R/opsw_$v" | grep bwd | cut -c1-120; done
snap
