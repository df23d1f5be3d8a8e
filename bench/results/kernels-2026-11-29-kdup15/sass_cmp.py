#!/usr/bin/env python3
"""SASS identity check of the two sm90 backward kernels between two kernel trees.

Usage: sass_cmp.py OLD_KERNEL_DIR NEW_KERNEL_DIR [-j N] [--only NAME,...] [--cache DIR]

Compiles every build the executor makes of attn_bwd_sm90.cu and attn_bwd_cluster_sm90.cu
(src/exec.rs; the list is BUILDS below) from both trees with NVRTC 13.0 for sm_90a, with the
executor's options (src/nvrtc.rs: -std=c++17 -lineinfo, the defines of Kernels::new) and the
executor's concatenation (common.cuh, mma.cuh, sm90.cuh, bwd_sm90.cuh, the kernel file; every
`#pragma once` dropped), dumps the SASS with cuobjdump --dump-sass, strips the /*addr*/
comments and compares the instruction lines. Prints one line per build; exit 1 if any differs.
The old tree's SASS is cached in --cache (keyed by the build name and a hash of the source).
"""
import ctypes, hashlib, os, re, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor

P = "/tmp/kb13/nv/nvidia/cu13"
# libnvrtc dlopens its builtins by soname: loaded first, no LD_LIBRARY_PATH needed.
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")

BASE = {"FWD_WARPS": "4", "FWD_MT": "2", "BWD_WARPS": "8", "BWD_BR": "64"}
MAIN, CLUSTER = "attn_bwd_sm90.cu", "attn_bwd_cluster_sm90.cu"


def builds():
    out = []
    for dt in ("bf16", "f16"):
        f16 = {"ELEM_F16": "1"} if dt == "f16" else {}
        for d in (128, 64):
            b = {"HEAD_DIM": str(d), **f16}
            out.append((f"main D{d} {dt} plain", MAIN, b))
        b = {"HEAD_DIM": "128", **f16}
        # Kernels::new pushes BWD_DQ_CONV (convert.dq, D 128) before it clones the defines for
        # the half, cluster and chain kernels; chains add BWD_CHAIN, the DCP_CUDA_BWD_CHAIN_DEFS
        # knob (BWD_CHAIN_ST16=0) and BWD_CHAIN_DD.
        for conv in (False, True):
            c = {"BWD_DQ_CONV": "1"} if conv else {}
            sfx = " dqconv" if conv else ""
            if conv:
                out.append((f"main D128 {dt}{sfx}", MAIN, {**b, **c}))
            out.append((f"main D128 {dt} half{sfx}", MAIN, {**b, **c, "BWD_HALF": "1"}))
            out.append((f"main D128 {dt} chain{sfx}", MAIN, {**b, **c, "BWD_CHAIN": "1"}))
            out.append((f"main D128 {dt} chain st16=0{sfx}", MAIN, {**b, **c, "BWD_CHAIN": "1", "BWD_CHAIN_ST16": "0"}))
            out.append((f"main D128 {dt} chain dd{sfx}", MAIN, {**b, **c, "BWD_CHAIN": "1", "BWD_CHAIN_DD": "1"}))
            out.append((f"cluster D128 {dt}{sfx}", CLUSTER, {**b, **c}))
        # The clustered kernel at D 64 (session 39; no BWD_DQ_CONV there).
        out.append((f"cluster D64 {dt}", CLUSTER, {"HEAD_DIM": "64", **f16}))
    # Not host builds: A/B switches of the kernels' own (DCP_CUDA_KERNELS variants), checked too.
    for d in (128, 64):
        out.append((f"(A/B) main D{d} bf16 BWD_FASTDESC=0", MAIN, {"HEAD_DIM": str(d), "BWD_FASTDESC": "0"}))
        out.append((f"(A/B) main D{d} bf16 BWD_ORDER=0", MAIN, {"HEAD_DIM": str(d), "BWD_ORDER": "0"}))
    out.append(("(A/B) cluster D128 bf16 BWD_FASTDESC=0", CLUSTER, {"HEAD_DIM": "128", "BWD_FASTDESC": "0"}))
    out.append(("(A/B) cluster D128 bf16 BWD_ORDER=0", CLUSTER, {"HEAD_DIM": "128", "BWD_ORDER": "0"}))
    return out


def source(d, f):
    rd = lambda n: open(os.path.join(d, n)).read()
    return "\n".join([rd("common.cuh"), rd("mma.cuh"), rd("sm90.cuh"), rd("bwd_sm90.cuh"), rd(f)]).replace("#pragma once", "")


def sass(src, defs):
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"k.cu", 0, None, None) == 0
    opts = ["--gpu-architecture=sm_90a", f"-I{P}/include", "-std=c++17", "-lineinfo"]
    opts += [f"-D{k}={v}" for k, v in {**BASE, **defs}.items()]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    r = lib.nvrtcCompileProgram(prog, len(opts), arr)
    if r != 0:
        n = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value)
        lib.nvrtcGetProgramLog(prog, log)
        raise RuntimeError(log.value.decode()[-3000:])
    n = ctypes.c_size_t()
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetCUBIN(prog, buf)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as t:
        t.write(buf.raw)
        t.flush()
        txt = subprocess.run([P + "/bin/cuobjdump", "--dump-sass", t.name], capture_output=True, text=True, check=True).stdout
    return [re.sub(r"/\*[0-9a-f]{4,}\*/", "", l).strip() for l in txt.splitlines() if ";" in l]


def main():
    a = sys.argv[1:]
    old, new = a[0], a[1]
    j = int(a[a.index("-j") + 1]) if "-j" in a else 2
    only = a[a.index("--only") + 1].split(",") if "--only" in a else None
    cache = a[a.index("--cache") + 1] if "--cache" in a else "/tmp/kdup15/cache"
    os.makedirs(cache, exist_ok=True)
    bl = [b for b in builds() if only is None or any(o in b[0] for o in only)]

    def one(b):
        name, f, defs = b
        so = source(old, f)
        key = hashlib.sha1((name + repr(sorted(defs.items())) + so).encode()).hexdigest()[:16]
        cp = os.path.join(cache, key + ".sass")
        if os.path.exists(cp):
            ao = open(cp).read().splitlines()
        else:
            ao = sass(so, defs)
            open(cp, "w").write("\n".join(ao) + "\n")
        try:
            an = sass(source(new, f), defs)
        except RuntimeError as e:
            return f"{name:40s} COMPILE ERROR\n{e}", False
        same = ao == an
        return f"{name:40s} {'identical' if same else 'DIFFERENT'} ({len(ao)} / {len(an)} SASS lines)", same

    with ThreadPoolExecutor(j) as ex:
        res = list(ex.map(one, bl))
    ok = True
    for line, same in res:
        print(line, flush=True)
        ok &= same
    print("ALL IDENTICAL" if ok else "SOME DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
