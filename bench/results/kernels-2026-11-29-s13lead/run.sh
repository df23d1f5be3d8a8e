#!/usr/bin/env bash
# Session 13, lead: FWD_ONECVT at D 64 (kf13b measured it at D 128 only). Binary = main c50d377's
# release dcp (kernels unchanged since); cvt = DCP_CUDA_KERNELS=.pdev/s13g/v/cvt (FWD_ONECVT 1 at
# every head dim). Selftest (D 64 and 128 cases) vs CPU f64, then kernel-bench D 64 base/cvt/cvt/base.
set -u
P=.pdev/s13g; V=$P/v/cvt; R=$OUT/d64; mkdir -p $R
source bench/gpu/env.sh
T0=$SECONDS; LIMIT=${LIMIT:-150}
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee $R/card.txt
DCP_CUDA_KERNELS=$V DCP_CUDA_FAMILY=sm90 timeout 40 $P/dcp bench-gpu --selftest 3 --planners local,zigzag,dcp --timeout-s 35 --json $R/st_cvt.jsonl > $R/st_cvt.log 2>&1; echo "selftest rc=$?"
python3 -c "
import json; r=[json.loads(l) for l in open('$R/st_cvt.jsonl')]; c=[x.get('check') or {} for x in r]
print('selftest cvt: %d/%d pass' % (sum(1 for x in c if x.get('pass')), len(r)))" | tee $R/summ.txt
grep -q " 0/\|FAIL" $R/summ.txt && exit 1
SH=works1000,blockwise,causal32k,lambda,packed,onework
i=0
for v in base cvt cvt base; do
  i=$((i+1)); left 25 || break
  if [ $v = base ]; then E=""; else E="DCP_CUDA_KERNELS=$V"; fi
  env $E timeout 25 $P/dcp kernel-bench --shapes $SH --head-dim 64 --repeats 3 --json $R/kb_${v}_$i.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic' | sed "s/^/$v$i /"
done
python3 - $R <<'PY'
import json, glob, sys, collections, statistics as st
d = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + '/kb_*.jsonl'):
    v = f.split('/')[-1].split('_')[1]
    for l in open(f):
        r = json.loads(l)
        if r.get('kind') == 'bench': d[(r['shape'], v)].append(r['fwd_tflops_per_gpu'])
print('| shape (D 64) | base fwd | cvt fwd | cvt / base |'); print('|---|---|---|---|')
for s in sorted({k[0] for k in d}):
    b, c = st.mean(d[(s, 'base')] or [0]), st.mean(d[(s, 'cvt')] or [0])
    print(f'| {s} | {b:.1f} | {c:.1f} | {c / b if b else 0:.3f} |')
PY
