"""examples/train.py on the CPU (one process, fp32, CPU reference executor): the training loop
runs, and the single-GPU reference path (PyTorch SDPA per sequence) gives the
same losses as the DCP path."""

import json
import os
import sys

import pytest

torch = pytest.importorskip("torch")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
TINY = ["--device", "cpu", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2", "--head-dim", "8",
        "--ffn", "64", "--vocab", "64", "--budget", "1024", "--scale", "0.02", "--steps", "4", "--warmup", "1",
        "--block-size", "64", "--lr", "1e-2", "--dataset", "ldc"]


@pytest.fixture(scope="module")
def train():
    if not os.path.exists(os.path.join(EXAMPLES, "train.py")):
        pytest.skip("examples/train.py not found next to the tests")
    sys.path.insert(0, EXAMPLES)
    import train as t

    return t


def test_train_runs_and_reference_matches(train, tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "run.json"
    rows = train.main(TINY + ["--planner", "dcp", "--out", str(out)])
    ref = train.main(TINY + ["--single-gpu-reference"])
    assert len(rows) == len(ref) == 4
    # Random token ids: the loss stays near ln(vocab) (nothing to learn but the unigram law).
    assert all(abs(r["loss"] - 4.1589) < 0.5 for r in rows)
    for a, b in zip(rows, ref):
        assert abs(a["loss"] - b["loss"]) < 1e-4, (a["loss"], b["loss"])
        assert a["tokens"] == b["tokens"]
    saved = json.loads(out.read_text())
    assert saved["summary"]["steps"] == 4 and saved["summary"]["device"] == "cpu"


def test_train_lambda_mask(train, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rows = train.main(TINY + ["--planner", "zigzag", "--mask", "lambda:8:32", "--steps", "2"])
    assert all(r["loss"] == r["loss"] for r in rows)  # finite, not NaN


def test_train_planner_list_runs_each_from_the_same_start(train, monkeypatch, tmp_path):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    out = tmp_path / "runs.json"
    runs = train.main(TINY + ["--planner", "dcp,ring,ulysses", "--steps", "2", "--out", str(out)])
    assert sorted(runs) == ["dcp", "ring", "ulysses"]
    for a, b in zip(runs["dcp"], runs["ulysses"]):  # same batches, same initial weights, exact attention
        assert a["tokens"] == b["tokens"]
        assert abs(a["loss"] - b["loss"]) < 1e-4, (a["loss"], b["loss"])
    saved = json.loads(out.read_text())
    assert [r["summary"]["planner"] for r in saved["runs"]] == ["dcp", "ring", "ulysses"]


def test_train_one_long_sequence(train, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    rows = train.main(TINY + ["--planner", "zigzag", "--seq-len", "300", "--steps", "2"])
    assert [r["tokens"] for r in rows] == [300, 300] and all(r["sequences"] == 1 for r in rows)


def test_train_rejects_unknown_planner(train):
    with pytest.raises(SystemExit):
        train.main(TINY + ["--planner", "dcp,nope"])


def test_train_takes_a_calibrated_cost_model(train, monkeypatch, tmp_path):
    """--cost-model hands `dcp calibrate`'s <profile>.cost.json to dcp's planner (same losses:
    the cost model changes where work runs, not the result); a missing file is a clear error."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cost = os.path.join(os.path.dirname(__file__), "data", "h200x4.cost.json")
    rows = train.main(TINY + ["--planner", "dcp", "--steps", "2", "--cost-model", cost])
    base = train.main(TINY + ["--planner", "dcp", "--steps", "2"])
    for a, b in zip(rows, base):
        assert abs(a["loss"] - b["loss"]) < 1e-4, (a["loss"], b["loss"])
    import dcp

    with pytest.raises(dcp.DcpError, match="nope.json"):
        train.main(TINY + ["--planner", "dcp", "--steps", "1", "--cost-model", str(tmp_path / "nope.json")])


def test_train_rows_report_token_imbalance_and_executor_host_time(train, monkeypatch):
    """Each step row says how unevenly the plan spread tokens (the layers outside attention run
    on each rank's tokens) and how long the executor spent preparing plans (0 on the CPU path)."""
    import dcp.torch as dtorch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dtorch.executor_stats() == {"prepares": 0, "prepare_s": 0.0, "prepare_wait_s": 0.0, "evict_s": 0.0,
                                       "pool_cached_bytes": 0, "pool_hits": 0, "pool_misses": 0, "alloc_s": 0.0}
    rows = train.main(TINY + ["--planner", "zigzag", "--steps", "2"])
    for r in rows:
        assert r["token_imbalance"] >= 1.0
        assert r["prepare_s"] == 0.0 and r["prepare_wait_s"] == 0.0 and r["evict_s"] == 0.0
        assert r["pool_hits"] == 0 and r["pool_misses"] == 0 and r["alloc_s"] == 0.0
