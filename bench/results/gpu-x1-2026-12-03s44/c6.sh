set -u
source bench/gpu/env.sh
R=/tmp/c6; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/c6o}; mkdir -p $OUTD
D=/tmp/dcp; gunzip -c .s44/dcp.gz > $D && chmod +x $D
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))"
ops() { cat $1/* 2>/dev/null | grep -o 'launch:Bwd[A-Za-z]*' | sort | uniq -c | tr -s ' \n' ' '; }
for hd in 128 64; do DCP_CUDA_BWD_CLUSTER_DSM=2 timeout 40 $D bench-gpu --batches $R/pair.json --head-dim $hd --masks full --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --op-times $R/c$hd --json $R/chk.jsonl > $R/chk$hd.log 2>&1; echo "check D$hd rc=$? $(ops $R/c$hd)"; done
python3 bench/gpu/check_summary.py $R/chk.jsonl "D clusters 2 (final), vs CPU f64" | tee $R/summary.txt
for tool in racecheck memcheck; do DCP_CUDA_BWD_CLUSTER_DSM=2 timeout -k 5 60 $CS --tool $tool --print-limit 5 $D bench-gpu --batches $R/pair.json --head-dim 128 --masks full --planners local --warmup 0 --repeats 1 --timeout-s 50 --op-times $R/s_$tool > $R/san_$tool.txt 2>&1; echo "$tool rc=$? $(ops $R/s_$tool)"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Race reported" $R/san_$tool.txt | head -4 | tee -a $R/summary.txt; done
tar czf $OUTD/c6.tgz -C /tmp c6
