#!/usr/bin/env bash
# kb16 call 2 (1x H200): LIMIT=150 timeout 157 bash .kb16/run2.sh  (carry [".kb16"]), from /work/main.
# .kb16/dcp = branch kb16's release binary (built-in cluster kernel = v2: stmatrix dK/dV epilogue,
# shuffle dQ stores with the compile-time conversion, task counter in shared memory, segment and
# DqConv copied with the task info); .kb16/base = main 7cd68d5's kernels; .kb16/s1 = v2 with
# CL_DQ_STSM 1 (the dQ store through the staging block, as call 1's kernel).
# Alternated kernel-bench base new s1 x3, then every check of the brief for new.
set -u
OUTD=${OUT:-/tmp/kb16_out}
R=/tmp/kb16c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb16c2.tgz" -C /tmp kb16c2; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY
T0=$SECONDS
LIMIT=${LIMIT:-150}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb16/dcp
venv() { case "$1" in new) echo;; *) echo DCP_CUDA_KERNELS=.kb16/$1;; esac; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')] if os.path.exists(sys.argv[1]) else []
c = [r.get("check") or {} for r in rows]
w = {k: max([x.get(k, 0) or 0 for x in c] + [0]) for k in ("o", "lse", "dq", "dkv")}
print(f"{sys.argv[2]}: {sum(1 for x in c if x.get('pass'))}/{len(rows)} pass; worst " + " ".join(f"{k}={v:.1e}" for k, v in w.items()))
PY
}
timeout 10 python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))"
i=0
for v in base new s1 base new s1 base new; do
  i=$((i + 1)); left 108 || continue
  echo "== kernel-bench $v $i t=$((SECONDS - T0))"
  S=works1000; [ $i -le 3 ] && S=works1000,onework
  env $(venv $v) timeout 20 $B kernel-bench --shapes $S --head-dim 128 --repeats 3 \
    --json $R/kb_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
done
snap
echo "== pair documents bf16 vs CPU f64, new t=$((SECONDS - T0))"
timeout 35 $B bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 30 --op-times $R/ops_bf16 --json $R/pair_bf16.jsonl > $R/pair_bf16.log 2>&1; echo "rc=$?"
summ $R/pair_bf16.jsonl "pair bf16 new" | tee -a $R/summary.txt
if left 60; then
  echo "== pair documents f16 1 kv head vs CPU f64, new t=$((SECONDS - T0))"
  timeout 30 $B bench-gpu --batches $R/pair300.json --head-dim 128 --dtype f16 --kv-heads 1 --masks full --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --op-times $R/ops_f16 --json $R/pair_f16.jsonl > $R/pair_f16.log 2>&1; echo "rc=$?"
  summ $R/pair_f16.jsonl "pair f16 kv1 new" | tee -a $R/summary.txt
fi
echo "pair documents' backward kernels: $(cat $R/ops_bf16/* $R/ops_f16/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $R/summary.txt
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 25 || break
  echo "== $tool pair documents, new t=$((SECONDS - T0))"
  timeout -k 5 $(( (LIMIT - (SECONDS - T0)) / 2 )) $CS --tool $tool --print-limit 5 $B bench-gpu --batches $R/pair.json --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 60 --op-times $R/ops_$tool > $R/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_$tool.txt | head -4 | sed "s/^/$tool: /" | tee -a $R/summary.txt
  echo "$tool kernels: $(cat $R/ops_$tool/* 2>/dev/null | grep -o 'BwdCluster' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $R/summary.txt
done
snap
if left 22; then
  echo "== selftest 4, new t=$((SECONDS - T0))"
  timeout 30 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --json $R/st.jsonl > $R/st.log 2>&1; echo "rc=$?"
  summ $R/st.jsonl "selftest 4 new" | tee -a $R/summary.txt
fi
if left 12; then
  echo "== short documents D128 vs CPU f64, new t=$((SECONDS - T0))"
  timeout $((LIMIT - (SECONDS - T0) - 6)) $B bench-gpu --batches $R/short.json --head-dim 128 --masks full,causal,causal-blockwise:128:2,sliding-window:100 --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/short.jsonl > $R/short.log 2>&1; echo "rc=$?"
  summ $R/short.jsonl "short documents D128 new" | tee -a $R/summary.txt
fi
timeout 10 python3 - "$R" <<'PY' | tee -a $R/summary.txt
import json, sys, glob, os, re
rows = {}
for f in sorted(glob.glob(sys.argv[1] + '/kb_*_*.jsonl')):
    m = re.match(r'kb_([a-z0-9]+)_(\d+)\.jsonl', os.path.basename(f))
    for l in open(f):
        try: r = json.loads(l)
        except ValueError: continue
        if r.get('kind') == 'bench':
            rows.setdefault((r.get('shape'), m.group(1)), []).append((int(m.group(2)), r.get('bwd_ms'), r.get('bwd_tflops_per_gpu')))
for k, v in sorted(rows.items()):
    print('%-10s %-4s bwd ms' % k, ' '.join('%.3f' % x[1] for x in sorted(v)), ' TF', ' '.join('%.0f' % x[2] for x in sorted(v)))
PY
echo "== done t=$((SECONDS - T0))"
cat $R/summary.txt
snap
