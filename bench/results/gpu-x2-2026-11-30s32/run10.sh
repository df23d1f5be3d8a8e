#!/usr/bin/env bash
# s32 call 10 (2x H200): timeout 280 bash .s32/run10.sh
# The piece-model fix on multi-work launches (dcp's placements, ring, zigzag, ulysses): old
# (.s32/dcp5.gz) against new (.s32/dcp9.gz) binary, 3 longalign batches x causal, lambda,
# causal-blockwise, checked; old, new, old, new while time lasts.
set -u
OUTD=${OUT:-/tmp/s32_out}
R=/tmp/s32c10; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s32c10.tgz" --exclude=s32c10/old --exclude=s32c10/new -C /tmp s32c10; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
gunzip -c .s32/dcp5.gz > $R/old && gunzip -c .s32/dcp9.gz > $R/new && chmod +x $R/old $R/new
for r in 1 2; do for v in old new; do if [ $((SECONDS - T0)) -lt 200 ]; then
  echo "== $v $r t=$((SECONDS - T0))"
  CHK=""; [ $r = 1 ] && CHK=--check
  timeout 100 $R/$v launch -n 2 -- bench-gpu --dataset longalign --count 3 --masks causal,lambda,causal-blockwise --planners dcp,ring,zigzag,ulysses $CHK --warmup 2 --repeats 5 --json $R/kb_${v}_$r.jsonl > $R/m_${v}_$r.log 2>&1; echo "rc=$?"
fi; done; done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list)); chk = collections.Counter()
for f in glob.glob(R + "/kb_*.jsonl"):
    v = f.rsplit("/", 1)[1].split("_")[1]
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench": continue
        t[(x["mask"], x["planner"])][v].append(x["bwd_ms"] / max(1e-9, 1.0))
        t[(x["mask"], x["planner"], x["batch"])][v].append(x["bwd_ms"])
        c = x.get("check")
        if c: chk[(v, bool(c.get("pass")))] += 1
print("checks:", dict(chk))
print("| mask | planner | batch | old bwd ms | new bwd ms | new / old |\n|---|---|---|---|---|---|")
for k, d in sorted(t.items()):
    if len(k) != 3: continue
    a, b = statistics.mean(d["old"]) if d["old"] else float("nan"), statistics.mean(d["new"]) if d["new"] else float("nan")
    print("| %s | %s | %d | %.2f | %.2f | %.3f |" % (*k, a, b, b / a))
PY
echo "== done t=$((SECONDS - T0))"
snap
