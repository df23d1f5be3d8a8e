"""GPU check of dcp.torch.attention (run by test_gpu.py through torchrun, one process per GPU):
forward and backward of every planner × mask kind against dense masked attention in float32
on the same bf16 inputs, then a memory-growth check over many calls. Rank 0 prints a table and
writes JSON to $DCP_GPU_OUT (if set)."""

import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
import dcp  # noqa: E402
import dcp.torch as dtorch  # noqa: E402
from reference import batch_mask, dense_attention  # noqa: E402

MASKS = ["causal", "full", "sliding-window:512", "lambda:64:512", "shared-question:0.2:4", "causal-blockwise:256:2", "prefix-lm:300"]
H, HK, D = 8, 2, 128
LENS = [1500, 700, 2900, 333]
TOL_O, TOL_GRAD = 2e-2, 5e-2


def main():
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dtorch.init()
    dev = torch.device("cuda")
    rows, ok = [], True
    for planner in dcp.PLANNERS:
        p = dcp.Planner(world, heads=H, kv_heads=HK, head_dim=D, block_size=512, planner=planner)
        for mask in MASKS:
            plan = p.plan(LENS, mask=mask)
            t = plan.total_tokens
            g = torch.Generator(device=dev).manual_seed(1)
            q = (torch.randn(t, H, D, device=dev, generator=g) * 1.5).bfloat16()
            k = torch.randn(t, HK, D, device=dev, generator=g).bfloat16()
            v = torch.randn(t, HK, D, device=dev, generator=g).bfloat16()
            w = torch.randn(t, H, D, device=dev, generator=g)
            qr, kr, vr = (x.float().requires_grad_() for x in (q, k, v))
            o_ref = dense_attention(qr, kr, vr, batch_mask(LENS, [mask] * len(LENS)).to(dev))
            (o_ref * w).sum().backward()
            ql, kl, vl = (plan.dispatch(x, rank).detach().requires_grad_() for x in (q, k, v))
            o = dtorch.attention(ql, kl, vl, plan, rank)
            (o.float() * plan.dispatch(w, rank)).sum().backward()

            def rel(got, want):
                want = plan.dispatch(want, rank)
                return ((got.float() - want).abs().max() / want.abs().max().clamp_min(1e-6)).item()

            errs = {
                "o": rel(o, o_ref.detach()),
                "dq": rel(ql.grad, qr.grad),
                "dk": rel(kl.grad, kr.grad),
                "dv": rel(vl.grad, vr.grad),
            }
            e = torch.tensor([errs[x] for x in ("o", "dq", "dk", "dv")], device=dev)
            dist.all_reduce(e, op=dist.ReduceOp.MAX)
            errs = dict(zip(("o", "dq", "dk", "dv"), e.tolist()))
            good = errs["o"] < TOL_O and max(errs["dq"], errs["dk"], errs["dv"]) < TOL_GRAD
            ok &= good
            rows.append({"planner": planner, "plan": plan.planner, "mask": mask, **errs, "ok": good})
    # Memory: alternate 6 plans through a 4-entry cache for 60 calls; allocation must not grow.
    p = dcp.Planner(world, heads=H, kv_heads=HK, head_dim=D, block_size=512, planner="dcp")
    plans = [p.plan([1000 + 97 * i, 2000, 500 + 13 * i], mask="causal") for i in range(6)]
    mem = []
    for it in range(60):
        plan = plans[it % 6]
        n = plan.num_tokens(rank)
        ql = torch.randn(n, H, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
        kl = torch.randn(n, HK, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
        vl = torch.randn(n, HK, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
        dtorch.attention(ql, kl, vl, plan, rank).float().sum().backward()
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        mem.append(total - free)
    grow = (mem[-1] - mem[11]) / 2**20
    mem_ok = grow < 64
    ok &= mem_ok
    # A plan prepared ahead: its first calls prepare nothing more, and it computes what dense does.
    lens2 = [1234, 2345, 777]
    plan = p.plan(lens2, mask="causal")
    n0 = dtorch.executor_stats()["prepares"]
    dtorch.prepare(plan, rank)
    n1 = dtorch.executor_stats()["prepares"]
    t = plan.total_tokens
    g = torch.Generator(device=dev).manual_seed(2)
    q, k, v = (torch.randn(t, h, D, device=dev, generator=g).bfloat16() for h in (H, HK, HK))
    qr, kr, vr = (x.float().requires_grad_() for x in (q, k, v))
    o_ref = dense_attention(qr, kr, vr, batch_mask(lens2, ["causal"] * 3).to(dev))
    o_ref.sum().backward()
    ql, kl, vl = (plan.dispatch(x, rank).detach().requires_grad_() for x in (q, k, v))
    o = dtorch.attention(ql, kl, vl, plan, rank)
    o.float().sum().backward()
    torch.cuda.synchronize()
    n2 = dtorch.executor_stats()["prepares"]
    want_o, want_dq = plan.dispatch(o_ref.detach(), rank), plan.dispatch(qr.grad, rank)
    e_o = ((o.float() - want_o).abs().max() / want_o.abs().max()).item()
    e_dq = ((ql.grad.float() - want_dq).abs().max() / want_dq.abs().max()).item()
    prep_ok = n1 - n0 == 2 and n2 == n1 and e_o < TOL_O and e_dq < TOL_GRAD
    ok &= prep_ok
    # synchronize(timeout_s): returns once the work is done; a deadline shorter than the queued
    # work raises PeerFailureError, fails the executor (later calls raise too), and shutdown
    # still lets it go. One GPU only: a stall aborts the executor's NCCL communicator.
    dtorch.synchronize(60.0)
    sync_note = "synchronize(60 s) returned"
    if world == 1:
        big = dcp.Planner(1, heads=H, kv_heads=HK, head_dim=D, planner="local").plan([65536], mask="causal")
        dtorch.prepare(big, rank)
        qb, kb, vb = (torch.randn(65536, h, D, device=dev, dtype=torch.bfloat16) for h in (H, HK, HK))
        torch.cuda.synchronize()
        with torch.no_grad():
            for _ in range(4):  # ~4 x 9 TFLOP of forward: tens of ms queued
                dtorch.attention(qb, kb, vb, big, rank)
        raised = []
        for what, call in (("synchronize(1 ms)", lambda: dtorch.synchronize(1e-3)),
                           ("attention after the stall", lambda: dtorch.attention(qb, kb, vb, big, rank)),
                           ("shutdown", dtorch.shutdown)):
            try:
                call()
                raised.append(f"{what}: returned")
            except dcp.PeerFailureError as e:
                raised.append(f"{what}: PeerFailureError ({str(e)[:60]})")
        sync_ok = all("PeerFailureError" in r for r in raised) and dtorch._EXECUTOR is None
        sync_note += "; " + "; ".join(raised) + f"; executor let go: {dtorch._EXECUTOR is None}"
        torch.cuda.synchronize()
    else:
        dtorch.shutdown()
        sync_ok = True
    ok &= sync_ok
    if rank == 0:
        print(f"{'planner':8} {'plan':12} {'mask':24} {'o':>8} {'dq':>8} {'dk':>8} {'dv':>8}  ok")
        for r in rows:
            print(f"{r['planner']:8} {r['plan']:12} {r['mask']:24} {r['o']:8.4f} {r['dq']:8.4f} {r['dk']:8.4f} {r['dv']:8.4f}  {r['ok']}")
        print(f"device memory in use, calls 12 → 60 (6 plans, cache 4): {mem[11] / 2**20:.0f} → {mem[-1] / 2**20:.0f} MiB (growth {grow:.1f} MiB) ok={mem_ok}")
        print(f"prepared ahead: {n1 - n0} programs by dcp.torch.prepare, {n2 - n1} by the calls after it; "
              f"o {e_o:.4f}, dq {e_dq:.4f} ok={prep_ok}")
        print(f"{sync_note} ok={sync_ok}")
        print(f"relative max error tolerance: o {TOL_O}, gradients {TOL_GRAD} (bf16 inputs vs fp32 dense reference)")
        out = os.environ.get("DCP_GPU_OUT")
        if out:
            with open(out, "w") as f:
                json.dump({"device": torch.cuda.get_device_name(), "world": world, "lens": LENS, "heads": H, "kv_heads": HK,
                           "head_dim": D, "rows": rows, "mem_mib": [m / 2**20 for m in mem], "ok": ok}, f, indent=1)
    dist.destroy_process_group()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
