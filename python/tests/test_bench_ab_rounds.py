"""bench/gpu/ab_rounds.py against a stand-in `dcp`: variants' environments and kernel directories,
the rotating order of the rounds, the checks, the deadline, the snapshot and the tables."""

import importlib.util
import json
import pathlib
import stat
import sys
import tarfile

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "ab_rounds.py"
_SPEC = importlib.util.spec_from_file_location("ab_rounds", _PATH)
ab_rounds = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ab_rounds)

# A stand-in for dcp: appends one record per call to its --json file, whose rate is 100 plus 10
# per `#define` line in its DCP_CUDA_KERNELS directory's attn_fwd_sm90.cu plus DCP_FAKE_BONUS; logs
# the order of the calls; checks pass unless DCP_FAKE_FAIL is set.
FAKE = r'''#!PYTHON
import json, os, sys
a = sys.argv[1:]
out = a[a.index("--json") + 1]
k = os.path.join(os.environ["DCP_CUDA_KERNELS"], "attn_fwd_sm90.cu")
defs = sum(1 for l in open(k) if l.startswith("#define")) if os.path.exists(k) else 0
name = os.path.basename(out)
with open(os.environ["FAKE_ORDER"], "a") as f:
    f.write(name + "\n")
with open(out, "a") as f:
    if a[0] == "bench-gpu":
        f.write(json.dumps({"kind": "bench", "check": {"pass": not os.environ.get("DCP_FAKE_FAIL")}}) + "\n")
    else:
        for shape in ("works1000", "packed"):
            rate = 100 + 10 * defs + float(os.environ.get("DCP_FAKE_BONUS", "0")) + (shape == "packed")
            f.write(json.dumps({"kind": "bench", "shape": shape, "fwd_tflops_per_gpu": rate}) + "\n")
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    exe = tmp_path / "dcp"
    exe.write_text(FAKE.replace("PYTHON", sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "attn_fwd_sm90.cu").write_text("// the source\n#ifndef A\n#endif\n#if B\n#endif\n")
    (kernels / "common.cuh").write_text("// shared\n")
    monkeypatch.setenv("FAKE_ORDER", str(tmp_path / "order.txt"))
    return exe, kernels


def test_variant_specs_and_their_errors():
    v = ab_rounds.Variant("fdone:fwd:FWD_FASTDESC=1,fwd-short:FWD_LAZY=0,DCP_CUDA_FWD_SHORT_ONE=1")
    assert v.name == "fdone" and v.env == {"DCP_CUDA_FWD_SHORT_ONE": "1"}
    assert v.defines == {"fwd": [("FWD_FASTDESC", "1")], "fwd-short": [("FWD_LAZY", "0")]}
    assert ab_rounds.Variant("base").env == {} and ab_rounds.Variant("base").defines == {}
    assert ab_rounds.Variant("old:bin:/tmp/old/dcp,DCP_X=1").bin == "/tmp/old/dcp"
    assert ab_rounds.Variant("base").bin is None
    for bad, says in [("a/b", "name"), ("x:FWD_LAZY=0", "neither"), ("x:fwd:FWD_LAZY", "fwd:NAME=VALUE"),
                      ("x:HOME=/", "neither"), (":DCP_X=1", "name"), ("x:bin:", "one binary"),
                      ("x:bin:/a,bin:/b", "one binary")]:
        with pytest.raises(ValueError, match=says):
            ab_rounds.Variant(bad)
    assert ab_rounds.rotation(3, 1) == [0, 1, 2] and ab_rounds.rotation(3, 2) == [1, 2, 0]
    assert ab_rounds.rotation(3, 4) == [0, 1, 2]


def test_rounds_rotate_and_tables_compare_with_the_base(fake, tmp_path, capsys):
    exe, kernels = fake
    out, snap = tmp_path / "out", tmp_path / "snap.tgz"
    ab_rounds.main(["--dcp", str(exe), "--out", str(out), "--bench", "kernel-bench --shapes x",
                    "--check", "--batches b.json", "--rounds", "2", "--kernels", str(kernels), "--snap", str(snap),
                    "base", "two:fwd:A=1,fwd-short:B=2", "env:DCP_FAKE_BONUS=5"])
    order = (tmp_path / "order.txt").read_text().split()
    assert order == ["chk_base.jsonl", "chk_two.jsonl", "chk_env.jsonl",
                     "kb_base_1.jsonl", "kb_two_1.jsonl", "kb_env_1.jsonl",
                     "kb_two_2.jsonl", "kb_env_2.jsonl", "kb_base_2.jsonl"]
    src = (out / "k" / "two" / "attn_fwd_sm90.cu").read_text()
    assert src.startswith("#define A 1\n#ifdef FWD_LATEREL\n#define B 2\n#endif\n// the source\n")
    # Every variant, the base too, compiles a full copy of the tree (not the binary's files).
    for v in ("base", "two", "env"):
        assert (out / "k" / v / "common.cuh").read_text() == "// shared\n"
    assert (out / "k" / "base" / "attn_fwd_sm90.cu").read_text() == (kernels / "attn_fwd_sm90.cu").read_text()
    assert f"kernel sources: {kernels}" in (out / "ab_rounds.log").read_text()
    printed = capsys.readouterr().out
    assert "check two: rc=0 1/1 pass" in printed
    table = (out / "table.md").read_text()
    assert "| works1000 | 100 100 | 120 120 (1.200) | 105 105 (1.050) |" in table
    assert "| geomean (shapes) |  | 1.199 (2) | 1.050 (2) |" in table
    assert table.strip() in printed
    with tarfile.open(snap) as tf:
        names = tf.getnames()
    assert "out/kb_env_2.jsonl" in names and "out/table.md" in names
    assert not any(n.startswith("out/k/") or n == "out/k" for n in names), names


def test_no_round_starts_after_the_deadline(fake, tmp_path, monkeypatch):
    exe, kernels = fake
    monkeypatch.setenv("DCP_FAKE_FAIL", "1")
    out = tmp_path / "out"
    ab_rounds.main(["--dcp", str(exe), "--out", str(out), "--bench", "kernel-bench", "--check", "--batches b",
                    "--rounds", "3", "--deadline-s", "0", "--kernels", str(kernels), "base", "v:DCP_X=1"])
    log = (out / "ab_rounds.log").read_text()
    assert "check v: rc=0 0/1 pass" in log and "deadline: round 1 not started" in log
    assert not list(out.glob("kb_*.jsonl"))
    assert json.loads((out / "chk_v.jsonl").read_text())["check"]["pass"] is False


def test_bwd_defines_precede_the_headers_defaults(tmp_path):
    # The executor concatenates common.cuh, mma.cuh, sm90.cuh, bwd_sm90.cuh and then
    # attn_bwd_sm90.cu: a define in front of the .cu file comes after the header's `#ifndef`
    # defaults, which then win. bwd: defines go in front of the header.
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "bwd_sm90.cuh").write_text("#ifndef BWD_MASK_BRANCH\n#define BWD_MASK_BRANCH 1\n#endif\n")
    (kernels / "attn_bwd_sm90.cu").write_text("// the kernel\n")
    v = ab_rounds.Variant("mb:bwd:BWD_MASK_BRANCH=0")
    d = pathlib.Path(v.kernel_dir(str(tmp_path / "out"), str(kernels)))
    assert (d / "bwd_sm90.cuh").read_text().startswith("#define BWD_MASK_BRANCH 0\n#ifndef BWD_MASK_BRANCH")
    assert (d / "attn_bwd_sm90.cu").read_text() == "// the kernel\n", "the .cu file is the tree's, unchanged"


def test_util_defines_go_in_front_of_util_cu(tmp_path):
    # Session 43: the D pre-pass's switches (util.cu, e.g. DD_AHEAD) as variants.
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "util.cu").write_text("#ifndef DD_AHEAD\n#define DD_AHEAD 0\n#endif\n")
    (kernels / "bwd_sm90.cuh").write_text("// the header\n")
    d = pathlib.Path(ab_rounds.Variant("ah:util:DD_AHEAD=1").kernel_dir(str(tmp_path / "out"), str(kernels)))
    assert (d / "util.cu").read_text().startswith("#define DD_AHEAD 1\n#ifndef DD_AHEAD")
    assert (d / "bwd_sm90.cuh").read_text() == "// the header\n"


def test_a_define_that_names_nothing_is_refused(fake, tmp_path, capsys):
    # Session 37: defines of switches the compiled sources did not have measured the base.
    exe, kernels = fake
    v = ab_rounds.Variant("x:bwd:BWD_NO_SUCH=1")
    with pytest.raises(ValueError, match="BWD_NO_SUCH occurs in no kernel source"):
        v.kernel_dir(str(tmp_path / "o"), str(kernels))
    with pytest.raises(SystemExit):
        ab_rounds.main(["--dcp", str(exe), "--out", str(tmp_path / "out"), "--bench", "kernel-bench",
                        "--kernels", str(kernels), "base", "x:fwd:AB=1"])
    assert "AB occurs in no kernel source" in capsys.readouterr().err
    assert not (tmp_path / "order.txt").exists(), "nothing ran"


def test_a_variant_may_run_another_binary(fake, tmp_path):
    exe, kernels = fake
    other = tmp_path / "other_dcp"
    # The same stand-in, 50 faster: a host-side change measured against the --dcp build.
    other.write_text(exe.read_text().replace("rate = 100 +", "rate = 150 +"))
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    ab_rounds.main(["--dcp", str(exe), "--out", str(out), "--bench", "kernel-bench --shapes x",
                    "--rounds", "1", "--kernels", str(kernels), "base", f"new:bin:{other}"])
    rate = {v: json.loads((out / f"kb_{v}_1.jsonl").read_text().splitlines()[0])["fwd_tflops_per_gpu"]
            for v in ("base", "new")}
    assert rate == {"base": 100, "new": 150}
    with pytest.raises(SystemExit):
        ab_rounds.main(["--dcp", str(exe), "--out", str(out), "--bench", "kernel-bench",
                        "--kernels", str(kernels), "base", f"gone:bin:{tmp_path / 'nothing'}"])
