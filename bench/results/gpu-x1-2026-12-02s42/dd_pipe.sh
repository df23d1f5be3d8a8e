#!/usr/bin/env bash
# Session 42, call 7: the D pre-pass software-pipelined (util.cu DD_PIPE 1: the CTA's next tile's
# loads issued before the current tile's products; two tiles of two passes, 80 registers, 3 CTAs
# per SM) against the default (DD_U 4, 4 CTAs per SM) and the default at 3 CTAs per SM, by op
# times of works1000 (BwdDd), D 128 and D 64, then D 128 again; CPU f64 checks with DD_PIPE first (short
# documents at D 64: launches with the dQ zero; pair documents at D 128: clustered launches).
#   DCP_GZ=.s42/dcp.gz timeout 200 bash bench/results/gpu-x1-2026-12-02s42/dd_pipe.sh
set -u
source bench/gpu/env.sh
R=/tmp/ddp; rm -rf $R; mkdir -p $R; OUTD=${OUT:-/tmp/ddp_out}; mkdir -p $OUTD
D=/tmp/dcp; gunzip -c ${DCP_GZ:?} > $D && chmod +x $D
cp -r crates/dcp-cuda/kernels $R/kbase && cp -r crates/dcp-cuda/kernels $R/kpipe && sed -i '1i #define DD_PIPE 1' $R/kpipe/util.cu
python3 -c "
import json
P = [256, 130, 129, 200, 250, 255, 192, 160, 240, 222, 131, 180, 129, 255, 140]
json.dump({'batches': [[P[i % len(P)] for i in range(150)]]}, open('$R/pair.json', 'w'))
L = [256, 130, 1, 64, 65, 200, 17, 128, 129, 250, 300, 500, 384, 511, 63]
json.dump({'batches': [[L[i % len(L)] for i in range(150)]]}, open('$R/short.json', 'w'))
json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"
for hb in "64 short" "128 pair"; do set -- $hb; hd=$1; b=$2; {
  DCP_CUDA_KERNELS=$R/kpipe DCP_CUDA_BWD_DD_CTAS=3 timeout 40 $D bench-gpu --batches $R/$b.json --head-dim $hd --masks full,causal --planners local --check --cpu-check-tokens 100000 --warmup 0 --repeats 1 --json $R/chk.jsonl > $R/chk_${b}_$hd.log 2>&1; echo "check pipe $b D$hd rc=$?"
}; done
python3 -c "
import json
rows = [json.loads(l) for l in open('$R/chk.jsonl')]
print('pipe checks:', sum(1 for r in rows if (r.get('check') or {}).get('pass')), '/', len(rows), 'pass')" | tee $R/summary.txt
for rh in "1 128" "1 64" "2 128"; do set -- $rh; round=$1; hd=$2; for v in base base3 pipe3; do
  case $v in base) K=$R/kbase; C=4;; base3) K=$R/kbase; C=3;; pipe3) K=$R/kpipe; C=3;; esac
  DCP_CUDA_KERNELS=$K DCP_CUDA_BWD_DD_CTAS=$C timeout 40 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10 --op-times $R/o_${v}_${hd}_$round --json $R/w.jsonl > $R/w_${v}_${hd}_$round.log 2>&1
  echo "r$round D$hd $v: $(python3 -c "
import json, sys
r = [json.loads(l) for l in open('$R/o_${v}_${hd}_$round/ops_rank0.jsonl')][-1]
d = {o['op'].split(':')[1]: 1000 * (o['end_ms'] - o['start_ms']) for o in r['bwd']}
print(' '.join(f'{k} {v:.1f} us' for k, v in d.items()), f\"bwd {r['bwd_ms']:.3f} ms\")" 2>&1)" | tee -a $R/summary.txt
done; done
tar czf $OUTD/ddp.tgz -C /tmp --exclude='*/k*' ddp
cat $R/summary.txt
