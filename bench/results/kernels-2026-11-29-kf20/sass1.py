#!/usr/bin/env python3
# kf20: compile attn_fwd_sm90.cu from DIR with extra defines (NVRTC 13.0, kf17's setup), print ptxas info,
# warnings and SASS counts; save the SASS. usage: sass1.py DIR TAG K=V ...
import ctypes, os, re, subprocess, sys, collections
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
env = dict(os.environ, LD_LIBRARY_PATH=P + "/lib")
K, tag = sys.argv[1], sys.argv[2]
defs = dict(a.split("=", 1) for a in sys.argv[3:])
s = "".join(open(os.path.join(K, f)).read() + "\n" for f in ("common.cuh", "mma.cuh", "sm90.cuh", "attn_fwd_sm90.cu")).replace("#pragma once", "")
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), s.encode(), b"k", 0, None, None) == 0
opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "-lineinfo", "--ptxas-options=-v", "-DFWD_WARPS=4", "-DFWD_MT=2"] + [f"-D{k}={v}" for k, v in defs.items()]
arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
r = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
L = log.value.decode()
if r != 0:
    print("COMPILE FAIL", L[-1500:]); sys.exit(1)
for l in L.splitlines():
    if "dcp_attn_fwd_sm90" in l or "registers" in l or "spill" in l or "C75" in l or "serializ" in l:
        if "registers" in l or "spill" in l or "C75" in l or "serializ" in l: print(l.strip())
lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
fn = f"/tmp/kf20/{tag}.cubin"; open(fn, "wb").write(buf.raw)
sass = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", "-fun", "dcp_attn_fwd_sm90", fn], capture_output=True, text=True, env=env).stdout
lines = [re.sub(r'/\*[0-9a-f]{4}\*/', '', l).strip() for l in sass.splitlines() if ';' in l]
open(f"/tmp/kf20/{tag}.sass", "w").write("\n".join(lines) + "\n")
ops = collections.Counter(re.sub(r"^(@!?U?P\w+\s+)?", "", l.split(";")[0].replace("/*", "").strip()).split()[0] if l else "" for l in lines)
print(tag, "SASS lines", len(lines), {k: ops[k] for k in ("HGMMA.64x128x16.F32.BF16", "BAR", "MUFU.EX2", "CS2R") if k in ops}, "HGMMA*", sum(v for k, v in ops.items() if k.startswith("HGMMA")), "BAR*", sum(v for k, v in ops.items() if k.startswith("BAR")))
