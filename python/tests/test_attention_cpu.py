"""The attention op's CPU path (all ranks through the reference executor) against dense masked
attention in float64: outputs and gradients, every mask kind, GQA ratios, world sizes."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dcp  # noqa: E402
import dcp.torch as dtorch  # noqa: E402
from reference import batch_mask, dense_attention  # noqa: E402

MASKS = ["causal", "full", "sliding-window:7", "lambda:4:8", "shared-question:0.2:3", "causal-blockwise:4:2", "prefix-lm:5"]


def run_case(world, heads, kv_heads, lens, masks, planner, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = dcp.Planner(world, heads=heads, kv_heads=kv_heads, head_dim=d, block_size=8, planner=planner)
    plan = p.plan(lens, mask=masks)
    t = plan.total_tokens
    q = torch.randn(t, heads, d, generator=g, dtype=torch.float64) * 1.5
    k = torch.randn(t, kv_heads, d, generator=g, dtype=torch.float64)
    v = torch.randn(t, kv_heads, d, generator=g, dtype=torch.float64)
    w = torch.randn(t, heads, d, generator=g, dtype=torch.float64)
    # Reference: dense attention on the packed batch.
    qr, kr, vr = (x.clone().requires_grad_() for x in (q, k, v))
    mlist = masks if isinstance(masks, list) else [masks] * len(lens)
    o_ref = dense_attention(qr, kr, vr, batch_mask(lens, mlist))
    (o_ref * w).sum().backward()
    # DCP: every rank's tensors in its layout.
    qs = [plan.dispatch(q, r).requires_grad_() for r in range(world)]
    ks = [plan.dispatch(k, r).requires_grad_() for r in range(world)]
    vs = [plan.dispatch(v, r).requires_grad_() for r in range(world)]
    outs = dtorch.attention_all_ranks(qs, ks, vs, plan)
    sum((o * plan.dispatch(w, r)).sum() for r, o in enumerate(outs)).backward()
    o = plan.undispatch(outs)
    for name, got, want in [
        ("o", o, o_ref),
        ("dq", plan.undispatch([x.grad for x in qs]), qr.grad),
        ("dk", plan.undispatch([x.grad for x in ks]), kr.grad),
        ("dv", plan.undispatch([x.grad for x in vs]), vr.grad),
    ]:
        err = (got - want).abs().max().item()
        assert err < 1e-9, f"{name}: max error {err} (world {world}, {planner}, {masks}, lens {lens})"


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("planner", dcp.PLANNERS)
def test_every_mask_every_planner(mask, planner):
    run_case(2, 4, 2, [37, 9, 50], mask, planner)


@pytest.mark.parametrize("heads,kv_heads", [(2, 2), (4, 2), (4, 1), (3, 1)])
@pytest.mark.parametrize("world", [1, 3, 4])
def test_gqa_ratios_and_world_sizes(heads, kv_heads, world):
    run_case(world, heads, kv_heads, [41, 1, 23], "causal", "dcp", seed=world)


def test_random_batches():
    rng = np.random.default_rng(7)
    for case in range(6):
        world = int(rng.integers(1, 5))
        lens = [int(x) for x in rng.integers(1, 60, size=rng.integers(1, 5))]
        masks = [MASKS[int(i)] for i in rng.integers(0, len(MASKS), size=len(lens))]
        planner = dcp.PLANNERS[int(rng.integers(0, 4))]
        run_case(world, 2, 1, lens, masks, planner, seed=case)


def test_gradcheck_tiny():
    plan = dcp.Planner(2, heads=2, kv_heads=1, head_dim=4, block_size=4, planner="zigzag").plan([9, 4], mask="lambda:2:3")
    g = torch.Generator().manual_seed(3)

    def make(h):
        return [torch.randn(plan.num_tokens(r), h, 4, generator=g, dtype=torch.float64, requires_grad=True) for r in range(2)]

    qs, ks, vs = make(2), make(1), make(1)

    def f(*xs):
        return tuple(dtorch.attention_all_ranks(xs[0:2], xs[2:4], xs[4:6], plan))

    assert torch.autograd.gradcheck(f, (*qs, *ks, *vs), eps=1e-6, atol=1e-7)


def test_low_precision_inputs_keep_dtype():
    plan = dcp.Planner(2, heads=2, kv_heads=1, head_dim=8, block_size=8).plan([20, 12])
    qs = [torch.randn(plan.num_tokens(r), 2, 8, dtype=torch.bfloat16, requires_grad=True) for r in range(2)]
    ks = [torch.randn(plan.num_tokens(r), 1, 8, dtype=torch.bfloat16, requires_grad=True) for r in range(2)]
    vs = [torch.randn(plan.num_tokens(r), 1, 8, dtype=torch.bfloat16, requires_grad=True) for r in range(2)]
    outs = dtorch.attention_all_ranks(qs, ks, vs, plan)
    assert all(o.dtype == torch.bfloat16 for o in outs)
    sum(o.float().sum() for o in outs).backward()
    assert all(x.grad.dtype == torch.bfloat16 for x in qs + ks + vs)


def test_single_rank_attention_and_errors():
    plan1 = dcp.Planner(1, heads=2, kv_heads=1, head_dim=8, block_size=8).plan([10, 5])
    q = torch.randn(15, 2, 8, dtype=torch.float64)
    k = torch.randn(15, 1, 8, dtype=torch.float64)
    v = torch.randn(15, 1, 8, dtype=torch.float64)
    o = dtorch.attention(q, k, v, plan1, 0)
    ref = dense_attention(q, k, v, batch_mask([10, 5], ["causal", "causal"]))
    assert (o - ref).abs().max().item() < 1e-9
    with pytest.raises(dcp.InvalidSpecError, match="q has shape"):
        dtorch.attention(q[:, :1], k, v, plan1, 0)
    with pytest.raises(dcp.InvalidSpecError, match="k has shape"):
        dtorch.attention(q, k[:3], v, plan1, 0)
    plan2 = dcp.Planner(2, heads=2, kv_heads=1, head_dim=8, block_size=8).plan([10, 5])
    n = plan2.num_tokens(0)
    with pytest.raises(dcp.UnsupportedError, match="attention_all_ranks"):
        dtorch.attention(q[:n], k[:n], v[:n], plan2, 0)
    with pytest.raises(dcp.InvalidSpecError, match="ranks"):
        dtorch.attention_all_ranks([q], [k], [v], plan2)
