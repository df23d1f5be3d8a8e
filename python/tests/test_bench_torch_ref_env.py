"""bench/gpu/torch_ref.py's timing counts: TORCH_REF_WARMUP / TORCH_REF_REPEATS default to 2 / 5,
and a value that is not a whole number in range stops the script with the variable named."""

import os
import pathlib
import subprocess
import sys

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "torch_ref.py"
_LOAD = (
    "import importlib.util as u; s = u.spec_from_file_location('t', %r); m = u.module_from_spec(s); "
    "s.loader.exec_module(m); print(m.WARM, m.REP)" % str(_PATH)
)


def load(**env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("TORCH_REF_")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", _LOAD], env=e, capture_output=True, text=True)


def test_defaults_and_values():
    assert load().stdout.split() == ["2", "5"]
    assert load(TORCH_REF_WARMUP="0", TORCH_REF_REPEATS=" 20 ").stdout.split() == ["0", "20"]


def test_bad_values_are_named():
    for name, v in [("TORCH_REF_REPEATS", "0"), ("TORCH_REF_REPEATS", "x"), ("TORCH_REF_WARMUP", "-1")]:
        r = load(**{name: v})
        assert r.returncode != 0
        assert f"{name}={v}" in r.stderr, r.stderr
