"""DCP: dynamic context parallelism for long-context training.

Plan a batch of packed sequences over the ranks of a context-parallel group, move per-token
tensors to and from each rank's layout, and run attention with autograd (``dcp.torch``). Batches
can be formed and planned ahead in background threads (``dcp.data``).

    planner = dcp.Planner(world_size=4, heads=16, kv_heads=4, head_dim=128, planner="dcp")
    plan = planner.plan([30000, 70000, 31072], mask="causal")
    ids_r = plan.dispatch(input_ids, rank)        # this rank's tokens
    pos_r = plan.position_ids(rank)               # RoPE positions inside each sequence
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from . import _native
from ._native import (  # noqa: F401  (re-exported)
    BadLengthsError,
    DcpError,
    GpuError,
    GpuLibraryError,
    InvalidSpecError,
    MaskError,
    PeerFailureError,
    PlanDoesNotFitError,
    PlanFormatError,
    PlanningError,
    UnknownMaskError,
    UnsupportedError,
    form_batches,
    generate_batches,
)

__version__ = _native.__version__

# The planners that plan every shape (what comparisons and the tests run by default).
PLANNERS = ("dcp", "ring", "zigzag", "local")
# The head-parallel baselines: they refuse shapes they cannot split (Ulysses with more ranks than
# query heads raises UnsupportedError). ``usp:H`` picks USP's head degree; ``ulysses-pp`` and
# ``dcp-only`` are accepted too (see ``Planner``).
HEAD_PARALLEL = ("ulysses", "usp")

__all__ = [
    "Planner",
    "Plan",
    "PLANNERS",
    "HEAD_PARALLEL",
    "form_batches",
    "generate_batches",
    "DcpError",
    "InvalidSpecError",
    "BadLengthsError",
    "MaskError",
    "UnknownMaskError",
    "PlanningError",
    "PlanDoesNotFitError",
    "UnsupportedError",
    "PlanFormatError",
    "GpuLibraryError",
    "PeerFailureError",
    "GpuError",
]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


class Plan:
    """A plan for one batch: per-rank token layouts, forward/backward programs (opaque).

    Deterministic: the same lengths, masks and planner options give an equal plan (same
    ``fingerprint``, byte-identical ``to_bytes()``) on every rank, so each rank can plan locally.
    """

    __slots__ = ("_p", "_idx_cache", "_inv_cache")

    def __init__(self, native: _native.Plan):
        self._p = native
        self._idx_cache: dict = {}
        self._inv_cache: dict = {}

    # --- facts -------------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        return self._p.world_size

    @property
    def planner(self) -> str:
        """Planner that made it (a ``dcp`` plan says which candidate won: dcp, dcp:local, ...)."""
        return self._p.planner

    @property
    def lengths(self) -> list[int]:
        return self._p.lengths

    @property
    def masks(self) -> list[str]:
        return self._p.masks

    @property
    def total_tokens(self) -> int:
        return self._p.total_tokens

    @property
    def heads(self) -> int:
        return self._p.heads

    @property
    def kv_heads(self) -> int:
        return self._p.kv_heads

    @property
    def head_dim(self) -> int:
        return self._p.head_dim

    @property
    def dtype(self) -> str:
        return self._p.dtype

    @property
    def fingerprint(self) -> int:
        return self._p.fingerprint

    def num_tokens(self, rank: int) -> int:
        return self._p.num_tokens(rank)

    def indices(self, rank: int) -> np.ndarray:
        """Positions in the packed batch of the tokens ``rank`` holds, in its row order."""
        return self._p.indices(rank)

    def position_ids(self, rank: int) -> np.ndarray:
        """Position of each of the rank's tokens inside its own sequence (for RoPE)."""
        return self._p.position_ids(rank)

    def sequence_ids(self, rank: int) -> np.ndarray:
        return self._p.sequence_ids(rank)

    def layout(self, rank: int) -> list[tuple[int, int, int]]:
        """The rank's token spans ``(sequence, first token, length)`` in row order."""
        return self._p.layout(rank)

    def stats(self) -> dict:
        """Bytes moved, compute/memory imbalance, stages."""
        return self._p.stats()

    def validate(self) -> None:
        """Proves the plan complete and safe (symbolic execution of all ranks); raises if not."""
        self._p.validate()

    # --- moving per-token tensors ------------------------------------------------------
    def _index(self, rank: int, like: Any):
        if not _is_torch(like):
            return self.indices(rank)
        import torch

        key = (rank, str(like.device))
        t = self._idx_cache.get(key)
        if t is None:
            t = torch.from_numpy(self.indices(rank)).to(like.device)
            self._idx_cache[key] = t
        return t

    def _inverse(self, like: Any):
        key = str(like.device) if _is_torch(like) else "numpy"
        inv = self._inv_cache.get(key)
        if inv is None:
            order = np.concatenate([self.indices(r) for r in range(self.world_size)])
            inv_np = np.empty_like(order)
            inv_np[order] = np.arange(order.size, dtype=order.dtype)
            if _is_torch(like):
                import torch

                inv = torch.from_numpy(inv_np).to(like.device)
            else:
                inv = inv_np
            self._inv_cache[key] = inv
        return inv

    def dispatch(self, x: Any, rank: int):
        """Rows of ``x`` (first dim = packed-batch tokens) that ``rank`` holds, in its order.

        Works on torch tensors (differentiable) and numpy arrays.
        """
        if x.shape[0] != self.total_tokens:
            raise InvalidSpecError(
                f"dispatch: the tensor has {x.shape[0]} rows, the batch has {self.total_tokens} tokens"
            )
        idx = self._index(rank, x)
        return x.index_select(0, idx) if _is_torch(x) else x[idx]

    def undispatch(self, parts: Sequence[Any]):
        """Inverse of :meth:`dispatch`: every rank's rows (in rank order) → packed-batch order."""
        if len(parts) != self.world_size:
            raise InvalidSpecError(
                f"undispatch: {len(parts)} parts given for {self.world_size} ranks"
            )
        for r, p in enumerate(parts):
            if p.shape[0] != self.num_tokens(r):
                raise InvalidSpecError(
                    f"undispatch: rank {r}'s part has {p.shape[0]} rows, the plan gives it {self.num_tokens(r)}"
                )
        if _is_torch(parts[0]):
            import torch

            return torch.cat(list(parts), 0).index_select(0, self._inverse(parts[0]))
        return np.concatenate(list(parts), 0)[self._inverse(parts[0])]

    # --- serialization -----------------------------------------------------------------
    def to_json(self) -> str:
        return self._p.to_json()

    def to_bytes(self) -> bytes:
        return self._p.to_bytes()

    @staticmethod
    def from_json(s: str) -> "Plan":
        return Plan(_native.Plan.from_json(s))

    @staticmethod
    def from_bytes(b: bytes) -> "Plan":
        return Plan(_native.Plan.from_bytes(b))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self._p == other._p

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return repr(self._p)


