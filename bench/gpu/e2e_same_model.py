"""One model, two kinds of context parallelism: PyTorch's own ``context_parallel`` (SDPA, cuDNN or
flash) against ``dcp.torch.attention`` on a dcp plan, with everything else the same.

    torchrun --nproc-per-node 2 bench/gpu/e2e_same_model.py --sides dcp,zigzag --seq-len 131072
    torchrun --nproc-per-node 2 bench/gpu/e2e_same_model.py --sides cp:cudnn,cp:flash --seq-len 131072
    python bench/gpu/e2e_same_model.py --report a.jsonl b.jsonl         # one table over runs

The model (one definition for every side): a Llama-style decoder, by default 16 layers, hidden
2048, 16 / 4 heads of D 128, SwiGLU 5632, vocab 32000 (0.85B parameters), bf16: nn.RMSNorm,
one fused qkv and one fused gate-up projection per layer, RoPE with bf16 cos/sin tables made
from each token's position, activation checkpointing per layer, full logits and cross-entropy
in fp32 (summed, divided by the sequence's label count), gradients summed over the group with
one all-reduce per parameter, fused AdamW. The data: ONE causal sequence of --seq-len random
token ids (seeded), the same every step; labels are the next token (none at the last).

Sides (--sides, a comma list, run in turn in one process from the same initial weights):
  cp:cudnn, cp:flash   PyTorch's context_parallel: the ids, labels and positions are sharded by
                       it (round-robin load balance), attention is F.scaled_dot_product_attention
                       (is_causal, enable_gqa) under sdpa_kernel(backend)
  dcp, zigzag, ring, ulysses, usp[:H], local
                       a dcp plan of the sequence (dcp.Planner, that planner); each rank's ids,
                       labels and positions are the plan's (dcp.data.PlanningDataLoader), attention
                       is dcp.torch.attention

Per step (rank 0, JSON lines): loss, step time (from a barrier to the end of the optimizer
step), the attention's own time (CUDA events around every attention call, forward and the
recomputation under checkpointing, and around its backward, summed over the step), the
gradient norm (all parameters and the qkv projections, after the all-reduce). Per side: median
step time over the steps after --warmup, tokens/s/GPU, peak allocated memory, GPU memory in
use (PyTorch's cache plus the dcp executor's own buffers). A table comes last; sides whose
first-step loss differs from the first side's by more than 1e-2 (or gradient norm by more
than 2 %) are marked and the exit status is 1.

--device cpu (tests, no GPU): fp32, gloo. dcp sides run on dcp's CPU reference executor (for
several ranks each rank gathers every rank's q, k, v and computes all outputs there); cp sides
keep context_parallel's sharding but, as its SDPA needs CUDA, their attention is a plain causal
attention over every rank's gathered tokens ordered by position (marked cp:*-emulated).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100
CP_BACKENDS = ("cudnn", "flash")
DCP_PLANNERS = ("dcp", "ring", "zigzag", "local", "ulysses", "usp")

# ------------------------------------------------------------------------------------------
# The model (the same for every side).
# ------------------------------------------------------------------------------------------


def _layer():
    """examples/train.py's decoder layer and RoPE tables: one definition, so that this benchmark
    trains the very layer the example does (imported on first use: the example imports dcp,
    which ``--report`` does not need)."""
    examples = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    from train import Block, rope_tables

    return Block, rope_tables


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.hidden)
        block, self.rope_tables = _layer()
        self.blocks = nn.ModuleList(block(a) for _ in range(a.layers))
        self.norm = nn.RMSNorm(a.hidden, eps=1e-5)
        self.head = nn.Linear(a.hidden, a.vocab, bias=False)
        self.head_dim = a.head_dim
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, pos, labels, attn):
        """Summed cross-entropy of this rank's tokens (fp32 logits, all at once)."""
        x = self.embed(ids)
        cs = self.rope_tables(pos, self.head_dim, x.dtype)
        for b in self.blocks:
            x = checkpoint(b, x, cs, attn, use_reentrant=False)
        logits = self.head(self.norm(x)).float()
        return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")


