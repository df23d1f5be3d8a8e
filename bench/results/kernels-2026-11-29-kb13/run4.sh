#!/usr/bin/env bash
# kb13 call 4 (1x H200): LIMIT=50 timeout 58 bash .kb13/run4.sh   (carry [".kb13"]), from /work/main.
# Binary: .kb13/dcp_fin = branch kb13's final defaults (BWD_CHAIN_ST16 1; D pre-pass one wave before chained
#   launches only). base = DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=0 DCP_CUDA_BWD_DD_CTAS=16 (main 7e0e84f's behaviour).
# selftest 4, 150 short documents (full) vs CPU f64, kernel-bench base new base new (works1000, blockwise).
set -u
OUTD=${OUT:-/tmp/kb13_out}
R=/tmp/kb13c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb13c4.tgz" -C /tmp kb13c4; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS
T0=$SECONDS
LIMIT=${LIMIT:-50}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb13/dcp_fin
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
    base) echo DCP_CUDA_BWD_CHAIN_DEFS=BWD_CHAIN_ST16=0 DCP_CUDA_BWD_DD_CTAS=16;;
    u8) echo DCP_CUDA_BWD_DD_UNROLL=8;;
    *) echo KB13_NEW=1;;
  esac
}
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
echo "== selftest new t=$((SECONDS - T0))"
DCP_CUDA_FAMILY=sm90 timeout 25 $B bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 20 --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1; echo "rc=$?"
summ "$R/st_new.jsonl" "selftest new" | tee -a "$R/summ.txt"
echo "== short documents vs CPU f64 new t=$((SECONDS - T0))"
timeout 20 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times "$R/chkops_new" --json "$R/short_new.jsonl" > "$R/short_new.log" 2>&1; echo "rc=$?"
summ "$R/short_new.jsonl" "short documents new" | tee -a "$R/summ.txt"
snap
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 12 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new base new; do
  i=$((i + 1)); if left 5; then kb $v works1000,blockwise "${v}-d128_$i"; fi
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
