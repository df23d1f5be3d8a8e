#!/usr/bin/env bash
# s23 call 7 (1x H200): timeout 400 bash .s23/run7.sh (carry [".s23"]).
# SM clock and board power while each forward runs: nvidia-smi sampled every 50 ms, each
# workload sustained ~2 s; the prototype also reads its own SM clock (clock64 over %globaltimer).
set -u
OUTD=${OUT:-/tmp/s23_out}
R=/tmp/s23c7; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
declare -A DEF=([n2]="-DNC=2" [e2]="-DNC=2 -DW3_EARLY=2" [n3]="-DNC=3" [mem]="-DNC=2 -DW3_AB_NOS=1 -DW3_AB_NOPV=1 -DW3_AB_NOEXP=1" [noexp]="-DNC=2 -DW3_AB_NOEXP=1")
VARS="n2 e2 n3 mem noexp"
for v in $VARS; do
  timeout 120 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I crates/dcp-cuda/kernels \
    -I bench/proto/w3 ${DEF[$v]} -o $R/w3_$v bench/proto/w3/w3.cu -lcuda > $R/build_$v.log 2>&1 || { echo "build $v failed"; tail -5 $R/build_$v.log; }
done
nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw,temperature.gpu,clocks.mem --format=csv,noheader -lms 50 > $R/smi.csv &
SMI=$!
mark() { echo "$1 $(date +%s.%N)" >> $R/marks.txt; }
sleep 1
for r in 1 2; do
  for v in $VARS; do
    mark "start w3_$v"
    W3_SUSTAIN_MS=2000 timeout 60 $R/w3_$v 1000 20 | sed "s/^{/{\"variant\": \"$v\", /" >> $R/w3.jsonl
    mark "end w3_$v"
    sleep 0.5
  done
  for sh in works1000 onework; do
    mark "start dcp_$sh"
    timeout 90 .s23/dcp_main kernel-bench --shapes $sh --head-dim 128 --warmup 20 --repeats 800 --json $R/kb.jsonl 2>&1 | grep -E '^[a-z0-9]+ +fwd|rror|panic'
    mark "end dcp_$sh"
    sleep 0.5
  done
done
kill $SMI
python3 - $R <<'PY' | tee $R/table.txt
import sys, json, datetime, statistics
R = sys.argv[1]
marks = [l.split() for l in open(R + "/marks.txt")]
smi = []
for l in open(R + "/smi.csv"):
    p = [x.strip() for x in l.split(",")]
    try:
        t = datetime.datetime.strptime(p[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        smi.append((t, float(p[1].split()[0]), float(p[2].split()[0])))
    except Exception:
        pass
win = {}
for i in range(0, len(marks), 2):
    name = marks[i][1]; a = float(marks[i][2]); b = float(marks[i + 1][2])
    s = [x for x in smi if a + 0.3 < x[0] < b - 0.1]
    win.setdefault(name, []).extend(s)
print("workload      samples  SM MHz (median)  power W (median)")
for k, s in win.items():
    if s:
        print(f"{k:<14}{len(s):>6}  {statistics.median(x[1] for x in s):>10.0f}  {statistics.median(x[2] for x in s):>10.0f}")
for l in open(R + "/w3.jsonl"):
    r = json.loads(l)
    print(r["variant"], r["fwd_ms"], r["tflops"], "in-kernel MHz", r["sm_mhz"], "pass", r["pass"])
PY
rm -f $R/w3_*[a-z0-9]
tar czf "$OUTD/s23c7.tgz" -C /tmp s23c7
echo "done t=$((SECONDS - T0))"
