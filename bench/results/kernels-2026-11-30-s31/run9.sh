#!/usr/bin/env bash
# s31 call 9 (1x H200): LIMIT=260 timeout 275 bash .s31/run9.sh
# FWD_ONE_PP: a warpgroup turn at every FWD_ONE task (works1000's 256-key tasks), go given after
# issuing S (pp0), after S completed (pp1), after issuing tile 0's P V (pp2); kernel variants
# through DCP_CUDA_KERNELS against main's embedded kernels. Checks first (full and causal 256-token
# documents mixed with others, f64 CPU reference), then forward TFLOP/s alternated x3.
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-260}
R=/tmp/s31c9; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c9.tgz" --exclude=s31c9/dcp -C /tmp s31c9; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s31/dcp6.gz > $D && chmod +x $D
python3 -c "
import json
L = [256] * 60 + [128, 200, 256, 300, 512, 256, 1000, 256, 129]
json.dump({'batches': [[256] * 300, L]}, open('$R/b.json', 'w'))"
venv() { case $1 in base) echo "";; *) echo "DCP_CUDA_KERNELS=.s31/v/$1";; esac; }
for v in pp0 pp1 pp2; do
  echo "== check $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 60 $D bench-gpu --batches $R/b.json --masks full,causal --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 55 --json $R/chk_$v.jsonl > $R/chk_$v.log 2>&1; echo "rc=$?"
  python3 -c "
import json
r = [json.loads(l) for l in open('$R/chk_$v.jsonl') if l.strip()]
c = [x.get('check') or {} for x in r]
print('$v: %d/%d pass, worst o %.1e lse %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('lse', 0) or 0 for x in c] + [0])))" 2>&1 | tee -a $R/summ.txt
done
snap
SH=works1000,blocks256,onework,packed
for r in 1 2 3; do for v in base pp0 pp1 pp2; do if left 25; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $D kernel-bench --shapes $SH --repeats 3 --json "$R/kb_${v}_$r.jsonl" > "$R/kb_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    v = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") == "bench": t[x["shape"]][v].append(x["fwd_tflops_per_gpu"])
vs = ["base", "pp0", "pp1", "pp2"]
print("forward TFLOP/s (÷ base)\n| shape | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
for s, d in t.items():
    b = statistics.mean(d["base"]) if d.get("base") else float("nan")
    cells = [(" ".join("%.0f" % y for y in d[v]) + (f" ({statistics.mean(d[v]) / b:.3f})" if v != "base" else "")) if d.get(v) else "-" for v in vs]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
