"""bench/compact_records.py: gzips the tracked records under bench/results/ and appends .gz to the
Markdown mentions that resolve to them, leaving every other mention and file alone."""

import gzip
import pathlib
import subprocess
import sys

import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "bench" / "compact_records.py"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    (r / "bench/results/a/c1").mkdir(parents=True)
    (r / "bench/results/b").mkdir(parents=True)
    (r / "docs").mkdir()
    files = {
        "bench/results/a/c1/kb.jsonl": '{"x": 1}\n',
        "bench/results/a/c1/run.log": "log line\n",
        "bench/results/a/c2.log": "other\n",
        "bench/results/b/only.jsonl": '{"y": 2}\n',
        "bench/results/b/table.txt": "a table\n",
        "bench/results/a/README.md": (
            "Records: `c1/kb.jsonl`, each call's `run.log`, `c2.log`; the script writes `out.jsonl`;\n"
            "a sibling's `b/only.jsonl`; already gzipped `c1/kb.jsonl.gz`.\n"
        ),
        "docs/NOTES.md": "See bench/results/b/only.jsonl and bench/results/b/table.txt.\n",
        "tools/keep.jsonl": '{"z": 3}\n',
    }
    for p, text in files.items():
        (r / p).parent.mkdir(parents=True, exist_ok=True)
        (r / p).write_text(text)
    git(r, "init", "-q")
    git(r, "add", ".")
    git(r, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return r


def run(repo, *args):
    return subprocess.run([sys.executable, str(_SCRIPT), *args], cwd=repo, capture_output=True, text=True)


def test_gzips_records_and_fixes_the_mentions_that_resolve(repo):
    out = run(repo)
    assert out.returncode == 0, out.stderr
    for p, text in [("bench/results/a/c1/kb.jsonl", '{"x": 1}\n'), ("bench/results/b/only.jsonl", '{"y": 2}\n')]:
        assert not (repo / p).exists()
        assert gzip.decompress((repo / (p + ".gz")).read_bytes()).decode() == text
    # Deterministic output: no time stamp or name in the gzip header.
    raw = (repo / "bench/results/a/c1/kb.jsonl.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0" and raw[3] & 0x08 == 0
    # Not records: a .txt under bench/results, a .jsonl outside it.
    assert (repo / "bench/results/b/table.txt").exists() and (repo / "tools/keep.jsonl").exists()
    md = (repo / "bench/results/a/README.md").read_text()
    assert "`c1/kb.jsonl.gz`, each call's `run.log.gz`, `c2.log.gz`" in md
    assert "`out.jsonl`" in md, "a name that resolves to no record stays"
    assert "`b/only.jsonl.gz`" in md, "a sibling folder's record, by its trailing path"
    assert "`c1/kb.jsonl.gz`." in md and ".gz.gz" not in md
    notes = (repo / "docs/NOTES.md").read_text()
    assert notes == "See bench/results/b/only.jsonl.gz and bench/results/b/table.txt.\n"
    # Everything staged, nothing left untracked.
    status = git(repo, "status", "--porcelain")
    assert "??" not in status and "D  bench/results/a/c1/kb.jsonl" in status


def test_dry_run_changes_nothing(repo):
    out = run(repo, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "4 records" in out.stdout
    assert git(repo, "status", "--porcelain") == ""


def test_refuses_records_with_uncommitted_changes(repo):
    (repo / "bench/results/a/c2.log").write_text("edited\n")
    out = run(repo)
    assert out.returncode != 0 and "uncommitted" in out.stderr and "c2.log" in out.stderr
    assert (repo / "bench/results/a/c2.log").read_text() == "edited\n"
    assert not (repo / "bench/results/a/c2.log.gz").exists()