# ------------------------------------------------------------------------------------------
# Timing the attention inside the step.
# ------------------------------------------------------------------------------------------


class _BackwardStarts(torch.autograd.Function):
    """Identity on the attention's output; its backward (the first thing of the attention's
    backward) stamps the start."""

    @staticmethod
    def forward(ctx, clock, o):
        ctx.clock = clock
        return o.view_as(o)

    @staticmethod
    def backward(ctx, g):
        ctx.clock.open.append(ctx.clock.stamp())
        return None, g


class _BackwardEnds(torch.autograd.Function):
    """Identity on the attention's q, k, v; its backward runs once all three gradients exist."""

    @staticmethod
    def forward(ctx, clock, q, k, v):
        ctx.clock = clock
        return q.view_as(q), k.view_as(k), v.view_as(v)

    @staticmethod
    def backward(ctx, gq, gk, gv):
        c = ctx.clock
        c.bwd.append((c.open.pop(), c.stamp()))
        return None, gq, gk, gv


class AttentionClock:
    """Device time of every attention call of a step: CUDA events (perf_counter on the CPU, where
    ops run synchronously) around each forward call, the recomputation under checkpointing
    included, and around each backward."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.fwd: list = []
        self.bwd: list = []
        self.open: list = []

    def stamp(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def _ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3

    def wrap(self, attn: Callable) -> Callable:
        def timed(q, k, v):
            q, k, v = _BackwardEnds.apply(self, q, k, v)
            t0 = self.stamp()
            o = attn(q, k, v)
            self.fwd.append((t0, self.stamp()))
            return _BackwardStarts.apply(self, o)

        return timed

    def take(self) -> dict:
        """The step's sums (call after the device is synchronized); starts the next step."""
        if self.open:
            raise RuntimeError(f"{len(self.open)} attention backward(s) started but never ended")
        out = {"attn_fwd_ms": sum(self._ms(a, b) for a, b in self.fwd),
               "attn_bwd_ms": sum(self._ms(a, b) for a, b in self.bwd),
               "attn_calls": [len(self.fwd), len(self.bwd)]}
        self.fwd, self.bwd = [], []
        return out


# ------------------------------------------------------------------------------------------
# Attention of each side.
# ------------------------------------------------------------------------------------------


