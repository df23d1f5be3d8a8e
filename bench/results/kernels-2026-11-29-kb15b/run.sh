#!/usr/bin/env bash
# kb15b's one call (1x H200): LIMIT=125 timeout 132 bash .kb15b/run.sh  (carry [".kb15b"]), from /work/main.
# .kb15b/dcp = merged main's release binary (ce11ac1 kernels embedded: base = 8-byte dQ stores);
# .kb15b/v16 = the whole kernels folder with the cluster kernel's 16-byte dQ stores (new, via
# DCP_CUDA_KERNELS). Checks with v16, then an alternated kernel-bench base new base new.
set -u
OUTD=${OUT:-/tmp/kb15b_out}
R=/tmp/kb15b; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb15b.tgz" -C /tmp kb15b; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY
T0=$SECONDS
LIMIT=${LIMIT:-125}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb15b/dcp
NEW="DCP_CUDA_KERNELS=.kb15b/v16"
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
json.dump({'batches': [[P[(3 * i) % len(P)] for i in range(300)]]}, open('$R/pair300.json', 'w'))"
echo "== pair documents bf16 vs CPU f64, v16 t=$((SECONDS - T0))"
env $NEW timeout 40 $B bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_bf16 --json $R/pair_bf16.jsonl > $R/pair_bf16.log 2>&1; echo "rc=$?"
summ $R/pair_bf16.jsonl "pair bf16 v16" | tee -a $R/summary.txt
i=0
for v in base new base new; do
  i=$((i + 1)); left 25 || continue
  echo "== kernel-bench $v $i t=$((SECONDS - T0))"
  if [ $v = new ]; then E=$NEW; else E=; fi
  env $E timeout 25 $B kernel-bench --shapes works1000,onework --head-dim 128 --repeats 3 \
    --json $R/kb_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
done
snap
if left 20; then
  echo "== pair documents f16 1 kv head vs CPU f64, v16 t=$((SECONDS - T0))"
  env $NEW timeout 30 $B bench-gpu --batches $R/pair300.json --head-dim 128 --dtype f16 --kv-heads 1 --masks full --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/ops_f16 --json $R/pair_f16.jsonl > $R/pair_f16.log 2>&1; echo "rc=$?"
  summ $R/pair_f16.jsonl "pair f16 kv1 v16" | tee -a $R/summary.txt
fi
echo "pair documents' backward kernels: $(cat $R/ops_bf16/* $R/ops_f16/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $R/summary.txt
if left 20; then
  echo "== selftest 4, v16 t=$((SECONDS - T0))"
  env $NEW timeout 35 $B bench-gpu --selftest 4 --planners local,zigzag,dcp --json $R/st.jsonl > $R/st.log 2>&1; echo "rc=$?"
  summ $R/st.jsonl "selftest 4 v16" | tee -a $R/summary.txt
fi
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
for tool in memcheck racecheck; do
  left 12 || break
  echo "== $tool pair documents, v16 t=$((SECONDS - T0))"
  env $NEW timeout -k 5 $((LIMIT - (SECONDS - T0) - 5)) $CS --tool $tool --print-limit 5 $B bench-gpu --batches $R/pair.json --head-dim 128 --masks full \
    --planners local --warmup 0 --repeats 1 --timeout-s 60 --op-times $R/ops_$tool > $R/san_$tool.txt 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard|FAIL" $R/san_$tool.txt | head -4 | sed "s/^/$tool: /" | tee -a $R/summary.txt
  echo "$tool kernels: $(cat $R/ops_$tool/* 2>/dev/null | grep -o 'BwdCluster' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $R/summary.txt
done
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
