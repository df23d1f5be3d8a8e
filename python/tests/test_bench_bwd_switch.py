"""bench/gpu/bwd_switch.sh against stand-ins for dcp, nvidia-smi and compute-sanitizer: which runs
get the switch's on and off values, the sanitizer runs, the A/B's variants, the tarball, and the
error without a switch."""

import gzip
import os
import pathlib
import stat
import subprocess
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu" / "bwd_switch.sh"

# Logs "<switch value> <args>" per call; kernel-bench writes a record per shape so that the A/B
# tables have rates.
FAKE_DCP = r"""#!/bin/sh
echo "${DCP_CUDA_X-unset} $*" >> "$FAKE_LOG"
case "$1" in
kernel-bench)
  out=""; prev=""
  for a in "$@"; do [ "$prev" = "--json" ] && out=$a; prev=$a; done
  for s in works1000 onework; do
    echo "{\"kind\": \"bench\", \"shape\": \"$s\", \"bwd_tflops_per_gpu\": 100, \"fwd_tflops_per_gpu\": 100}" >> "$out"
  done;;
esac
"""


def _exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _exe(bin_dir / "nvidia-smi", "#!/bin/sh\necho stub\n")
    _exe(bin_dir / "compute-sanitizer", '#!/bin/sh\necho "sanitizer $*" >> "$FAKE_LOG"\n')
    gz = tmp_path / "dcp.gz"
    gz.write_bytes(gzip.compress(FAKE_DCP.encode()))
    env = dict(os.environ)
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        FAKE_LOG=str(tmp_path / "log"),
        DCP_GZ=str(gz),
        WORK=str(tmp_path / "work"),
        OUT=str(tmp_path / "out"),
        TAG="t",
        HDS="128",
        CONFIGS="128 bf16 2 pair -",
        SHAPES="works1000,onework",
    )
    env.pop("DCP_CUDA_X", None)
    return tmp_path, env


def _run(env):
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_checks_run_on_op_times_both_and_the_ab_alternates(stubs):
    tmp, env = stubs
    env.update(SWITCH="DCP_CUDA_X", ON="3", OFF="0")
    r = _run(env)
    assert r.returncode == 0, r.stdout + r.stderr
    log = (tmp / "log").read_text().splitlines()
    checks = [l for l in log if "--check" in l]
    assert len(checks) == 2 and all(l.startswith("3 bench-gpu") for l in checks), checks
    assert any("--head-dim 64" in l and "short.json" in l for l in checks)
    san = [l for l in log if l.startswith("sanitizer")]
    assert [l.split()[2] for l in san] == ["memcheck", "racecheck"]
    assert all("--head-dim 128" in l for l in san)
    ops = [l for l in log if "works.json" in l]
    assert [l.split()[0] for l in ops] == ["0", "3"]
    kb = [l for l in log if " kernel-bench " in f" {l} "]
    assert len(kb) == 6, kb
    for l in kb:
        variant = l.split("--json ")[1].split("/")[-1].split("_")[1]
        assert l.split()[0] == {"base": "0", "on": "3"}[variant], l
    assert "bwd_tflops_per_gpu" in r.stdout
    with tarfile.open(tmp / "out" / "t.tgz") as t:
        names = t.getnames()
    assert "t/summary.txt" in names and not any("/k/" in n for n in names)


def test_without_a_switch_it_stops_before_any_run(stubs):
    tmp, env = stubs
    env.pop("SWITCH", None)
    r = _run(env)
    assert r.returncode != 0
    assert "SWITCH" in r.stderr
    assert not (tmp / "log").exists()
