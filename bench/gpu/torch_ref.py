#!/usr/bin/env python3
"""PyTorch reference timings on the same batches as `dcp bench-gpu` (one GPU, whole batch).

Reads bench-gpu JSON lines (kind=bench; their `lens`), and for each distinct batch and mask times
torch's varlen flash attention (aten._flash_attention_forward/_backward, GQA native) and cuDNN SDPA
(per sequence, K/V expanded to all heads; batches of at most 200 sequences) forward and backward,
for causal, lambda / sliding-window (flash's window) and full masks; the model (heads, KV heads,
head dim, dtype) is each record's (8/2/128/bf16 where absent). FLOPs count attended elements
only: forward 4*att*D*H, backward 2.5x. Usage: torch_ref.py BENCH.jsonl [OUT.jsonl]
"""
import json, sys
import torch
import torch.nn.functional as F

dev = "cuda"
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}


def attended(lens, mask):
    tot = 0
    for L in lens:
        if mask == "causal":
            tot += L * (L + 1) // 2
        elif mask.startswith("lambda") or mask.startswith("sliding"):
            W = 4096
            sink = 64 if mask.startswith("lambda") else 0
            for i in range(L):
                win = min(i + 1, W)
                extra = max(0, min(sink, i + 1 - win))
                tot += win + extra
        else:
            tot += L * L
    return tot


def bench(fn, warm=2, rep=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(rep):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def run(lens, mask, H=8, HKV=2, D=128, dtype="bf16"):
    T = sum(lens)
    dt = DTYPES[dtype]
    g = torch.Generator(device=dev).manual_seed(0)
    q = torch.randn(T, H, D, device=dev, dtype=dt, generator=g)
    k = torch.randn(T, HKV, D, device=dev, dtype=dt, generator=g)
    v = torch.randn(T, HKV, D, device=dev, dtype=dt, generator=g)
    do = torch.randn(T, H, D, device=dev, dtype=dt, generator=g)
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0).tolist()), device=dev, dtype=torch.int32)
    mx = max(lens)
    causal = mask != "full"
    win = (4095, 0) if mask.startswith("lambda") or mask.startswith("sliding") else (None, None)
    kw = dict(scale=None, window_size_left=win[0], window_size_right=win[1])
    res = {"lens": lens, "mask": mask, "tokens": T, "heads": H, "kv_heads": HKV, "head_dim": D, "dtype": dtype}
    if mask not in ("causal", "full") and not mask.startswith("lambda") and not mask.startswith("sliding"):
        res["flash_error"] = f"mask {mask}: no flash / cuDNN equivalent"
        return res
    fl = 4.0 * attended(lens, mask) * D * H
    res["attended_fwd_flops"] = fl
    try:
        f = lambda: torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, mx, mx, 0.0, causal, False, **kw)
        out = f()
        o, lse, ps, po = out[0], out[1], out[2], out[3]
        bw = lambda: torch.ops.aten._flash_attention_backward(do, q, k, v, o, lse, cu, cu, mx, mx, 0.0, causal, ps, po, **kw)
        res["flash_fwd_ms"] = bench(f)
        res["flash_bwd_ms"] = bench(bw)
        res["flash_fwd_tflops"] = fl / res["flash_fwd_ms"] / 1e9
        res["flash_bwd_tflops"] = 2.5 * fl / res["flash_bwd_ms"] / 1e9
    except Exception as e:  # noqa
        res["flash_error"] = str(e)[:300]
    if mask in ("causal", "full") and len(lens) <= 200:
        try:
            from torch.nn.attention import sdpa_kernel, SDPBackend
            seqs = []
            off = 0
            for L in lens:
                qs = q[off:off + L].transpose(0, 1).unsqueeze(0).detach().requires_grad_(True)
                ks = k[off:off + L].repeat_interleave(H // HKV, dim=1).transpose(0, 1).unsqueeze(0).detach().requires_grad_(True)
                vs = v[off:off + L].repeat_interleave(H // HKV, dim=1).transpose(0, 1).unsqueeze(0).detach().requires_grad_(True)
                gs = do[off:off + L].transpose(0, 1).unsqueeze(0).contiguous()
                seqs.append((qs.contiguous().detach().requires_grad_(True), ks.contiguous().detach().requires_grad_(True), vs.contiguous().detach().requires_grad_(True), gs))
                off += L
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                def fwd():
                    return [F.scaled_dot_product_attention(a, b, c, is_causal=causal) for a, b, c, _ in seqs]
                def fwdbwd():
                    outs = fwd()
                    for o_, (_, _, _, gg) in zip(outs, seqs):
                        o_.backward(gg)
                t_f = bench(lambda: [x.detach() for x in fwd()])
                t_fb = bench(fwdbwd)
            res["cudnn_fwd_ms"] = t_f
            res["cudnn_bwd_ms"] = t_fb - t_f
            res["cudnn_fwd_tflops"] = fl / t_f / 1e9
            res["cudnn_bwd_tflops"] = 2.5 * fl / (t_fb - t_f) / 1e9
        except Exception as e:  # noqa
            res["cudnn_error"] = str(e)[:300]
    return res


def main():
    seen = {}
    for line in open(sys.argv[1]):
        try:
            r = json.loads(line)
        except Exception:
            continue
        if r.get("kind") != "bench" or "lens" not in r:
            continue
        mask = r["mask"].split(":")[0]
        model = (r.get("heads", 8), r.get("kv_heads", 2), r.get("head_dim", 128), str(r.get("dtype", "bf16")).lower())
        seen[(tuple(r["lens"]), mask, model)] = r
    out = open(sys.argv[2], "a") if len(sys.argv) > 2 else None
    rows = []
    for (lens, mask, model) in seen:
        res = run(list(lens), mask, *model)
        print(json.dumps(res), flush=True)
        if out:
            out.write(json.dumps(res) + "\n")
        rows.append(res)
    print(f"\n{'torch ref':<22} {'tokens':>7} {'flash f ms':>10} {'b ms':>8} {'f TF':>6} {'b TF':>6} {'cudnn f ms':>10} {'b ms':>8} {'f TF':>6} {'b TF':>6}")
    for r in rows:
        g = lambda k: r.get(k, float('nan'))
        print(f"{r['mask'] + ' ' + str(len(r['lens'])) + ' seqs ' + str(r['head_dim']) + ' ' + r['dtype']:<22} {r['tokens']:>7} {g('flash_fwd_ms'):>10.3f} {g('flash_bwd_ms'):>8.3f} {g('flash_fwd_tflops'):>6.0f} {g('flash_bwd_tflops'):>6.0f} {g('cudnn_fwd_ms'):>10.3f} {g('cudnn_bwd_ms'):>8.3f} {g('cudnn_fwd_tflops'):>6.0f} {g('cudnn_bwd_tflops'):>6.0f}")
        for k in ("flash_error", "cudnn_error"):
            if k in r:
                print("  ", k, r[k])


if __name__ == "__main__":
    main()