def _gather_rows(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Every rank's ``x`` (first dims ``sizes``), padded to the largest for the collective."""
    pad = max(sizes)
    buf = torch.zeros((pad,) + tuple(x.shape[1:]), dtype=x.dtype)
    buf[: x.shape[0]] = x
    parts = [torch.empty_like(buf) for _ in sizes]
    dist.all_gather(parts, buf.contiguous())
    return [p[:n] for p, n in zip(parts, sizes)]


class _GatheredAttention(torch.autograd.Function):
    """CPU tests of several ranks: each rank gathers every rank's q, k, v, computes every rank's
    output with ``every_rank`` (differentiable, lists in rank order) and keeps its own; the
    backward gathers every rank's output gradient and does the same."""

    @staticmethod
    def forward(ctx, q, k, v, every_rank, sizes, rank):
        world = len(sizes)
        ins = [t.detach().requires_grad_() for x in (q, k, v) for t in _gather_rows(x.detach(), sizes)]
        # keep the inner graph's saved tensors: under checkpointing they would otherwise be
        # dropped and rebuilt by recomputing the layer inside this call's backward
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            outs = every_rank(ins[:world], ins[world : 2 * world], ins[2 * world :])
        ctx.ins, ctx.outs, ctx.sizes, ctx.rank = ins, outs, sizes, rank
        return outs[rank].detach().clone()

    @staticmethod
    def backward(ctx, d_o):
        world, r = len(ctx.sizes), ctx.rank
        grads = torch.autograd.grad(ctx.outs, ctx.ins, _gather_rows(d_o.contiguous(), ctx.sizes))
        return grads[r], grads[world + r], grads[2 * world + r], None, None, None


def dcp_attention(plan, rank: int, world: int, cpu: bool) -> Callable:
    import dcp.torch as dtorch

    if cpu and world > 1:
        sizes = [plan.num_tokens(r) for r in range(world)]

        def every_rank(qs, ks, vs):
            return dtorch.attention_all_ranks(qs, ks, vs, plan)

        return lambda q, k, v: _GatheredAttention.apply(q, k, v, every_rank, sizes, rank)
    return lambda q, k, v: dtorch.attention(q, k, v, plan, rank)


def cp_attention(backend: str) -> Callable:
    """PyTorch SDPA as context_parallel intercepts it: [tokens, heads, D] -> [1, heads, tokens, D]."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    bk = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[backend]

    def attn(q, k, v):
        q, k, v = (x.transpose(0, 1)[None] for x in (q, k, v))
        with sdpa_kernel(bk):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return o[0].transpose(0, 1)

    return attn


def cp_attention_emulated(pos: torch.Tensor, rank: int, world: int) -> Callable:
    """CPU stand-in for context_parallel's attention (its SDPA needs CUDA): causal attention of
    one sequence over every rank's gathered tokens, put in order by their positions."""
    sizes = [pos.shape[0]] * world
    order = torch.cat(_gather_rows(pos, sizes)).argsort()

    def every_rank(qs, ks, vs):
        q, k, v = (torch.cat(x)[order].transpose(0, 1)[None] for x in (qs, ks, vs))
        g = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        # written out: under context_parallel, F.scaled_dot_product_attention is its (CUDA) ring
        s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        o = (s.softmax(-1) @ v)[0].transpose(0, 1)
        full = torch.empty_like(o).index_copy(0, order, o)
        return list(full.split(sizes))

    return lambda q, k, v: _GatheredAttention.apply(q, k, v, every_rank, sizes, rank)


# ------------------------------------------------------------------------------------------
# Training one side.
# ------------------------------------------------------------------------------------------


def sequence(a) -> tuple[np.ndarray, np.ndarray]:
    """The run's one sequence: random ids (seeded) and next-token labels (none at the end)."""
    ids = np.random.default_rng(a.seed).integers(0, a.vocab, size=a.seq_len, dtype=np.int64)
    labels = np.full_like(ids, IGNORE_INDEX)
    labels[:-1] = ids[1:]
    return ids, labels


def grad_norm(params) -> torch.Tensor:
    """The 2-norm of the parameters' gradients, accumulated and returned in fp32 (no sync)."""
    return torch.stack([torch.linalg.vector_norm(p.grad, dtype=torch.float32) for p in params]).norm()


def run_side(a, side: str, rank: int, world: int, dev: torch.device, emit: Callable) -> dict:
    cpu = dev.type == "cpu"
    distributed = world > 1

    def sync():
        if not cpu:
            torch.cuda.synchronize()

    torch.manual_seed(a.seed)
    with torch.device(dev):
        model = Llama(a)
    model = model.to(torch.float32 if cpu else torch.bfloat16)
    params = list(model.parameters())
    if distributed:  # every rank starts from rank 0's weights, whatever its generator drew
        for p in params:
            dist.broadcast(p.data, 0)
    qkv = [b.qkv.weight for b in model.blocks]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, fused=not cpu)
    clock = AttentionClock(not cpu)
    ids_np, labels_np = sequence(a)
    count = float((labels_np != IGNORE_INDEX).sum())  # the whole sequence's labels, every rank
    info = {"side": side}

    def step(ids, pos, labels, attn):
        loss = model(ids, pos, labels, clock.wrap(attn)) / count
        loss.backward()
        total = loss.detach().clone()
        if distributed:
            for p in params:
                dist.all_reduce(p.grad)
            dist.all_reduce(total)
        gnorm, qnorm = grad_norm(params), grad_norm(qkv)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total, gnorm, qnorm

    rows = []

    n_batches = a.steps + (1 if side in a.profile_sides else 0)

    def timed_steps(batches, attn_of):
        batches = iter(batches)
        for i, (ids, pos, labels, extra) in zip(range(a.steps), batches):
            sync()
            if distributed:
                dist.barrier()
            t0 = time.perf_counter()
            total, gnorm, qnorm = step(ids, pos, labels, attn_of(extra))
            sync()
            dt = time.perf_counter() - t0
            row = {"side": side, "step": i, "loss": total.item(), "step_ms": dt * 1e3, **clock.take(),
                   "grad_norm": gnorm.item(), "qkv_grad_norm": qnorm.item(), **info}
            row["rest_ms"] = row["step_ms"] - row["attn_fwd_ms"] - row["attn_bwd_ms"]
            rows.append(row)
            emit(row)
        info["peak_gib"] = 0.0 if cpu else torch.cuda.max_memory_allocated() / 2**30
        if not cpu:
            free, total = torch.cuda.mem_get_info()
        info["gpu_used_gib"] = 0.0 if cpu else (total - free) / 2**30
        if side in a.profile_sides:
            ids, pos, labels, extra = next(batches)
            trace = os.path.join(a.trace, f"trace_{side.replace(':', '_')}_rank{rank}.json.gz") if a.trace else None
            profile_step(lambda: step(ids, pos, labels, attn_of(extra)), side, cpu, emit, trace=trace)
            clock.take()

    if not cpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if side.startswith("cp:"):
        backend = side.split(":", 1)[1]
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.experimental import context_parallel

        mesh = init_device_mesh(dev.type, (world,))
        ids_t, labels_t, pos_t = (torch.from_numpy(x)[None].to(dev) for x in (ids_np, labels_np, np.arange(a.seq_len)))
        info["attention"] = f"context_parallel + SDPA {backend}" + (" (CPU: emulated)" if cpu else "")
        with context_parallel(mesh, buffers=[ids_t, labels_t, pos_t], buffer_seq_dims=[1, 1, 1]):
            attn = cp_attention_emulated(pos_t[0], rank, world) if cpu else cp_attention(backend)
            info["tokens_rank0"] = ids_t.shape[1]
            timed_steps(((ids_t[0], pos_t[0], labels_t[0], None) for _ in range(n_batches)), lambda _: attn)
    else:
        import dcp
        from dcp.data import PlanningDataLoader

        name = side
        extra = {"token_epsilon": a.token_epsilon} if name == "dcp" else {}
        planner = dcp.Planner(world, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim, dtype="bf16",
                              block_size=a.block_size, planner=name, mask="causal", **extra)
        loader = PlanningDataLoader(planner, [ids_np] * n_batches, num_batches=n_batches, budget=a.seq_len,
                                    rank=rank, device=dev)

        def batches():
            for b in loader:
                # the loader's labels are dcp.data.pack's: the same next-token rule as sequence()
                info["plan"] = b.plan.planner
                info["tokens_rank0"] = b.plan.num_tokens(0)
                info["token_imbalance"] = max(b.plan.num_tokens(r) for r in range(world)) * world / a.seq_len
                yield b.input_ids, b.position_ids, b.labels, b.plan

        info["attention"] = "dcp.torch.attention" + (" (CPU reference executor)" if cpu else "")
        timed_steps(batches(), lambda plan: dcp_attention(plan, rank, world, cpu))
        loader.close()
    steady = rows[a.warmup:] or rows
    med = statistics.median(r["step_ms"] for r in steady)
    summary = {
        "summary": True, **info, "seq_len": a.seq_len, "world": world, "layers": a.layers, "hidden": a.hidden,
        "params": sum(p.numel() for p in params), "steps": len(rows), "warmup": a.warmup,
        "median_step_ms": med, "tokens_per_s_per_gpu": a.seq_len / (med / 1e3) / world,
        "median_attn_fwd_ms": statistics.median(r["attn_fwd_ms"] for r in steady),
        "median_attn_bwd_ms": statistics.median(r["attn_bwd_ms"] for r in steady),
        "median_rest_ms": statistics.median(r["rest_ms"] for r in steady),
        "losses": [r["loss"] for r in rows], "grad_norm_first": rows[0]["grad_norm"],
        "qkv_grad_norm_first": rows[0]["qkv_grad_norm"],
        "device": "cpu" if cpu else torch.cuda.get_device_name(), "torch": torch.__version__,
    }
    emit(summary)
    return summary


