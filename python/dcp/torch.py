"""Attention through a DCP plan, with autograd.

* :func:`attention` — one rank's tokens ``[tokens, heads, head_dim]`` (bf16/f16, GQA when
  ``k``/``v`` have fewer heads). CUDA tensors run through the CUDA executor on PyTorch's current
  stream; call :func:`init` once after ``torch.distributed.init_process_group``.
* :func:`prepare` — this rank's GPU programs of a plan made ahead of its first call (hides their
  host time when called while the GPU is busy, e.g. for the next step's plan).
* :func:`attention_all_ranks` — every rank's tensors in one process, run by the CPU reference
  executor (f64). It exists so gradients are testable without a GPU.

The softmax scale is ``1/sqrt(head_dim)``. Inputs and outputs are copied device-to-device into
the executor's own buffers (a first version; see docs/PYTHON.md).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from . import GpuLibraryError, InvalidSpecError, Plan, UnsupportedError, _native

_DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def _check_qkv(q, k, v, plan: Plan, n: int, who: str) -> None:
    h, hk, d = plan.heads, plan.kv_heads, plan.head_dim
    if q.dim() != 3 or tuple(q.shape) != (n, h, d):
        raise InvalidSpecError(
            f"{who}: q has shape {tuple(q.shape)}, the plan needs [{n}, {h}, {d}] (tokens, heads, head_dim)"
        )
    for name, t in (("k", k), ("v", v)):
        if t.dim() != 3 or tuple(t.shape) != (n, hk, d):
            raise InvalidSpecError(
                f"{who}: {name} has shape {tuple(t.shape)}, the plan needs [{n}, {hk}, {d}] (tokens, kv_heads, head_dim)"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise InvalidSpecError(f"{who}: q, k, v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype})")


# --------------------------------------------------------------------------------------
# CPU: all ranks in one process through the reference executor.
# --------------------------------------------------------------------------------------


class _AllRanksCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan: Plan, world: int, *tensors):
        qs, ks, vs = tensors[:world], tensors[world : 2 * world], tensors[2 * world :]
        q = plan.undispatch([x.detach() for x in qs]).double().contiguous()
        kv = torch.cat([plan.undispatch([x.detach() for x in ks]), plan.undispatch([x.detach() for x in vs])], -1)
        kv = kv.double().contiguous()
        zeros = np.zeros(q.numel())
        o_np, _lse, _dq, _dkv = _native.cpu_attention(plan._p, q.numpy(), kv.numpy(), zeros)
        o = torch.from_numpy(o_np).view(q.shape)
        ctx.plan, ctx.world = plan, world
        ctx.dtypes = [x.dtype for x in tensors]
        ctx.save_for_backward(q, kv)
        return tuple(plan.dispatch(o, r).to(qs[r].dtype) for r in range(world))

    @staticmethod
    def backward(ctx, *grads):
        plan, world = ctx.plan, ctx.world
        q, kv = ctx.saved_tensors
        parts = [
            (g if g is not None else torch.zeros(plan.num_tokens(r), plan.heads, plan.head_dim))
            for r, g in enumerate(grads)
        ]
        d_o = plan.undispatch([p.double() for p in parts]).contiguous()
        _o, _lse, dq, dkv = _native.cpu_attention(plan._p, q.numpy(), kv.numpy(), d_o.numpy())
        dq = torch.from_numpy(dq).view(q.shape)
        dkv = torch.from_numpy(dkv).view(kv.shape)
        d = plan.head_dim
        dk, dv = dkv[..., :d], dkv[..., d:]
        out = [plan.dispatch(dq, r).to(ctx.dtypes[r]) for r in range(world)]
        out += [plan.dispatch(dk, r).to(ctx.dtypes[world + r]) for r in range(world)]
        out += [plan.dispatch(dv, r).to(ctx.dtypes[2 * world + r]) for r in range(world)]
        return (None, None, *out)


def attention_all_ranks(
    qs: Sequence[torch.Tensor], ks: Sequence[torch.Tensor], vs: Sequence[torch.Tensor], plan: Plan
) -> list[torch.Tensor]:
    """Every rank's attention output, computed in this process by the CPU reference executor
    (f64 inside; outputs in the inputs' dtype). ``qs[r]``: ``[plan.num_tokens(r), heads, D]``,
    ``ks[r]``/``vs[r]``: ``[plan.num_tokens(r), kv_heads, D]``. Differentiable."""
    world = plan.world_size
    if not (len(qs) == len(ks) == len(vs) == world):
        raise InvalidSpecError(
            f"attention_all_ranks: {len(qs)}/{len(ks)}/{len(vs)} tensors given for {world} ranks"
        )
    for r in range(world):
        if qs[r].is_cuda or ks[r].is_cuda or vs[r].is_cuda:
            raise UnsupportedError("attention_all_ranks runs on the CPU: pass CPU tensors")
        _check_qkv(qs[r], ks[r], vs[r], plan, plan.num_tokens(r), f"rank {r}")
    return list(_AllRanksCpu.apply(plan, world, *qs, *ks, *vs))


# --------------------------------------------------------------------------------------
# CUDA: this rank through the CUDA executor on PyTorch's stream.
# --------------------------------------------------------------------------------------

_EXECUTOR: Optional["_native.CudaExecutor"] = None
_EXECUTOR_WORLD = 1


def _site_nvidia_dirs() -> list[str]:
    import site

    out = []
    for sp in site.getsitepackages() + [site.getusersitepackages()]:
        d = os.path.join(sp, "nvidia")
        if os.path.isdir(d):
            out.append(d)
    return out


def _prepare_cuda_libraries() -> None:
    """Points the executor at PyTorch's CUDA 13 NVRTC and headers (pip wheels) when the
    environment does not already say where they are."""
    import ctypes
    import glob

    for base in _site_nvidia_dirs():
        if "DCP_CUDA_INCLUDE" not in os.environ:
            for inc in glob.glob(os.path.join(base, "cu*", "include")):
                if os.path.exists(os.path.join(inc, "cuda_bf16.h")):
                    os.environ["DCP_CUDA_INCLUDE"] = inc
        # Loading NVRTC by full path makes the executor's later dlopen("libnvrtc.so.13") find it
        # by its soname instead of searching LD_LIBRARY_PATH.
        for lib in sorted(glob.glob(os.path.join(base, "cu*", "lib", "libnvrtc.so.*"))):
            if "builtins" not in lib:
                try:
                    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass


def _check_one_nccl() -> None:
    """The executor loads ``libnccl.so``; PyTorch loads its pip ``libnccl.so.2``. Refuse to run
    with two different NCCLs in the process unless told to (DCP_ALLOW_NCCL_MISMATCH=1)."""
    ours = _native.nccl_version()
    theirs = torch.cuda.nccl.version()
    if isinstance(theirs, tuple):
        theirs = theirs[0] * 10000 + theirs[1] * 100 + (theirs[2] if len(theirs) > 2 else 0)
    if ours != theirs and os.environ.get("DCP_ALLOW_NCCL_MISMATCH") != "1":
        raise GpuLibraryError(
            f"dcp loaded NCCL {ours} but PyTorch uses NCCL {theirs}: put a libnccl.so that points at "
            "PyTorch's first on LD_LIBRARY_PATH before starting Python "
            '(`eval "$(python -m dcp.env)"`), or set DCP_ALLOW_NCCL_MISMATCH=1 to run with both'
        )


def init(group=None, device: Optional[torch.device] = None, cache: int = 4, blocking_timeout_s=None) -> None:
    """Sets up the CUDA executor of this process on ``device`` (default: the current CUDA device)
    with an NCCL communicator over ``group`` (default: the world; none without
    torch.distributed). Rank 0 of the group makes the NCCL id; torch.distributed broadcasts it.
    ``cache``: plans whose GPU programs stay prepared (LRU). ``blocking_timeout_s``: wait for
    every call, raising PeerFailureError when a peer fails or the timeout passes (debugging)."""
    global _EXECUTOR, _EXECUTOR_WORLD
    import torch.distributed as dist

    if not torch.cuda.is_available():
        raise GpuLibraryError("dcp.torch.init: PyTorch sees no CUDA device")
    _prepare_cuda_libraries()
    dev = torch.device("cuda", torch.cuda.current_device()) if device is None else torch.device(device)
    world, rank, nid = 1, 0, None
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size(group)
        rank = dist.get_rank(group)
    if world > 1:
        _check_one_nccl()
        obj = [_native.nccl_unique_id() if rank == 0 else None]
        src = dist.get_global_rank(group, 0) if group is not None else 0
        dist.broadcast_object_list(obj, src=src, group=group)
        nid = obj[0]
    torch.cuda.synchronize(dev)
    _EXECUTOR = _native.CudaExecutor(dev.index, rank, world, nid, cache, blocking_timeout_s)
    _EXECUTOR_WORLD = world


def synchronize(timeout_s: float = 300.0) -> None:
    """Waits for the executor's queued work. Raises PeerFailureError on an NCCL error or when
    the work is not done within ``timeout_s`` seconds (or the executor's own deadline, where
    shorter), which leaves the executor failed; InvalidSpecError when ``timeout_s`` is not a
    positive number."""
    if _EXECUTOR is not None:
        _EXECUTOR.synchronize(timeout_s)


def executor_stats() -> dict:
    """Host time of this process's CUDA executor so far (zeros before :func:`init`):
    ``prepares`` (device programs prepared: one forward and one backward per new plan),
    ``prepare_s`` (seconds lowering them, allocating their buffers, uploading descriptors),
    ``prepare_wait_s`` (the part of ``prepare_s`` spent waiting for the executor's streams: the
    device was busy then; ``DCP_CUDA_PREPARE_SYNC=1`` brings back the waits of earlier versions)
    and ``evict_s`` (seconds waiting for an evicted cached plan's own queued work and freeing it
    to make room). They run on the calling thread between GPU work; per-step deltas show when
    they cost a step. The
    executor's buffers come from a device-memory pool (``DCP_CUDA_POOL_MB``, default 8192; 0
    turns it off): ``pool_cached_bytes`` held for reuse, ``pool_hits`` / ``pool_misses``
    allocations served from it / from the driver, and ``alloc_s`` the seconds those driver
    allocations took (part of ``prepare_s``)."""
    if _EXECUTOR is None:
        return {"prepares": 0, "prepare_s": 0.0, "prepare_wait_s": 0.0, "evict_s": 0.0,
                "pool_cached_bytes": 0, "pool_hits": 0, "pool_misses": 0, "alloc_s": 0.0}
    n, p, w, e = _EXECUTOR.host_stats
    c, h, m, a = _EXECUTOR.pool_stats
    return {"prepares": n, "prepare_s": p, "prepare_wait_s": w, "evict_s": e,
            "pool_cached_bytes": c, "pool_hits": h, "pool_misses": m, "alloc_s": a}


def shutdown(timeout_s: float = 300.0) -> None:
    """Waits for the executor's work and frees it (GPU buffers, NCCL communicator). Every rank
    calls it at the same point, before ``torch.distributed.destroy_process_group()``. The
    executor is let go even when that wait fails (PeerFailureError after a stall or a peer's
    failure), so that a later :func:`init` starts a fresh one."""
    global _EXECUTOR, _EXECUTOR_WORLD
    if _EXECUTOR is not None:
        ex, _EXECUTOR, _EXECUTOR_WORLD = _EXECUTOR, None, 1
        ex.synchronize(timeout_s)


def prepare(plan: Plan, rank: int) -> None:
    """Prepares rank ``rank``'s forward and backward GPU programs of ``plan`` now, so that the
    plan's first :func:`attention` calls do not: lowering, buffers and descriptor upload take
    tens to ~150 ms of host time per new plan at 128K tokens (``executor_stats()["prepare_s"]``).
    Call it for the next step's plan while the GPU is still busy with this step, e.g. right after
    ``loss.backward()`` has queued the backward, and that time is hidden (examples/train.py does).
    Not collective. The executor keeps ``cache`` prepared plans (:func:`init`); preparing one more
    evicts the least recently used, after waiting for that plan's own queued work."""
    if not torch.cuda.is_available():
        raise GpuLibraryError("dcp.torch.prepare: PyTorch sees no CUDA device (CPU attention prepares nothing)")
    if _EXECUTOR is None:
        init()
    if plan.world_size != _EXECUTOR_WORLD:
        raise InvalidSpecError(
            f"the plan has {plan.world_size} ranks but the process group has {_EXECUTOR_WORLD}"
        )
    _executor().prepare(plan._p, rank)


