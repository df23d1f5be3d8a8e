#!/usr/bin/env bash
# Builds prototype variants in parallel and times them alternated, on the GPU machine.
#   bash bench/proto/w3/ab.sh OUTDIR ROUNDS NAME=DEFINES [NAME=DEFINES ...]
# DEFINES are space-separated -D flags, e.g. 'one2kvl=-DNC=2 -DW3_ONE=1 -DW3_KVS=1 -DW3_LATEREL=1'.
# A variant whose defines include -DW3_STAMP=1 also dumps its clock stamps (OUTDIR/NAME_ROUND.bin,
# summarised by stamps.py into OUTDIR/stamps.txt). Writes OUTDIR/w3.jsonl (one line per run),
# OUTDIR/table.txt (TFLOP/s per round and mean, relative to the first variant) and the build logs.
set -u
OUTD=$1; ROUNDS=$2; shift 2
mkdir -p "$OUTD"
declare -A DEF
VARS=""
for a in "$@"; do DEF[${a%%=*}]="${a#*=}"; VARS="$VARS ${a%%=*}"; done
PIDS=""
for v in $VARS; do
  ( timeout 150 nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -I crates/dcp-cuda/kernels \
      -I bench/proto/w3 ${DEF[$v]} -o "$OUTD/w3_$v" bench/proto/w3/w3.cu -lcuda > "$OUTD/build_$v.log" 2>&1 \
    || { echo "build $v failed"; tail -5 "$OUTD/build_$v.log"; } ) &
  PIDS="$PIDS $!"
done
# (Not a bare `wait`: in a script whose output goes through a process substitution it would also
# wait for that, forever.)
wait $PIDS
for r in $(seq 1 "$ROUNDS"); do
  for v in $VARS; do
    [ -x "$OUTD/w3_$v" ] || continue
    W3_STAMP_OUT="$OUTD/${v}_$r.bin" timeout 60 "$OUTD/w3_$v" 1000 20 \
      | sed "s/^{/{\"variant\": \"$v\", \"round\": $r, /" >> "$OUTD/w3.jsonl"
    sleep 0.5
  done
done
python3 - "$OUTD" $VARS <<'PY' | tee "$OUTD/table.txt"
import sys, json, collections, statistics
R, order = sys.argv[1], sys.argv[2:]
v = collections.defaultdict(list)
for l in open(R + "/w3.jsonl"):
    r = json.loads(l); v[r["variant"]].append(r)
base = statistics.mean(r["tflops"] for r in v[order[0]]) if v[order[0]] else None
for k in order:
    x = v[k]
    if not x:
        print(f"{k:12} (no runs)"); continue
    m = statistics.mean(r["tflops"] for r in x)
    rel = f"{m / base:.3f}" if base else "-"
    print(f"{k:12} TF {' '.join('%.1f' % r['tflops'] for r in x)}  mean {m:.1f}  vs {order[0]} {rel}  "
          f"MHz {' '.join('%.0f' % r.get('sm_mhz', 0) for r in x)}  pass {[r.get('pass') for r in x]}")
PY
for v in $VARS; do
  case "${DEF[$v]}" in *W3_STAMP=1*)
    nc=$(echo "${DEF[$v]}" | sed -n 's/.*-DNC=\([0-9]\).*/\1/p')
    python3 bench/proto/w3/stamps.py "${nc:-2}" "$OUTD/${v}"_*.bin | tee -a "$OUTD/stamps.txt"
    gzip -f "$OUTD/${v}"_*.bin;;
  esac
done
rm -f "$OUTD"/w3_*[a-z0-9]
