#!/usr/bin/env bash
# s28 call 1 (1x H200): LIMIT=280 timeout 300 bash .s28/run1.sh
# (a) prototype W3_ONES A/B (row sums by wgmma against ones) with stamps;
# (b) main with fwd_one_ones.diff applied (.s28/dcp_ones.gz): checks with the short kernel forced
#     and DCP_CUDA_FWD_SHORT_ONE=2, a split-K 4096-token check with the short kernel forced,
#     selftest, kernel-bench alternated ONE=1 (main) against ONE=2 (ones), sanitizers.
set -u
OUTD=${OUT:-/tmp/s28_out}
LIMIT=${LIMIT:-280}
R=/tmp/s28c1; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s28c1.tgz" -C /tmp s28c1; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s28/dcp_ones.gz > $D && chmod +x $D
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
json.dump({'batches': [[256] * 28 + [250, 130]]}, open('$R/san.json', 'w'))
json.dump({'batches': [[4096], [4096, 256, 256, 1000]]}, open('$R/big.json', 'w'))"
venv() {
  local e=""
  case ${1%S} in
    main) e="DCP_CUDA_FWD_SHORT_ONE=1";;
    ones) e="DCP_CUDA_FWD_SHORT_ONE=2";;
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
  env $(venv $v) timeout $to $D bench-gpu --batches "$R/$b.json" --head-dim 128 --dtype $dt \
    --masks $m --planners local --check --cpu-check-tokens 100000 \
    --warmup 0 --repeats 1 --timeout-s $((to - 3)) --json "$R/${tag}_$v.jsonl" > "$R/${tag}_$v.log" 2>&1; echo "rc=$?"
  summ "$R/${tag}_$v.jsonl" "$tag $v ($m, $dt)" | tee -a "$R/summ.txt"
}
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
san() {  # tool variant
  echo "== $1 $2 t=$((SECONDS - T0))"
  env $(venv $2) timeout -k 2 40 $CS --tool $1 --print-limit 5 $D bench-gpu \
    --batches "$R/san.json" --masks full --head-dim 128 --planners local --warmup 0 --repeats 1 --timeout-s 40 \
    > "$R/san_$1_$2.txt" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|hazard" "$R/san_$1_$2.txt" | head -4 | sed "s/^/$2 $1: /" | tee -a "$R/summ.txt"
}
SH=works1000,blocks256,packed
i=0
kb() {
  i=$((i + 1))
  echo "== kb $1 $i t=$((SECONDS - T0))"
  env $(venv $1) timeout ${2:-40} $D kernel-bench --shapes "$SH" --head-dim 128 --repeats 3 \
    --json "$R/kb_$1_$i.jsonl" 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
}
# (a) prototype
O='-DNC=2 -DW3_ONE=1 -DW3_KVS=1 -DW3_LATEREL=1'
echo "== proto t=$((SECONDS - T0))"
timeout 150 bash bench/proto/w3/ab.sh $R/proto 3 "kvl=$O" "ones=$O -DW3_ONES=1" "st_kvl=$O -DW3_STAMP=1" "st_ones=$O -DW3_ONES=1 -DW3_STAMP=1" 2>&1 | tail -40
snap
# (b) main
chk onesS short short full,sliding-window:100 bf16 45
chk onesS pairs san full f16 30
chk onesS pairsb san full bf16 30
chk mainS big big full,causal bf16 60
snap
if grep -q "onesS.*FAIL" "$R/summ.txt"; then echo "ones fails its checks: no timing"; else
  for v in main ones main ones main ones; do if left 40; then kb $v; fi; done
fi
snap
if left 60; then st onesS; fi
for t in memcheck racecheck; do if left 30; then san $t onesS; fi; done
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
    if "main" in m and "ones" in m:
        line += f"  ones/main fwd {m['ones'][0] / m['main'][0]:.3f}"
    print(f"{sh:10} {line}")
PY
cat "$R/proto/table.txt" 2>/dev/null
cat "$R/summ.txt"
echo "== done t=$((SECONDS - T0))"
snap
