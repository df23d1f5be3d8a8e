#!/usr/bin/env bash
# s29 call 11 (1x H200): timeout 120 bash .s29b/run.sh
# The review mend 58defd8 (the forward's stage defines only in the forward builds): selftest 10
# against the CPU f64 reference, and D 64 kernel-bench on 128-token documents, default (4:4)
# against DCP_CUDA_FWD_STAGES=2:2, to see that 4:4 still reaches the kernel.
set -u
OUTD=${OUT:-/tmp/s29_out}
R=/tmp/s29c11; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s29b/dcp.gz > $D && chmod +x $D
DCP_CUDA_FAMILY=sm90 timeout 60 $D bench-gpu --selftest 10 --planners local,zigzag,dcp --timeout-s 57 \
  --json "$R/st.jsonl" > "$R/st.log" 2>&1; echo "selftest rc=$?"
python3 -c "
import json
r = [json.loads(l) for l in open('$R/st.jsonl') if l.strip()]
c = [x.get('check') or {} for x in r]
print('selftest: %d/%d pass, worst o %.1e dq %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max(x.get('o', 0) for x in c), max(x.get('dq', 0) for x in c)))"
for v in default 2:2; do
  echo "== D 64 stages $v"
  env $([ $v = default ] || echo DCP_CUDA_FWD_STAGES=$v) timeout 30 $D kernel-bench --shapes full@128x2000,packed \
    --head-dim 64 --repeats 3 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
done
cd /tmp && tar czf "$OUTD/s29c11.tgz" --exclude=s29c11/dcp s29c11
