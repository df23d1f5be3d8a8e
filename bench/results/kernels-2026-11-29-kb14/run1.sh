#!/usr/bin/env bash
# kb14 call 1 (1x H200): LIMIT=170 timeout 180 bash .kb14/run1.sh   (carry [".kb14"]), from /work/main.
# Binary: .kb14/dcp = branch kb14 (the clustered backward, opt-in by DCP_CUDA_BWD_CLUSTER=1).
#   chain : no variable (main's chained backward)
#   cl    : DCP_CUDA_BWD_CLUSTER=1 (2-CTA clusters for launches whose works are all two kv tiles wide)
# 1. correctness vs CPU f64 with cl: 150 documents of 129-256 tokens (full mask: every work two kv
#    tiles with the same q tiles -> the cluster path; op times say which kernel ran), bf16 D 128;
#    f16 with 1 kv head (group 8), 300 such documents (300 chains: enough to chain); stop if either fails.
# 2. kernel-bench works1000 alternated chain cl chain cl chain cl; op times works1000 chain / cl.
# 3. selftest 4 (local, zigzag, dcp) with cl; 150 short documents (1-511 tokens: chains, no cluster) with cl.
set -u
OUTD=${OUT:-/tmp/kb14_out}
R=/tmp/kb14c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb14c1.tgz" -C /tmp kb14c1; }
exec > >(tee "$R/run.log") 2>&1
if [ -f bench/gpu/env.sh ]; then source bench/gpu/env.sh; fi
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER
T0=$SECONDS
LIMIT=${LIMIT:-170}
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
    *) echo KB14_CHAIN=1;;
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
echo "== pair documents bf16 vs CPU f64, cl t=$((SECONDS - T0))"
env $(venv cl) timeout 45 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 40 \
  --op-times "$R/chkops_cl" --json "$R/pair_cl.jsonl" > "$R/pair_cl.log" 2>&1; echo "rc=$?"
tail -3 "$R/pair_cl.log"
summ "$R/pair_cl.jsonl" "pair documents bf16 cl" | tee -a "$R/summ.txt"; OK1=${PIPESTATUS[0]}
grep -h -o "Bwd[A-Za-z]*" "$R"/chkops_cl* 2>/dev/null | sort | uniq -c | tee -a "$R/summ.txt"
snap
if [ "$OK1" != 0 ]; then echo "cluster check failed: stop"; cat "$R/summ.txt"; exit 1; fi
echo "== pair documents f16 kv1 vs CPU f64, cl t=$((SECONDS - T0))"
env $(venv cl) timeout 35 $B bench-gpu --batches "$R/pair300.json" --head-dim 128 --dtype f16 --kv-heads 1 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 30 \
  --op-times "$R/chkops_f16" --json "$R/f16_cl.jsonl" > "$R/f16_cl.log" 2>&1; echo "rc=$?"
summ "$R/f16_cl.jsonl" "pair documents f16 kv1 cl" | tee -a "$R/summ.txt"
grep -h -o "Bwd[A-Za-z]*" "$R"/chkops_f16* 2>/dev/null | sort | uniq -c | tee -a "$R/summ.txt"
snap
kb() {
  local n=$1 sh=$2 tag=$3
  echo "== $n $sh t=$((SECONDS - T0))"
  env $(venv $n) timeout 30 $B kernel-bench --shapes "$sh" --head-dim 128 --repeats 3 \
    --json "$R/kb_$tag.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
i=0
for v in chain cl chain cl chain cl; do
  i=$((i + 1)); if left 40; then kb $v works1000 "${v}-d128_$i"; fi
done
snap
for v in cl chain; do
  if ! left 35; then continue; fi
  echo "== op times $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 15 $B bench-gpu --batches "$R/w1000.json" --masks full --planners local --warmup 1 --repeats 3 \
    --op-times "$R/ops_w_$v" --json "$R/ops_w_$v.jsonl" > "$R/ops_w_$v.log" 2>&1; echo "rc=$?"
done
snap
if left 30; then
  echo "== selftest cl t=$((SECONDS - T0))"
  env $(venv cl) DCP_CUDA_FAMILY=sm90 timeout 40 $B bench-gpu --selftest 4 --planners local,zigzag,dcp \
    --timeout-s 35 --json "$R/st_cl.jsonl" > "$R/st_cl.log" 2>&1; echo "rc=$?"
  summ "$R/st_cl.jsonl" "selftest cl" | tee -a "$R/summ.txt"
fi
if left 20; then
  echo "== short documents (chains) vs CPU f64, cl t=$((SECONDS - T0))"
  env $(venv cl) timeout 30 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal \
    --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --json "$R/short_cl.jsonl" > "$R/short_cl.log" 2>&1; echo "rc=$?"
  summ "$R/short_cl.jsonl" "short documents cl" | tee -a "$R/summ.txt"
fi
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
