#!/usr/bin/env python3
"""Compile the dcp-cuda kernels with NVRTC (no GPU needed) and print ptxas resource usage.

Usage: nvrtc_check.py LIBNVRTC INCLUDE_DIR [ARCH] [-DNAME=VALUE ...]
(the sm90 kernels only for sm_90a; the cluster backward only at head dims 64 and 128). DCP_CUDA_KERNELS=DIR compiles DIR's files instead of the
embedded ones where DIR has them (like the executor). NVRTC without CUDA: `pip download nvidia-cuda-nvrtc==13.0.*
nvidia-cuda-runtime==13.0.*`, unzip both; LIBNVRTC = nvidia/cu13/lib/libnvrtc.so.13 (with that
directory on LD_LIBRARY_PATH for the builtins), INCLUDE_DIR = nvidia/cu13/include.
NVRTC_CUBIN_DIR=DIR also writes each kernel's cubin there (DIR/NAME.cubin), for nvdisasm.
"""
import ctypes, sys, os
lib = ctypes.CDLL(sys.argv[1])
inc = sys.argv[2]
arch = sys.argv[3] if len(sys.argv) > 3 else "sm_90a"
extra = sys.argv[4:]
kdir = os.path.join(os.path.dirname(__file__), "../../crates/dcp-cuda/kernels")
vdir = os.environ.get("DCP_CUDA_KERNELS")  # variant files, as the executor reads them
def rd(n):
    if vdir and os.path.exists(os.path.join(vdir, n)):
        return open(os.path.join(vdir, n)).read()
    return open(os.path.join(kdir, n)).read()
srcs = {
    "util": rd("common.cuh") + rd("util.cu"),
    "attn_fwd": rd("common.cuh") + rd("mma.cuh") + rd("attn_fwd.cu"),
    "attn_bwd": rd("common.cuh") + rd("mma.cuh") + rd("attn_bwd.cu"),
    "attn_fwd_sm90": rd("common.cuh") + rd("mma.cuh") + rd("sm90.cuh") + rd("attn_fwd_sm90.cu"),
    "attn_bwd_sm90": rd("common.cuh") + rd("mma.cuh") + rd("sm90.cuh") + rd("bwd_sm90.cuh") + rd("attn_bwd_sm90.cu"),
    "attn_bwd_cluster_sm90": rd("common.cuh") + rd("mma.cuh") + rd("sm90.cuh") + rd("bwd_sm90.cuh") + rd("attn_bwd_cluster_sm90.cu"),
}
if not arch.startswith("sm_90"):
    srcs = {k: v for k, v in srcs.items() if not k.endswith("_sm90")}
# The cluster backward exists for head dims 128 and 64 (64 since session 39); the executor never
# builds it at another head dim, and its source asserts so.
if any(d.startswith("-DHEAD_DIM=") and d not in ("-DHEAD_DIM=128", "-DHEAD_DIM=64") for d in extra):
    srcs.pop("attn_bwd_cluster_sm90", None)
    print("== attn_bwd_cluster_sm90: skipped (head dims 64 and 128 only)")
ok = True
for name, src in srcs.items():
    src = src.replace("#pragma once", "")
    src = src.replace('#include <cuda_bf16.h>', '', 1) if False else src
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None) == 0
    opts = [f"--gpu-architecture={arch}", f"-I{inc}", "-std=c++17", "--ptxas-options=-v", "-lineinfo"] + extra
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    print(f"== {name}: {'OK' if r == 0 else 'FAILED'}")
    print(log.value.decode())
    ok &= r == 0
    if r == 0 and os.environ.get("NVRTC_CUBIN_DIR"):
        # For SASS: `nvdisasm -c --print-line-info DIR/NAME.cubin` (nvidia-cuda-nvdisasm wheel).
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
        cubin = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetCUBIN(prog, cubin)
        os.makedirs(os.environ["NVRTC_CUBIN_DIR"], exist_ok=True)
        with open(os.path.join(os.environ["NVRTC_CUBIN_DIR"], name + ".cubin"), "wb") as f:
            f.write(cubin.raw)
sys.exit(0 if ok else 1)
