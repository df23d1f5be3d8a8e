#!/usr/bin/env bash
# kb15 call 2 (1x H200): LIMIT=170 timeout 178 bash .kb15/run2.sh   (carry [".kb15"]), from /work/main.
# Binary .kb15/dcp = branch kb15 (cluster kernel `nq`: the pair exchanges dS by bulk copies, each
# CTA computes dQ of its 64 columns over both kv tiles, warpgroups take turns; smem +16 KiB).
#   chain : no variable (main's chained backward)
#   sr0   : DCP_CUDA_BWD_CLUSTER=1 + .kb15/v/sr0 (main's cluster kernel: fp32 dQ halves by st.async)
#   nq    : DCP_CUDA_BWD_CLUSTER=1 (built-in)
set -u
OUTD=${OUT:-/tmp/kb15_out}
R=/tmp/kb15c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb15c2.tgz" -C /tmp kb15c2; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM
T0=$SECONDS
LIMIT=${LIMIT:-170}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb15/dcp
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
sys.exit(0 if ok else 1)
PY
}
venv() {
  case "$1" in
    nq) echo DCP_CUDA_BWD_CLUSTER=1;;
    sr0) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb15/v/sr0;;
    *) echo KB15_CHAIN=1;;
  esac
}
timeout 10 python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))"
pair() {  # pair documents bf16 and f16 kv1 vs CPU f64 with variant $1
  local v=$1
  echo "== pair documents bf16 vs CPU f64, $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 45 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 40 \
    --op-times "$R/chkops_$v" --json "$R/pair_$v.jsonl" > "$R/pair_$v.log" 2>&1; echo "rc=$?"
  summ "$R/pair_$v.jsonl" "pair documents bf16 $v" | tee -a "$R/summ.txt"
  grep -h -o "Bwd[A-Za-z]*" "$R"/chkops_$v/* 2>/dev/null | sort | uniq -c | tr '\n' ' ' | sed "s/^/ops $v: /" | tee -a "$R/summ.txt"; echo | tee -a "$R/summ.txt"
  if [ "$2" = f16 ]; then
    echo "== pair documents f16 kv1 vs CPU f64, $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 35 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full \
      --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 30 \
      --op-times "$R/chkops_f16_$v" --json "$R/f16_$v.jsonl" > "$R/f16_$v.log" 2>&1; echo "rc=$?"
    summ "$R/f16_$v.jsonl" "pair documents f16 kv1 $v" | tee -a "$R/summ.txt"
    grep -h -o "Bwd[A-Za-z]*" "$R"/chkops_f16_$v/* 2>/dev/null | sort | uniq -c | tr '\n' ' ' | sed "s/^/ops f16 $v: /" | tee -a "$R/summ.txt"; echo | tee -a "$R/summ.txt"
  fi
  snap
}
pair nq f16
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in chain sr0 nq chain sr0 nq nq sr0 chain; do
  i=$((i + 1)); if left 100; then kb $v works1000 "${v}_$i"; fi
done
snap
for v in nq sr0; do
  if ! left 90; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
  timeout 10 python3 bench/gpu/op_times.py "$R/ops_w_$v" 2>&1 | grep -E "Bwd|total" | head -6
done
snap
if left 70; then
  echo "== selftest nq (knob on) t=$((SECONDS - T0))"
  env $(venv nq) DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp \
    --timeout-s 35 --json "$R/st_nq.jsonl" > "$R/st_nq.log" 2>&1; echo "rc=$?"
  summ "$R/st_nq.jsonl" "selftest nq" | tee -a "$R/summ.txt"
fi
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  if [ -z "$CS" ] || ! left 40; then continue; fi
  echo "== $tool nq, pair documents t=$((SECONDS - T0))"
  env $(venv nq) timeout -k 3 25 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/pair.json" --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 20 \
    --op-times "$R/san_ops_$tool" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  grep -h -o "Bwd[A-Za-z]*" "$R"/san_ops_$tool/* 2>/dev/null | sort | uniq -c | tr '\n' ' ' | sed "s/^/ops $tool: /" | tee -a "$R/summ.txt"; echo | tee -a "$R/summ.txt"
  snap
done
if left 30; then
  echo "== short documents (x1_final, D 128) vs CPU f64, nq t=$((SECONDS - T0))"
  env $(venv nq) timeout 28 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/short_nq.jsonl" > "$R/short_nq.log" 2>&1; echo "rc=$?"
  summ "$R/short_nq.jsonl" "short documents nq" | tee -a "$R/summ.txt"
fi
snap
for v in nq chain; do
  if ! left 12; then continue; fi
  echo "== other D 128 shapes $v t=$((SECONDS - T0))"
  env $(venv $v) timeout $((LIMIT - (SECONDS - T0) - 3)) $B kernel-bench --shapes onework,causal32k,lambda,packed --head-dim 128 --repeats 2 \
    --json "$R/kb_other_$v.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
echo "== works1000 table"
timeout 10 python3 - "$R" <<'PY'
import json, sys, glob, os, re
rows = {}
for f in sorted(glob.glob(sys.argv[1] + '/kb_*_*.jsonl')):
    m = re.match(r'kb_([a-z0-9]+)_(\d+)\.jsonl', os.path.basename(f))
    if not m: continue
    for l in open(f):
        try: r = json.loads(l)
        except ValueError: continue
        rows.setdefault(m.group(1), []).append((int(m.group(2)), r.get('bwd_ms')))
for k, v in rows.items():
    print('%-6s' % k, ' '.join('%.3f' % x[1] for x in sorted(v) if x[1]))
PY
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
