#!/usr/bin/env bash
# s28 call 4 (1x H200): timeout 200 bash .s28/run4.sh
# The two readings of issue 10's "1000 works of 256x256 <= 10 % slower than one work of the same
# FLOPs" on main (027d5cb's release build, .s28/dcp.gz), 3 rounds in one call: blocks256 (1 024
# plan works of 256x256 over one 8K sequence) against full8k (the same sequence as one work: same
# FLOPs, same bytes), and works1000 (1 000 separate 256-token documents) against onework.
set -u
OUTD=${OUT:-/tmp/s28_out}
R=/tmp/s28c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s28/dcp.gz > $D && chmod +x $D
for i in 1 2 3; do
  timeout 50 $D kernel-bench --shapes full8k,blocks256,onework,works1000 --head-dim 128 --repeats 3 \
    --json "$R/kb_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections
R = sys.argv[1]
v = collections.defaultdict(list)
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    for l in open(f):
        r = json.loads(l); v[r["shape"]].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
m = {k: (statistics.mean(a for a, _ in x), statistics.mean(b for _, b in x)) for k, x in v.items()}
for k, x in v.items():
    print(f"{k:10} fwd {' '.join('%.1f' % a for a, _ in x)}  bwd {' '.join('%.1f' % b for _, b in x)}  mean {m[k][0]:.1f} / {m[k][1]:.1f}")
for a, b in (("blocks256", "full8k"), ("works1000", "onework")):
    if a in m and b in m:
        print(f"{a} / {b}: fwd {m[a][0] / m[b][0]:.3f}, bwd {m[a][1] / m[b][1]:.3f}")
PY
cd /tmp && tar czf "$OUTD/s28c4.tgz" --exclude=s28c4/dcp s28c4
