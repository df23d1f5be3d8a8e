"""bench/gpu/check_summary.py, the GPU scripts' `summ`: counts of checked runs and worst errors."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "gpu"))
import check_summary  # noqa: E402


def test_counts_checked_rows_and_takes_the_worst_errors(tmp_path):
    f = tmp_path / "r.jsonl"
    rows = [
        {"kind": "bench", "check": {"pass": True, "o": 1e-3, "lse": 2e-6, "dq": 2.5e-3, "dkv": 1e-3}},
        {"kind": "bench", "check": {"pass": False, "o": 5e-2, "lse": None, "dq": 1e-4, "dkv": 3e-3}},
        {"kind": "bench", "check": None},
        {"kind": "plan"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert check_summary.summary(str(f), "pair") == (
        "pair: 1/3 pass; worst rel err o=5.0e-02 lse=2.0e-06 dq=2.5e-03 dkv=3.0e-03")


def test_a_missing_file_reads_as_no_runs_and_the_command_line(tmp_path):
    assert check_summary.summary(str(tmp_path / "none.jsonl"), "x") == (
        "x: 0/0 pass; worst rel err o=0.0e+00 lse=0.0e+00 dq=0.0e+00 dkv=0.0e+00")
    script = ROOT / "bench" / "gpu" / "check_summary.py"
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "none.jsonl"), "lbl"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("lbl: 0/0 pass")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


def test_the_gpu_scripts_use_it():
    # Session 43: seven scripts each carried their own copy of this summary.
    for name in ("bwd_switch", "bwd_verify", "x1_final", "x2_check", "x2_final", "x4_cp_table", "x4_headline"):
        text = (ROOT / "bench" / "gpu" / f"{name}.sh").read_text()
        assert 'summ() { python3 "$(dirname "${BASH_SOURCE[0]}")/check_summary.py"' in text, name
