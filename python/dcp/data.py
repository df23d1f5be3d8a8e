"""A data loader that plans ahead: batches of packed token sequences, formed by the paper's rule
(token budget, kept only when ≥ ``min_fill`` full), planned in background Rust threads
(``ahead`` batches ahead, no GIL held), yielded as this rank's tensors.

Sources: a list of token sequences (lists / arrays / 1-D tensors of ints), or the built-in
``longalign`` / ``ldc`` length generators with random token ids (seeded, identical on every rank).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from . import BadLengthsError, InvalidSpecError, Plan, Planner, _native, form_batches, generate_batches

IGNORE_INDEX = -100


@dataclass
class Batch:
    """One batch for one rank. Token tensors are in the rank's layout (``plan.dispatch``)."""

    index: int
    plan: Plan
    input_ids: Any
    labels: Any
    position_ids: Any
    #: seconds the consumer waited for this batch's plan (0 when planning kept ahead)
    wait_s: float
    lengths: list[int]


def pack(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Packed input ids and next-token labels (``IGNORE_INDEX`` at each sequence's last token)."""
    ids = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    labels = np.full_like(ids, IGNORE_INDEX)
    at = 0
    for s in seqs:
        n = len(s)
        labels[at : at + n - 1] = ids[at + 1 : at + n]
        at += n
    return ids, labels


class PlanningDataLoader:
    """Iterates over planned batches for ``rank`` of ``planner.world_size``.

    Either ``sequences`` (token sequences, batched in order) or ``dataset`` (``longalign``/``ldc``
    with ``num_batches``, ``scale``, random ids below ``vocab_size``). ``mask``: None (the
    planner's), a name, or a list per sequence is not supported here (one mask per batch).
    ``as_torch``: yield torch tensors on ``device`` (else numpy arrays).
    """

    def __init__(
        self,
        planner: Planner,
        sequences: Optional[Sequence[Any]] = None,
        *,
        dataset: Optional[str] = None,
        num_batches: Optional[int] = None,
        scale: float = 1.0,
        budget: int = 131072,
        min_fill: float = 0.75,
        vocab_size: int = 32000,
        seed: int = 0,
        rank: int = 0,
        ahead: int = 2,
        threads: int = 2,
        mask: Optional[str] = None,
        as_torch: bool = True,
        device: Any = "cpu",
    ):
        if (sequences is None) == (dataset is None):
            raise InvalidSpecError("give either sequences= or dataset= (longalign, ldc), not both or neither")
        if not 0 <= rank < planner.world_size:
            raise InvalidSpecError(f"rank {rank} is out of range for a planner of {planner.world_size} ranks")
        if vocab_size < 1:
            raise InvalidSpecError(f"vocab_size must be positive (got {vocab_size})")
        self.rank, self.seed, self.vocab_size = rank, seed, vocab_size
        self.as_torch, self.device = as_torch, device
        if dataset is not None:
            if num_batches is None or num_batches < 1:
                raise InvalidSpecError("dataset= needs num_batches >= 1")
            self._lengths = generate_batches(dataset, num_batches, scale, budget, seed)
            self._seqs = None
            self._groups = None
        else:
            assert sequences is not None  # checked above: exactly one of the two is given
            seqs = [np.asarray(s.cpu() if hasattr(s, "cpu") else s, dtype=np.int64).reshape(-1) for s in sequences]
            if not seqs:
                raise BadLengthsError("the dataset has no sequences")
            groups = form_batches([len(s) for s in seqs], budget, min_fill)
            if num_batches is not None:
                groups = groups[:num_batches]
            if not groups:
                raise BadLengthsError(
                    f"no batch of {len(seqs)} sequences reaches {min_fill:.0%} of the {budget}-token budget"
                )
            self._seqs, self._groups = seqs, groups
            self._lengths = [[len(seqs[i]) for i in g] for g in groups]
        self._queue = _native.PlanningQueue(planner._p, self._lengths, ahead, threads, mask)
        self.wait_s_total = 0.0
        self.planned_batches = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def _tokens(self, index: int) -> list[np.ndarray]:
        if self._seqs is not None and self._groups is not None:
            return [self._seqs[i] for i in self._groups[index]]
        rng = np.random.default_rng([self.seed, index])
        return [rng.integers(0, self.vocab_size, size=n, dtype=np.int64) for n in self._lengths[index]]

    def __iter__(self) -> Iterator[Batch]:
        while True:
            t0 = time.perf_counter()
            got = self._queue.next_plan()
            if got is None:
                return
            index, native_plan, wait_s = got
            plan = Plan(native_plan)
            ids, labels = pack(self._tokens(index))
            pos = plan.position_ids(self.rank)
            idx = plan.indices(self.rank)
            ids_r, labels_r = ids[idx], labels[idx]
            self.wait_s_total += wait_s
            self.planned_batches += 1
            _ = t0
            if self.as_torch:
                import torch

                t_ids, t_labels, t_pos = (torch.from_numpy(x).to(self.device) for x in (ids_r, labels_r, pos))
                yield Batch(index, plan, t_ids, t_labels, t_pos, wait_s, self._lengths[index])
            else:
                yield Batch(index, plan, ids_r, labels_r, pos, wait_s, self._lengths[index])

    def close(self) -> None:
        self._queue.close()
