"""bench/gpu/op_times.py's per-rank summary of `bench-gpu --op-times` records: every kernel
family's attention launches count as attention (they are named `launch:Fwd...` /
`launch:Bwd...`), copies and fills as other compute, waits by their unpacks only, and the gaps on
the compute stream as idle."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "op_times.py"
_SPEC = importlib.util.spec_from_file_location("op_times", _PATH)
op_times = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(op_times)


def op(name, start, end):
    return {"op": name, "start_ms": start, "end_ms": end, "instr": 0, "instr_kind": "x"}


@pytest.mark.parametrize(
    "name", ["launch:FwdHalf", "launch:FwdShort", "launch:Bwd", "launch:BwdCluster", "launch:BwdDd"]
)
def test_every_attention_family_counts_as_attention(name):
    assert op_times.is_attention(name)


@pytest.mark.parametrize("name", ["launch:Fill", "launch:Merge", "launch:CopyRaw16", "memcpy", "wait", "comm"])
def test_other_ops_are_not_attention(name):
    assert not op_times.is_attention(name)


def test_summary_of_a_ring_forward():
    # Rank 1 of a 2-GPU ring forward (session 25's op times, rounded): the transfer beside the
    # first launch, a wait, the second launch.
    ops = [
        op("launch:Fill", 0.0, 0.1),
        op("comm", 0.1, 0.4),
        op("launch:FwdHalf", 0.1, 0.6),
        op("launch:Merge", 0.6, 0.9),
        op("wait", 1.0, 1.0),
        op("launch:FwdHalf", 1.0, 1.8),
        op("launch:Merge", 1.8, 2.2),
    ]
    span, attn, other, idle, comm = op_times.summarise(ops)
    assert span == pytest.approx(2.2)
    assert attn == pytest.approx(0.5 + 0.8)
    assert other == pytest.approx(0.1 + 0.3 + 0.4)
    assert idle == pytest.approx(0.1)  # 0.9 -> 1.0, waiting for the transfer
    assert comm == pytest.approx(0.3)
