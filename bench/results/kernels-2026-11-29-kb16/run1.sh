#!/usr/bin/env bash
# kb16 call 1 (1x H200): LIMIT=105 timeout 112 bash .kb16/run1.sh  (carry [".kb16"]), from /work/main.
# .kb16/dcp = branch kb16's release binary (cluster kernel with CL_STSM built in, SMEM_EXTRA +8 KiB);
# .kb16/base = main 7cd68d5's kernels folder (the 16-byte dQ stores of kb15b; via DCP_CUDA_KERNELS);
# .kb16/pf = this branch's kernels with BWD_KV_PF 1 (L2 prefetch of the next task's K/V).
# Pair-document check of new, alternated kernel-bench base new pf x3, then ncu of new.
set -u
OUTD=${OUT:-/tmp/kb16_out}
R=/tmp/kb16c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb16c1.tgz" -C /tmp kb16c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM DCP_CUDA_FAMILY
T0=$SECONDS
LIMIT=${LIMIT:-105}
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
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))"
echo "== pair documents bf16 vs CPU f64, new t=$((SECONDS - T0))"
timeout 35 $B bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --check \
  --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 30 --op-times $R/ops_bf16 --json $R/pair_bf16.jsonl > $R/pair_bf16.log 2>&1; echo "rc=$?"
summ $R/pair_bf16.jsonl "pair bf16 new" | tee -a $R/summary.txt
echo "pair kernels: $(cat $R/ops_bf16/* 2>/dev/null | grep -o 'Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' ')" | tee -a $R/summary.txt
i=0
for v in base new pf base new pf base new pf; do
  i=$((i + 1)); left 32 || continue
  echo "== kernel-bench $v $i t=$((SECONDS - T0))"
  S=works1000; [ $i -le 2 ] && S=works1000,onework
  env $(venv $v) timeout 20 $B kernel-bench --shapes $S --head-dim 128 --repeats 3 \
    --json $R/kb_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v /"
done
snap
NCUB=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
if left 22; then
  echo "== ncu new t=$((SECONDS - T0))"
  timeout -k 5 $((LIMIT - (SECONDS - T0) - 10)) $NCUB --clock-control none --import-source no \
    --section SpeedOfLight --section WarpStateStats --section SourceCounters \
    -o $R/ncu_new -k regex:attn_bwd_cluster -c 1 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 1 --warmup 0 --timeout-s 60 > $R/ncu_new.log 2>&1
  echo "rc=$? t=$((SECONDS - T0))"
  timeout 15 $NCUB -i $R/ncu_new.ncu-rep --print-details all > $R/ncu_new.txt 2>&1
  timeout 20 $NCUB -i $R/ncu_new.ncu-rep --page source --csv --print-source sass 2>&1 | gzip > $R/ncu_src_new.csv.gz
  rm -f $R/ncu_new.ncu-rep
  grep -E "Duration|SM Frequency" $R/ncu_new.txt | head -3
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
