"""The CUDA kernels compile with NVRTC for every architecture the executor serves (sm_80 for the
mma.sync family, sm_90a for the Hopper kernels too), without a GPU: NVRTC comes from the
nvidia-cuda-nvrtc wheel that PyTorch's CUDA build installs. Skipped, with a message, where the
Python environment has no NVRTC (a CPU-only PyTorch)."""

import glob
import os
import site
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _cu13():
    for sp in site.getsitepackages():
        lib = glob.glob(os.path.join(sp, "nvidia", "cu13", "lib", "libnvrtc.so.*"))
        inc = os.path.join(sp, "nvidia", "cu13", "include")
        if lib and os.path.isfile(os.path.join(inc, "cuda_bf16.h")):
            return sorted(lib)[0], inc
    return None


def _compile(arch, defines=()):
    """Runs bench/gpu/nvrtc_check.py for `arch` with extra `defines`; asserts every kernel file
    compiled (6 on sm_90a, 5 at a head dim other than 128 and 64, where the cluster backward does not
    exist; the 3 generic ones on sm_80)."""
    found = _cu13()
    if found is None:
        pytest.skip("no NVRTC with CUDA headers in this Python environment (nvidia/cu13)")
    lib, inc = found
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(lib) + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "gpu", "nvrtc_check.py"), lib, inc, arch, *defines],
        capture_output=True, text=True, env=env, timeout=600,
    )
    failed = [l for l in r.stdout.splitlines() if l.startswith("== ") and l.endswith("FAILED")]
    assert r.returncode == 0 and not failed, f"{arch} {list(defines)}: {failed}\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    # The cluster backward builds at head dims 128 and 64 only (nvrtc_check.py skips it elsewhere).
    cluster = not any(d.startswith("-DHEAD_DIM=") and d not in ("-DHEAD_DIM=128", "-DHEAD_DIM=64") for d in defines)
    expect = (6 if cluster else 5) if arch == "sm_90a" else 3
    assert r.stdout.count(": OK") == expect, r.stdout[-2000:]


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_kernels_compile(arch):
    _compile(arch)


# The kernels the executor compiles on demand with extra defines (the half-tile and short-task
# forwards, the backward's chains and D inside them) and the D 64 build (its forward with 4 K/V
# stages and 4 Q buffers): each compiles for sm_90a too.
@pytest.mark.parametrize("defines", [["-DFWD_HALF=1"], ["-DFWD_HALF=1", "-DFWD_HALFBITS=1", "-DFWD_LATEREL=3"], ["-DFWD_LATEREL=3", "-DFWD_ONE=1"], ["-DBWD_CHAIN=1"], ["-DBWD_CHAIN=1", "-DBWD_CHAIN_DD=1"], ["-DHEAD_DIM=64", "-DFWD_NS=4", "-DFWD_NQ=4"]])
def test_kernel_variants_compile(defines):
    _compile("sm_90a", defines)
