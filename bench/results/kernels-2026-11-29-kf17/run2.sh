#!/usr/bin/env bash
# kf17 call 2 (1x H200): LIMIT=105 timeout 112 bash .kf17/run2.sh   (carry [".kf17"]).
# .kf17/dcp = branch kf17 at 32e0d9f (embedded kernels = the new defaults: FWD_LATEREL 2 in the
# half kernel, FWD_FIRST0, DCP_CUDA_FWD_HALFBITS on at D 128); v2/base = main 9f1d8d9's kernels
# (run with DCP_CUDA_FWD_HALFBITS=0); v2/h4 = the new defaults + the generic O row store as one
# helper (item 4); .kf17/dcp_prof = 32e0d9f + kf13b's prof_host.diff, v2/prof = the new
# defaults through prof17.py (clock stamps in launch 2 of each module).
set -u
OUTD=${OUT:-/tmp/kf17_out}
LIMIT=${LIMIT:-105}
R=/tmp/kf17c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/kf17c2.tgz" -C /tmp kf17c2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except (OSError, ValueError):
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
ok = len(r) > 0 and all(x.get('pass') for x in c)
print('%s: %d/%d pass, worst o %.1e lse %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('lse'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
D=.kf17/dcp
BAD=""
python3 -c "
import json
json.dump({'batches': [[4096]]}, open('$R/splitk.json', 'w'))"
echo "== selftest h4 t=$((SECONDS - T0))"
DCP_CUDA_KERNELS=.kf17/v2/h4 DCP_CUDA_FAMILY=sm90 timeout 20 $D bench-gpu --selftest 1 --planners local,zigzag,dcp \
  --timeout-s 18 --json "$R/st_h4.jsonl" > "$R/st_h4.log" 2>&1; echo "rc=$?"
summ "$R/st_h4.jsonl" "selftest h4" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD h4"
echo "== split-K causal-blockwise h4 t=$((SECONDS - T0))"
DCP_CUDA_KERNELS=.kf17/v2/h4 timeout 14 $D bench-gpu --batches "$R/splitk.json" --head-dim 128 --masks causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 12 --json "$R/splitk_h4.jsonl" \
  > "$R/splitk_h4.log" 2>&1; echo "rc=$?"
summ "$R/splitk_h4.jsonl" "split-K causal-blockwise h4" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD h4"
SH=works1000,onework,blockwise,causal32k,lambda,packed
kb() {
  local v=$1 tag=$2
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v $tag t=$((SECONDS - T0))"
  case $v in
    base) E="DCP_CUDA_KERNELS=.kf17/v2/base DCP_CUDA_FWD_HALFBITS=0";;
    h4) E="DCP_CUDA_KERNELS=.kf17/v2/h4";;
    *) E="";;
  esac
  env $E timeout 20 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 --json "$R/kb_$tag.jsonl" 2>&1 \
    | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new h4 h4 new base; do
  i=$((i + 1)); if left 45; then kb $v "${v}-d128_$i"; fi
done
snap
echo "== profile (new defaults, stamps) t=$((SECONDS - T0))"
mkdir -p "$R/pf"
DCP_CUDA_KERNELS=.kf17/v2/prof DCP_CUDA_PROF_DUMP="$R/pf" timeout 25 .kf17/dcp_prof kernel-bench --shapes blockwise,works1000 \
  --head-dim 128 --repeats 3 --json "$R/kb_prof.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
for f in "$R"/pf/*.bin; do
  [ -f "$f" ] || continue
  lab=$(tr -d '\n' < "${f%.bin}.txt" | sed 's/("HEAD_DIM", "128"), ("FWD_WARPS", "4"), ("FWD_MT", "2"), ("BWD_WARPS", "4"), ("BWD_BR", "64")//')
  (timeout 40 python3 .kf17/pf_sum17.py "$f" "$lab" > "${f%.bin}.sum" 2>&1) &
done
wait
cat "$R"/pf/*.sum | head -150
for f in "$R"/pf/*.bin; do gzip -1 "$f"; done
snap
for v in base new h4; do
  i=$((i + 1)); if left 7; then kb $v "${v}-d128_$i"; fi
done
timeout 5 python3 .kf17/table.py "$R" 128 > "$R/table.md" 2>&1; cat "$R/table.md"
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
