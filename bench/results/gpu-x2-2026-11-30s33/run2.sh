#!/usr/bin/env bash
# s33 call 2 (2x H200): timeout 560 bash .s33/run2.sh
# The backward piece model's decisions (DCP_CUDA_BWD_PIECE_LOG=1) on every shape of interest,
# then even (gain threshold 0, the default) / list / even:1 (cut only for a modelled gain >= 1 %)
# timed alternated: kernel-bench causal 114710 / 128K / blockwise, 2-GPU ulysses + zigzag at
# 64K / 114710 / 128K.
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c2; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c2.tgz" --exclude=s33c2/dcp -C /tmp s33c2; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp1.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo '{"batches": [[65536], [114710], [131072]]}' > $R/b.json
KB=causal@114710,causal128k,blockwise,lambda,packed,works1000
echo "== log pass t=$((SECONDS - T0))"
DCP_CUDA_BWD_PIECE_LOG=1 timeout 90 $D kernel-bench --shapes $KB --warmup 0 --repeats 1 > $R/log_kb.txt 2>&1; echo "rc=$?"
DCP_CUDA_BWD_PIECE_LOG=1 timeout 90 $D launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners ulysses,zigzag,ring,dcp --warmup 0 --repeats 1 > $R/log_mg.txt 2>&1; echo "rc=$?"
DCP_CUDA_BWD_PIECE_LOG=1 timeout 90 $D launch -n 2 -- bench-gpu --dataset longalign --count 3 --masks causal,lambda,causal-blockwise --planners dcp,zigzag --warmup 0 --repeats 1 > $R/log_la.txt 2>&1; echo "rc=$?"
grep -h 'dcp-cuda: backward' $R/log_*.txt | sed 's/.*backward/backward/' | sort | uniq -c | sort -rn | head -60
snap
kb() { local t=$1; shift; env "$@" timeout 90 $D kernel-bench --shapes causal@114710,causal128k,blockwise --warmup 5 --repeats 10 --json $R/kb_${t}.jsonl > $R/kb_${t}.log 2>&1; echo "kb $t rc=$?"; }
mg() { local t=$1; shift; env "$@" timeout 150 $D launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners ulysses,zigzag --warmup 5 --repeats 10 --json $R/mg_${t}.jsonl > $R/mg_${t}.log 2>&1; echo "mg $t rc=$?"; }
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 330 ] && break
  echo "== round $r t=$((SECONDS - T0))"
  kb e0_$r X=1; kb ls_$r DCP_CUDA_BWD_ORDER=list; kb e1_$r DCP_CUDA_BWD_ORDER=even:1
  mg e0_$r X=1; mg ls_$r DCP_CUDA_BWD_ORDER=list; mg e1_$r DCP_CUDA_BWD_ORDER=even:1
  snap
done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(list)
for f in sorted(glob.glob(R + "/kb_*.jsonl")) + sorted(glob.glob(R + "/mg_*.jsonl")):
    kind, v = f.rsplit("/", 1)[1].split(".")[0].split("_")[:2]
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench": continue
        shape = x.get("shape") or str(x.get("tokens"))
        t[(kind, shape, x.get("planner", "-"), v)].append(x["bwd_ms"])
print("| bench | shape | planner | order | runs | bwd ms (each) | / even |\n|---|---|---|---|---|---|---|")
for k, v in sorted(t.items()):
    base = t.get(k[:3] + ("e0",))
    r = statistics.mean(v) / statistics.mean(base) if base else float("nan")
    print("| %s | %s | %s | %s | %d | %.3f (%s) | %.4f |" % (*k, len(v), statistics.mean(v), " ".join("%.2f" % b for b in v), r))
PY
echo "== done t=$((SECONDS - T0))"
snap
