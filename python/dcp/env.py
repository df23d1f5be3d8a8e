"""``eval "$(python -m dcp.env)"``: shell exports that make the DCP executor load the same NCCL
and NVRTC as PyTorch (pip wheels): a ``libnccl.so`` symlink to PyTorch's ``libnccl.so.2`` first
on LD_LIBRARY_PATH, CUDA headers for NVRTC, NVLink multicast off."""

from __future__ import annotations

import glob
import os
import site


def exports() -> list[str]:
    out: list[str] = []
    paths: list[str] = []
    for sp in site.getsitepackages():
        nv = os.path.join(sp, "nvidia")
        nccl = os.path.join(nv, "nccl", "lib", "libnccl.so.2")
        if os.path.exists(nccl) and not paths:
            shim = os.path.join(os.path.expanduser("~"), ".cache", "dcp", "shim")
            os.makedirs(shim, exist_ok=True)
            link = os.path.join(shim, "libnccl.so")
            if os.path.islink(link) or os.path.exists(link):
                os.remove(link)
            os.symlink(nccl, link)
            paths += [shim, os.path.dirname(nccl)]
            paths += sorted(glob.glob(os.path.join(nv, "cu*", "lib")))
            for inc in sorted(glob.glob(os.path.join(nv, "cu*", "include"))):
                if os.path.exists(os.path.join(inc, "cuda_bf16.h")):
                    out.append(f"export DCP_CUDA_INCLUDE={inc}")
    if paths:
        out.append("export LD_LIBRARY_PATH=" + ":".join(paths) + ":${LD_LIBRARY_PATH:-}")
    out.append("export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1")
    return out


if __name__ == "__main__":
    print("\n".join(exports()))
