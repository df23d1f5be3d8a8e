#!/usr/bin/env bash
# kf13 call 3 (1x H200): LIMIT=130 timeout 140 bash .kf13/run3.sh   (carry [".kf13"]).
# .kf13/dcp2 = call 2's binary (commit 74a6719), run with DCP_CUDA_FWD_SHORT=0: main's kernels and
# split-K choices (= base). .kf13/dcp = the final branch: short-task forward kernel by default at
# D 128 and the split-K gate (a cut only where it shortens the estimated schedule by >= 10 %).
set -u
OUTD=${OUT:-/tmp/kf13_out}
LIMIT=${LIMIT:-130}
R=/tmp/kf13c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kf13c3.tgz" -C /tmp kf13c3; }
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
run_v() {
  local v=$1; shift
  case $v in
    base) env DCP_CUDA_FWD_SHORT=0 "$@" ;;
    new) env "$@" ;;
    s64) env DCP_CUDA_FWD_SHORT=3 "$@" ;;
    *) echo "unknown variant $v"; return 1 ;;
  esac
}
bin() { case $1 in base) echo .kf13/dcp2 ;; *) echo .kf13/dcp ;; esac; }
BAD=""
echo "== selftest new (3, all planners) t=$((SECONDS - T0))"
run_v new timeout 30 .kf13/dcp bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 25 --json "$R/st_new.jsonl" > "$R/st_new.log" 2>&1; echo "rc=$?"
summ "$R/st_new.jsonl" "selftest new" | tee -a "$R/summ.txt"; tail -1 "$R/summ.txt" | grep -q FAIL && BAD="$BAD new s64"
snap
SH=causal32k,sharedq,lambda,blockwise,works1000,onework,packed
kb() {
  local v=$1 d=$2 tag=$3
  case " $BAD " in *" $v "*) echo "== skip $v (failed)"; return;; esac
  echo "== $v d$d $tag t=$((SECONDS - T0))"
  run_v "$v" timeout 40 "$(bin $v)" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base new base new base new; do i=$((i + 1)); if left 75; then kb $v 128 "${v}-d128_$i"; fi; done
for v in base new s64 base new s64; do i=$((i + 1)); if left 55; then kb $v 64 "${v}-d64_$i"; fi; done
snap
echo '{"batches": [[4096]]}' > "$R/splitk.json"
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
if left 40; then
  echo "== split-K new (4096: blockwise still cut) t=$((SECONDS - T0))"
  run_v new timeout 30 .kf13/dcp bench-gpu --batches "$R/splitk.json" --masks causal,full,causal-blockwise --planners local --head-dim 128 \
    --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/splitk.jsonl" > "$R/splitk.log" 2>&1; echo "rc=$?"
  summ "$R/splitk.jsonl" "split-K new vs CPU f64" | tee -a "$R/summ.txt"
fi
if left 22; then
  echo "== short documents new t=$((SECONDS - T0))"
  run_v new timeout 20 .kf13/dcp bench-gpu --batches "$R/short.json" --head-dim 64 --masks full,causal \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 18 --json "$R/short.jsonl" > "$R/short.log" 2>&1; echo "rc=$?"
  summ "$R/short.jsonl" "short documents D 64 new vs CPU f64" | tee -a "$R/summ.txt"
fi
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
echo '{"batches": [[8192]]}' > "$R/b8k.json"
for x in "b32k causal-blockwise" "b8k full"; do
  set -- $x
  for v in base new; do
    left 8 || break
    echo "== op times $v $1 $2 t=$((SECONDS - T0))"
    run_v $v DCP_CUDA_OP_TIMES=1 timeout 8 "$(bin $v)" bench-gpu --batches "$R/$1.json" --masks $2 \
      --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_${v}_$1" \
      --json "$R/ops_${v}_$1.jsonl" > "$R/ops_${v}_$1.log" 2>&1; echo "rc=$?"
    timeout 6 python3 bench/gpu/op_times.py "$R/ops_${v}_$1" --top 4 > "$R/ops_${v}_$1.txt" 2>&1; grep fwd "$R/ops_${v}_$1.txt"
  done
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
