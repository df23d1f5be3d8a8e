"""bench/gpu/torch_ref.py's FlexAttention masks (the competitor column of `kernel_bench.sh
FLEX=1`) against the tests' dense reference: the same elements for every mask kind, one document
or several, and block lists that name exactly the blocks the mask touches."""

import importlib.util
import pathlib

import pytest

torch = pytest.importorskip("torch")

from reference import batch_mask  # noqa: E402

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "torch_ref.py"
_SPEC = importlib.util.spec_from_file_location("torch_ref", _PATH)
torch_ref = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(torch_ref)

MASKS = [
    "causal",
    "full",
    "sliding-window:7",
    "lambda:4:8",
    "shared-question:0.2:3",
    "shared-question:0.5:1",
    "causal-blockwise:4:2",
    "causal-blockwise:32:2",
    "prefix-lm:5",
]
LENS = [[300], [1000], [300, 77, 129, 5, 1]]


@pytest.mark.parametrize("lens", LENS, ids=lambda l: f"{len(l)}docs")
@pytest.mark.parametrize("mask", MASKS)
def test_flex_mask_is_the_reference_mask(mask, lens):
    mask_mod, blocks = torch_ref.flex_mask_mod(lens, mask, device="cpu")
    t = sum(lens)
    want = batch_mask(lens, [mask] * len(lens))
    got = mask_mod(0, 0, torch.arange(t)[:, None], torch.arange(t)[None, :])
    assert torch.equal(got.expand(t, t), want)

    b = 64
    (pn, pi), (fn, fi), attended = blocks(B=b)
    assert attended == int(want.sum())
    nb = -(-t // b)
    padded = torch.zeros(nb * b, nb * b, dtype=torch.bool)
    padded[:t, :t] = want
    tiles = padded.view(nb, b, nb, b)
    any_ = tiles.any(3).any(1)
    # A block is full only when all of it exists (the last, ragged one never is).
    exists = torch.zeros(nb * b, dtype=torch.bool)
    exists[:t] = True
    whole = exists.view(nb, b).all(1)
    all_ = tiles.all(3).all(1) & whole[:, None] & whole[None, :]
    for qb in range(nb):
        full = set(fi[0, 0, qb, : fn[0, 0, qb]].tolist())
        part = set(pi[0, 0, qb, : pn[0, 0, qb]].tolist())
        assert full == set(torch.nonzero(all_[qb]).flatten().tolist()), qb
        assert part == set(torch.nonzero(any_[qb] & ~all_[qb]).flatten().tolist()), qb


def test_unknown_mask_is_refused():
    mask_mod, _ = torch_ref.flex_mask_mod([64], "ranges", device="cpu")
    with pytest.raises(ValueError, match="no FlexAttention form"):
        mask_mod(0, 0, torch.arange(4)[:, None], torch.arange(4)[None, :])


@pytest.mark.parametrize("mask", ["sliding-window:7", "lambda:4:8", "lambda:0:5", "causal", "full"])
def test_flash_attended_count_follows_the_mask_parameters(mask):
    # The flash column's FLOPs: every attended element of the mask with its own parameters.
    lens = [300, 77, 1]
    assert torch_ref.attended(lens, mask) == int(batch_mask(lens, [mask] * len(lens)).sum())


def test_flash_window_follows_the_mask_parameters():
    assert torch_ref.band("lambda") == (64, 4096)
    assert torch_ref.band("lambda:16:2048") == (16, 2048)
    assert torch_ref.band("sliding-window:512") == (0, 512)
    assert torch_ref.band("causal-blockwise") is None


def test_cudnn_calls_batch_runs_of_equal_lengths_and_cover_every_token():
    lens = [256] * 5 + [300, 77, 77, 256, 256]
    groups = torch_ref.cudnn_groups(lens)
    assert groups == [(0, 5, 256), (1280, 1, 300), (1580, 2, 77), (1734, 2, 256)]
    assert sum(n * L for _, n, L in groups) == sum(lens)
    assert len(torch_ref.cudnn_groups([256] * 1000)) == 1
    # each call's [n, heads, L, D] view holds exactly its documents' rows
    q = torch.arange(sum(lens) * 3 * 2, dtype=torch.float32).view(sum(lens), 3, 2)
    off, n, L = groups[2]
    view = torch_ref.group_view(q, off, n, L)
    assert view.shape == (2, 3, 77, 2)
    for d in range(n):
        assert torch.equal(view[d], q[off + d * L:off + (d + 1) * L].transpose(0, 1))


def test_cudnn_forms_other_than_the_two_are_refused(monkeypatch):
    monkeypatch.setenv("TORCH_REF_CUDNN_FORMS", "gqa,kvx")
    q = torch.zeros(4, 2, 8)
    with pytest.raises(ValueError, match="TORCH_REF_CUDNN_FORMS"):
        torch_ref.run_cudnn(q, q[:, :1], q[:, :1], q, [(0, 1, 4)], True)
