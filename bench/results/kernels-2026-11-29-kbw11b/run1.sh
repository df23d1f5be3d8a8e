#!/usr/bin/env bash
# kbw11b call 1 (1x H200):  bash .kbw11b/run1.sh   (carry [".kbw11b"]). Binary .kbw11b/dcp = branch kbw11b
# (main 8484ed1's kernels embedded + DCP_CUDA_BWD_ORDER). Variants by env: base = DCP_CUDA_BWD_ORDER=list
# (main's task order), L1 = lpt (longest first), L4 = lpt:4 (split lists in pieces of chunk/4, longest first).
# 1. correctness of L4 and L1: selftest 4 (local, zigzag, dcp; CPU f64), bench-gpu --check of a 4096-token
#    causal / causal-blockwise / lambda sequence vs CPU f64 at D 128 (split lists cut into pieces).
# 2. op times (base, L4): one 32K causal-blockwise and causal sequence. 3. BWDPROF (cycle counters, bprof
#    kernel dir) base and L4 on blockwise, causal32k. 4. kernel-bench alternated D 128 / D 64.
set -u
B=${B:-.kbw11b/dcp}; OUTD=${OUT:-/tmp/kbw11b_out}
R=/tmp/kbw11b1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kbw11b1.tgz" -C /tmp kbw11b1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
LIMIT=${LIMIT:-125}
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
print('%s: %d/%d pass, worst o %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
oenv() { case "$1" in base) echo DCP_CUDA_BWD_ORDER=list;; L1) echo DCP_CUDA_BWD_ORDER=lpt;; L4) echo DCP_CUDA_BWD_ORDER=lpt:4;; L2) echo DCP_CUDA_BWD_ORDER=lpt:2;; esac; }
declare -A OK; OK[base]=1
echo '{"batches": [[4096]]}' > "$R/b4k.json"
for v in L4 L1; do
  left 60 || break
  if [ "$v" = L4 ]; then
    echo "== selftest $v t=$((SECONDS - T0))"
    env "$(oenv $v)" DCP_CUDA_FAMILY=sm90 timeout 40 "$B" bench-gpu --selftest 4 --planners local,zigzag,dcp \
      --timeout-s 35 --json "$R/st_$v.jsonl" > "$R/st_$v.log" 2>&1; echo "rc=$?"
    summ "$R/st_$v.jsonl" "selftest $v" | tee -a "$R/summ.txt"
  else cp "$R/st_L4.jsonl" "$R/st_$v.jsonl" 2>/dev/null; fi
  echo "== check 4096 vs CPU f64 $v t=$((SECONDS - T0))"
  env "$(oenv $v)" timeout 60 "$B" bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024 --planners local \
    --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/chk_$v.jsonl" > "$R/chk_$v.log" 2>&1; echo "rc=$?"
  summ "$R/chk_$v.jsonl" "check 4096 $v" | tee -a "$R/summ.txt"
  if ! tail -2 "$R/summ.txt" | grep -q FAIL && [ -s "$R/st_$v.jsonl" ] && [ -s "$R/chk_$v.jsonl" ]; then OK[$v]=1; fi
  [ "$v" = L4 ] && OK[L2]=${OK[L4]:-}
done
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base L4; do
  [ -n "${OK[$v]:-}" ] || continue
  echo "== op times $v t=$((SECONDS - T0))"
  env "$(oenv $v)" DCP_CUDA_OP_TIMES=1 timeout 40 "$B" bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,causal \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_$v" --top 6 > "$R/ops_$v.txt" 2>&1; cat "$R/ops_$v.txt"
done
for v in base L4; do
  [ -n "${OK[$v]:-}" ] && left 80 || continue
  echo "== BWDPROF $v t=$((SECONDS - T0))"
  env "$(oenv $v)" DCP_CUDA_KERNELS=.kbw11b/bprof timeout 40 "$B" kernel-bench --shapes blockwise,causal32k --repeats 2 \
    > "$R/prof_$v.log" 2>&1; echo "rc=$?"
  grep -E "BWDPROF|rror|panic" "$R/prof_$v.log" | tail -3
done
snap
SH=blockwise,causal32k,lambda,sharedq,packed,works1000,onework
kb() {
  local n=$1 d=$2 tag=$3
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (check)"; return; fi
  echo "== $n d$d t=$((SECONDS - T0))"
  env "$(oenv $n)" timeout 40 "$B" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base L4 L1 base L4 base; do i=$((i + 1)); if left 30; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base L4; do i=$((i + 1)); if left 8; then kb $v 64 "${v}-d64_$i"; fi; done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
