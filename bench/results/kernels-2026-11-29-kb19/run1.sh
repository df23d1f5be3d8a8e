#!/usr/bin/env bash
# kb19 call 1 (1 GPU): LIMIT=165 timeout 172 bash .kb19/run1.sh   (carry [".kb19"]), from /work/main.
# .kb19/dcp = branch kb19's release binary: DCP_CUDA_BWD_OVERLAP=K runs the backward's D pass
# (util.cu dcp_bwd_dd_ovl) on K SMs beside the kernel (attn_bwd_sm90.cu BWD_DD_OVL), per-(q tile,
# head) flags instead of the kernel waiting for the whole pass. Variants: base = defaults (pass
# before the kernel), o20 / o40 = DCP_CUDA_BWD_OVERLAP=20 / 40.
# 1. checks with o40 (CPU f64): selftest 2 (local, dcp), 4096-token causal-blockwise + lambda (split-K),
#    150 short documents unchained (150 works: the flags' per-work layout);
# 2. op times of o20 / o40 (blockwise: the pass alone on K SMs, the kernel alone);
# 3. kernel-bench base / o20 / o40 alternated x3.
set -u
OUTD=${OUT:-/tmp/kb19_out}
R=/tmp/kb19c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 20 tar czf "$OUTD/kb19c1.tgz" -C /tmp kb19c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CONVERT DCP_CUDA_BWD_DQ_PIPE DCP_CUDA_KERNELS DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CLUSTER DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY DCP_CUDA_BWD_ORDER DCP_CUDA_PDL DCP_CUDA_BWD_DD_ZERO DCP_CUDA_COPY_BATCH DCP_CUDA_BWD_OVERLAP
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}
T0=$SECONDS
LIMIT=${LIMIT:-165}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 5 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
cat "$R/card.txt"
B=.kb19/dcp
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
json.dump({'batches': [[32768]]}, open('$R/b32k.json', 'w'))"
chk() {  # tag cmd...
  local tag=$1; shift
  echo "== $tag t=$((SECONDS - T0))"
  "$@" --json "$R/$tag.jsonl" > "$R/$tag.log" 2>&1; echo "rc=$?"
  grep -E "FAIL|panic|rror" "$R/$tag.log" | head -3
  summ "$R/$tag.jsonl" "$tag" | tee -a "$R/summ.txt"
}
export DCP_CUDA_BWD_OVERLAP=40
chk chk4k timeout 20 $B bench-gpu --batches "$R/b4k.json" --masks causal-blockwise:256:2,lambda:64:1024 \
  --planners local --head-dim 128 --check --cpu-check-tokens 5000 --warmup 0 --repeats 1 --timeout-s 18 --op-times "$R/chk4k_ops"
grep -h -o "BwdDdOvl\|BwdOvl\|BwdDd\b" "$R"/chk4k_ops* 2>/dev/null | sort | uniq -c | tee -a "$R/summ.txt"
chk st env DCP_CUDA_FAMILY=sm90 timeout 30 $B bench-gpu --selftest 2 --planners local,dcp --timeout-s 27
left 110 && chk shortu env DCP_CUDA_BWD_CHAIN=0 timeout 20 $B bench-gpu --batches "$R/short.json" --head-dim 128 --masks full,causal-blockwise:128:2 \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 18
unset DCP_CUDA_BWD_OVERLAP
snap
venv() { case "$1" in base) echo DCP_CUDA_BWD_OVERLAP=0;; o20) echo DCP_CUDA_BWD_OVERLAP=20;; o40) echo DCP_CUDA_BWD_OVERLAP=40;; esac; }
for v in o20 o40; do
  left 85 || continue
  echo "== ops $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 12 $B bench-gpu --batches "$R/b32k.json" --masks causal-blockwise --planners local \
    --block-sizes 1024 --head-block 2 --warmup 1 --repeats 3 --op-times "$R/ops_$v" --json "$R/ops_$v.jsonl" > "$R/ops_$v.log" 2>&1; echo "rc=$?"
done
i=0
for rnd in 1 2 3; do
  for v in base o20 o40; do
    i=$((i + 1)); left 14 || continue
    echo "== $v t=$((SECONDS - T0))"
    env $(venv $v) timeout 14 $B kernel-bench --shapes blockwise,lambda,onework,causal32k,packed,works1000 --head-dim 128 \
      --repeats 3 --json "$R/kb_${v}-d128_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
  done
done
snap
echo "== summary t=$((SECONDS - T0))"
cat "$R/summ.txt"
timeout 10 python3 .kb19/ab.py "$R" | tee "$R/ab.txt"
timeout 5 python3 .kb19/ops.py "$R/ops_o20" "$R/ops_o40" 2>&1 | grep bwd
echo "== done t=$((SECONDS - T0))"
snap
