#!/usr/bin/env python3
"""PyTorch reference timings on the same batches as `dcp bench-gpu` (one GPU, whole batch).

Reads bench-gpu JSON lines (kind=bench; their `lens`), and for each distinct batch and mask times
torch's varlen flash attention (aten._flash_attention_forward/_backward, GQA native) and cuDNN SDPA
(one batched call per run of consecutive documents of one length, GQA native where cuDNN takes
it, else K/V expanded to all heads, the form named in `cudnn_form`; at most 200 calls) forward and backward,
for causal, lambda / sliding-window (flash's window) and full masks; the model (heads, KV heads,
head dim, dtype) is each record's (8/2/128/bf16 where absent). FLOPs count attended elements
only: forward 4*att*D*H, backward 2.5x.

With --flex it also times PyTorch's FlexAttention (`torch.compile`d `flex_attention`, GQA native,
one block mask over the packed batch: document ids plus each mask kind of dcp-core's mask.rs:
causal, full, lambda, sliding-window, shared-question, causal-blockwise, prefix-lm), the one
PyTorch path that takes every mask dcp runs. Before timing, the mask's attended element count is
compared with the record's (`attended_fwd_flops`); a mismatch is reported as `flex_error` and not
timed. Usage: torch_ref.py [--flex] BENCH.jsonl [OUT.jsonl]

Each timing is the median of TORCH_REF_REPEATS runs (default 5) after TORCH_REF_WARMUP untimed
ones (default 2); raise both for a sustained, power-limited comparison (long sequences run at the
700 W cap: bench/results/kernels-2026-11-30-s31).
"""
import json, math, os, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (records.py beside this file)
from records import open_record  # (BENCH.jsonl may be a gzipped record)
import torch.nn.functional as F

dev = "cuda"
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}


def band(mask):
    """(sink, window) of a lambda / sliding-window mask string with its parameters (mask.rs's
    defaults where absent), else None: flash runs the window, the sink keys are counted only."""
    kind, prm = parse_mask(mask)
    if kind == "lambda":
        return prm[0], prm[1]
    if kind == "sliding-window":
        return 0, prm[0]
    return None


def attended(lens, mask):
    tot = 0
    bw = band(mask)
    for L in lens:
        if mask == "causal":
            tot += L * (L + 1) // 2
        elif bw:
            sink, W = bw
            for i in range(L):
                win = min(i + 1, W)
                extra = max(0, min(sink, i + 1 - win))
                tot += win + extra
        else:
            tot += L * L
    return tot


def _count(name, default, least):
    """An environment count of at least `least`; anything else stops with the variable named."""
    v = os.environ.get(name, "").strip() or str(default)
    if not v.isdigit() or int(v) < least:
        sys.exit(f"{name}={v}: expected a whole number of at least {least}")
    return int(v)


WARM = _count("TORCH_REF_WARMUP", 2, 0)
REP = _count("TORCH_REF_REPEATS", 5, 1)


def bench(fn, warm=WARM, rep=REP):
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


def record(res, impl, fl, fwd_ms, bwd_ms):
    """One implementation's times and attended-FLOP rates (backward 2.5x the forward's FLOPs)."""
    res[f"{impl}_fwd_ms"] = fwd_ms
    res[f"{impl}_bwd_ms"] = bwd_ms
    res[f"{impl}_fwd_tflops"] = fl / fwd_ms / 1e9
    res[f"{impl}_bwd_tflops"] = 2.5 * fl / bwd_ms / 1e9


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
    bw = band(mask)
    win = (bw[1] - 1, 0) if bw else (None, None)
    kw = dict(scale=None, window_size_left=win[0], window_size_right=win[1])
    res = {"lens": lens, "mask": mask, "tokens": T, "heads": H, "kv_heads": HKV, "head_dim": D, "dtype": dtype}
    if mask not in ("causal", "full") and not bw:
        res["flash_error"] = f"mask {mask}: no flash / cuDNN equivalent"
        return res
    fl = 4.0 * attended(lens, mask) * D * H
    res["attended_fwd_flops"] = fl
    try:
        f = lambda: torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, mx, mx, 0.0, causal, False, **kw)
        out = f()
        o, lse, ps, po = out[0], out[1], out[2], out[3]
        bw = lambda: torch.ops.aten._flash_attention_backward(do, q, k, v, o, lse, cu, cu, mx, mx, 0.0, causal, ps, po, **kw)
        record(res, "flash", fl, bench(f), bench(bw))
    except Exception as e:  # noqa
        res["flash_error"] = str(e)[:300]
    groups = cudnn_groups(lens)
    if mask in ("causal", "full") and len(groups) <= 200:
        try:
            t_f, t_fb, form = run_cudnn(q, k, v, do, groups, causal)
            record(res, "cudnn", fl, t_f, t_fb - t_f)
            res["cudnn_form"] = form
        except Exception as e:  # noqa
            res["cudnn_error"] = str(e)[:300]
    return res


