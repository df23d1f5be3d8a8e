"""bench/gpu/ab_table.py: the alternated A/B table of a device call, from kb_<variant>_<round>.jsonl
files (variant names may hold underscores), runs in round order, means over the first variant's."""

import importlib.util
import json
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "ab_table.py"
_SPEC = importlib.util.spec_from_file_location("ab_table", _PATH)
ab_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ab_table)


def write(d, variant, rnd, rows):
    with open(d / f"kb_{variant}_{rnd}.jsonl", "w") as f:
        for shape, v in rows:
            f.write(json.dumps({"kind": "bench", "shape": shape, "fwd_tflops_per_gpu": v}) + "\n")
        f.write(json.dumps({"kind": "other", "shape": "x", "fwd_tflops_per_gpu": 1}) + "\n")


def test_runs_in_round_order_and_ratios_over_the_base(tmp_path):
    write(tmp_path, "base", 1, [("works1000", 500.0), ("onework", 650.0)])
    write(tmp_path, "base", 2, [("works1000", 520.0), ("onework", 650.0)])
    write(tmp_path, "new_a", 2, [("works1000", 530.0)])
    write(tmp_path, "new_a", 1, [("works1000", 550.0)])
    t = ab_table.collect(tmp_path, "fwd_tflops_per_gpu")
    assert t["works1000"]["base"] == [500.0, 520.0]
    assert t["works1000"]["new_a"] == [550.0, 530.0]
    assert "x" not in t
    lines = ab_table.table(t, ["base", "new_a"])
    assert lines[0] == "| shape | base | new_a |"
    assert "| works1000 | 500 520 | 550 530 (1.059) |" in lines
    # A variant without a run of a shape shows "-".
    assert "| onework | 650 650 | - |" in lines
    # The geomean row counts only the shapes both ran.
    assert lines[-1] == "| geomean (shapes) |  | 1.059 (1) |"


def test_the_table_names_the_field(tmp_path, capsys):
    write(tmp_path, "base", 1, [("packed", 600.0)])
    ab_table.main(["ab_table.py", str(tmp_path), "fwd_tflops_per_gpu", "base"])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "fwd_tflops_per_gpu (÷ base)"
    assert "| packed | 600 |" in out


def test_gzipped_records_read_as_the_plain_ones(tmp_path):
    """bench/compact_records.py gzips recorded JSON lines: the table reads kb_*.jsonl.gz alike,
    and where a file and its .gz are both there, the file only."""
    import gzip

    write(tmp_path, "base", 1, [("works1000", 500.0)])
    write(tmp_path, "new", 1, [("works1000", 550.0)])
    src = tmp_path / "kb_new_1.jsonl"
    (tmp_path / "kb_new_1.jsonl.gz").write_bytes(gzip.compress(src.read_bytes()))
    t = ab_table.collect(tmp_path, "fwd_tflops_per_gpu")
    assert t["works1000"]["new"] == [550.0], "one run, not the file and its .gz twice"
    src.unlink()
    write(tmp_path, "base", 2, [("works1000", 520.0)])
    b2 = tmp_path / "kb_base_2.jsonl"
    (tmp_path / "kb_base_2.jsonl.gz").write_bytes(gzip.compress(b2.read_bytes()))
    b2.unlink()
    t = ab_table.collect(tmp_path, "fwd_tflops_per_gpu")
    assert t["works1000"]["new"] == [550.0]
    assert t["works1000"]["base"] == [500.0, 520.0]


def test_bench_gpu_rows_are_mask_and_batch(tmp_path):
    with open(tmp_path / "kb_base_1.jsonl", "w") as f:
        for b, v in [(0, 100.0), (1, 200.0), (2, 300.0)]:
            f.write(json.dumps({"kind": "bench", "batch": b, "mask": "full", "bwd_tflops_per_gpu": v}) + "\n")
    t = ab_table.collect(tmp_path, "bwd_tflops_per_gpu")
    assert {k: v["base"] for k, v in t.items()} == {"full": [100.0], "full#1": [200.0], "full#2": [300.0]}
