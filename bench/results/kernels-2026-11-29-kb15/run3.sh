#!/usr/bin/env bash
# kb15 call 3 (1x H200): LIMIT=95 timeout 100 bash .kb15/run3.sh  (carry [".kb15"]), from /work/main.
# Binary .kb15/dcp = call 2's (cluster kernel nq). nq: built-in; s8: nq with 8-byte dQ stores
# (lane-pair swap); ns: ABLATION nq without dQ stores (timing only). Then ncu of nq.
set -u
OUTD=${OUT:-/tmp/kb15_out}
R=/tmp/kb15c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 30 tar czf "$OUTD/kb15c3.tgz" -C /tmp kb15c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
unset DCP_CUDA_BWD_CHAIN DCP_CUDA_BWD_CHAIN_DD DCP_CUDA_BWD_CHAIN_DEFS DCP_CUDA_BWD_DD_CTAS DCP_CUDA_BWD_CLUSTER DCP_CUDA_KERNELS DCP_CUDA_BWD_SMEM
T0=$SECONDS
LIMIT=${LIMIT:-95}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
B=.kb15/dcp
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv > "$R/card.txt" 2>&1
venv() { case "$1" in nq) echo DCP_CUDA_BWD_CLUSTER=1;; *) echo DCP_CUDA_BWD_CLUSTER=1 DCP_CUDA_KERNELS=.kb15/v/$1;; esac; }
timeout 10 python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))"
echo "== pair documents bf16 vs CPU f64, s8 t=$((SECONDS - T0))"
env $(venv s8) timeout 30 $B bench-gpu --batches "$R/pair.json" --head-dim 128 --masks full \
  --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 \
  --op-times "$R/chkops_s8" --json "$R/pair_s8.jsonl" > "$R/pair_s8.log" 2>&1; echo "rc=$?"
timeout 10 python3 -c "
import json
r=[json.loads(l) for l in open('$R/pair_s8.jsonl') if l.startswith('{')]; c=[x.get('check') or {} for x in r]
print('pair s8: %d/%d pass, dq %.1e dkv %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('dq',0) or 0 for x in c]+[0]), max([x.get('dkv',0) or 0 for x in c]+[0])))"
grep -h -o "Bwd[A-Za-z]*" "$R"/chkops_s8/* 2>/dev/null | sort | uniq -c | tr '\n' ' '; echo
i=0
for v in nq s8 ns nq s8 ns nq s8; do
  i=$((i + 1)); if ! left 40; then continue; fi
  echo "== $v works1000 t=$((SECONDS - T0))"
  env $(venv $v) timeout 25 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 3 \
    --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
snap
NCUB=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
if left 30; then
  echo "== ncu nq t=$((SECONDS - T0))"
  DCP_CUDA_BWD_CLUSTER=1 timeout -k 5 $((LIMIT - (SECONDS - T0) - 8)) $NCUB --clock-control none --import-source no \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SourceCounters \
    -o $R/ncu_nq -k regex:attn_bwd_cluster -c 1 $B kernel-bench --shapes works1000 --head-dim 128 --repeats 1 --warmup 0 --timeout-s 60 > $R/ncu_nq.log 2>&1
  echo "rc=$? t=$((SECONDS - T0))"
  timeout 20 $NCUB -i $R/ncu_nq.ncu-rep --print-details all > $R/ncu_nq.txt 2>&1
  timeout 20 $NCUB -i $R/ncu_nq.ncu-rep --page raw --csv > $R/ncu_nq.raw.csv 2>&1
  timeout 30 $NCUB -i $R/ncu_nq.ncu-rep --page source --csv --print-source sass > $R/ncu_src_nq.csv 2>&1
  rm -f $R/ncu_nq.ncu-rep
  grep -E "Duration|SM Frequency|Issue Slots" $R/ncu_nq.txt | head -5
fi
timeout 10 python3 - "$R" <<'PY'
import json, sys, glob, os, re
rows = {}
for f in sorted(glob.glob(sys.argv[1] + '/kb_*_*.jsonl')):
    m = re.match(r'kb_([a-z0-9]+)_(\d+)\.jsonl', os.path.basename(f))
    for l in open(f):
        try: r = json.loads(l)
        except ValueError: continue
        rows.setdefault(m.group(1), []).append((int(m.group(2)), r.get('bwd_ms')))
for k, v in rows.items(): print('%-4s' % k, ' '.join('%.3f' % x[1] for x in sorted(v) if x[1]))
PY
echo "== done t=$((SECONDS - T0))"
snap
