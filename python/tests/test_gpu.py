"""GPU tests: dcp.torch.attention forward/backward on 1 and on 2 GPUs (torchrun) vs dense
attention. Each is skipped, with a message, where fewer CUDA GPUs are visible than it needs."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("world", [1, 2])
def test_attention_every_planner_and_mask(world):
    if not torch.cuda.is_available() or torch.cuda.device_count() < world:
        pytest.skip(f"GPU test: needs {world} CUDA GPU(s) ({torch.cuda.device_count() if torch.cuda.is_available() else 0} visible here)")
    here = os.path.dirname(__file__)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world), os.path.join(here, "gpu_worker.py")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    print(r.stdout[-6000:], r.stderr[-6000:])
    assert r.returncode == 0, f"GPU worker on {world} GPU(s) failed (see output above)"
