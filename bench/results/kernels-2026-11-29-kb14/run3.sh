#!/usr/bin/env bash
# kb14 call 3 (1x H200): LIMIT=125 timeout 135 bash .kb14/run3.sh   (carry [".kb14"]), from /work/main.
# Binary: .kb14/dcp = branch kb14 (call 2's binary: the clustered backward, opt-in DCP_CUDA_BWD_CLUSTER=1).
# Variants of the cluster kernel read through DCP_CUDA_KERNELS (only attn_bwd_cluster_sm90.cu in each dir):
#   chain : no variable (main's chained backward)
#   cl    : DCP_CUDA_BWD_CLUSTER=1 (the built-in cluster kernel = call 2's)
#   pf    : cl + .kb14/v/pf    (BWD_KV_PF 1: the next task's K/V prefetched into L2 when its pair is claimed)
#   noepi : cl + .kb14/v/noepi (ABLATION, timing only: no dK/dV stores)
#   nodq  : cl + .kb14/v/nodq  (ABLATION, timing only: no dQ exchange or stores)
# 1. pf vs CPU f64 on the 150 pair documents (bf16) and 300 (f16, 1 kv head).
# 2. kernel-bench works1000 alternated chain cl pf noepi nodq x2; op times pf noepi nodq.
# 3. compute-sanitizer memcheck + racecheck, pair documents, pf (the cluster path).
set -u
OUTD=${OUT:-/tmp/kb14_out}
R=/tmp/kb14c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb14c3.tgz" -C /tmp kb14c3; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS
T0=$SECONDS
LIMIT=${LIMIT:-125}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb14/dcp
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
    cl) echo DCP_CUDA_BWD_CLUSTER=1;;
    pf|noepi|nodq) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb14/v/$1;;
    *) echo KB14_CHAIN=1;;
  esac
}
timeout 10 python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/w1000.json', 'w'))"
echo "== pair documents bf16 vs CPU f64, pf t=$((SECONDS - T0))"
env $(venv pf) timeout 40 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 35 \
  --op-times "$R/chkops_pf" --json "$R/pair_pf.jsonl" > "$R/pair_pf.log" 2>&1; echo "rc=$?"
summ "$R/pair_pf.jsonl" "pair documents bf16 pf" | tee -a "$R/summ.txt"
echo "== pair documents f16 kv1 vs CPU f64, pf t=$((SECONDS - T0))"
env $(venv pf) timeout 35 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 30 \
  --op-times "$R/chkops_f16" --json "$R/f16_pf.jsonl" > "$R/f16_pf.log" 2>&1; echo "rc=$?"
summ "$R/f16_pf.jsonl" "pair documents f16 kv1 pf" | tee -a "$R/summ.txt"
snap
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in chain cl pf noepi nodq chain cl pf noepi nodq; do
  i=$((i + 1)); if left 55; then kb $v works1000 "${v}-d128_$i"; fi
done
snap
for v in pf noepi nodq; do
  if ! left 50; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  if [ -z "$CS" ] || ! left 22; then continue; fi
  echo "== $tool pf, pair documents t=$((SECONDS - T0))"
  env $(venv pf) timeout -k 3 $((LIMIT - (SECONDS - T0) - 5)) "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/pair.json" --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 60 \
    --op-times "$R/san_ops_$tool" > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  snap
done
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
