#!/usr/bin/env bash
# s30 call 1 (1x H200): LIMIT=420 timeout 440 bash .s30/run1.sh
# The fourth forward build: the half-tile kernel with the short-task kernel's Q release
# (FWD_LATEREL 3) for launches with half tiles whose tasks average <= DCP_CUDA_FWD_HALF_SHORT
# (default 5) tiles. Checks with it forced on every half launch (=1000000), a random selftest, both
# sanitizers; then kernel-bench alternated x3: base (DCP_CUDA_FWD_HALF_SHORT=0, main before) against
# hs (the default); then PyTorch flash / cuDNN on the same shapes.
set -u
OUTD=${OUT:-/tmp/s30_out}
LIMIT=${LIMIT:-400}
R=/tmp/s30c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s30c1.tgz" --exclude=s30c1/dcp -C /tmp s30c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s30/dcp1.gz > $D && chmod +x $D
summ() {
  timeout 10 python3 - "$1" "$2" <<'PY'
import json, sys
try:
    r = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
except (OSError, ValueError):
    r = []
c = [x.get('check') or {} for x in r]
w = lambda k: max([x.get(k, 0) or 0 for x in c] + [0])
ok = len(r) > 0 and all(x.get('pass') for x in c)
print('%s: %d/%d pass, worst o %.1e lse %.1e dq %.1e dkv %.1e%s' % (sys.argv[2], sum(1 for x in c if x.get('pass')), len(r), w('o'), w('lse'), w('dq'), w('dkv'), '' if ok else ' FAIL'))
PY
}
python3 -c "
import json
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63, 700, 1000, 1023, 1025]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 14 + [128] * 14 + [512] * 4 + [1024] * 2 + [250, 130, 64, 1]]}, open('$R/san.json', 'w'))"
venv() {
  case $1 in
    base) echo "DCP_CUDA_FWD_HALF_SHORT=0";;
    hs) echo "";;
    hsF) echo "DCP_CUDA_FWD_HALF_SHORT=1000000";;
  esac
}
st() {
  echo "== selftest $1 t=$((SECONDS - T0))"
  env $(venv $1) DCP_CUDA_FAMILY=sm90 timeout 70 $D bench-gpu --selftest 10 \
    --planners local,zigzag,dcp --timeout-s 67 --json "$R/st_$1.jsonl" > "$R/st_$1.log" 2>&1; echo "rc=$?"
  summ "$R/st_$1.jsonl" "selftest $1" | tee -a "$R/summ.txt"
}
chk() {  # variant tag batches masks dtype timeout
  local v=$1 tag=$2 b=$3 m=$4 dt=$5 to=$6
  echo "== check $v $tag $m $dt t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 --dtype $dt \
    --masks $m --planners local --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v ($m, $dt)" | tee -a "$R/summ.txt"
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
san() {  # tool variant
  echo "== $1 $2 t=$((SECONDS - T0))"
  env $(venv $2) timeout -k 2 50 $CS --tool $1 --print-limit 5 $D bench-gpu \
    --batches "$R/san.json" --masks causal --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 50 \
    > "$R/san_$1_$2.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_$1_$2.txt" | head -4 | sed "s/^/$2 $1: /" | tee -a "$R/summ.txt"
}
chk hsF short short causal,sliding-window:100,causal-blockwise:64:2 bf16 50
chk hsF pairs san causal f16 30
chk hsF pairsb san causal,lambda:16:200 bf16 30
snap
st hsF
snap
SH=causal@128x2000,causal@256x1000,causal@512x500,causal@1024x250,causal@2048x125,packed,blockwise,causal32k,lambda,sharedq
i=0
kb() {
  i=$((i + 1))
  echo "== kb $1 $i t=$((SECONDS - T0))"
  env $(venv $1) timeout ${2:-60} $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$1_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
}
for v in base hs base hs base hs; do if left 70; then kb $v 70; fi; done
snap
for t in memcheck racecheck; do if left 60; then san $t hsF; fi; done
snap
if left 50; then timeout 60 python3 bench/gpu/torch_ref.py "$R/kb_base_1.jsonl" "$R/torch.jsonl" > "$R/torch.log" 2>&1; echo "torch rc=$?"; fi
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections, os
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []; key = {}
for f in sorted(glob.glob(R + "/kb_*_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l)
        if r.get("kind", "bench") != "bench": continue
        v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
        if r["shape"] not in order: order.append(r["shape"])
        key[r["shape"]] = (tuple(r.get("lens", [])), r.get("mask", "").split(":")[0])
tr = {}
if os.path.exists(R + "/torch.jsonl"):
    for l in open(R + "/torch.jsonl"):
        r = json.loads(l); tr[(tuple(r.get("lens", [])), r.get("mask", "").split(":")[0])] = r
print("D 128: forward TFLOP/s per round (mean ÷ base); bwd means; PyTorch flash / cuDNN fwd / bwd")
print("| shape | base | hs | bwd base / hs | flash | cuDNN |")
print("|---|---|---|---|---|---|")
for s in order:
    b = statistics.mean(a for a, _ in v[s]["base"])
    t = tr.get(key[s], {})
    g = lambda p: f"{t[p + '_fwd_tflops']:.0f} / {t[p + '_bwd_tflops']:.0f}" if t.get(p + "_fwd_tflops") else "-"
    print(f"| {s} | " + " | ".join(" ".join(f"{a:.0f}" for a, _ in v[s][x]) + f" ({statistics.mean(a for a, _ in v[s][x]) / b:.3f})" for x in ("base", "hs") if v[s][x])
          + f" | {statistics.mean(x for _, x in v[s]['base']):.0f} / {statistics.mean(x for _, x in v[s]['hs']):.0f} | {g('flash')} | {g('cudnn')} |")
PY
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
