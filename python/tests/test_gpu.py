"""GPU tests: dcp.torch.attention forward/backward on 2 GPUs (torchrun) vs dense attention.
Skipped, with a message, where fewer than 2 CUDA GPUs are visible."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")


def test_attention_two_gpus_every_planner_and_mask():
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("GPU test: needs 2 CUDA GPUs (none or one visible here)")
    here = os.path.dirname(__file__)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", os.path.join(here, "gpu_worker.py")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    print(r.stdout[-6000:], r.stderr[-6000:])
    assert r.returncode == 0, "GPU worker failed (see output above)"
