"""bench/gpu/cp_table.py: issue 10's tables from x4_cp_table.sh's JSON. dcp's single sequences
against PyTorch `context_parallel` (the speed-up per direction, the candidate dcp returned, "-"
where a peer did not run a length), and the packed batches against one GPU's flash varlen ÷ WORLD."""

import importlib.util
import json
import pathlib

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "cp_table.py"
_SPEC = importlib.util.spec_from_file_location("cp_table", _PATH)
cp_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cp_table)


def bench(planner, tokens, fwd, bwd, batch=0, n_seqs=1, candidate=None):
    x = {"kind": "bench", "planner": planner, "tokens": tokens, "fwd_ms": fwd, "bwd_ms": bwd,
         "batch": batch, "n_seqs": n_seqs, "mask": "causal"}
    if candidate:
        x["candidate"] = candidate
    return x


def test_single_sequences_against_context_parallel():
    rows = [bench("dcp", 32768, 2.0, 5.0, candidate="ulysses"), bench("zigzag", 32768, 2.5, 5.5),
            bench("dcp", 114710, 20.0, 70.0)]
    peers = [{"peer": "torch_cp", "backend": "cudnn", "S": 32768, "fwd_ms": 3.0, "bwd_ms": 5.5},
             {"peer": "torch_cp", "backend": "flash", "S": 32768, "fwd_ms": 5.0, "bwd_ms": 10.0},
             {"peer": "torch_cp", "backend": "cudnn", "S": 65536, "error": "out of memory"}]
    lines = cp_table.single_table(rows, peers)
    assert lines[0].startswith("| tokens | dcp | zigzag | CP + cuDNN")
    assert "| 32768 | 2.00 / 5.00 (ulysses) | 2.50 / 5.50 | 3.00 / 5.50 | 5.00 / 10.00 | 1.50 / 1.10 |" in lines
    # No peer ran 114 710 tokens, and zigzag was not run there.
    assert "| 114710 | 20.00 / 70.00 | - | - | - | - |" in lines


def test_packed_batches_against_the_flash_floor(tmp_path):
    rows = [bench("local", 119024, 3.0, 10.0, batch=0, n_seqs=8),
            bench("dcp", 119024, 4.0, 11.0, batch=0, n_seqs=8),
            dict(bench("dcp", 119024, 9.0, 9.0, batch=0, n_seqs=8), mask="lambda")]
    ideal = [{"batch": 0, "tokens": 119024, "n_seqs": 8, "causal_fwd_ms": 16.0, "causal_bwd_ms": 40.0}]
    lines = cp_table.packed_table(rows, ideal, 2)
    assert lines[0] == "| batch | tokens / documents | floor | local | dcp | dcp ÷ floor |"
    # The floor is one GPU's time ÷ 2; only the causal records count.
    assert "| 0 | 119024 / 8 | 8.00 / 20.00 | 3.00 / 10.00 | 4.00 / 11.00 | 0.50 / 0.55 |" in lines


def test_reads_the_scripts_files(tmp_path, capsys):
    (tmp_path / "single_x2.jsonl").write_text(json.dumps(bench("dcp", 32768, 2.0, 5.0)) + "\n[rank 0] noise\n")
    (tmp_path / "torch_cp.jsonl").write_text(
        json.dumps({"backend": "cudnn", "S": 32768, "fwd_ms": 4.0, "bwd_ms": 5.0}) + "\n")
    cp_table.main(["cp_table.py", str(tmp_path), "2"])
    out = capsys.readouterr().out
    assert "| 32768 | 2.00 / 5.00 | - | 4.00 / 5.00 | - | 2.00 / 1.00 |" in out
    assert "on one GPU ÷ 2" in out