class Planner:
    """Plans batches of packed sequences over ``world_size`` ranks (``nodes`` nodes).

    Options are the CLI's: model shape (``heads``, ``kv_heads``, ``head_dim``, ``dtype``), token
    ``block_size``, ``planner`` (dcp, ring, zigzag, local; the head-parallel ulysses, usp,
    usp:H with head degree H, ulysses-pp; dcp-only: dcp's own placement, never a static
    candidate; an unknown name raises InvalidSpecError listing them), default ``mask`` (causal, full,
    sliding-window:W, lambda[:S:W], shared-question[:FRAC:N], causal-blockwise[:B:K],
    prefix-lm:P), ``device_memory_gib`` (attention-buffer cap per rank), link speeds, ``seed``,
    ``cost_model`` (dcp's cost model: a path or JSON text, e.g. the ``<profile>.cost.json`` that
    ``dcp calibrate`` writes, so dcp weighs its candidates with the GPUs' fitted kernel model and
    send/recv curve), ``token_epsilon`` (dcp's allowed token imbalance, max/mean − 1 of the tokens
    each rank holds; default 0.15: in training the layers outside attention run on each rank's
    tokens, so a tight value, e.g. 0.02, keeps them balanced at a few more bytes moved). Planning
    releases the GIL.
    """

    def __init__(
        self,
        world_size: int,
        *,
        nodes: int = 1,
        heads: int = 8,
        kv_heads: int = 2,
        head_dim: int = 128,
        dtype: str = "bf16",
        block_size: int = 1024,
        head_block: int | None = None,
        planner: str = "dcp",
        mask: str = "causal",
        device_memory_gib: float = 80.0,
        inter_gbps: float | None = None,
        intra_gbps: float | None = None,
        seed: int = 0,
        cost_model: str | None = None,
        token_epsilon: float | None = None,
    ):
        # The same keywords and defaults as the extension's (test_native_stubs.py holds them
        # together), spelled out so that editors and type checkers see them.
        self._p = _native.Planner(
            world_size, nodes=nodes, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
            dtype=dtype, block_size=block_size, head_block=head_block, planner=planner,
            mask=mask, device_memory_gib=device_memory_gib, inter_gbps=inter_gbps,
            intra_gbps=intra_gbps, seed=seed, cost_model=cost_model, token_epsilon=token_epsilon,
        )

    @property
    def world_size(self) -> int:
        return self._p.world_size

    @property
    def planner(self) -> str:
        return self._p.planner

    def plan(self, lengths: Iterable[int], mask: str | Sequence[str] | None = None) -> Plan:
        """Plans one batch. ``mask``: None (the planner's default), one name for every
        sequence, or one name per sequence."""
        lengths = [int(x) for x in lengths]
        if any(x < 0 for x in lengths):
            raise BadLengthsError(f"negative sequence length in {lengths[:8]}...")
        return Plan(self._p.plan(lengths, mask))

    def __repr__(self) -> str:
        return repr(self._p)
