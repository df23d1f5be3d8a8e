#!/usr/bin/env python3
"""PyTorch's own context parallelism on one causal sequence, timed like `dcp bench-gpu`.

Runs `torch.distributed.tensor.experimental.context_parallel` (PyTorch's ring attention with its
round-robin load balancing) around `scaled_dot_product_attention(is_causal=True)` on one sequence
per length, with the SDPA backend named on the command line, and prints one JSON line per length
on rank 0: fwd / bwd ms, each the median over its timed runs of the slowest rank's time.

    python3 -m torch.distributed.run --nproc-per-node W bench/gpu/torch_cp_ref.py BACKEND [LEN ...]

BACKEND: cudnn, flash or efficient. LEN: tokens (default 32768 65536 131072). The model is
8 query / 2 KV heads (GQA), D 128, bf16, as `x4_cp_table.sh` runs dcp; TORCH_CP_HEADS,
TORCH_CP_KV_HEADS and TORCH_CP_HEAD_DIM change it. Each length takes TORCH_REF_WARMUP untimed
runs (default 3) and TORCH_REF_REPEATS timed ones (default 5), forward then backward, every run
started together on all ranks; raise both for a sustained, power-limited comparison (long
launches run at the 700 W cap: bench/results/kernels-2026-11-30-s31). Records carry the fields
`bench/gpu/cp_table.py` reads (`backend`, `S`, `fwd_ms`, `bwd_ms`) as `torch_cp.jsonl`; a length
that fails prints its error in the record instead.
"""
import json
import os
import sys

BACKENDS = ("cudnn", "flash", "efficient")


def _count(name, default, least):
    """An environment count of at least `least`; anything else stops with the variable named."""
    v = os.environ.get(name, "").strip() or str(default)
    if not v.isdigit() or int(v) < least:
        sys.exit(f"{name}={v}: expected a whole number of at least {least}")
    return int(v)


def parse_args(argv):
    """(backend, lengths) from the command line; a bad one stops with what was wrong."""
    if not argv or argv[0] not in BACKENDS:
        sys.exit(f"usage: torch_cp_ref.py {{{','.join(BACKENDS)}}} [LEN ...] (got {argv[:1]})")
    lens = []
    for a in argv[1:]:
        if not a.isdigit() or int(a) < 1:
            sys.exit(f"torch_cp_ref.py: length {a!r} is not a positive whole number of tokens")
        lens.append(int(a))
    return argv[0], lens or [32768, 65536, 131072]


WARM = _count("TORCH_REF_WARMUP", 3, 0)
REP = _count("TORCH_REF_REPEATS", 5, 1)
HEADS = _count("TORCH_CP_HEADS", 8, 1)
KV_HEADS = _count("TORCH_CP_KV_HEADS", 2, 1)
HEAD_DIM = _count("TORCH_CP_HEAD_DIM", 128, 1)
if HEADS % KV_HEADS:
    sys.exit(f"TORCH_CP_HEADS={HEADS} is not a multiple of TORCH_CP_KV_HEADS={KV_HEADS}")


def main():
    backend_name, lens = parse_args(sys.argv[1:])
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.experimental import context_parallel
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION}[backend_name]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group("nccl")
    mesh = init_device_mesh("cuda", (world,))
    gqa = HEADS != KV_HEADS
    for S in lens:
        rec = {"peer": "torch_cp_ref", "backend": backend_name, "gqa": gqa, "S": S, "world": world,
               "heads": HEADS, "kv_heads": KV_HEADS, "head_dim": HEAD_DIM, "warmup": WARM, "repeats": REP}
        try:
            g = torch.Generator(device="cuda").manual_seed(S)
            mk = lambda h: torch.randn(1, h, S, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g)
            q, k, v, do = mk(HEADS), mk(KV_HEADS), mk(KV_HEADS), mk(HEADS)
            fwd, bwd = [], []
            with context_parallel(mesh, buffers=[q, k, v, do], buffer_seq_dims=[2, 2, 2, 2]):
                qs, ks, vs = (t.detach().requires_grad_() for t in (q, k, v))
                for it in range(WARM + REP):
                    ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
                    dist.barrier()
                    torch.cuda.synchronize()
                    ev[0].record()
                    with sdpa_kernel(backend):
                        o = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=gqa)
                    ev[1].record()
                    o.backward(do)
                    ev[2].record()
                    torch.cuda.synchronize()
                    t = torch.tensor([ev[0].elapsed_time(ev[1]), ev[1].elapsed_time(ev[2])], device="cuda")
                    dist.all_reduce(t, op=dist.ReduceOp.MAX)
                    if it >= WARM:
                        fwd.append(t[0].item())
                        bwd.append(t[1].item())
                    qs.grad = ks.grad = vs.grad = None
            rec["fwd_ms"] = sorted(fwd)[len(fwd) // 2]
            rec["bwd_ms"] = sorted(bwd)[len(bwd) // 2]
        except Exception as e:  # reported per length, as a record; the others still run
            rec["error"] = f"{type(e).__name__}: {e}"[:300]
        if rank == 0:
            print(json.dumps(rec), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
