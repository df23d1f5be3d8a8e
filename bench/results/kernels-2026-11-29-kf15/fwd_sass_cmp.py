import ctypes, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
K = "/work/main/crates/dcp-cuda/kernels"
def rd(p): return open(p).read()
head = "".join(rd(os.path.join(K, f)) + "\n" for f in ("common.cuh", "mma.cuh", "sm90.cuh"))
def comp(src, defs, tag):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"k", 0, None, None) == 0
    opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "-lineinfo"] + [f"-D{k}={v}" for k, v in defs.items()]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
    if r != 0: return "COMPILE FAIL " + log.value.decode()[-1500:]
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
    fn = f"/tmp/fsc/{tag}.cubin"; open(fn, "wb").write(buf.raw)
    sass = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", fn], capture_output=True, text=True).stdout
    return [re.sub(r'/\*[0-9a-f]{4}\*/', '', l) for l in sass.splitlines() if ';' in l]
old = (head + rd("/tmp/fsc/old_fwd.cu")).replace("#pragma once", "")
new = (head + rd(os.path.join(K, "attn_fwd_sm90.cu"))).replace("#pragma once", "")
builds = []
for dt in ("bf16", "f16"):
    for d in (128, 64):
        for v, extra in (("plain", {}), ("half", {"FWD_HALF": "1"}), ("short", {"FWD_LATEREL": "1"})):
            defs = {"FWD_WARPS": "4", "FWD_MT": "2", "HEAD_DIM": str(d), **({"ELEM_F16": "1"} if dt == "f16" else {}), **extra}
            builds.append((f"fwd D{d} {dt} {v}", defs))
def one(b):
    name, defs = b
    t = name.replace(" ", "_")
    a = comp(old, defs, t + "_o"); n = comp(new, defs, t + "_n")
    if isinstance(a, str) or isinstance(n, str): return f"{name:28s} {a if isinstance(a,str) else ''} {n if isinstance(n,str) else ''}"
    return f"{name:28s} {'identical' if a == n else 'DIFFERENT'} ({len(a)} / {len(n)} SASS lines)"
with ThreadPoolExecutor(2) as ex:
    for line in ex.map(one, builds): print(line, flush=True)
