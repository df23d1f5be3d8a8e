"""The CUDA op's Python glue (tensor packing, byte sizes, argument order, gradient mapping) with
the executor replaced by a fake that does the executor's job on CPU memory through the CPU
reference executor. The real executor runs in test_gpu.py where GPUs exist."""

import ctypes

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dcp  # noqa: E402
import dcp.torch as dtorch  # noqa: E402
from reference import batch_mask, dense_attention  # noqa: E402


def view(addr_bytes, shape):
    addr, nbytes = addr_bytes
    want = int(np.prod(shape)) * 4
    assert nbytes == want, f"{nbytes} bytes passed for a float32 tensor of shape {shape}"
    return torch.frombuffer((ctypes.c_char * nbytes).from_address(addr), dtype=torch.float32).view(shape)


class FakeExecutor:
    """Reads and writes the caller's tensors at the addresses given, like the CUDA executor.

    ``keeps``: like a plan whose backward starts from saved buffers (a Ulysses plan), the fake
    asks for saved tensors the size of Q and KV, copies Q and KV into them in the forward, and
    its backward reads no caller Q, KV, O or LSE (they arrive as empty placeholders) but the
    saved copies. Otherwise it asks for two small saved tensors, fills them with a marker and
    checks that the backward gets the same tensors back."""

    def __init__(self, plan, keeps):
        self.plan = plan
        self.keeps = keeps
        self.calls = []

    def shapes(self):
        n, h, hk, d = self.plan.num_tokens(0), self.plan.heads, self.plan.kv_heads, self.plan.head_dim
        return n, h, hk, d

    def saved_bytes(self, native, rank):
        assert rank == 0 and native == self.plan._p
        n, h, hk, d = self.shapes()
        return [n * h * d * 4, n * hk * 2 * d * 4] if self.keeps else [24, 8]

    def backward_reads(self, native, rank):
        assert rank == 0 and native == self.plan._p
        return [] if self.keeps else ["q", "kv", "o", "lse"]

    def forward(self, native, rank, stream, q, kv, o, lse, saved):
        assert rank == 0 and stream == 0 and native == self.plan._p
        assert [b for _, b in saved] == self.saved_bytes(native, rank)
        n, h, hk, d = self.shapes()
        qv, kvv = view(q, (n, h, d)), view(kv, (n, hk, 2 * d))
        if self.keeps:
            view(saved[0], (n, h, d)).copy_(qv)
            view(saved[1], (n, hk, 2 * d)).copy_(kvv)
        else:
            for k, (addr, b) in enumerate(saved):
                ctypes.memset(addr, 17 + k, b)
        self.saved_addrs = [a for a, _ in saved]
        go, gl, _, _ = dcp._native.cpu_attention(
            native, self.plan.undispatch([qv.double()]).numpy(), self.plan.undispatch([kvv.double()]).numpy(), np.zeros(n * h * d)
        )
        view(o, (n, h, d)).copy_(self.plan.dispatch(torch.from_numpy(go).view(n, h, d), 0))
        view(lse, (n, h)).copy_(self.plan.dispatch(torch.from_numpy(gl).view(n, h), 0))
        self.calls.append("forward")

    def backward(self, native, rank, stream, q, kv, o, lse, d_o, dq, dkv, saved):
        assert [a for a, _ in saved] == self.saved_addrs, "the backward gets its forward's saved tensors"
        n, h, hk, d = self.shapes()
        if self.keeps:
            assert all(x == (0, 0) for x in (q, kv, o, lse)), "tensors the backward does not read are placeholders"
            q, kv = saved
        else:
            for k, (addr, b) in enumerate(saved):
                assert ctypes.string_at(addr, b) == bytes([17 + k]) * b
            for x, shape in ((o, (n, h, d)), (lse, (n, h))):
                view(x, shape)  # sizes checked
        qv, kvv, dov = view(q, (n, h, d)), view(kv, (n, hk, 2 * d)), view(d_o, (n, h, d))
        u = self.plan.undispatch
        _, _, gq, gkv = dcp._native.cpu_attention(native, u([qv.double()]).numpy(), u([kvv.double()]).numpy(), u([dov.double()]).numpy())
        view(dq, (n, h, d)).copy_(self.plan.dispatch(torch.from_numpy(gq).view(n, h, d), 0))
        view(dkv, (n, hk, 2 * d)).copy_(self.plan.dispatch(torch.from_numpy(gkv).view(n, hk, 2 * d), 0))
        self.calls.append("backward")


def test_prepare_forwards_to_the_executor_and_checks_the_world(monkeypatch):
    plan = dcp.Planner(1, heads=2, kv_heads=1, head_dim=8, dtype="f32", block_size=8).plan([20, 9])

    class Ex:
        prepared = []

        def prepare(self, native, rank):
            self.prepared.append((native, rank))

    monkeypatch.setattr(dtorch.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dtorch, "_EXECUTOR", Ex())
    monkeypatch.setattr(dtorch, "_EXECUTOR_WORLD", 1)
    dtorch.prepare(plan, 0)
    assert Ex.prepared == [(plan._p, 0)]
    monkeypatch.setattr(dtorch, "_EXECUTOR_WORLD", 2)
    with pytest.raises(dcp.InvalidSpecError, match="1 ranks but the process group has 2"):
        dtorch.prepare(plan, 0)


def test_prepare_without_cuda_says_so(monkeypatch):
    plan = dcp.Planner(1, heads=2, kv_heads=1, head_dim=8, dtype="f32", block_size=8).plan([20, 9])
    monkeypatch.setattr(dtorch.torch.cuda, "is_available", lambda: False)
    with pytest.raises(dcp.GpuLibraryError, match="no CUDA device"):
        dtorch.prepare(plan, 0)


@pytest.mark.parametrize("keeps", [False, True])
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (3, 1)])
def test_cuda_op_glue_with_fake_executor(monkeypatch, heads, kv_heads, keeps):
    lens, mask, d = [30, 7, 19], "lambda:4:8", 8
    plan = dcp.Planner(1, heads=heads, kv_heads=kv_heads, head_dim=d, dtype="f32", block_size=8).plan(lens, mask=mask)
    fake = FakeExecutor(plan, keeps)
    monkeypatch.setattr(dtorch, "_EXECUTOR", fake)
    monkeypatch.setattr(dtorch, "_stream", lambda device: 0)
    g = torch.Generator().manual_seed(0)
    t = plan.total_tokens
    q = torch.randn(t, heads, d, generator=g)
    k = torch.randn(t, kv_heads, d, generator=g)
    v = torch.randn(t, kv_heads, d, generator=g)
    w = torch.randn(t, heads, d, generator=g)
    ql, kl, vl = (plan.dispatch(x, 0).requires_grad_() for x in (q, k, v))
    o = dtorch._CudaAttention.apply(ql, kl, vl, plan, 0)
    (o * plan.dispatch(w, 0)).sum().backward()
    qr, kr, vr = (x.double().requires_grad_() for x in (q, k, v))
    o_ref = dense_attention(qr, kr, vr, batch_mask(lens, [mask] * len(lens)))
    (o_ref * w.double()).sum().backward()
    assert fake.calls == ["forward", "backward"]
    for got, want in ((o, o_ref), (ql.grad, qr.grad), (kl.grad, kr.grad), (vl.grad, vr.grad)):
        assert (plan.undispatch([got.detach()]).double() - want).abs().max().item() < 1e-4