def profile_step(run: Callable, side: str, cpu: bool, emit: Callable, top: int = 20,
                 trace: str | None = None) -> None:
    """One more step (not timed) under torch.profiler: emits the ops that launched the most device
    time (self time: each kernel counts once, for the op that launched it) and the longest kernels
    (CPU time of the ops on the CPU), to say where the step's time outside attention goes.
    ``trace``: also write the step's Chrome trace there (gzip when it ends in .gz)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([] if cpu else [ProfilerActivity.CUDA])
    with profile(activities=acts) as prof:
        run()
        if not cpu:
            torch.cuda.synchronize()
    if trace:
        os.makedirs(os.path.dirname(trace) or ".", exist_ok=True)
        prof.export_chrome_trace(trace)
    key = "self_cpu_time_total" if cpu else "self_device_time_total"
    ev = [e for e in prof.key_averages() if getattr(e, key) > 0]
    ev.sort(key=lambda e: getattr(e, key), reverse=True)
    ops = [e for e in ev if e.device_type == DeviceType.CPU]
    kernels = [e for e in ev if e.device_type != DeviceType.CPU]

    def rows(es):
        return [[e.key[:120], round(getattr(e, key) / 1e3, 3), e.count] for e in es[:top]]

    emit({"profile": side, "by": key, "total_ms": sum(getattr(e, key) for e in (ops if cpu else kernels)) / 1e3,
          "top": rows(ops), "top_kernels": rows(kernels)})


# ------------------------------------------------------------------------------------------
# Checks and the table.
# ------------------------------------------------------------------------------------------


def check(summaries: list[dict], loss_tol: float = 1e-2, grad_tol: float = 2e-2) -> list[str]:
    """Problems: sides whose first-step loss or gradient norms differ from the reference's
    (the first context_parallel side if any, else the first side)."""
    bad = []
    ours = [s for s in summaries if not s["side"].startswith("train.py")]
    for t in summaries:
        # examples/train.py --seq-len: same seed, so the same first sequence and initial weights
        # as this script's; its first loss must be this script's dcp side's
        d = next((s for s in ours if s["side"] == t["side"].split(" ")[-1]), None)
        if t["side"].startswith("train.py") and d and (t["seq_len"], t["world"]) == (d["seq_len"], d["world"]):
            dl = abs(t["losses"][0] - d["losses"][0])
            print(f"check: {t['side']} first-step loss {t['losses'][0]:.5f} vs e2e {d['side']} {d['losses'][0]:.5f} "
                  f"(|d| {dl:.1e})")
            if dl > loss_tol:
                bad.append(f"{t['side']}: first-step loss differs from e2e {d['side']} by {dl:.2e} > {loss_tol}")
    summaries = ours
    if len(summaries) < 2:
        return bad
    ref = next((s for s in summaries if s["side"].startswith("cp:")), summaries[0])
    for s in summaries:
        if s is ref:
            continue
        if (s["seq_len"], s["world"], s["layers"], s["hidden"]) != (ref["seq_len"], ref["world"], ref["layers"], ref["hidden"]):
            bad.append(f"{s['side']}: not the same run shape as {ref['side']}, not compared")
            continue
        dl = abs(s["losses"][0] - ref["losses"][0])
        if dl > loss_tol:
            bad.append(f"{s['side']}: first-step loss {s['losses'][0]:.5f} vs {ref['side']} {ref['losses'][0]:.5f} (|d| {dl:.2e} > {loss_tol})")
        for key in ("grad_norm_first", "qkv_grad_norm_first"):
            rel = abs(s[key] - ref[key]) / max(abs(ref[key]), 1e-30)
            if rel > grad_tol:
                bad.append(f"{s['side']}: {key} {s[key]:.5g} vs {ref['side']} {ref[key]:.5g} (rel {rel:.2e} > {grad_tol})")
    return bad


def _f(x, spec: str, width: int) -> str:
    return format(x, spec).rjust(width) if isinstance(x, (int, float)) else "-".rjust(width)


def table(summaries: list[dict]) -> str:
    head = (f"{'side':<14} {'plan':<13} {'step ms':>8} {'tok/s/GPU':>9} {'attn fwd':>8} {'attn bwd':>8} {'rest ms':>8} "
            f"{'peak GiB':>8} {'used GiB':>8} {'loss0':>8} {'loss_end':>8} {'|g|0':>8} {'|g_qkv|0':>9}")
    lines = [head]
    for s in summaries:
        lines.append(
            f"{s['side']:<14} {s.get('plan', '-'):<13} {_f(s['median_step_ms'], '.1f', 8)} "
            f"{_f(s['tokens_per_s_per_gpu'], '.0f', 9)} {_f(s.get('median_attn_fwd_ms'), '.1f', 8)} "
            f"{_f(s.get('median_attn_bwd_ms'), '.1f', 8)} {_f(s.get('median_rest_ms'), '.1f', 8)} "
            f"{_f(s['peak_gib'], '.2f', 8)} {_f(s['gpu_used_gib'], '.2f', 8)} {_f(s['losses'][0], '.4f', 8)} "
            f"{_f(s['losses'][-1], '.4f', 8)} {_f(s.get('grad_norm_first'), '.4f', 8)} "
            f"{_f(s.get('qkv_grad_norm_first'), '.5f', 9)}")
    s = next((x for x in summaries if "torch" in x), None)
    if s:
        lines.append(f"({s['seq_len']} tokens, world {s['world']}, {s['params'] / 1e9:.2f}B params, {s['device']}, "
                     f"torch {s['torch']}; medians over the steps after {s['warmup']} warm-up of {s['steps']}; attn fwd = "
                     "CUDA-event time of the step's attention calls, the recomputation under checkpointing included; "
                     "rest = step - attn)")
    if any(x["side"].startswith("train.py") for x in summaries):
        lines.append("(train.py: examples/train.py --seq-len, a new random sequence each step, chunked cross-entropy, "
                     "clip_grad_norm_, one flat all-reduce; same seed, so its first step (sequence, weights) is the e2e dcp side's)")
    return "\n".join(lines)


def train_py_summary(path: str) -> list[dict]:
    """Rows of an examples/train.py --out file in this table's terms (median step time)."""
    with open(path) as f:
        d = json.load(f)
    runs = d.get("runs", [d])
    out = []
    for r in runs:
        sm, st = r["summary"], r["steps"]
        steady = st[sm["warmup"]:] or st
        med = statistics.median(x["step_s"] for x in steady) * 1e3
        out.append({"summary": True, "side": f"train.py {sm['planner']}", "plan": steady[-1]["plan"],
                    "median_step_ms": med, "tokens_per_s_per_gpu": steady[-1]["tokens"] / (med / 1e3) / sm["world"],
                    "peak_gib": sm["peak_mem_gib"], "gpu_used_gib": sm["gpu_used_gib_first_last"][1],
                    "losses": [x["loss"] for x in st], "seq_len": steady[-1]["tokens"], "world": sm["world"]})
    return out


