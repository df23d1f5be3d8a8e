#!/usr/bin/env python3
# kbwd2: compile attn_bwd_sm90 of a kernel directory with NVRTC (sm_90a), print ptxas -v, write cubin + cuobjdump SASS.
# usage: python3 nvrtc_sass.py KERNEL_DIR OUT_PREFIX [-DHEAD_DIM=64 ...] (paths: /work/main/target/pyenv cu13 wheels, triton cuobjdump)
# sass.py KERNEL_DIR OUT_PREFIX [-DX=Y ...]: compile attn_bwd_sm90 from KERNEL_DIR (sm90.cuh etc. from it), write cubin + sass, print ptxas log
import ctypes, sys, os, subprocess
P = "/work/main/target/pyenv/lib/python3.11/site-packages/nvidia/cu13"
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
kdir, out = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
def rd(n): return open(os.path.join(kdir, n)).read()
src = (rd("common.cuh") + rd("util.cu")).replace("#pragma once", "")
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"bwd", 0, None, None) == 0
opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "--ptxas-options=-v", "-lineinfo"] + extra
arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
r = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
print(log.value.decode())
if r != 0: sys.exit(1)
lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
open(out + ".cubin", "wb").write(buf.raw)
sass = subprocess.run(["/work/main/target/pyenv/lib/python3.11/site-packages/triton/backends/nvidia/bin/cuobjdump", "--dump-sass", out + ".cubin"], capture_output=True, text=True).stdout
open(out + ".sass", "w").write(sass)