def _executor() -> "_native.CudaExecutor":
    """The process's executor; an error where :func:`init` has not made one."""
    if _EXECUTOR is None:
        raise GpuLibraryError("dcp.torch: no CUDA executor in this process (dcp.torch.init() makes it)")
    return _EXECUTOR


def _addr(t: torch.Tensor) -> tuple[int, int]:
    return (t.data_ptr(), t.numel() * t.element_size())


def _stream(device: torch.device) -> int:
    return torch.cuda.current_stream(device).cuda_stream


class _CudaAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, plan: Plan, rank: int):
        ex = _executor()
        q = q.contiguous()
        kv = torch.cat([k, v], -1).contiguous()
        o = torch.empty_like(q)
        lse = torch.empty(q.shape[0], q.shape[1], dtype=torch.float32, device=q.device)
        # Buffers this call's backward keeps from its forward (e.g. a Ulysses plan's head-split
        # Q, KV, O, LSE): ours per call, so every layer's forward keeps its own.
        saved = [torch.empty(n, dtype=torch.uint8, device=q.device) for n in ex.saved_bytes(plan._p, rank)]
        stream = _stream(q.device)
        ex.forward(plan._p, rank, stream, _addr(q), _addr(kv), _addr(o), _addr(lse), [_addr(s) for s in saved])
        ctx.plan, ctx.rank = plan, rank
        # Keep only the caller tensors the backward reads (one that starts from saved buffers
        # may read none of them); the others go to the executor as empty placeholders.
        reads = set(ex.backward_reads(plan._p, rank))
        keep = [x if name in reads else None for name, x in (("q", q), ("kv", kv), ("o", o), ("lse", lse))]
        ctx.shapes = (q.shape, q.dtype, kv.shape)
        ctx.kept = [x is not None for x in keep]
        ctx.save_for_backward(*[x for x in keep if x is not None], *saved)
        return o

    @staticmethod
    def backward(ctx, d_o):
        tensors = list(ctx.saved_tensors)
        n_kept = sum(ctx.kept)
        kept, saved = iter(tensors[:n_kept]), tensors[n_kept:]
        q, kv, o, lse = (next(kept) if k else None for k in ctx.kept)
        q_shape, dtype, kv_shape = ctx.shapes
        device = d_o.device
        d_o = d_o.contiguous().to(dtype)
        dq = torch.empty(q_shape, dtype=dtype, device=device)
        dkv = torch.empty(kv_shape, dtype=dtype, device=device)
        stream = _stream(device)
        none = (0, 0)
        a_q, a_kv, a_o, a_lse = (none if x is None else _addr(x) for x in (q, kv, o, lse))
        _executor().backward(
            ctx.plan._p, ctx.rank, stream, a_q, a_kv, a_o, a_lse,
            _addr(d_o), _addr(dq), _addr(dkv),
            [_addr(s) for s in saved],
        )
        d = q_shape[-1]
        return dq, dkv[..., :d], dkv[..., d:], None, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: Plan, rank: int) -> torch.Tensor:
    """Attention of rank ``rank``'s tokens under ``plan`` (``rank``: this process's rank in the
    group given to :func:`init`): ``q`` ``[tokens, heads, D]``, ``k``/``v``
    ``[tokens, kv_heads, D]`` in the plan's layout (``plan.dispatch``). Returns ``[tokens, heads, D]``.

    CUDA tensors: every rank of the group calls this with the same plan (collective). CPU
    tensors work only for a one-rank plan; use :func:`attention_all_ranks` for several."""
    n = plan.num_tokens(rank)
    _check_qkv(q, k, v, plan, n, f"rank {rank}")
    if not q.is_cuda:
        if plan.world_size != 1:
            raise UnsupportedError(
                f"CPU attention of one rank of a {plan.world_size}-rank plan: the ranks exchange data, "
                "so use dcp.torch.attention_all_ranks (all ranks in one process) or CUDA tensors"
            )
        return attention_all_ranks([q], [k], [v], plan)[0]
    want = _DTYPES[plan.dtype]
    if q.dtype != want:
        raise InvalidSpecError(f"q has dtype {q.dtype}, the plan was made for {plan.dtype}")
    if _EXECUTOR is None:
        init()
    if plan.world_size != _EXECUTOR_WORLD:
        raise InvalidSpecError(
            f"the plan has {plan.world_size} ranks but the process group has {_EXECUTOR_WORLD}"
        )
    return _CudaAttention.apply(q, k, v, plan, rank)
