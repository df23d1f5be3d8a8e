#!/usr/bin/env bash
# s29 call 10 (1x H200): timeout 150 bash .s30tmp/run.sh
# The final tree (7c7692b's release build, .s30tmp/dcp.gz; HEAD_DIM's default moved): selftest 10 against
# the CPU f64 reference; then D 64 layouts with more Q buffers (2:6, 2:8) against the default 4:4,
# one round each, on the shapes where the layout mattered.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s30tmp/dcp.gz > $D && chmod +x $D
DCP_CUDA_FAMILY=sm90 timeout 60 $D bench-gpu --selftest 10 --planners local,zigzag,dcp --timeout-s 57 \
  --json "$R/st.jsonl" > "$R/st.log" 2>&1; echo "selftest rc=$?"
python3 -c "
import json
r = [json.loads(l) for l in open('$R/st.jsonl') if l.strip()]
c = [x.get('check') or {} for x in r]
print('selftest: %d/%d pass, worst o %.1e dq %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max(x.get('o', 0) for x in c), max(x.get('dq', 0) for x in c)))"
SH=full@128x2000,causal@128x2000,causal@256x1000,works1000,packed,causal32k
for v in 4:4 2:6 2:8 4:4 2:6 2:8; do
  DCP_CUDA_FWD_STAGES=$v timeout 40 $D kernel-bench --shapes $SH --head-dim 64 --repeats 3 \
    --json "$R/kb_${v/:/x}.jsonl" 2>&1 | grep -E 'rror|panic'
done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, glob, collections, statistics, sys
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    var = f.split("/kb_")[1][:-6]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind") != "bench": continue
        v[r["shape"]][var].append(r["fwd_tflops_per_gpu"])
        if r["shape"] not in order: order.append(r["shape"])
print("D 64 forward TFLOP/s (runs; mean ÷ 4:4)")
for s in order:
    b = statistics.mean(v[s]["4x4"])
    print(f"{s:16} " + "  ".join(f"{k} " + " ".join(f"{a:.0f}" for a in v[s][k]) + f" ({statistics.mean(v[s][k]) / b:.3f})" for k in ("4x4", "2x6", "2x8")))
PY
cd /tmp && tar czf "$OUTD/s29c10.tgz" --exclude=s29c10/dcp s29c10