def cudnn_groups(lens):
    """The packed batch `lens` as cuDNN SDPA calls: one [count, heads, length, D] batch per run
    of consecutive documents of one length, as (first token, count, length). 1 000 documents of
    256 tokens are one call; 120 documents of distinct lengths are 120."""
    runs, off = [], 0
    for L in lens:
        if runs and runs[-1][2] == L and runs[-1][0] + runs[-1][1] * L == off:
            runs[-1][1] += 1
        else:
            runs.append([off, 1, L])
        off += L
    return [tuple(r) for r in runs]


def group_view(x, off, n, L):
    """The packed [tokens, heads, D] tensor's run of `n` documents of `L` tokens from token
    `off`, as SDPA's [n, heads, L, D] (a view: no copy)."""
    return x[off:off + n * L].view(n, L, x.shape[1], x.shape[2]).transpose(1, 2)


def run_cudnn(q, k, v, do, groups, causal):
    """cuDNN SDPA forward and forward+backward ms over the calls of `cudnn_groups`, and the GQA
    form that ran: "gqa" (K/V at their own head count, `enable_gqa`) where cuDNN takes it, else
    "kv-expanded" (K/V repeated to every query head: 4x their bytes at 8:2), named in the record."""
    from torch.nn.attention import sdpa_kernel, SDPBackend
    H, HKV = q.shape[1], k.shape[1]

    def leaf(x):
        return x.contiguous().detach().requires_grad_(True)

    def tensors(expand):
        out = []
        for off, n, L in groups:
            kk, vv = group_view(k, off, n, L), group_view(v, off, n, L)
            if expand:
                kk, vv = kk.repeat_interleave(H // HKV, dim=1), vv.repeat_interleave(H // HKV, dim=1)
            out.append((leaf(group_view(q, off, n, L)), leaf(kk), leaf(vv), group_view(do, off, n, L).contiguous()))
        return out

    # TORCH_REF_CUDNN_FORMS (comma-separated) narrows or reorders the forms tried
    forms = [f.strip() for f in os.environ.get("TORCH_REF_CUDNN_FORMS", "gqa,kv-expanded").split(",") if f.strip()]
    bad = [f for f in forms if f not in ("gqa", "kv-expanded")]
    if bad or not forms:
        raise ValueError(f"TORCH_REF_CUDNN_FORMS: expected gqa and / or kv-expanded, got {forms}")
    errors = []
    for form in forms:
        seqs = tensors(form == "kv-expanded")
        gqa = form == "gqa" and H != HKV

        def fwd():
            return [F.scaled_dot_product_attention(a, b, c, is_causal=causal, enable_gqa=gqa) for a, b, c, _ in seqs]

        def fwdbwd():
            for o_, (_, _, _, gg) in zip(fwd(), seqs):
                o_.backward(gg)
        try:
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                return bench(lambda: [x.detach() for x in fwd()]), bench(fwdbwd), form
        except RuntimeError as e:  # cuDNN refused this form: try the next, report all if all fail
            errors.append(f"{form}: {e}")
    raise RuntimeError("; ".join(errors))


def parse_mask(mask):
    """(kind, params) of a dcp mask string (`lambda:64:4096`, `causal-blockwise`, ...), with
    mask.rs's defaults where the parameters are absent."""
    parts = mask.split(":")
    kind, args = parts[0], parts[1:]
    defaults = {"lambda": [64, 4096], "shared-question": [0.2, 4], "causal-blockwise": [256, 2]}
    if kind in defaults and not args:
        return kind, defaults[kind]
    num = [float(a) if "." in a else int(a) for a in args]
    return kind, num


def flex_mask_mod(lens, mask, device=None):
    """A FlexAttention mask_mod over the packed batch `lens` with dcp's mask `mask` in every
    document (the same rows and keys as dcp-core's MaskSpec::compile), and a function building
    its block lists and attended count. One document: positions are the indices themselves and
    every per-length constant is a Python number (the cheapest mask_mod, FlexAttention's best
    case); several: document ids and positions by lookup. Tensors on `device` (default: the
    GPU); python/tests/test_bench_flex.py checks both against the tests' dense reference."""
    on = device or dev
    kind, prm = parse_mask(mask)
    single = len(lens) == 1
    if not single:
        n = torch.tensor(lens, device=on)
        doc = torch.repeat_interleave(torch.arange(len(lens), device=on), n)
        start = torch.cumsum(n, 0) - n
        pos = torch.arange(int(n.sum()), device=on) - start[doc]
        length = n[doc]
    T = sum(lens)

    def inner(i, j, L):
        causal = j <= i
        if kind == "full":
            return (i >= 0) & (j >= 0)
        if kind == "causal":
            return causal
        if kind == "sliding-window":
            return causal & (j > i - prm[0])
        if kind == "lambda":
            s_, w = prm
            return causal & ((j < s_) | (j > i - w))
        if kind == "prefix-lm":
            p = prm[0]
            return causal | ((i < p) & (j < p))
        if kind == "shared-question":
            frac, na = prm
            if single:
                nq = min(L, math.floor(frac * L))
                pa = (L - nq) // na
                first_end = L if (na == 1 or pa == 0) else nq + pa
                pa1 = max(pa, 1)
            else:
                nq = torch.minimum(L, torch.floor(frac * L.double()).long())
                pa = (L - nq) // na
                first_end = torch.where((pa == 0) | (na == 1), L, nq + pa)
                pa1 = pa.clamp(min=1)
            # the answer of a token past the question (the last answer absorbs the remainder)
            ans = lambda x: torch.clamp((x - nq) // pa1, max=na - 1)
            return causal & ((i < first_end) | (j < nq) | (ans(i) == ans(j)))
        if kind == "causal-blockwise":
            b, k = prm
            nb = (L + b - 1) // b
            last_start = (nb - 1) * b
            if single:
                if nb <= 2:
                    return causal
                split = min(max((k + 1) * b + 1, b), last_start)
                plain = (i < split) | (i >= last_start)
            else:
                split = torch.minimum(torch.full_like(L, max((k + 1) * b + 1, b)), last_start)
                plain = (nb <= 2) | (i < split) | (i >= last_start)
            return causal & (plain | (j < b) | (j >= i - k * b))
        raise ValueError(f"mask {mask}: no FlexAttention form")

    if single:
        def mask_mod(b, h, q_idx, kv_idx):
            return inner(q_idx, kv_idx, T)
    else:
        def mask_mod(b, h, q_idx, kv_idx):
            # clamped: the kernels may evaluate the padding of a last partial block
            q_idx, kv_idx = q_idx.clamp(max=T - 1), kv_idx.clamp(max=T - 1)
            return (doc[q_idx] == doc[kv_idx]) & inner(pos[q_idx], pos[kv_idx], length[q_idx])

    def blocks(B=128):
        """The block mask's lists (FlexAttention's `BlockMask.from_kv_blocks` form: per 128-row
        query block its partial and its full 128-key blocks) and the attended element count, from
        the mask evaluated in chunks of rows over the keys of their documents only (no T x T
        tensor). A block is full when every element of it exists and is attended."""
        nb = (T + B - 1) // B
        part = torch.zeros(nb, nb, dtype=torch.bool, device=on)
        full = torch.zeros(nb, nb, dtype=torch.bool, device=on)
        ends = torch.tensor(lens).cumsum(0).tolist()
        starts = [e - l for e, l in zip(ends, lens)]
        import bisect
        tot, r0 = 0, 0
        while r0 < T:
            d0 = bisect.bisect_right(ends, r0)
            k0 = starts[d0] // B * B
            rows = max(B, ((1 << 26) // max(1, T - k0)) // B * B)
            r1 = min(T, r0 + rows)
            k1 = ends[bisect.bisect_right(ends, r1 - 1)]
            k1 = min(nb * B, (k1 + B - 1) // B * B)
            qi = torch.arange(r0, r0 + (r1 - r0 + B - 1) // B * B, device=on)[:, None]
            ki = torch.arange(k0, k1, device=on)[None, :]
            m = mask_mod(0, 0, qi.clamp(max=T - 1), ki.clamp(max=T - 1)) & (qi < T) & (ki < T)
            tot += int(m.sum())
            m = m.view(m.shape[0] // B, B, m.shape[1] // B, B)
            part[r0 // B:r0 // B + m.shape[0], k0 // B:k1 // B] = m.any(3).any(1)
            full[r0 // B:r0 // B + m.shape[0], k0 // B:k1 // B] = m.all(3).all(1)
            r0 = r1
        part &= ~full

        def lists(x):
            num = x.sum(-1, dtype=torch.int32)
            idx = torch.argsort(x.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
            return num[None, None], idx[None, None]
        return lists(part), lists(full), tot

    return mask_mod, blocks


def run_flex(rec, H=8, HKV=2, D=128, dtype="bf16"):
    """FlexAttention forward / backward on one bench record's batch and mask."""
    from torch.nn.attention.flex_attention import flex_attention, BlockMask
    lens, mask = rec["lens"], rec["mask"]
    T = sum(lens)
    dt = DTYPES[dtype]
    res = {"lens": lens, "mask": mask, "tokens": T, "heads": H, "kv_heads": HKV, "head_dim": D,
           "dtype": dtype, "impl": "flex"}
    try:
        mask_mod, blocks = flex_mask_mod(lens, mask)
        (pn, pi), (fn, fi), att = blocks()
        want = rec["attended_fwd_flops"] / (4.0 * D * H)
        res["attended"] = att
        if abs(att - want) > 0.5:
            res["flex_error"] = f"mask mismatch: flex attends {att} elements, dcp {want:.0f}"
            return res
        fl = 4.0 * att * D * H
        try:
            bm = BlockMask.from_kv_blocks(pn, pi, fn, fi, mask_mod=mask_mod, seq_lengths=(T, T))
        except TypeError:  # older torch: no seq_lengths
            bm = BlockMask.from_kv_blocks(pn, pi, fn, fi, mask_mod=mask_mod)
        g = torch.Generator(device=dev).manual_seed(0)
        q = torch.randn(1, H, T, D, device=dev, dtype=dt, generator=g).requires_grad_(True)
        k = torch.randn(1, HKV, T, D, device=dev, dtype=dt, generator=g).requires_grad_(True)
        v = torch.randn(1, HKV, T, D, device=dev, dtype=dt, generator=g).requires_grad_(True)
        do = torch.randn(1, H, T, D, device=dev, dtype=dt, generator=g)
        flex = torch.compile(flex_attention, dynamic=False)
        fwd = lambda: flex(q, k, v, block_mask=bm, enable_gqa=True)
        def fwdbwd():
            o = fwd()
            o.backward(do)
        with torch.no_grad():
            t_f = bench(fwd)
        t_fb = bench(fwdbwd)
        record(res, "flex", fl, t_f, t_fb - t_f)
    except Exception as e:  # noqa
        res["flex_error"] = (type(e).__name__ + ": " + str(e))[:300]
    return res


def main():
    args = [a for a in sys.argv[1:] if a != "--flex"]
    flex = len(args) < len(sys.argv) - 1
    seen = {}
    for line in open_record(args[0]):
        try:
            r = json.loads(line)
        except Exception:
            continue
        if r.get("kind") != "bench" or "lens" not in r:
            continue
        model = (r.get("heads", 8), r.get("kv_heads", 2), r.get("head_dim", 128), str(r.get("dtype", "bf16")).lower())
        seen[(tuple(r["lens"]), r["mask"], model)] = r
    out = open(args[1], "a") if len(args) > 1 else None
    rows = []
    for (lens, full_mask, model), rec in seen.items():
        res = run(list(lens), full_mask.split(":")[0], *model)
        if flex:
            fres = run_flex(rec, *model)
            torch._dynamo.reset()
            torch.cuda.empty_cache()
            for key in ("flex_fwd_ms", "flex_bwd_ms", "flex_fwd_tflops", "flex_bwd_tflops", "flex_error"):
                if key in fres:
                    res[key] = fres[key]
            res.setdefault("attended_fwd_flops", rec["attended_fwd_flops"])
        print(json.dumps(res), flush=True)
        if out:
            out.write(json.dumps(res) + "\n")
        rows.append(res)
    print(f"\n{'torch ref':<22} {'tokens':>7} {'flash f ms':>10} {'b ms':>8} {'f TF':>6} {'b TF':>6} {'cudnn f ms':>10} {'b ms':>8} {'f TF':>6} {'b TF':>6} {'flex f TF':>9} {'b TF':>6}")
    for r in rows:
        g = lambda k: r.get(k, float('nan'))
        print(f"{r['mask'] + ' ' + str(len(r['lens'])) + ' seqs ' + str(r['head_dim']) + ' ' + r['dtype']:<22} {r['tokens']:>7} {g('flash_fwd_ms'):>10.3f} {g('flash_bwd_ms'):>8.3f} {g('flash_fwd_tflops'):>6.0f} {g('flash_bwd_tflops'):>6.0f} {g('cudnn_fwd_ms'):>10.3f} {g('cudnn_bwd_ms'):>8.3f} {g('cudnn_fwd_tflops'):>6.0f} {g('cudnn_bwd_tflops'):>6.0f} {g('flex_fwd_tflops'):>9.0f} {g('flex_bwd_tflops'):>6.0f}")
        for k in ("flash_error", "cudnn_error", "flex_error"):
            if k in r:
                print("  ", k, r[k])


if __name__ == "__main__":
    main()
