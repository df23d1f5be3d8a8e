"""bench/gpu/torch_cp_ref.py's command line and environment: defaults, values, and a bad backend,
length or count stopping the script with what was wrong named (no GPU, no torch needed)."""

import os
import pathlib
import subprocess
import sys

_PATH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "gpu" / "torch_cp_ref.py"
_LOAD = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('t', %r); m = u.module_from_spec(s); "
    "s.loader.exec_module(m); print(m.WARM, m.REP, m.HEADS, m.KV_HEADS, m.HEAD_DIM); "
    "print(m.parse_args(sys.argv[1:]))" % str(_PATH)
)


def run(args=(), **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TORCH_REF_", "TORCH_CP_"))}
    e.update(env)
    return subprocess.run([sys.executable, "-c", _LOAD, *args], env=e, capture_output=True, text=True)


def test_defaults():
    r = run(["cudnn"])
    assert r.returncode == 0, r.stderr
    counts, parsed = r.stdout.splitlines()
    assert counts.split() == ["3", "5", "8", "2", "128"]
    assert parsed == "('cudnn', [32768, 65536, 131072])"


def test_values():
    r = run(["flash", "1024", "4096"], TORCH_REF_WARMUP="20", TORCH_REF_REPEATS=" 20 ", TORCH_CP_KV_HEADS="8")
    assert r.returncode == 0, r.stderr
    counts, parsed = r.stdout.splitlines()
    assert counts.split() == ["20", "20", "8", "8", "128"]
    assert parsed == "('flash', [1024, 4096])"


def test_bad_inputs_are_named():
    for args, env, want in [
        (["cudnn"], {"TORCH_REF_REPEATS": "0"}, "TORCH_REF_REPEATS=0"),
        (["cudnn"], {"TORCH_REF_WARMUP": "x"}, "TORCH_REF_WARMUP=x"),
        (["cudnn"], {"TORCH_CP_HEADS": "6", "TORCH_CP_KV_HEADS": "4"}, "TORCH_CP_HEADS=6"),
        (["sdpa"], {}, "usage: torch_cp_ref.py"),
        ([], {}, "usage: torch_cp_ref.py"),
        (["cudnn", "64k"], {}, "length '64k'"),
        (["cudnn", "0"], {}, "length '0'"),
    ]:
        r = run(args, **env)
        assert r.returncode != 0, (args, env)
        assert want in r.stderr, (args, env, r.stderr)
