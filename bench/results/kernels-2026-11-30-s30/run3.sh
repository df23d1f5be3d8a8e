#!/usr/bin/env bash
# s30 call 3 (1x H200): LIMIT=440 timeout 460 bash .s30/run3.sh
# L2 windows, second form: default budget L2 / 8 for both directions, and the works of the last
# 10 % of a launch's tiles as one final window run longest first (DCP_CUDA_L2_TAIL). Variants
# alternated x2: base (both budgets 0 = main before), def, t0 (tail 0), w4 (budgets 15 MiB, about
# L2 / 4); then D 64 base against def; checks at D 128 and D 64 under the default.
set -u
OUTD=${OUT:-/tmp/s30_out}
LIMIT=${LIMIT:-400}
R=/tmp/s30c3; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s30c3.tgz" --exclude=s30c3/dcp -C /tmp s30c3; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
timeout 30 python3 -c "import torch; p = torch.cuda.get_device_properties(0); print('L2 bytes', p.L2_cache_size)" | tee -a "$R/card.txt"
D=$R/dcp; gunzip -c .s30/dcp3.gz > $D && chmod +x $D
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
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63, 700, 1000, 1023, 1025, 2048, 3000]
json.dump({'batches': [[L[i % len(L)] for i in range(120)]]}, open('$R/short.json', 'w'))"
venv() {
  case $1 in
    base) echo "DCP_CUDA_FWD_L2_MB=0 DCP_CUDA_BWD_L2_MB=0";;
    def) echo "";;
    t0) echo "DCP_CUDA_L2_TAIL=0";;
    w4) echo "DCP_CUDA_FWD_L2_MB=15 DCP_CUDA_BWD_L2_MB=15";;
  esac
}
chk() {  # variant tag batches masks dtype timeout
  local v=$1 tag=$2 b=$3 m=$4 dt=$5 to=$6
  echo "== check $v $tag $m $dt t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 --dtype $dt \
    --masks $m --planners local,dcp --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v ($m, $dt)" | tee -a "$R/summ.txt"
}
st() {
  echo "== selftest $1 t=$((SECONDS - T0))"
  env $(venv $1) DCP_CUDA_FAMILY=sm90 timeout 70 $D bench-gpu --selftest 10 \
    --planners local,zigzag,dcp --timeout-s 67 --json "$R/st_$1.jsonl" > "$R/st_$1.log" 2>&1; echo "rc=$?"
  summ "$R/st_$1.jsonl" "selftest $1" | tee -a "$R/summ.txt"
}
chk def short short causal,lambda:16:300 bf16 60
snap
st def
snap
SH=causal@512x500,causal@1024x250,causal@2048x125,causal@4096x62,causal@8192x16,packed,full@1024x250,blockwise,causal32k,works1000
i=0
kb() {
  i=$((i + 1))
  echo "== kb $1 $i t=$((SECONDS - T0))"
  env $(venv $1) timeout ${2:-60} $D kernel-bench --shapes "$SH" --head-dim ${HD:-128} --repeats 3 \
    --json "$R/kb${HD:-}_$1_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
}
for v in base def t0 w4 base def t0 w4; do if left 60; then kb $v 60; fi; done
snap
SH=causal@1024x250,causal@2048x125,causal@4096x62,packed
for v in base def base def; do if left 40; then HD=64 kb $v 40; fi; done
snap
python3 -c "
import json
L = [1000, 2048, 700, 3000, 1500, 129, 4000]
json.dump({'batches': [[L[i % len(L)] for i in range(40)]]}, open('$R/mid.json', 'w'))"
if left 40; then
  echo "== check D64 t=$((SECONDS - T0))"
  timeout 40 $D bench-gpu --batches "$R/mid.json" --head-dim 64 --dtype bf16 --masks causal --planners local \
    --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --timeout-s 37 --json "$R/mid64.jsonl" > "$R/mid64.log" 2>&1; echo "rc=$?"
  summ "$R/mid64.jsonl" "mid D64 def (causal)" | tee -a "$R/summ.txt"
fi
snap
if left 50; then timeout 60 python3 bench/gpu/torch_ref.py "$R/kb_base_1.jsonl" "$R/torch.jsonl" > "$R/torch.log" 2>&1; echo "torch rc=$?"; fi
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, statistics, collections, os
R = sys.argv[1]
VS = ("base", "def", "t0", "w4")
v = collections.defaultdict(lambda: collections.defaultdict(list)); order = []; key = {}
for f in sorted(glob.glob(R + "/kb*_*_*.jsonl")):
    var = f.split("/kb")[1].split("_")[1]
    d64 = f.split("/kb")[1].startswith("64")
    for l in open(f):
        r = json.loads(l)
        if r.get("kind", "bench") != "bench": continue
        if d64: r["shape"] = "D64 " + r["shape"]
        v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
        if r["shape"] not in order: order.append(r["shape"])
        key[r["shape"]] = (tuple(r.get("lens", [])), r.get("mask", "").split(":")[0], r.get("head_dim"))
tr = {}
if os.path.exists(R + "/torch.jsonl"):
    for l in open(R + "/torch.jsonl"):
        r = json.loads(l); tr[(tuple(r.get("lens", [])), r.get("mask", "").split(":")[0], r.get("head_dim", 128))] = r
print("D 128: fwd / bwd TFLOP/s, mean of rounds (bwd ÷ base); PyTorch flash / cuDNN fwd / bwd")
print("| shape | " + " | ".join(VS) + " | flash | cuDNN |")
print("|---|" + "---|" * (len(VS) + 2))
for s in order:
    m = {x: (statistics.mean(a for a, _ in v[s][x]), statistics.mean(b for _, b in v[s][x])) for x in VS if v[s][x]}
    t = tr.get(key[s], {})
    g = lambda p: f"{t[p + '_fwd_tflops']:.0f} / {t[p + '_bwd_tflops']:.0f}" if t.get(p + "_fwd_tflops") else "-"
    print(f"| {s} | " + " | ".join(f"{a:.0f} / {b:.0f} ({a / m['base'][0]:.3f} / {b / m['base'][1]:.3f})" for a, b in m.values())
          + f" | {g('flash')} | {g('cudnn')} |")
print("bwd per round:", {s: {x: [round(b) for _, b in v[s][x]] for x in VS} for s in order})
PY
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
