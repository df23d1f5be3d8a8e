#!/usr/bin/env bash
# s33 call 1 (2x H200): timeout 560 bash .s33/run1.sh
# At 114 710 tokens even_piece cuts the split backward lists from chunk 1 523 to 1 091 q tiles
# for a modelled gain of 0.10 %. Time DCP_CUDA_BWD_ORDER=list against the default (even):
# kernel-bench causal@114710 (heads 4/1 and 8/2) and 2-GPU ulysses / zigzag, alternated.
set -u
OUTD=${OUT:-/tmp/s33_out}
R=/tmp/s33c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s33c1.tgz" --exclude=s33c1/dcp -C /tmp s33c1; }
exec > >(tee "$R/run.log") 2>&1
T0=$SECONDS
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s33/dcp0.gz > $D && chmod +x $D
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader | tee $R/card.txt
echo '{"batches": [[114710]]}' > $R/b.json
kb() { # tag heads kv env
  local t=$1 h=$2 k=$3; shift 3
  env "$@" timeout 90 $D kernel-bench --shapes causal@114710 --heads $h --kv-heads $k --warmup 10 --repeats 10 --json $R/kb_${t}.jsonl > $R/kb_${t}.log 2>&1; echo "kb $t rc=$?"
}
mg() { # tag env
  local t=$1; shift
  env "$@" timeout 120 $D launch -n 2 -- bench-gpu --batches $R/b.json --mask causal --planners ulysses,zigzag --warmup 10 --repeats 10 --json $R/mg_${t}.jsonl > $R/mg_${t}.log 2>&1; echo "mg $t rc=$?"
}
for r in 1 2 3; do
  [ $((SECONDS - T0)) -gt 420 ] && break
  echo "== round $r t=$((SECONDS - T0))"
  kb even41_$r 4 1 X=1; kb list41_$r 4 1 DCP_CUDA_BWD_ORDER=list
  kb even82_$r 8 2 X=1; kb list82_$r 8 2 DCP_CUDA_BWD_ORDER=list
  mg even_$r X=1; mg list_$r DCP_CUDA_BWD_ORDER=list
  snap
done
python3 - "$R" <<'PY' | tee $R/table.txt
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(list)
for f in sorted(glob.glob(R + "/*_*.jsonl")):
    kind, v = f.rsplit("/", 1)[1].split(".")[0].split("_")[:2]
    order = "list" if v.startswith("list") else "even"
    heads = v[4:] if kind == "kb" else "8/2"
    for l in open(f):
        if not l.strip(): continue
        x = json.loads(l)
        if x.get("kind") != "bench": continue
        t[(kind, heads, x.get("planner", "-"), order)].append((x["fwd_ms"], x["bwd_ms"]))
print("| bench | heads | planner | order | runs | fwd ms | bwd ms (each) |\n|---|---|---|---|---|---|---|")
for k, v in sorted(t.items()):
    print("| %s | %s | %s | %s | %d | %.2f | %.2f (%s) |" % (*k, len(v), statistics.mean(a for a, _ in v), statistics.mean(b for _, b in v), " ".join("%.2f" % b for _, b in v)))
PY
echo "== done t=$((SECONDS - T0))"
snap
