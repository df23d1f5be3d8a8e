"""Train a Llama-style decoder with DCP context parallelism (torchrun, one process per GPU).

    torchrun --nproc-per-node 4 examples/train.py --planner dcp --dataset longalign --mask causal
    python examples/train.py --single-gpu-reference --steps 50      # the loss-curve reference

Every rank of the context-parallel group gets the same batch of packed sequences from
dcp.data (planned ahead in background threads), keeps only its own tokens (the plan's layout),
and runs the whole model on them: RMSNorm, RoPE with per-sequence position ids, SwiGLU and
linear layers are per-token (fused q/k/v and gate/up projections, nn.RMSNorm, RoPE in the model's
dtype with tables from fp32 angles: the same layer as bench/gpu/e2e_same_model.py's); attention runs through dcp.torch.attention, which exchanges exactly
the blocks the plan says. Gradients are summed over the group (the loss is normalised by the
batch's total label count, so the sum is the gradient of the batch mean).

Per step it prints the loss, step time, tokens/s/GPU, the loader's wait for the plan, PyTorch's
peak allocated memory and the GPU memory in use (PyTorch's cache plus the DCP executor's own
buffers, which PyTorch does not count); --out writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import dcp
import dcp.torch as dtorch
from dcp.data import IGNORE_INDEX, PlanningDataLoader


def rope_tables(pos, d: int, dtype: torch.dtype, theta: float = 10000.0):
    """cos and sin tables [tokens, 1, 2, d/2] of the rotary embedding at positions pos [tokens], for
    rope(); angles in fp32, tables in the model's dtype (bf16 on the GPU, as Hugging Face Llama
    does); sin carries the rotation's signs. Made once per batch and shared by every layer (and
    its recomputation under checkpointing)."""
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, device=pos.device, dtype=torch.float32) / d))
    ang = pos.float()[:, None] * inv[None, :]
    cos, sin = ang.cos(), ang.sin()
    return torch.stack((cos, cos), 1)[:, None].to(dtype), torch.stack((-sin, sin), 1)[:, None].to(dtype)


def rope(x, cs):
    """Rotary embedding (rotate-half form) of x [tokens, heads, D] with the tables of rope_tables:
    [x1 c - x2 s, x2 c + x1 s] as x * cos + flip(x) * sin on [tokens, heads, 2, D/2] (4 kernels)."""
    cos, sin = cs
    xv = x.unflatten(-1, (2, -1))
    return (xv * cos + xv.flip(-2) * sin).flatten(-2).to(x.dtype)


class Block(nn.Module):
    """Pre-norm decoder layer: one fused q/k/v projection, one fused gate/up projection (SwiGLU),
    nn.RMSNorm (one fused kernel on the GPU)."""

    def __init__(self, a):
        super().__init__()
        self.h, self.hk, self.d = a.heads, a.kv_heads, a.head_dim
        self.n1, self.n2 = nn.RMSNorm(a.hidden, eps=1e-5), nn.RMSNorm(a.hidden, eps=1e-5)
        self.qkv = nn.Linear(a.hidden, (a.heads + 2 * a.kv_heads) * a.head_dim, bias=False)
        self.o = nn.Linear(a.heads * a.head_dim, a.hidden, bias=False)
        self.gate_up = nn.Linear(a.hidden, 2 * a.ffn, bias=False)
        self.down = nn.Linear(a.ffn, a.hidden, bias=False)

    def forward(self, x, cs, attn):
        n = x.shape[0]
        q, k, v = self.qkv(self.n1(x)).view(n, self.h + 2 * self.hk, self.d).split([self.h, self.hk, self.hk], 1)
        x = x + self.o(attn(rope(q, cs), rope(k, cs), v).reshape(n, self.h * self.d))
        g, u = self.gate_up(self.n2(x)).chunk(2, -1)
        return x + self.down(F.silu(g) * u)


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.hidden)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = nn.RMSNorm(a.hidden, eps=1e-5)
        self.head = nn.Linear(a.hidden, a.vocab, bias=False)
        self.ckpt = not a.no_checkpoint
        self.head_dim = a.head_dim
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, pos, labels, attn, label_count, chunk: int = 8192):
        x = self.embed(ids)
        cs = rope_tables(pos, self.head_dim, x.dtype)
        for b in self.blocks:
            x = checkpoint(b, x, cs, attn, use_reentrant=False) if self.ckpt else b(x, cs, attn)
        x = self.norm(x)
        loss = x.new_zeros((), dtype=torch.float32)
        # Chunked and checkpointed so that [tokens, vocab] logits never exist at once: at 65 536
        # tokens per rank the full fp32 logits, their bf16 copy and gradient take ~20 GiB; the
        # price is the head GEMM's recomputation (8.6 TFLOP at 65 536 tokens, ~15 ms of a ~5 s
        # step) and a loop of small kernels per chunk.
        for s in range(0, x.shape[0], chunk):
            def piece(xs, ls):
                return F.cross_entropy(self.head(xs).float(), ls, ignore_index=IGNORE_INDEX, reduction="sum")

            xs, ls = x[s : s + chunk], labels[s : s + chunk]
            loss = loss + (checkpoint(piece, xs, ls, use_reentrant=False) if self.ckpt else piece(xs, ls))
        return loss / label_count


def torch_causal_attention(plan):
    """Single-GPU reference attention with PyTorch SDPA, one causal sequence at a time."""
    lens = plan.lengths
    # world 1: the layout is the packed batch in order (checked below)
    def attn(q, k, v):
        outs, at = [], 0
        g = q.shape[1] // k.shape[1]
        for n in lens:
            qs, ks, vs = (x[at : at + n].transpose(0, 1)[None] for x in (q, k, v))
            ks, vs = ks.repeat_interleave(g, 1), vs.repeat_interleave(g, 1)
            outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)[0].transpose(0, 1))
            at += n
        return torch.cat(outs, 0)

    return attn


PLANNERS = ["dcp", "ring", "zigzag", "local", "ulysses", "usp"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--planner", default="dcp",
                    help="dcp, ring, zigzag, local, ulysses or usp (head-parallel x ring, usp:H for H head groups); a comma list (dcp,ring,zigzag) runs each in turn in one process "
                         "on the same batches, from the same initial weights")
    ap.add_argument("--dataset", default="longalign", choices=["longalign", "ldc"])
    ap.add_argument("--seq-len", type=int, default=0,
                    help="instead of --dataset: every batch is ONE sequence of this many tokens (random ids)")
    ap.add_argument("--mask", default="causal", help="causal, lambda, or any dcp mask name")
    ap.add_argument("--scale", type=float, default=1.0, help="length scale of the dataset")
    ap.add_argument("--budget", type=int, default=131072, help="tokens per batch")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5, help="steps excluded from the averages")
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--ffn", type=int, default=5632)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--token-epsilon", type=float, default=0.03,
                    help="dcp: allowed token imbalance across ranks (max/mean - 1); the layers outside attention run "
                         "on each rank's tokens, so training wants it tight (the planner's own default is 0.15)")
    ap.add_argument("--cost-model", default=None,
                    help="dcp's cost model: a `dcp calibrate` <profile>.cost.json of these GPUs (fitted kernel "
                         "model and send/recv curve); default: the built-in model")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-checkpoint", action="store_true", help="no activation checkpointing")
    ap.add_argument("--no-prepare-ahead", action="store_true",
                    help="let each plan's first attention calls prepare its GPU programs, instead of "
                         "dcp.torch.prepare() during the previous step's backward (for A/B runs)")
    ap.add_argument("--single-gpu-reference", action="store_true",
                    help="one GPU, whole batch, PyTorch SDPA attention for causal (dcp local plan otherwise)")
    ap.add_argument("--out", help="write per-step metrics as JSON here (rank 0)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: one process, fp32, the CPU reference executor (to test the script without a GPU)")
    a = ap.parse_args(argv)
    a.planners = [p.strip() for p in a.planner.split(",") if p.strip()]
    bad = [p for p in a.planners if p.split(":")[0] not in PLANNERS]
    if bad or not a.planners:
        ap.error(f"--planner: unknown planner(s) {bad or a.planner!r}; choose from {', '.join(PLANNERS)}")
    if a.single_gpu_reference and len(a.planners) > 1:
        ap.error("--single-gpu-reference runs the local plan on one GPU; give no planner list with it")
    if a.seq_len < 0:
        ap.error(f"--seq-len must be positive (got {a.seq_len})")
    return a


def all_reduce_grads(params):
    """Sum the gradients over the group with one all-reduce per dtype (one flat buffer)."""
    grads = [p.grad for p in params if p.grad is not None]
    by_dtype = {}
    for g in grads:
        by_dtype.setdefault(g.dtype, []).append(g)
    for gs in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in gs])
        dist.all_reduce(flat)
        at = 0
        for g in gs:
            g.copy_(flat[at : at + g.numel()].view_as(g))
            at += g.numel()


def run(a, planner_name, rank, world, dev, distributed):
    """Train a freshly initialised model for a.steps batches with one planner; returns (rows, summary)."""
    cpu = a.device == "cpu"
    # the CUDA executor's programs of the next plan, prepared while this step's backward runs
    prepare_ahead = not (cpu or a.no_prepare_ahead or a.single_gpu_reference)

    def sync():
        if not cpu:
            torch.cuda.synchronize()

    extra = {}
    if planner_name == "dcp":
        extra["token_epsilon"] = a.token_epsilon
        if a.cost_model:
            extra["cost_model"] = a.cost_model
    # torchrun's LOCAL_WORLD_SIZE: ranks per node, so that plans weigh inter-node links.
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if per_node < 1 or world % per_node:
        raise SystemExit(f"LOCAL_WORLD_SIZE={per_node} does not divide the world size {world}")
    planner = dcp.Planner(world, nodes=world // per_node, heads=a.heads, kv_heads=a.kv_heads,
                          head_dim=a.head_dim, dtype="bf16", block_size=a.block_size,
                          planner=planner_name, mask=a.mask, **extra)
    if a.seq_len:
        rng = np.random.default_rng(a.seed)
        seqs = [rng.integers(0, a.vocab, size=a.seq_len, dtype=np.int64) for _ in range(a.steps)]
        loader = PlanningDataLoader(planner, seqs, num_batches=a.steps, budget=a.seq_len, rank=rank, device=dev)
        data = f"one sequence of {a.seq_len}"
    else:
        loader = PlanningDataLoader(planner, dataset=a.dataset, num_batches=a.steps, scale=a.scale, budget=a.budget,
                                    vocab_size=a.vocab, seed=a.seed, rank=rank, device=dev)
        data = f"{a.dataset} x{a.scale}, budget {a.budget}"
    torch.manual_seed(a.seed)
    with torch.device(dev):  # initialised where it runs (the device's generator, seeded above)
        model = Llama(a)
    model = model.to(torch.float32 if cpu else torch.bfloat16)
    if distributed:  # every rank starts from rank 0's weights, whatever its generator drew
        for p in model.parameters():
            dist.broadcast(p.data, 0)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1, fused=not cpu)
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    if rank == 0:
        print(f"model {params / 1e9:.2f}B params, {a.layers} layers, hidden {a.hidden}, {a.heads}/{a.kv_heads} heads, "
              f"D {a.head_dim}; {world} GPU(s), planner {planner_name}, {data}, mask {a.mask}", flush=True)
    rows = []
    batches = iter(loader)
    nxt = next(batches, None)
    step = -1
    while nxt is not None:
        step, batch = step + 1, nxt
        # The next batch now, while the GPU is idle anyway (moving its tensors to the GPU waits
        # for the stream), so that its plan can be prepared during this step's backward.
        nxt = next(batches, None)
        sync()
        t0 = time.perf_counter()
        host0 = dtorch.executor_stats()
        plan = batch.plan
        labels = batch.labels
        count = torch.tensor([(labels != IGNORE_INDEX).sum().item()], device=dev, dtype=torch.float32)
        if distributed:
            dist.all_reduce(count)
        if a.single_gpu_reference and a.mask == "causal":
            assert plan.indices(0).tolist() == list(range(plan.total_tokens)), "local plan on 1 GPU keeps batch order"
            attn = torch_causal_attention(plan)
        else:
            def attn(q, k, v, plan=plan):
                return dtorch.attention(q, k, v, plan, rank)
        loss = model(batch.input_ids, batch.position_ids, labels, attn, count)
        loss.backward()
        if nxt is not None and prepare_ahead:
            # The backward is queued and the GPU is busy with it: the next plan's programs are
            # prepared now instead of in its first attention calls.
            dtorch.prepare(nxt.plan, rank)
        total = loss.detach().clone()
        if distributed:
            all_reduce_grads(model.parameters())
            dist.all_reduce(total)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        host1 = dtorch.executor_stats()
        tok = plan.total_tokens
        per_rank = [plan.num_tokens(r) for r in range(plan.world_size)]
        row = {"step": step, "loss": total.item(), "step_s": dt, "tokens": tok, "tokens_per_s_per_gpu": tok / dt / world,
               "loader_wait_s": batch.wait_s, "peak_mem_gib": 0.0 if cpu else torch.cuda.max_memory_allocated() / 2**30,
               # everything on the GPU: PyTorch's cache plus the DCP executor's own buffers
               "gpu_used_gib": 0.0 if cpu else (lambda fi: (fi[1] - fi[0]) / 2**30)(torch.cuda.mem_get_info()),
               "plan": plan.planner, "sequences": len(plan.lengths),
               # the layers outside attention run on each rank's tokens: their imbalance costs every layer
               "token_imbalance": max(per_rank) * len(per_rank) / max(1, sum(per_rank)),
               # this rank's executor host time in the step (preparing new plans, of which waiting
               # for the GPU, and evicting old ones) and its buffer allocations served by the
               # executor's pool / by the driver (cuMemAlloc)
               **{k: host1[k] - host0[k] for k in ("prepare_s", "prepare_wait_s", "evict_s", "pool_hits", "pool_misses", "alloc_s")}}
        rows.append(row)
        if rank == 0:
            print(f"step {step:4d} loss {row['loss']:.4f} time {dt * 1e3:8.1f} ms  {row['tokens_per_s_per_gpu']:9.0f} tok/s/GPU  "
                  f"wait {batch.wait_s * 1e3:6.1f} ms  prep {row['prepare_s'] * 1e3:5.1f} ms (wait {row['prepare_wait_s'] * 1e3:5.1f}, {row['pool_misses']} new allocs {row['alloc_s'] * 1e3:.1f} ms)  tok.imb {row['token_imbalance']:.2f}  peak {row['peak_mem_gib']:.1f} GiB (GPU used {row['gpu_used_gib']:.1f})  plan {plan.planner} "
                  f"({len(plan.lengths)} seqs, {tok} tokens)", flush=True)
    loader.close()
    steady = rows[a.warmup:] or rows
    summary = {
        "planner": planner_name, "dataset": f"seq{a.seq_len}" if a.seq_len else a.dataset, "scale": a.scale,
        "mask": a.mask, "world": world, "params": params, "steps": len(rows), "warmup": a.warmup,
        "mean_step_s": sum(r["step_s"] for r in steady) / len(steady),
        "mean_tokens_per_s_per_gpu": sum(r["tokens_per_s_per_gpu"] for r in steady) / len(steady),
        "loader_wait_s_total": loader.wait_s_total,
        "peak_mem_gib": max(r["peak_mem_gib"] for r in rows),
        "gpu_used_gib_first_last": [rows[0]["gpu_used_gib"], rows[-1]["gpu_used_gib"]],
        "device": "cpu" if cpu else torch.cuda.get_device_name(),
    }
    if rank == 0:
        print("summary " + json.dumps(summary), flush=True)
    del model, opt
    return rows, summary


def main(argv=None):
    """Runs each planner of --planner in turn. Returns the step rows (a dict planner -> rows when several)."""
    a = parse_args(argv)
    cpu = a.device == "cpu"
    distributed = "WORLD_SIZE" in os.environ and not a.single_gpu_reference and not cpu
    if distributed:
        dist.init_process_group("nccl")
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    else:
        rank, world = 0, 1
    dev = torch.device(a.device)
    if not cpu:
        dtorch.init()
    names = ["local"] if a.single_gpu_reference else a.planners
    runs = {}
    for name in names:
        runs[name] = run(a, name, rank, world, dev, distributed)
        if not cpu:
            torch.cuda.empty_cache()
    if not cpu:
        dtorch.shutdown()
    if rank == 0 and a.out:
        with open(a.out, "w") as f:
            if len(runs) == 1:
                rows, summary = next(iter(runs.values()))
                json.dump({"summary": summary, "steps": rows, "args": vars(a)}, f, indent=1)
            else:
                json.dump({"runs": [{"summary": s, "steps": r} for r, s in runs.values()], "args": vars(a)}, f, indent=1)
    if distributed:
        dist.destroy_process_group()
    if len(runs) == 1:
        return next(iter(runs.values()))[0]
    return {k: r for k, (r, _) in runs.items()}


if __name__ == "__main__":
    main()
