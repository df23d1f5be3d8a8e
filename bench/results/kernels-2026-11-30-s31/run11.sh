#!/usr/bin/env bash
# s31 call 11 (1x H200): LIMIT=230 timeout 245 bash .s31/run11.sh
# FWD_EXPPOLY: call 10's profile puts ~3 400 of works1000's ~7 300 clk per task in the softmax,
# whose 32 768 ex2 per task need 2 048 clk of the MUFU pipe (16 / clk / SM) alone. ep1 / ep2 take
# 25 % / 50 % of the exponentials from a degree-4 polynomial on the FMA pipe. Checks (D 128 full,
# causal, lambda; D 64 causal; selftest), then forward TFLOP/s alternated x2 against base.
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-230}
R=/tmp/s31c11; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c11.tgz" --exclude=s31c11/dcp -C /tmp s31c11; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
D=$R/dcp; gunzip -c .s31/dcp6.gz > $D && chmod +x $D
python3 -c "
import json
L = [256] * 40 + [1, 17, 64, 65, 128, 129, 200, 255, 256, 300, 511, 512, 700, 1000, 1025, 2048]
json.dump({'batches': [L]}, open('$R/b.json', 'w'))"
venv() { case $1 in base) echo "";; *) echo "DCP_CUDA_KERNELS=.s31/v/$1";; esac; }
summ() { python3 -c "
import json
r = [json.loads(l) for l in open('$1') if l.strip()]
c = [x.get('check') or {} for x in r]
print('$2: %d/%d pass, worst o %.1e lse %.1e dq %.1e' % (sum(1 for x in c if x.get('pass')), len(r), max([x.get('o', 0) or 0 for x in c] + [0]), max([x.get('lse', 0) or 0 for x in c] + [0]), max([x.get('dq', 0) or 0 for x in c] + [0])))" 2>&1 | tee -a $R/summ.txt; }
for v in ep1 ep2; do
  echo "== check $v t=$((SECONDS - T0))"
  env $(venv $v) timeout 45 $D bench-gpu --batches $R/b.json --masks full,causal,lambda:16:200 --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 40 --json $R/chk_$v.jsonl > $R/chk_$v.log 2>&1; echo "rc=$?"
  summ $R/chk_$v.jsonl "$v D128"
  env $(venv $v) timeout 30 $D bench-gpu --batches $R/b.json --masks causal --head-dim 64 --planners local --check \
    --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 25 --json $R/chk64_$v.jsonl > $R/chk64_$v.log 2>&1; echo "rc=$?"
  summ $R/chk64_$v.jsonl "$v D64"
done
echo "== selftest ep2 t=$((SECONDS - T0))"
env $(venv ep2) DCP_CUDA_FAMILY=sm90 timeout 40 $D bench-gpu --selftest 6 --planners local,dcp --timeout-s 37 --json $R/st_ep2.jsonl > $R/st_ep2.log 2>&1; echo "rc=$?"
summ $R/st_ep2.jsonl "selftest ep2"
snap
SH=works1000,onework,causal32k,packed,causal@512x500,blockwise,lambda
for r in 1 2; do for v in base ep1 ep2; do if left 25; then
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
vs = ["base", "ep1", "ep2"]
print("forward TFLOP/s (÷ base)\n| shape | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
for s, d in t.items():
    b = statistics.mean(d["base"]) if d.get("base") else float("nan")
    cells = [(" ".join("%.0f" % y for y in d[v]) + (f" ({statistics.mean(d[v]) / b:.3f})" if v != "base" else "")) if d.get(v) else "-" for v in vs]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
echo "== done t=$((SECONDS - T0))"
snap
