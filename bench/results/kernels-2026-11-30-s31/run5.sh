#!/usr/bin/env bash
# s31 call 5 (1x H200): timeout 120 bash .s31/run5.sh
# Is the long backward power-limited? SM clock, power draw and clock-event reasons sampled every
# 20 ms (nvidia-smi) while kernel-bench runs causal 32K, 64K and 128K (8 / 2 heads) in turn.
set -u
OUTD=${OUT:-/tmp/s31_out}
R=/tmp/s31c5; rm -rf "$R"; mkdir -p "$R" "$OUTD"
exec > >(tee "$R/run.log") 2>&1
source bench/gpu/env.sh
D=$R/dcp; gunzip -c .s31/dcp4.gz > $D && chmod +x $D
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active,clocks_event_reasons.sw_power_cap,clocks_event_reasons.hw_slowdown,clocks_event_reasons.sw_thermal_slowdown --format=csv -lms 20 > $R/smi.csv 2>&1 &
SMI=$!
sleep 1
for s in causal@32768 causal@65536 causal@131072; do
  echo "== $s $(date +%H:%M:%S.%N)"
  timeout 40 $D kernel-bench --shapes $s --repeats 5 --json $R/kb.jsonl 2>&1 | grep -E '^causal@'
  echo "== end $s $(date +%H:%M:%S.%N)"
  sleep 1
done
kill $SMI
python3 - $R <<'PY' | tee $R/table.txt
import csv, sys, collections
R = sys.argv[1]
rows = list(csv.reader(open(R + "/smi.csv")))
h = [x.strip() for x in rows[0]]
print(h)
busy = [r for r in rows[1:] if len(r) == len(h) and float(r[3].split()[0]) > 300]
print("samples over 300 W:", len(busy), "of", len(rows) - 1)
for r in busy[::5][:80]:
    print(" | ".join(x.strip() for x in r))
PY
tar czf "$OUTD/s31c5.tgz" --exclude=s31c5/dcp -C /tmp s31c5
