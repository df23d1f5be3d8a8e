"""bench/gpu/python_gpu.sh against stand-ins for nvidia-smi, torchrun and the python3 commands it
runs (pip, dcp.env, pytest, examples/train.py, train_report.py): the runs it makes on one and on
two GPUs, the tarball, and its errors without a wheel."""

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu" / "python_gpu.sh"

# Logs every call; answers the package's commands, hands anything else (env.sh's site lookup) to
# the real interpreter.
FAKE_PY = r"""#!/bin/sh
echo "python3 $*" >> "$FAKE_LOG"
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
case "$1 $2" in
"-m pip"|"-m dcp.env") exit 0;;
"-m pytest") echo "3 passed"; exit 0;;
esac
case "$1" in
examples/train.py) echo '{}' > "$out"; echo "summary {}"; exit 0;;
bench/gpu/train_report.py) echo "report of $2"; exit 0;;
esac
exec "$REAL_PY" "$@"
"""
FAKE_TORCHRUN = r"""#!/bin/sh
echo "torchrun $*" >> "$FAKE_LOG"
out=""; prev=""
for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
echo '{}' > "$out"; echo "summary {}"
"""


def _exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run(tmp_path, **extra):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    _exe(bin_dir / "nvidia-smi", "#!/bin/sh\necho stub card\n")
    _exe(bin_dir / "python3", FAKE_PY)
    _exe(bin_dir / "torchrun", FAKE_TORCHRUN)
    # The script's own settings come from `extra` alone: a device call that ran this suite from
    # python_gpu.sh had WHEEL set, and the missing-wheel test inherited it (session 46).
    env = {k: v for k, v in os.environ.items()
           if k not in ("WHEEL", "NPROC", "PLANNERS", "STEPS", "BUDGET", "TAG", "OUT", "WORK")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", FAKE_LOG=str(tmp_path / "log"), REAL_PY=sys.executable,
               WORK=str(tmp_path / "work"), OUT=str(tmp_path / "out"), TAG="t")
    env.update(extra)
    return subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _wheel(tmp_path):
    whl = tmp_path / "whl"
    whl.mkdir()
    (whl / "dcp-0.1.0-cp311-abi3-manylinux_2_34_x86_64.whl").write_bytes(b"stub")
    return str(whl)


def test_one_gpu_runs_the_suite_then_training_and_the_loss_comparison(tmp_path):
    r = _run(tmp_path, WHEEL=_wheel(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    log = (tmp_path / "log").read_text().splitlines()
    assert any(l.startswith("python3 -m pip install") and l.endswith(".whl") for l in log)
    assert "python3 -m pytest -q -rs ." in log
    train = [l for l in log if l.startswith("torchrun")]
    assert len(train) == 2, train
    assert "--nproc-per-node 1 examples/train.py --planner dcp,local --dataset longalign --mask causal" in train[0]
    assert "--planner dcp --budget 32768 --steps 30" in train[1]
    single = [l for l in log if "--single-gpu-reference" in l]
    assert len(single) == 1 and "--steps 30" in single[0]
    assert "report of" in r.stdout and "== done" in r.stdout
    with tarfile.open(tmp_path / "out" / "t.tgz") as t:
        names = t.getnames()
    for f in ("t/pytest.txt", "t/card.txt", "t/train/loss_dcp.json", "t/train/loss_single.json",
              "t/train/train_longalign_causal.json"):
        assert f in names, names


def test_more_gpus_compare_dcp_with_zigzag_and_take_the_settings(tmp_path):
    r = _run(tmp_path, WHEEL=_wheel(tmp_path), NPROC="2", STEPS="12", BUDGET="65536")
    assert r.returncode == 0, r.stdout + r.stderr
    train = [l for l in (tmp_path / "log").read_text().splitlines() if l.startswith("torchrun")]
    assert "--nproc-per-node 2 examples/train.py --planner dcp,zigzag" in train[0]
    assert "--budget 65536 --steps 12" in train[1]


def test_a_missing_wheel_is_an_error(tmp_path):
    r = _run(tmp_path)
    assert r.returncode != 0 and "WHEEL" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run(tmp_path, WHEEL=str(empty))
    assert r.returncode == 2 and "no dcp-*.whl" in r.stdout
    assert not (tmp_path / "log").exists() or "torchrun" not in (tmp_path / "log").read_text()
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
