#!/usr/bin/env python3
# Offline compile of w3_kernel.cuh (NVRTC 13.0 from /tmp/kb13/nv, as kf20's sass1.py): ptxas's
# registers / spills and SASS counts per NC. usage: nvrtc_check.py [NC ...]
import ctypes, os, re, subprocess, sys, collections
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
K = "crates/dcp-cuda/kernels"
here = os.path.dirname(os.path.abspath(__file__))
src = "".join(open(os.path.join(K, f)).read() + "\n" for f in ("common.cuh", "mma.cuh", "sm90.cuh"))
src += open(os.path.join(here, "w3_kernel.cuh")).read()
src = src.replace("#pragma once", "")
for spec in sys.argv[1:] or ["2", "3"]:
    nc, *extra = spec.split(",")
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"w3", 0, None, None) == 0
    opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "--ptxas-options=-v", f"-DNC={nc}"] + [f"-D{e}" for e in extra]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
    L = log.value.decode()
    if r != 0:
        print("NC", nc, "COMPILE FAIL\n", L[-3000:]); continue
    print("NC", nc, "\n".join(l.strip() for l in L.splitlines() if "spill" in l or "Used" in l or "serializ" in l or "arning" in l))
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
    fn = f"/tmp/w3_{nc}.cubin"; open(fn, "wb").write(buf.raw)
    nvd = "/tmp/kb13/nvd/nvidia/cu13/bin/nvdisasm"
    if not os.path.exists(nvd):
        print("  (no nvdisasm at", nvd + ": SASS counts skipped)"); continue
    sass = subprocess.run([nvd, fn], capture_output=True, text=True).stdout
    ops = collections.Counter(m.group(1) for m in re.finditer(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)", sass))
    print("  SASS:", sum(ops.values()), {k: v for k, v in ops.items() if k.startswith(("HGMMA", "MUFU", "STL", "LDL", "BAR", "SYNCS"))})
