#!/usr/bin/env bash
# s33 call 3 (2x H200): timeout 560 bash .s33/run3.sh
# The piece model's gain threshold: even (0, the default) against even:1 (cut below chunk only
# for a modelled gain >= 1 %), ABBA-alternated: longalign x3 (causal, lambda, causal-blockwise;
# dcp, zigzag) and one 114 710-token causal sequence (ulysses, zigzag).
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c3.tgz" --exclude=s33c3/dcp -C /tmp s33c3; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp1.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo '{"batches": [[114710]]}' > $R/b.json
la() { local t=$1; shift; env "$@" timeout 120 $D launch -n 2 -- bench-gpu --dataset longalign --count 3 --masks causal,lambda,causal-blockwise --planners dcp,zigzag --warmup 3 --repeats 10 --json $R/la_${t}.jsonl > $R/la_${t}.log 2>&1; echo "la $t rc=$? t=$((SECONDS - T0))"; }
mg() { local t=$1; shift; env "$@" timeout 90 $D launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners ulysses,zigzag --warmup 5 --repeats 10 --json $R/mg_${t}.jsonl > $R/mg_${t}.log 2>&1; echo "mg $t rc=$? t=$((SECONDS - T0))"; }
i=0
for v in e0 e1 e1 e0 e0 e1 e1 e0; do
  [ $((SECONDS - T0)) -gt 430 ] && break
  i=$((i + 1))
  if [ $v = e0 ]; then E=X=1; else E=DCP_CUDA_BWD_ORDER=even:1; fi
  la ${v}_$i $E; mg ${v}_$i $E
  snap
done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/*_e*.jsonl")):
    kind, v = f.rsplit("/", 1)[1].split(".")[0].split("_")[:2]
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench": continue
        t[(kind, x["mask"], x["batch"], x["planner"], x.get("candidate") or "-")][v].append(x["bwd_ms"])
print("| bench | mask | batch | planner | candidate | even (0) bwd ms | even:1 bwd ms | even:1 / even |\n|---|---|---|---|---|---|---|---|")
rs = []
for k, d in sorted(t.items()):
    a, b = statistics.mean(d["e0"]), statistics.mean(d["e1"])
    rs.append(b / a)
    print("| %s | %s | %d | %s | %s | %.3f (%d) | %.3f (%d) | %.4f |" % (*k, a, len(d["e0"]), b, len(d["e1"]), b / a))
print("geomean even:1 / even over %d rows: %.4f" % (len(rs), statistics.geometric_mean(rs)))
PY
echo "== done t=$((SECONDS - T0))"
snap
