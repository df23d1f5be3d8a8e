#!/usr/bin/env bash
# s30 call 5 (2x H200): LIMIT=400 timeout 420 bash .s30/run5.sh
# The L2 windows with long tasks first (forward: L2 / 8 with a final window of 10 % of the tiles; backward:
# L2 / 8, no final window), .s30/dcp5.gz. On 2 GPUs: the random selftest plus the corpus; the
# index-0 matrix batches (longalign and ldc, scales 0.5-4) under causal, lambda and
# causal-blockwise with dcp, zigzag and local, checked once under the default, then timed
# alternated x2 against base (both budgets 0); both sanitizers on a multi-document batch; on one
# GPU kernel-bench base against def x2.
set -u
OUTD=${OUT:-/tmp/s30_out}
LIMIT=${LIMIT:-520}
R=/tmp/s30c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s30c5.tgz" --exclude=s30c5/dcp -C /tmp s30c5; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s30/dcp5.gz > $D && chmod +x $D
python3 - > "$R/b.json" <<'PY'
import json
f = json.load(open("bench/gpu/x4_batches.json"))
keep = [i for i, l in enumerate(f["labels"]) if l["index"] < 1]
json.dump({"batches": [f["batches"][i] for i in keep], "labels": [f["labels"][i] for i in keep]}, open("/dev/stdout", "w"))
PY
venv() {
  case $1 in
    base) echo "DCP_CUDA_FWD_L2_MB=0 DCP_CUDA_BWD_L2_MB=0";;
    def) echo "";;
  esac
}
echo "== selftest t=$((SECONDS - T0))"
timeout 150 $D launch -n 2 -- bench-gpu --selftest 8 --planners local,zigzag,dcp,ulysses \
  --timeout-s 140 --json "$R/st.jsonl" > "$R/st.log" 2>&1; echo "rc=$?"
snap
M=causal,lambda,causal-blockwise
echo "== matrix checked (def) t=$((SECONDS - T0))"
timeout 150 $D launch -n 2 -- bench-gpu --batches "$R/b.json" --masks $M --planners dcp,zigzag,local --check \
  --warmup 1 --repeats 3 --timeout-s 140 --json "$R/mx_def_0.jsonl" > "$R/mx_def_0.log" 2>&1; echo "rc=$?"
snap
for r in 1 2; do
  for v in base def; do
    if left 150; then
      echo "== matrix $v $r t=$((SECONDS - T0))"
      env $(venv $v) timeout 120 $D launch -n 2 -- bench-gpu --batches "$R/b.json" --masks $M --planners dcp,zigzag,local \
        --warmup 1 --repeats 3 --timeout-s 110 --json "$R/mx_${v}_$r.jsonl" > "$R/mx_${v}_$r.log" 2>&1; echo "rc=$?"
    fi
  done
done
snap
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
json.dump({'batches': [[1024] * 6 + [2048] * 3 + [700, 300, 129, 1500]]}, open('$R/san.json', 'w'))"
for t in memcheck racecheck; do
  if left 80; then
    echo "== $t t=$((SECONDS - T0))"
    DCP_CUDA_FWD_L2_MB=1 DCP_CUDA_BWD_L2_MB=1 timeout -k 2 60 $CS --tool $t --print-limit 5 $D bench-gpu \
      --batches "$R/san.json" --masks causal --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 55 \
      > "$R/san_$t.txt" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_$t.txt" | head -4 | sed "s/^/$t: /" | tee -a "$R/summ.txt"
  fi
done
snap
SH=causal@1024x250,causal@2048x125,causal@4096x62,causal@8192x16,packed,causal32k,works1000,full@1024x250
i=0
for v in base def base def; do
  if left 50; then
    i=$((i + 1)); echo "== kb $v $i t=$((SECONDS - T0))"
    env $(venv $v) timeout 50 $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
      --json "$R/kb_${v}_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
  fi
done
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
def rows(f):
    try:
        return [json.loads(l) for l in open(f) if l.strip()]
    except OSError:
        return []
st = rows(R + "/st.jsonl")
c = [x.get("check") or {} for x in st]
print(f"selftest + corpus on 2 GPUs: {sum(1 for x in c if x.get('pass'))} / {len(c)} pass"
      + (f", worst o {max(x.get('o', 0) for x in c):.1e} dq {max(x.get('dq', 0) for x in c):.1e}" if c else ""))
ck = [x.get("check") or {} for x in rows(R + "/mx_def_0.jsonl") if x.get("kind") == "bench"]
print(f"matrix checks (def): {sum(1 for x in ck if x.get('pass'))} / {len(ck)} pass")
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(R + "/mx_*_[12].jsonl"):
    v = f.split("/mx_")[1].split("_")[0]
    for x in rows(f):
        if x.get("kind") == "bench":
            t[(x["mask"], x["batch"], x["planner"])][v].append((x["fwd_ms"], x["bwd_ms"]))
print("2 GPUs, ms fwd / bwd (max over ranks, median of 3, mean of 2 alternated rounds); def ÷ base")
print("| mask | batch | planner | base | def | def ÷ base |")
print("|---|---|---|---|---|---|")
ratios = collections.defaultdict(list)
for (m, b, p), d in sorted(t.items()):
    if not d.get("base") or not d.get("def"): continue
    mb = [statistics.mean(x[i] for x in d["base"]) for i in (0, 1)]
    md = [statistics.mean(x[i] for x in d["def"]) for i in (0, 1)]
    ratios[(m, p)].append((md[0] / mb[0], md[1] / mb[1]))
    print(f"| {m} | {b} | {p} | {mb[0]:.2f} / {mb[1]:.2f} | {md[0]:.2f} / {md[1]:.2f} | {md[0] / mb[0]:.3f} / {md[1] / mb[1]:.3f} |")
print("geomean def ÷ base per mask and planner (fwd / bwd), range:")
for k, rs in sorted(ratios.items()):
    g = [statistics.geometric_mean(r[i] for r in rs) for i in (0, 1)]
    print(f"  {k[0]:17} {k[1]:7} {g[0]:.3f} / {g[1]:.3f}   fwd {min(r[0] for r in rs):.3f}-{max(r[0] for r in rs):.3f}  bwd {min(r[1] for r in rs):.3f}-{max(r[1] for r in rs):.3f}")
k = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(R + "/kb_*.jsonl"):
    v = f.split("/kb_")[1].split("_")[0]
    for x in rows(f):
        k[x["shape"]][v].append((x["fwd_tflops_per_gpu"], x["bwd_tflops_per_gpu"]))
print("1 GPU kernel-bench TFLOP/s fwd / bwd, base -> def:")
for s, d in k.items():
    if d.get("base") and d.get("def"):
        b = [statistics.mean(x[i] for x in d["base"]) for i in (0, 1)]
        e = [statistics.mean(x[i] for x in d["def"]) for i in (0, 1)]
        print(f"  {s:16} {b[0]:.0f} / {b[1]:.0f} -> {e[0]:.0f} / {e[1]:.0f}  ({e[0] / b[0]:.3f} / {e[1] / b[1]:.3f})")
PY
cat "$R/summ.txt" 2>/dev/null
echo "== done t=$((SECONDS - T0))"
snap
