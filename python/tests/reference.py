"""Dense masked attention straight from the mask definitions (docs of dcp-core's MaskSpec),
written independently of the Rust code: the reference the plans' results are checked against."""

from __future__ import annotations

import math

import torch


def mask_matrix(kind: str, n: int) -> torch.Tensor:
    """Boolean [n, n]: row i may attend key j."""
    i = torch.arange(n).view(-1, 1)
    j = torch.arange(n).view(1, -1)
    causal = j <= i
    name, *args = kind.split(":")
    if name == "causal":
        return causal
    if name == "full":
        return torch.ones(n, n, dtype=torch.bool)
    if name == "sliding-window":
        (w,) = map(int, args)
        return causal & (j >= i - w + 1)
    if name == "lambda":
        s, w = map(int, args) if args else (64, 4096)
        return causal & ((j < s) | (j >= i - w + 1))
    if name == "prefix-lm":
        (p,) = map(int, args)
        return causal | (j < p)
    if name == "shared-question":
        frac, answers = (float(args[0]), int(args[1])) if args else (0.2, 4)
        nq = min(max(math.floor(frac * n), 0), n)
        pa = (n - nq) // answers
        if answers == 1 or pa == 0:
            return causal
        a = ((i - nq) // pa).clamp(0, answers - 1)
        start = nq + a * pa
        return causal & ((j < nq) | (j >= start) | (i < nq))
    if name == "causal-blockwise":
        b, k = map(int, args) if args else (256, 2)
        nb = -(-n // b)
        if nb <= 2:
            return causal
        last = (nb - 1) * b
        lo = torch.maximum(torch.full_like(i, b), i - k * b)
        middle = causal & ((j < b) | (j >= lo))
        return torch.where((i >= b) & (i < last), middle, causal)
    raise ValueError(kind)


def batch_mask(lengths, masks) -> torch.Tensor:
    """Block-diagonal [T, T] mask of a packed batch (sequences never see each other)."""
    t = sum(lengths)
    m = torch.zeros(t, t, dtype=torch.bool)
    at = 0
    for n, kind in zip(lengths, masks):
        m[at : at + n, at : at + n] = mask_matrix(kind, n)
        at += n
    return m


def dense_attention(q, k, v, mask):
    """q [T, H, D], k/v [T, Hk, D], mask [T, T] → o [T, H, D]; rows without keys give 0."""
    h, hk = q.shape[1], k.shape[1]
    k = k.repeat_interleave(h // hk, dim=1)
    v = v.repeat_interleave(h // hk, dim=1)
    s = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~mask, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return torch.einsum("hij,jhd->ihd", p, v)
