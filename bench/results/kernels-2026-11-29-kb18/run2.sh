#!/usr/bin/env bash
# kb18 call 2 (1 GPU): LIMIT=115 timeout 122 bash .kb18/run2.sh   (carry [".kb18"]), from /work/main.
# .kb18/dcp = branch kb18's release binary after call 1: DD_ZERO only up to 8 MiB per launch
# (own::DD_ZERO_MAX_BYTES), the PDL symbol looked up only where the source declares it (call 1's
# memcheck "2 errors" were the failed lookups of the forward kernels), and DCP_CUDA_COPY_BATCH
# (adjacent independent dcp_copy launches as one dcp_copy_multi; default 0). Variants by environment:
#   base = PDL 0, DD_ZERO 0 (main's launches);  new = the defaults (PDL 1, DD_ZERO 1);  cb = new + COPY_BATCH 1.
# 1. checks of cb (every new path on; CPU f64): selftest 2 (local, dcp), 4096-token causal-blockwise
#    + lambda, memcheck + racecheck (1024 tokens; pair documents), pair documents bf16, 150 short documents;
# 2. kernel-bench base / new / cb alternated x2, then causal32k alone base / new x2 (its bimodal runs);
# 3. op times of new and cb (blockwise, lambda, causal).
set -u
OUTD=${OUT:-/tmp/kb18_out}
R=/tmp/kb18c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb18c2.tgz" -C /tmp kb18c2; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER DCP_CUDA_PDL DCP_CUDA_BWD_DD_ZERO DCP_CUDA_COPY_BATCH
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
T0=$SECONDS
LIMIT=${LIMIT:-115}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
B=.kb18/dcp
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
timeout 10 python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[4096]]}, open('$R/b4k.json', 'w'))
json.dump({'batches': [[1024]]}, open('$R/b1k.json', 'w'))
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
chk() {  # tag cmd...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  grep -E "FAIL|panic|rror" "$R/$tag.log" | head -3
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
export DCP_CUDA_COPY_BATCH=1
chk st env DCP_CUDA_FAMILY=sm90 timeout 25 $B bench-gpu --selftest 2 --planners local,dcp --timeout-s 22
chk chk4k timeout 20 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 18 --op-times "$R/chk4k_ops"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 75 || continue
  echo "== $tool t=$((SECONDS - T0))"
  timeout -k 2 15 "$CS" --tool $tool --print-limit 5 $B bench-gpu \
    --batches "$R/b1k.json" --masks causal-blockwise:128:2,lambda:32:256 --planners local --head-dim 128 --warmup 0 --repeats 1 \
    --timeout-s 12 > "$R/san_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_$tool.txt" | head -4 | sed "s/^/$tool: /" | tee -a "$R/summ.txt"
  left 73 || continue
  timeout -k 2 15 "$CS" --tool $tool --print-limit 5 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 12 > "$R/san_pair_$tool.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" "$R/san_pair_$tool.txt" | head -4 | sed "s/^/pair $tool: /" | tee -a "$R/summ.txt"
done
left 68 && chk pair timeout 15 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 12
left 62 && chk short timeout 20 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 18
unset DCP_CUDA_COPY_BATCH
snap
venv() { case "$1" in base) echo DCP_CUDA_PDL=0 DCP_CUDA_BWD_DD_ZERO=0;; new) echo DCP_CUDA_PDL=1;; cb) echo DCP_CUDA_COPY_BATCH=1;; esac; }
i=0
for rnd in 1 2; do
  for v in base new cb; do
    i=$((i + 1)); left 22 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 20 $B kernel-bench --shapes blockwise,causal32k,lambda,packed,onework,works1000 --head-dim 128 \
      --repeats 5 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
for rnd in 1 2; do
  for v in base new; do
    i=$((i + 1)); left 12 || continue
    echo "== $v causal32k t=$((SECONDS - T0))"
    env $(venv $v) timeout 12 $B kernel-bench --shapes causal32k --head-dim 128 --repeats 5 \
      --json "$R/kc_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
for v in new cb; do
  left 6 || continue
  echo "== ops $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 12 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise,lambda,causal --planners local \
    --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
snap
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 10 python3 .kb18/ab.py "$R" | tee "$R/ab.txt"
mkdir -p "$R/kc" && cp "$R"/kc_*.jsonl "$R/kc/" 2>/dev/null && for f in "$R"/kc/kc_*; do mv "$f" "${f/kc_/kb_}"; done
timeout 10 python3 .kb18/ab.py "$R/kc" | head -5 | tee "$R/ab_causal.txt"
timeout 5 python3 .kb18/ops.py "$R/ops_new" "$R/ops_cb" 2>&1 | grep bwd
echo "== done t=$((SECONDS - T0))"
snap
