"""dcp.data: batch forming, planning ahead, determinism, per-rank tensors, error paths."""

import numpy as np
import pytest

import dcp
from dcp.data import IGNORE_INDEX, PlanningDataLoader, pack


def planner(world=2, **kw):
    opts = dict(heads=4, kv_heads=2, head_dim=16, block_size=256)
    opts.update(kw)
    return dcp.Planner(world, **opts)


def test_form_batches_rule():
    b = dcp.form_batches([3, 4, 5, 5, 11, 2, 6, 4], budget=10, min_fill=0.75)
    assert b == [[2, 3], [5, 6]]
    with pytest.raises(dcp.InvalidSpecError):
        dcp.form_batches([1], budget=0)


def test_generate_batches_follow_the_papers_rule():
    for ds in ("longalign", "ldc"):
        bs = dcp.generate_batches(ds, 4, scale=0.25, budget=32768, seed=1)
        assert len(bs) == 4
        for b in bs:
            assert 0.75 * 32768 <= sum(b) <= 32768
        assert bs == dcp.generate_batches(ds, 4, scale=0.25, budget=32768, seed=1)
    with pytest.raises(dcp.InvalidSpecError, match="unknown dataset"):
        dcp.generate_batches("wiki", 1)


def test_pack_labels_stay_inside_sequences():
    ids, labels = pack([np.array([1, 2, 3]), np.array([7]), np.array([4, 5])])
    assert ids.tolist() == [1, 2, 3, 7, 4, 5]
    assert labels.tolist() == [2, 3, IGNORE_INDEX, IGNORE_INDEX, 5, IGNORE_INDEX]


def test_generator_loader_is_deterministic_across_ranks_and_runs():
    torch = pytest.importorskip("torch")
    kw = dict(dataset="ldc", num_batches=3, scale=0.125, budget=16384, seed=5, vocab_size=100)
    runs = []
    for rank in (0, 1, 0):
        dl = PlanningDataLoader(planner(2), rank=rank, **kw)
        runs.append(list(dl))
        assert dl.planned_batches == 3 and dl.wait_s_total >= 0
    for a, b in zip(runs[0], runs[2]):
        assert a.plan == b.plan
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.labels, b.labels)
    for b0, b1 in zip(runs[0], runs[1]):
        assert b0.plan == b1.plan
        plan = b0.plan
        ids = plan.undispatch([b0.input_ids, b1.input_ids])
        labels = plan.undispatch([b0.labels, b1.labels])
        pos = plan.undispatch([b0.position_ids, b1.position_ids])
        assert ids.shape[0] == sum(b0.lengths) and int(ids.max()) < 100
        at = 0
        for n in b0.lengths:
            assert pos[at : at + n].tolist() == list(range(n))
            assert torch.equal(labels[at : at + n - 1], ids[at + 1 : at + n])
            assert labels[at + n - 1].item() == IGNORE_INDEX
            at += n


def test_sequence_loader_packs_user_tokens():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 50, size=n) for n in [300, 500, 200, 900, 100, 700, 400]]
    dl = PlanningDataLoader(planner(2), seqs, budget=1024, rank=1, as_torch=False, threads=1, ahead=3)
    got = list(dl)
    assert len(got) == len(dl) >= 1
    for b in got:
        assert 768 <= sum(b.lengths) <= 1024
        assert np.array_equal(b.input_ids, np.concatenate([seqs[i] for i in dl._groups[b.index]])[b.plan.indices(1)])
        assert isinstance(b.wait_s, float)


def test_loader_error_paths():
    with pytest.raises(dcp.InvalidSpecError, match="either sequences"):
        PlanningDataLoader(planner(2))
    with pytest.raises(dcp.InvalidSpecError, match="either sequences"):
        PlanningDataLoader(planner(2), [[1, 2]], dataset="ldc", num_batches=1)
    with pytest.raises(dcp.InvalidSpecError, match="rank 2 is out of range"):
        PlanningDataLoader(planner(2), dataset="ldc", num_batches=1, rank=2)
    with pytest.raises(dcp.InvalidSpecError, match="num_batches"):
        PlanningDataLoader(planner(2), dataset="ldc")
    with pytest.raises(dcp.BadLengthsError, match="no batch"):
        PlanningDataLoader(planner(2), [[1, 2, 3]], budget=1024)
    with pytest.raises(dcp.BadLengthsError, match="no sequences"):
        PlanningDataLoader(planner(2), [], budget=1024)
    with pytest.raises(dcp.UnknownMaskError):
        PlanningDataLoader(planner(2), dataset="ldc", num_batches=1, mask="nope")
    # A planning failure in a background thread surfaces, typed, for that batch.
    dl = PlanningDataLoader(planner(2, device_memory_gib=1e-6), dataset="longalign", num_batches=2, scale=0.125, budget=16384)
    with pytest.raises(dcp.PlanDoesNotFitError, match="batch 0"):
        next(iter(dl))
    dl.close()
    # After close, the loop ends with an error instead of waiting for plans nobody makes.
    dl = PlanningDataLoader(planner(2), dataset="ldc", num_batches=3, scale=0.125, budget=16384, ahead=1)
    it = iter(dl)
    next(it)
    dl.close()
    with pytest.raises(dcp.InvalidSpecError, match="closed"):
        list(it)
