#!/usr/bin/env python3
# kf17: kf15 fwd_sass_cmp.py for two kernel directories: sass_cmp12.py NEW_DIR REF_DIR [A|B|AB]
# (which side gets FWD_HALFBITS=1 on the D 128 half builds, as the host compiles them); NVRTC 13.0 + cuobjdump under
# /tmp/kb13/nv/nvidia/cu13; prints identical / DIFFERENT per build and any wgmma-serialisation warning.
# compare the 12 forward builds of kernel dir A (with extra defines per build) against dir B
import ctypes, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
env = dict(os.environ, LD_LIBRARY_PATH=P + "/lib")
def src(k): return "".join(open(os.path.join(k, f)).read() + "\n" for f in ("common.cuh", "mma.cuh", "sm90.cuh", "attn_fwd_sm90.cu")).replace("#pragma once", "")
def comp(s, defs, tag):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), s.encode(), b"k", 0, None, None) == 0
    opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "-lineinfo", "--ptxas-options=-v"] + [f"-D{k}={v}" for k, v in defs.items()]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
    if r != 0: return "COMPILE FAIL " + log.value.decode()[-800:]
    warn = [l for l in log.value.decode().splitlines() if "C7510" in l or "C7511" in l or "C7514" in l or "serializ" in l]
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
    fn = f"/tmp/kf17/c12/{tag}.cubin"; open(fn, "wb").write(buf.raw)
    sass = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", fn], capture_output=True, text=True, env=env).stdout
    return ([re.sub(r'/\*[0-9a-f]{4}\*/', '', l) for l in sass.splitlines() if ';' in l], warn)
os.makedirs("/tmp/kf17/c12", exist_ok=True)
A, B = sys.argv[1], sys.argv[2]   # A: new dir; B: reference dir
hbA = sys.argv[3] if len(sys.argv) > 3 else ""  # "A" or "B": which side gets FWD_HALFBITS=1 on the half builds at D 128
sa, sb = src(A), src(B)
builds = []
for dt in ("bf16", "f16"):
    for d in (128, 64):
        for v, extra in (("plain", {}), ("half", {"FWD_HALF": "1"}), ("short", {"FWD_LATEREL": "1"})):
            defs = {"FWD_WARPS": "4", "FWD_MT": "2", "HEAD_DIM": str(d), **({"ELEM_F16": "1"} if dt == "f16" else {}), **extra}
            builds.append((f"fwd D{d} {dt} {v}", defs, v == "half" and d == 128))
def one(b):
    name, defs, hb = b
    t = name.replace(" ", "_")
    da = dict(defs, **({"FWD_HALFBITS": "1"} if hb and "A" in hbA else {}))
    db = dict(defs, **({"FWD_HALFBITS": "1"} if hb and "B" in hbA else {}))
    a = comp(sa, da, t + "_a"); n = comp(sb, db, t + "_b")
    if isinstance(a, str) or isinstance(n, str): return f"{name:22s} {a if isinstance(a,str) else ''} {n if isinstance(n,str) else ''}"
    return f"{name:22s} {'identical' if a[0] == n[0] else 'DIFFERENT'} ({len(a[0])} / {len(n[0])} SASS lines) {' '.join(a[1])[:80]}"
with ThreadPoolExecutor(2) as ex:
    for line in ex.map(one, builds): print(line, flush=True)
