#!/usr/bin/env python3
# comp.py KDIR FILE OUT [DEF=V ...]: compile like the executor (util.cu: common + util; bwd: + mma, sm90, bwd_sm90), SASS + symbols
import ctypes, os, subprocess, sys
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
BASE = {"FWD_WARPS": "4", "FWD_MT": "2", "BWD_WARPS": "8", "BWD_BR": "64", "HEAD_DIM": "128"}
d, f, out = sys.argv[1:4]
defs = dict(a.split("=") for a in sys.argv[4:])
rd = lambda n: open(os.path.join(d, n)).read()
parts = [rd("common.cuh")] + ([] if f == "util.cu" else [rd("mma.cuh"), rd("sm90.cuh"), rd("bwd_sm90.cuh")]) + [rd(f)]
src = "\n".join(parts).replace("#pragma once", "")
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"k.cu", 0, None, None) == 0
opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "-lineinfo", "-Xptxas=-v"]
opts += [f"-D{k}={v}" for k, v in {**BASE, **defs}.items()]
arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
r = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
print("\n".join(l for l in log.value.decode().splitlines() if "spill" in l or "registers" in l or "error" in l or "warning" in l)[-3000:])
if r != 0: sys.exit(1)
n = ctypes.c_size_t(); lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
open(out + ".cubin", "wb").write(buf.raw)
s = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", out + ".cubin"], capture_output=True, text=True).stdout
open(out + ".sass", "w").write(s)
print(out, sum(1 for l in s.splitlines() if ';' in l), "lines")
sym = subprocess.run([P + "/bin/cuobjdump", "--dump-elf-symbols", out + ".cubin"], capture_output=True, text=True).stdout
print("\n".join(l for l in sym.splitlines() if "dcp_pdl" in l))
