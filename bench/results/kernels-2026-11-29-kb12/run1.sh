#!/usr/bin/env bash
# kb12 call 1 (1x H200):  LIMIT=190 timeout 200 bash .kb12/run1.sh   (carry [".kb12"]).
# Binaries: .kb12/dcp_kb = branch kb12 (DCP_CUDA_BWD_OWN=1: main's owned rows = "base"; =split: "split"),
# .kb12/dcp_main = main cf06c00 ("main").
# 1. correctness of split: selftest 4 (local, zigzag, dcp; CPU f64); --check of a 4096-token causal /
#    causal-blockwise / lambda / full sequence vs CPU f64 (D 128; split sink lists); 150 short documents (D 128).
# 2. op times base / split (32K causal-blockwise, D 128). 3. kernel-bench alternated D 128 base split base split
#    main split base, D 64 base split main. 4. memcheck (4096-token check under split), racecheck (selftest 1).
set -u
OUTD=${OUT:-/tmp/kb12_out}
R=/tmp/kb12c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb12c1.tgz" -C /tmp kb12c1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
T0=$SECONDS
LIMIT=${LIMIT:-190}
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
bin() { case "$1" in main) echo .kb12/dcp_main;; *) echo .kb12/dcp_kb;; esac; }
oenv() { case "$1" in split) echo DCP_CUDA_BWD_OWN=split;; *) echo DCP_CUDA_BWD_OWN=1;; esac; }
declare -A OK; OK[base]=1; OK[main]=1
echo '{"batches": [[4096]]}' > "$R/b4k.json"
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
echo "== selftest split t=$((SECONDS - T0))"
env DCP_CUDA_BWD_OWN=split DCP_CUDA_FAMILY=sm90 timeout 45 .kb12/dcp_kb bench-gpu --selftest 4 --planners local,zigzag,dcp \
  --timeout-s 40 --json "$R/st_split.jsonl" > "$R/st_split.log" 2>&1; echo "rc=$?"
summ "$R/st_split.jsonl" "selftest split" | tee -a "$R/summ.txt"
echo "== check 4096 vs CPU f64 split t=$((SECONDS - T0))"
env DCP_CUDA_BWD_OWN=split timeout 40 .kb12/dcp_kb bench-gpu --batches "$R/b4k.json" --masks causal,causal-blockwise:256:2,lambda:64:1024,full --planners local \
  --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --json "$R/chk_split.jsonl" > "$R/chk_split.log" 2>&1; echo "rc=$?"
summ "$R/chk_split.jsonl" "check 4096 split" | tee -a "$R/summ.txt"
echo "== short documents vs CPU f64 split t=$((SECONDS - T0))"
env DCP_CUDA_BWD_OWN=split timeout 40 .kb12/dcp_kb bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json "$R/short_split.jsonl" > "$R/short_split.log" 2>&1; echo "rc=$?"
summ "$R/short_split.jsonl" "short documents split" | tee -a "$R/summ.txt"
if ! grep -q FAIL "$R/summ.txt" && [ -s "$R/st_split.jsonl" ] && [ -s "$R/chk_split.jsonl" ] && [ -s "$R/short_split.jsonl" ]; then OK[split]=1; fi
snap
echo '{"batches": [[32768]]}' > "$R/b32k.json"
for v in base split; do
  if [ -z "${OK[$v]:-}" ]; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env "$(oenv $v)" DCP_CUDA_OP_TIMES=1 timeout 30 .kb12/dcp_kb bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,causal \
    --planners local --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" \
    --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
SH=blockwise,causal32k,lambda,sharedq,packed,works1000,onework
kb() {
  local n=$1 d=$2 tag=$3
  if [ -z "${OK[$n]:-}" ]; then echo "== skip $n (check)"; return; fi
  echo "== $n d$d t=$((SECONDS - T0))"
  env "$(oenv $n)" timeout 30 "$(bin $n)" kernel-bench --shapes "$SH" --head-dim "$d" --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in base split base split main split base; do i=$((i + 1)); if left 40; then kb $v 128 "${v}-d128_$i"; fi; done
snap
for v in base split main; do i=$((i + 1)); if left 30; then kb $v 64 "${v}-d64_$i"; fi; done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
if [ -n "${OK[split]:-}" ] && [ -n "$CS" ] && left 22; then
  echo "== memcheck split t=$((SECONDS - T0))"
  env DCP_CUDA_BWD_OWN=split timeout -k 3 $((LIMIT - (SECONDS - T0) - 12)) "$CS" --tool memcheck --print-limit 5 .kb12/dcp_kb bench-gpu \
    --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 --planners local --head-dim 128 --check --cpu-check-tokens 5000 \
    --warmup 0 --repeats 1 --timeout-s 60 > "$R/san_memcheck.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Invalid|FAIL|pass" "$R/san_memcheck.txt" | head -4 | tee -a "$R/summ.txt"
fi
if [ -n "${OK[split]:-}" ] && [ -n "$CS" ] && left 10; then
  echo "== racecheck split t=$((SECONDS - T0))"
  env DCP_CUDA_BWD_OWN=split DCP_CUDA_FAMILY=sm90 timeout -k 3 $((LIMIT - (SECONDS - T0) - 3)) "$CS" --tool racecheck --print-limit 5 .kb12/dcp_kb bench-gpu \
    --selftest 1 --planners local --timeout-s 60 > "$R/san_racecheck.txt" 2>&1; echo "rc=$?"
  grep -E "RACECHECK SUMMARY|hazard|FAIL" "$R/san_racecheck.txt" | head -4 | tee -a "$R/summ.txt"
fi
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
