#!/usr/bin/env python3
# kfwd9's fwd_sass.py (kernels-2026-11-28n) with NVRTC from NV (env, default /tmp/kf13nv/nvidia/cu13):
# compile attn_fwd_sm90 of a kernel directory (sm_90a), print ptxas -v, write cubin + SASS.
# usage: fwd_sass.py KERNEL_DIR OUT_PREFIX [-DHEAD_DIM=128 ...]
import ctypes, sys, os, subprocess
P = os.environ.get("NV", "/tmp/kf13nv/nvidia/cu13")
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
kdir, out = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
def rd(n): return open(os.path.join(kdir, n)).read()
src = (rd("common.cuh") + "\n" + rd("mma.cuh") + "\n" + rd("sm90.cuh") + "\n" + rd("attn_fwd_sm90.cu")).replace("#pragma once", "")
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"fwd", 0, None, None) == 0
opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "--ptxas-options=-v", "-lineinfo",
        "-DFWD_WARPS=4", "-DFWD_MT=2", "-DBWD_WARPS=4", "-DBWD_BR=64"] + extra
arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
r = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
print(log.value.decode())
if r != 0: sys.exit(1)
lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
open(out + ".cubin", "wb").write(buf.raw)
sass = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", out + ".cubin"], capture_output=True, text=True).stdout
open(out + ".sass", "w").write(sass)
