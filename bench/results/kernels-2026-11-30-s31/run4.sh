#!/usr/bin/env bash
# s31 call 4 (1x H200): LIMIT=300 timeout 320 bash .s31/run4.sh
# The backward of one long causal sequence: 606 TFLOP/s at 32K, 537-544 from 64K on (call 3;
# cuDNN flat at ~530). (a) ncu of the backward kernel at 32K and 64K: L2 hit rate, DRAM bytes;
# (b) list pieces per CTA round (DCP_CUDA_BWD_WAVES 4 = main, 8, 16) and list order, alternated x2.
set -u
OUTD=${OUT:-/tmp/s31_out}
LIMIT=${LIMIT:-300}
R=/tmp/s31c4; rm -rf "$R"; mkdir -p "$R" "$OUTD"
snap() { timeout 10 tar czf "$OUTD/s31c4.tgz" --exclude=s31c4/dcp -C /tmp s31c4; }
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
T0=$SECONDS
left() { [ $((SECONDS - T0)) -lt $((LIMIT - $1)) ]; }
timeout 10 nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv | tee "$R/card.txt"
D=$R/dcp; gunzip -c .s31/dcp4.gz > $D && chmod +x $D
SH=causal@32768,causal@65536,causal@131072
venv() { case $1 in base) echo "";; w8) echo "DCP_CUDA_BWD_WAVES=8";; w16) echo "DCP_CUDA_BWD_WAVES=16";; list) echo "DCP_CUDA_BWD_ORDER=list";; esac; }
for r in 1 2; do for v in base w8 w16 list; do if left 60; then
  echo "== $v $r t=$((SECONDS - T0))"
  env $(venv $v) timeout 40 $D kernel-bench --shapes $SH --repeats 3 --json "$R/kb_${v}_$r.jsonl" > "$R/kb_${v}_$r.log" 2>&1; echo "rc=$?"
fi; done; done
snap
python3 - "$R" <<'PY' | tee "$R/table.txt"
import json, sys, glob, collections, statistics
R = sys.argv[1]
t = collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(R + "/kb_*.jsonl")):
    v = f.split("/kb_")[1].rsplit("_", 1)[0]
    for l in open(f):
        x = json.loads(l)
        if x.get("kind") == "bench": t[x["shape"]][v].append(x["bwd_tflops_per_gpu"])
vs = ["base", "w8", "w16", "list"]
print("backward TFLOP/s (÷ base)\n| shape | " + " | ".join(vs) + " |\n|---|" + "---|" * len(vs))
for s, d in t.items():
    b = statistics.mean(d["base"]) if d.get("base") else float("nan")
    cells = [(" ".join("%.0f" % y for y in d[v]) + (f" ({statistics.mean(d[v]) / b:.3f})" if v != "base" else "")) if d.get(v) else "-" for v in vs]
    print(f"| {s} | " + " | ".join(cells) + " |")
PY
NCUB=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
for s in causal@32768 causal@65536; do if left 40; then
  echo "== ncu $s t=$((SECONDS - T0))"
  timeout -k 5 60 $NCUB --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis \
    --metrics dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct,lts__t_sectors_op_red.sum,lts__t_sectors_op_read.sum \
    -k regex:dcp_attn_bwd_sm90 -c 1 $D kernel-bench --shapes $s --repeats 1 --warmup 0 --timeout-s 50 > $R/ncu_$s.txt 2>&1; echo "rc=$?"
  grep -E "Duration|Throughput|Hit Rate|dram__bytes|lts__t_sector|Busy|Max Bandwidth" $R/ncu_$s.txt | head -24
fi; done
echo "== done t=$((SECONDS - T0))"
snap
