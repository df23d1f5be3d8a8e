#!/usr/bin/env bash
# s29 call 8 (1x H200): LIMIT=330 timeout 345 bash .s29/run8.sh.
# The sm90 forward with FWD_NS K/V stages and FWD_NQ Q buffers (DCP_CUDA_FWD_STAGES; this build,
# .s29/dcp4.gz, defaults to 4:4 at D 64 and 2:2 at D 128): checks at D 64 under 4:4, a random
# selftest (D 64 and 128 cases), memcheck and racecheck at D 64, then D 64 kernel-bench alternated
# x2 over 2:2 (main's layout), 3:3, 4:4 and 4:2.
set -u
OUTD=${OUT:-/tmp/s29_out}
LIMIT=${LIMIT:-330}
R=/tmp/s29c8; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s29c8.tgz" --exclude=s29c8/dcp -C /tmp s29c8; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s29/dcp4.gz > $D && chmod +x $D
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
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 14 + [128] * 14 + [250, 130, 64, 1]]}, open('$R/san.json', 'w'))"
venv() {
  local e=""
  case ${1%S} in
    s22) e="DCP_CUDA_FWD_STAGES=2:2";;
    s33) e="DCP_CUDA_FWD_STAGES=3:3";;
    s44) e="";;
    s42) e="DCP_CUDA_FWD_STAGES=4:2";;
  esac
  case $1 in *S) e="$e DCP_CUDA_FWD_SHORT=1000000";; esac
  echo $e
}
st() {
  echo "== selftest $1 t=$((SECONDS - T0))"
  env $(venv $1) DCP_CUDA_FAMILY=sm90 timeout 60 $D bench-gpu --selftest 10 \
    --planners local,zigzag,dcp --timeout-s 57 --json "$R/st_$1.jsonl" > "$R/st_$1.log" 2>&1; echo "rc=$?"
  summ "$R/st_$1.jsonl" "selftest $1" | tee -a "$R/summ.txt"
}
chk() {  # variant tag batches masks dtype timeout
  local v=$1 tag=$2 b=$3 m=$4 dt=$5 to=$6
  echo "== check $v $tag $m $dt t=$((SECONDS - T0))"
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 64 --dtype $dt \
    --masks $m --planners local --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v ($m, $dt)" | tee -a "$R/summ.txt"
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
san() {  # tool variant
  echo "== $1 $2 t=$((SECONDS - T0))"
  env $(venv $2) timeout -k 2 40 $CS --tool $1 --print-limit 5 $D bench-gpu \
    --batches "$R/san.json" --masks full,causal --head-dim 64 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
    > "$R/san_$1_$2.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_$1_$2.txt" | head -4 | sed "s/^/$2 $1: /" | tee -a "$R/summ.txt"
}
SH=works1000,onework,blocks256,packed
i=0
kb() {
  i=$((i + 1))
  echo "== kb $1 $i t=$((SECONDS - T0))"
  env $(venv $1) timeout ${2:-40} $D kernel-bench --shapes "$SH" --head-dim 64 --repeats 3 \
    --json "$R/kb_$1_$i.jsonl" 2>&1 | grep -E '^[a-z0-9@x]+ +fwd|rror|panic'
}
chk s44 short short full,sliding-window:100 bf16 45
chk s44 pairs san full,causal f16 30
snap
st s44
snap
SH=full@128x2000,causal@128x2000,works1000,causal@256x1000,full@512x500,causal@512x500,packed,onework,causal32k,lambda
for v in s22 s33 s44 s42 s22 s33 s44 s42; do if left 30; then kb $v 60; fi; done
snap
for t in memcheck racecheck; do if left 25; then san $t s44; fi; done
python3 - "$R" <<'PY' | tee "$R/table.txt"
import glob, json, collections, statistics, sys
R = sys.argv[1]
v = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    var = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        r = json.loads(l); v[r["shape"]][var].append((r["fwd_tflops_per_gpu"], r["bwd_tflops_per_gpu"]))
for sh, d in v.items():
    m = {k: (statistics.mean(a for a, _ in x), statistics.mean(b for _, b in x)) for k, x in d.items()}
    line = "  ".join(f"{k} {a:.1f}/{b:.1f} (n={len(d[k])})" for k, (a, b) in m.items())
    for x in ("s33", "s44", "s42"):
        if x in m and "s22" in m:
            line += f"  {x}/s22 fwd {m[x][0] / m['s22'][0]:.3f}"
    print(f"{sh:10} {line}")
PY
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
