# Offline: whether sm_90a has a packed exponential (prints the SASS of ex2 f16x2 / bf16x2 / f32). Needs /tmp/kb13/nv (kf20 README).
import ctypes, subprocess, os
P = "/tmp/kb13/nv/nvidia/cu13"
ctypes.CDLL(P + "/lib/libnvrtc-builtins.so.13.0", mode=ctypes.RTLD_GLOBAL)
lib = ctypes.CDLL(P + "/lib/libnvrtc.so.13")
src = r'''
typedef unsigned int u32;
extern "C" __global__ void k(u32* a, float* f) {
  u32 x = a[threadIdx.x], y, z;
  asm volatile("ex2.approx.f16x2 %0, %1;" : "=r"(y) : "r"(x));
  asm volatile("ex2.approx.ftz.bf16x2 %0, %1;" : "=r"(z) : "r"(x));
  float v = f[threadIdx.x], w;
  asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(w) : "f"(v));
  a[threadIdx.x] = y ^ z; f[threadIdx.x] = w;
}
'''
prog = ctypes.c_void_p()
assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"k", 0, None, None) == 0
opts = [b"--gpu-architecture=sm_90a"]
arr = (ctypes.c_char_p * len(opts))(*opts)
r = lib.nvrtcCompileProgram(prog, len(opts), arr)
n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n)); log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log); print(r, log.value.decode()[-800:])
lib.nvrtcGetCUBINSize(prog, ctypes.byref(n)); buf = ctypes.create_string_buffer(n.value); lib.nvrtcGetCUBIN(prog, buf)
open("k.cubin", "wb").write(buf.raw)
print(subprocess.run([P + "/bin/cuobjdump", "--dump-sass", "k.cubin"], capture_output=True, text=True, env=dict(os.environ, LD_LIBRARY_PATH=P+"/lib")).stdout)
