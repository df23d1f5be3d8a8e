# Call 4 (warm machine, 21 s): the flat pass built at DD_FLAT_MINB m with its grid at m CTAs per SM.
source bench/gpu/env.sh; D=/tmp/dcp; gunzip -c .s43/dcp.gz > $D; chmod +x $D; R=/tmp/fm; rm -rf $R; mkdir -p $R; python3 -c "import json; json.dump({'batches': [[256] * 1000]}, open('$R/works.json', 'w'))"; for m in 4 5 6 8; do cp -r crates/dcp-cuda/kernels $R/k$m; sed -i "1i #define DD_FLAT_MINB $m" $R/k$m/util.cu; done; for round in 1 2; do for hd in 128 64; do for m in 5 4 6 8; do DCP_CUDA_KERNELS=$R/k$m DCP_CUDA_BWD_DD_CTAS=$m timeout 40 $D bench-gpu --batches $R/works.json --head-dim $hd --masks full --planners local --warmup 3 --repeats 10 --op-times $R/o_${hd}_${m}_$round --json $R/w.jsonl > $R/w.log 2>&1; echo "r$round D$hd minb=$m: $(python3 -c "
import json
r = [json.loads(l) for l in open('$R/o_${hd}_${m}_$round/ops_rank0.jsonl')][-1]
d = {o['op'].split(':')[1]: 1000 * (o['end_ms'] - o['start_ms']) for o in r['bwd']}
print(' '.join(f'{k} {v:.1f} us' for k, v in d.items()), f\"bwd {r['bwd_ms']:.3f} ms\")" 2>&1)"; done; done; done 2>&1 | tee $OUT/minb.txt