def report(paths: list[str]) -> int:
    summaries, missing = [], 0
    for p in paths:
        if not os.path.exists(p):
            print(f"!! {p}: no such file (that run wrote nothing)")
            missing += 1
            continue
        if p.endswith(".json"):
            summaries += train_py_summary(p)
            continue
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    d = json.loads(line)
                    if d.get("summary"):
                        summaries.append(d)
                    elif "error" in d:
                        print(f"!! {d.get('side')} failed: {d['error']}")
                        missing += 1
    if not summaries:
        print("!! no side finished: no table")
        return 1
    print(table(summaries))
    bad = check(summaries)
    for b in bad:
        print(f"!! DISAGREE {b}")
    ours = [s for s in summaries if not s["side"].startswith("train.py")]
    if not bad and len(ours) > 1:
        print("check: every side's first-step loss (1e-2) and gradient norms (2 %) agree with "
              f"{next((s for s in ours if s['side'].startswith('cp:')), ours[0])['side']}")
    return 1 if (bad or missing) else 0


# ------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", default="dcp,cp:cudnn",
                    help="comma list: cp:cudnn, cp:flash (PyTorch context_parallel) and dcp planners (dcp, zigzag, ...)")
    ap.add_argument("--seq-len", type=int, default=131072, help="tokens of the one sequence")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the medians")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--block-size", type=int, default=1024, help="dcp planners' token block")
    ap.add_argument("--token-epsilon", type=float, default=0.03, help="dcp planner's token imbalance (as train.py)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--jsonl", help="append rank 0's JSON lines here")
    ap.add_argument("--profile", default="", metavar="SIDES",
                    help="comma list of sides that run one more (untimed) step under torch.profiler and print "
                         "their top kernels by device time")
    ap.add_argument("--trace", default="", metavar="DIR",
                    help="with --profile: write each profiled step's Chrome trace (gzip) into DIR, one per rank")
    ap.add_argument("--report", nargs="+", metavar="JSONL", help="print the table and checks of earlier runs, run nothing")
    a = ap.parse_args(argv)
    a.sides_list = [s.strip() for s in a.sides.split(",") if s.strip()]
    for s in a.sides_list:
        if s.startswith("cp:"):
            if s[3:] not in CP_BACKENDS:
                ap.error(f"--sides: {s}: context_parallel backends are {', '.join(CP_BACKENDS)}")
        elif s.split(":")[0] not in DCP_PLANNERS:
            ap.error(f"--sides: {s!r} is neither cp:BACKEND nor a dcp planner ({', '.join(DCP_PLANNERS)})")
    a.profile_sides = [s.strip() for s in a.profile.split(",") if s.strip()]
    stray = [s for s in a.profile_sides if s not in a.sides_list]
    if stray:
        ap.error(f"--profile: {stray} not in --sides")
    if a.warmup >= a.steps:
        ap.error(f"--warmup {a.warmup} leaves no step of {a.steps} to time")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.report:
        return report(a.report)
    cpu = a.device == "cpu"
    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed:
        dist.init_process_group("gloo" if cpu else "nccl")
        rank, world = dist.get_rank(), dist.get_world_size()
        if not cpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    else:
        rank, world = 0, 1
    dev = torch.device("cpu") if cpu else torch.device("cuda", torch.cuda.current_device())
    if any(s.startswith("cp:") for s in a.sides_list) and not distributed:
        # context_parallel shards over a device mesh: it needs torch.distributed even for one rank
        dist.init_process_group("gloo" if cpu else "nccl", rank=0, world_size=1,
                                init_method=f"tcp://127.0.0.1:{29500 + os.getpid() % 1000}")
    out = open(a.jsonl, "a") if (a.jsonl and rank == 0) else None  # noqa: SIM115 (appended to side by side)

    def emit(d: dict):
        if rank == 0:
            line = json.dumps(d)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()

    dcp_sides = [s for s in a.sides_list if not s.startswith("cp:")]
    dtorch = None
    if dcp_sides and not cpu:
        import dcp.torch as dtorch

        dtorch.init()
    summaries, failed = [], []
    for side in a.sides_list:
        try:
            summaries.append(run_side(a, side, rank, world, dev, emit))
            gc.collect()  # the side's model, optimizer state and graphs, before the next side
            if not cpu:
                torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 (a side that fails says why; the others still run)
            msg = f"{type(e).__name__}: {e}"[:600]
            emit({"side": side, "error": msg})
            print(f"!! rank {rank} side {side} failed: {msg}", file=sys.stderr, flush=True)
            failed.append(side)
            if not cpu:
                torch.cuda.empty_cache()
            if distributed and not cpu:
                break  # a collective may be left half-done on the other ranks: stop here
    if dtorch is not None:
        dtorch.shutdown()
    rc = 1 if failed else 0
    if rank == 0 and summaries:
        print(table(summaries), flush=True)
        bad = check(summaries)
        for b in bad:
            print(f"!! DISAGREE {b}", flush=True)
        rc = rc or (1 if bad else 0)
    if out:
        out.close()
    if dist.is_initialized():
        dist.destroy_process_group()
    return rc


if __name__ == "__main__":
    sys.exit(main())
