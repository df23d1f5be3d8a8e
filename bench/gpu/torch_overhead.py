"""What ``dcp.torch.attention`` costs on top of the executor's own program, per call.

The same-model training step (e2e_same_model.py) measured dcp's attention at ~62 ms forward and
~172 ms backward per call inside the model, where ``dcp bench-gpu`` times the same plan's programs
at ~53 / ~164 ms. This script times the Python entry point alone, on the e2e's shape (one causal
sequence, 16 / 4 heads, D 128, bf16, the dcp planner), in variants that take one suspect away at a
time:

  nograd      forward under torch.no_grad (no saved tensors kept)
  grad        forward with autograd, then backward (leaf q, k, v: contiguous)
  fused       q, k, v as views of one fused projection output, as the model has them (v strided)
  busy        as ``grad``, with ~BUSY ms of matmuls queued before each call, so the host is ahead
              of the device and host-side time cannot show as device time
  profile     one ``grad`` call under torch.profiler: the device time of every kernel and copy,
              grouped, and how much of the call's span the device was idle

  cp:grad     PyTorch ``context_parallel`` with cuDNN SDPA (``--cp cudnn``) on the same sequence,
  cp:busy     forward + backward as ``grad`` / ``busy`` (the sequence sharded by context_parallel)

Every time is a CUDA-event time on PyTorch's stream (max over ranks, median over --reps); ``host``
is the wall time of the Python call itself (the device busy, so no waits). ``busy`` matters on an
H200: a long run of tensor work holds the card at its power cap (700 W) with its clock at ~1 500-1 750
MHz instead of 1 980, which is the state attention runs in inside a training step. Run with torchrun:

    torchrun --nproc-per-node 2 bench/gpu/torch_overhead.py [--seq-len 131072] [--cp cudnn] [--jsonl F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-len", type=int, default=131072)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--planner", default="dcp")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--busy-ms", type=float, default=60.0, help="matmul work queued before each busy call")
    ap.add_argument("--variants", default="nograd,grad,fused,busy,profile")
    ap.add_argument("--cp", default="", help="also PyTorch context_parallel with this SDPA backend (cudnn, flash)")
    ap.add_argument("--jsonl", default="")
    a = ap.parse_args()

    import dcp
    import dcp.torch as dtorch

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(dev)
    dtorch.init()
    extra = {"token_epsilon": 0.03} if a.planner == "dcp" else {}
    plan = dcp.Planner(world, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim, dtype="bf16",
                       block_size=a.block_size, planner=a.planner, mask="causal", **extra).plan([a.seq_len])
    n, h, hk, d = plan.num_tokens(rank), a.heads, a.kv_heads, a.head_dim
    g = torch.Generator(device=dev).manual_seed(1 + rank)

    def rnd(*shape):
        return torch.randn(*shape, device=dev, dtype=torch.bfloat16, generator=g)

    rows = []

    def emit(d: dict) -> None:
        d = {"rank": rank, "world": world, "plan": plan.planner, "seq_len": a.seq_len, **d}
        rows.append(d)
        if a.jsonl and rank == 0:
            with open(a.jsonl, "a") as f:
                f.write(json.dumps(d) + "\n")

    def worst(x: float) -> float:
        t = torch.tensor([x], device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def ev():
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        return e

    big = rnd(8192, 8192)

    def busy(ms: float) -> None:
        # one 8192^3 bf16 matmul is ~1.4 ms on an H100/H200
        for _ in range(max(1, int(ms / 1.4))):
            torch.mm(big, big)

    def leaves():
        q, k, v = rnd(n, h, d), rnd(n, hk, d), rnd(n, hk, d)
        return [x.requires_grad_() for x in (q, k, v)]

    fused_w = rnd(n, (h + 2 * hk) * d).requires_grad_()
    d_o = rnd(n, h, d)

    def run(variant: str):
        """One call; returns (fwd_ms, bwd_ms or None, host_fwd_s, host_bwd_s)."""
        if variant == "nograd":
            q, k, v = (x.detach() for x in leaves())
            with torch.no_grad():
                e0 = ev(); t0 = time.perf_counter()
                dtorch.attention(q, k, v, plan, rank)
                t1 = time.perf_counter(); e1 = ev()
            return e0, e1, None, t1 - t0, 0.0
        if variant == "fused":
            q, k, v = fused_w.view(n, h + 2 * hk, d).split([h, hk, hk], 1)
        else:
            q, k, v = leaves()
        if variant == "busy":
            busy(a.busy_ms)
        e0 = ev(); t0 = time.perf_counter()
        o = dtorch.attention(q, k, v, plan, rank)
        t1 = time.perf_counter(); e1 = ev()
        if variant == "busy":
            busy(a.busy_ms)
        e1b = ev(); t2 = time.perf_counter()
        o.backward(d_o)
        t3 = time.perf_counter(); e2 = ev()
        fused_w.grad = None
        return e0, e1, (e1b, e2), t1 - t0, t3 - t2

    summary = {}
    for variant in [v for v in a.variants.split(",") if v and v != "profile"]:
        marks = repeat(lambda: run(variant), a.warmup, a.reps)
        fwd = [m[0].elapsed_time(m[1]) for m in marks]
        bwd = [m[2][0].elapsed_time(m[2][1]) for m in marks if m[2] is not None]
        r = {"variant": variant,
             "fwd_ms": worst(statistics.median(fwd)),
             "bwd_ms": worst(statistics.median(bwd)) if bwd else None,
             "fwd_ms_all": [round(x, 3) for x in fwd], "bwd_ms_all": [round(x, 3) for x in bwd],
             "host_fwd_ms": worst(statistics.median(m[3] for m in marks) * 1e3),
             "host_bwd_ms": worst(statistics.median(m[4] for m in marks) * 1e3)}
        summary[variant] = r
        emit(r)
    if a.cp:
        for variant, r in cp_rows(a, rank, world, dev, busy, ev, worst):
            summary[variant] = r
            emit(r)
    if "profile" in a.variants.split(","):
        emit(profile_call(lambda: run("grad"), dev))
    st = dtorch.executor_stats()
    emit({"executor_stats": st})
    if rank == 0:
        print(f"plan {plan.planner}, {a.seq_len} tokens, {h}/{hk} heads, D {d}, world {world}; "
              f"ms per call, max over ranks, median of {a.reps}")
        print(f"{'variant':<8} {'fwd':>8} {'bwd':>8} {'host fwd':>9} {'host bwd':>9}")
        for v, r in summary.items():
            b = f"{r['bwd_ms']:8.2f}" if r["bwd_ms"] is not None else f"{'-':>8}"
            print(f"{v:<8} {r['fwd_ms']:8.2f} {b} {r['host_fwd_ms']:9.3f} {r['host_bwd_ms']:9.3f}")
        prof = next((x for x in rows if "profile" in x), None)
        if prof:
            print(f"profile of one grad call (rank 0): span {prof['span_ms']:.2f} ms, device busy "
                  f"{prof['busy_ms']:.2f} ms, idle {prof['span_ms'] - prof['busy_ms']:.2f} ms; by kind:")
            for k, ms, cnt in prof["by_kind"]:
                print(f"  {ms:9.3f} ms {cnt:5d}x  {k}")
            print("  longest names:")
            for k, ms, cnt in prof["top"][:14]:
                print(f"  {ms:9.3f} ms {cnt:5d}x  {k[:110]}")
    dtorch.shutdown()
    dist.destroy_process_group()


def repeat(call, warmup: int, reps: int) -> list:
    """``call()`` ``warmup`` times, then ``reps`` times: the timed calls' results, once the device
    has finished them."""
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    marks = [call() for _ in range(reps)]
    torch.cuda.synchronize()
    return marks


def cp_rows(a, rank: int, world: int, dev, busy, ev, worst):
    """PyTorch context_parallel (round-robin ring, SDPA backend ``a.cp``) on the same sequence:
    (variant, row) for ``cp:grad`` and ``cp:busy``."""
    import torch.nn.functional as F
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental import context_parallel
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[a.cp]
    mesh = init_device_mesh("cuda", (world,))
    torch.manual_seed(0)
    s, h, hk, d = a.seq_len, a.heads, a.kv_heads, a.head_dim
    q = torch.randn(1, h, s, d, device=dev, dtype=torch.bfloat16)
    k, v = (torch.randn(1, hk, s, d, device=dev, dtype=torch.bfloat16) for _ in range(2))
    d_o = torch.randn_like(q)
    out = []
    with context_parallel(mesh, buffers=[q, k, v, d_o], buffer_seq_dims=[2, 2, 2, 2]):
        ql, kl, vl = (t.detach().requires_grad_() for t in (q, k, v))

        def run(hot: bool):
            if hot:
                busy(a.busy_ms)
            e0 = ev()
            with sdpa_kernel(backend):
                o = F.scaled_dot_product_attention(ql, kl, vl, is_causal=True, enable_gqa=hk != h)
            e1 = ev()
            if hot:
                busy(a.busy_ms)
            e1b = ev()
            o.backward(d_o)
            e2 = ev()
            ql.grad = kl.grad = vl.grad = None
            return e0, e1, e1b, e2

        for name, hot in (("cp:grad", False), ("cp:busy", True)):
            marks = repeat(lambda: run(hot), a.warmup, a.reps)
            fwd = [m[0].elapsed_time(m[1]) for m in marks]
            bwd = [m[2].elapsed_time(m[3]) for m in marks]
            out.append((name, {"variant": name, "backend": a.cp, "fwd_ms": worst(statistics.median(fwd)),
                               "bwd_ms": worst(statistics.median(bwd)), "fwd_ms_all": [round(x, 3) for x in fwd],
                               "bwd_ms_all": [round(x, 3) for x in bwd], "host_fwd_ms": 0.0, "host_bwd_ms": 0.0}))
    return out


def profile_call(call, dev) -> dict:
    """One call under torch.profiler: device events grouped by name and by kind (kernel, memcpy,
    memset, nccl), the span from the first to the last device event, and the union of busy time."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(dev)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize(dev)
    evs = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    iv = sorted((e.time_range.start, e.time_range.end) for e in evs)
    busy, cur = 0.0, None
    for s, t in iv:
        if cur is None or s > cur[1]:
            if cur:
                busy += cur[1] - cur[0]
            cur = [s, t]
        else:
            cur[1] = max(cur[1], t)
    if cur:
        busy += cur[1] - cur[0]
    span = (iv[-1][1] - iv[0][0]) if iv else 0.0

    def kind(name: str) -> str:
        low = name.lower()
        if "nccl" in low:
            return "nccl"
        if "memcpy" in low:
            return name.split(" (")[0]
        if "memset" in low:
            return "memset"
        if low.startswith(("attn", "dcp_", "b90", "f90")) or "sm90" in low:
            return "dcp kernel"
        return "other kernel"

    by_name, by_kind = {}, {}
    for e in evs:
        dur = e.time_range.end - e.time_range.start
        for table, key in ((by_name, e.name), (by_kind, kind(e.name))):
            ms, cnt = table.get(key, (0.0, 0))
            table[key] = (ms + dur / 1e3, cnt + 1)

    def rows(t):
        return [[k, round(ms, 3), c] for k, (ms, c) in sorted(t.items(), key=lambda kv: -kv[1][0])]

    return {"profile": "grad call", "span_ms": span / 1e3, "busy_ms": busy / 1e3,
            "by_kind": rows(by_kind), "top": rows(by_name)[:30]}


if __name__ == "__main__":
    main()
