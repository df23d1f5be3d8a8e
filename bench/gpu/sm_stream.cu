// How fast can k SMs stream from DRAM, one CTA each, with no per-chunk search? A standalone probe
// (session 44) for the question sessions 42-43 left open: their D clusters and bulk-copy D pass
// streamed only ~18-36 GB/s per SM, but each chunk also paid a dependent search or descriptor
// load, so the cap may have been that chain and not the SM. Each CTA reads its own disjoint
// region of `MB` MiB; one CTA per SM is forced by the shared memory each asks for.
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/sm_stream bench/gpu/sm_stream.cu && /tmp/sm_stream
//
// Methods:
//   ld<U>/T      T threads, U 16-byte loads in flight per thread (ld.global.nc.L1::no_allocate)
//   bulk S x C   one producer lane issues 1-D bulk copies (cp.async.bulk, mbarrier complete_tx) of
//                C KiB into S stages; 4 consumer warps wait for each stage, optionally read it
//                (touch: one 16-byte shared load per lane per 512 bytes... all of it), release it
//   dsm ...      the clustered backward's D CTA in miniature (dsm_mini below); argument 3 `mini`
//                runs only these
// Output: one line per (method, k): µs, GB/s in all, GB/s per SM; then a JSON line per row.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>

typedef unsigned int u32;
typedef unsigned long long u64;

#define CK(x)                                                                                  \
  do {                                                                                         \
    cudaError_t e = (x);                                                                       \
    if (e != cudaSuccess) {                                                                    \
      printf("CUDA %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__);                 \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

__device__ __forceinline__ uint4 ld_nc(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <int U>
__global__ void ld_stream(const uint4* src, u64 n16, u32* sink) {
  const uint4* base = src + blockIdx.x * n16;
  u32 acc = 0;
  const u64 step = (u64)blockDim.x * U;
  for (u64 i = threadIdx.x; i < n16; i += step) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 j = i + (u64)u * blockDim.x;
      v[u] = j < n16 ? ld_nc(base + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x + v[u].y + v[u].z + v[u].w;
  }
  if (acc == 0x9e3779b9u) sink[blockIdx.x] = acc;  // keeps the loads; practically never true
}

__device__ __forceinline__ u32 saddr(const void* p) { return (u32)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect(u32 bar, u32 bytes) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  u32 done = 0;
  while (!done)
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
}
__device__ __forceinline__ void bulk_g2s(u32 dst, const void* src, u32 bytes, u32 bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

// 5 warps: warps 0-3 consume, lane 0 of warp 4 produces. Stages of `chunk` bytes after 1 KiB of
// barriers (full[s] at 8 s, empty[s] at 512 + 8 s).
__global__ void __launch_bounds__(160) bulk_stream(const char* src, u64 bytes, u32 chunk, u32 stages,
                                                   u32 touch, u32* sink) {
  extern __shared__ __align__(1024) char sm[];
  const u32 s0 = saddr(sm), buf = s0 + 1024;
  const char* base = src + blockIdx.x * bytes;
  const u32 n = (u32)(bytes / chunk), warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (threadIdx.x == 0) {
    for (u32 s = 0; s < stages; ++s) {
      mbar_init(s0 + 8 * s, 1);
      mbar_init(s0 + 512 + 8 * s, 4);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (warp == 4) {
    if (lane == 0)
      for (u32 i = 0; i < n; ++i) {
        const u32 s = i % stages;
        if (i >= stages) mbar_wait(s0 + 512 + 8 * s, ((i / stages) - 1) & 1);
        mbar_expect(s0 + 8 * s, chunk);
        bulk_g2s(buf + s * chunk, base + (u64)i * chunk, chunk, s0 + 8 * s);
      }
    return;
  }
  u32 acc = 0;
  for (u32 i = 0; i < n; ++i) {
    const u32 s = i % stages;
    mbar_wait(s0 + 8 * s, (i / stages) & 1);
    if (touch) {
      const uint4* p = (const uint4*)(sm + 1024 + (u64)s * chunk);
      for (u32 j = threadIdx.x; j < chunk / 16; j += 128) {
        const uint4 v = p[j];
        acc ^= v.x + v.y + v.z + v.w;
      }
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(s0 + 512 + 8 * s);
  }
  if (acc == 0x9e3779b9u) sink[blockIdx.x] = acc;
}


// The clustered backward's D CTA (attn_bwd_cluster_sm90.cu cl_dsm_stream) in miniature: stages of
// a 32 KiB dO chunk and a 32 KiB O chunk (bf16, D 128: 128 items), NW consumer warps, TPI
// threads an item; ILP: all of a thread's shared loads before its products; FENCE: a
// __threadfence and a barrier of the consumers every 16 chunks (a unit), as the kernel's flag
// release. D goes to `dd`.
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const u32* x = (const u32*)&a;
  const u32* y = (const u32*)&b;
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    s = fmaf(__uint_as_float(x[k] << 16), __uint_as_float(y[k] << 16), s);
    s = fmaf(__uint_as_float(x[k] & 0xffff0000u), __uint_as_float(y[k] & 0xffff0000u), s);
  }
  return s;
}
template <int NW, int ILP, int FENCE>
__global__ void __launch_bounds__(384) dsm_mini(const char* dout, const char* o, u64 bytes, float* dd) {
  extern __shared__ __align__(1024) char sm[];
  constexpr u32 CH = 32 * 1024, NS = 3, STB = 2 * CH, IB = 256, IC = CH / IB, L = 16;
  constexpr u32 NT = 32 * NW;  // consumer threads: warps 1 .. NW
  const u32 s0 = saddr(sm), bars = s0 + NS * STB;
  const u32 n = (u32)(bytes / CH), tid = threadIdx.x, lane = tid & 31;
  dout += blockIdx.x * bytes;
  o += blockIdx.x * bytes;
  dd += blockIdx.x * (bytes / IB);
  if (tid == 0) {
    for (u32 s = 0; s < NS; ++s) {
      mbar_init(bars + 8 * s, 1);
      mbar_init(bars + 8 * (NS + s), NW);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (tid == 0) {
    for (u32 i = 0; i < n; ++i) {
      const u32 s = i % NS;
      if (i >= NS) mbar_wait(bars + 8 * (NS + s), ((i / NS) - 1) & 1);
      mbar_expect(bars + 8 * s, 2 * CH);
      bulk_g2s(s0 + s * STB, dout + (u64)i * CH, CH, bars + 8 * s);
      bulk_g2s(s0 + s * STB + CH, o + (u64)i * CH, CH, bars + 8 * s);
    }
    return;
  }
  if (tid < 32 || tid >= 32 + NT) return;
  const u32 t = tid - 32;
  for (u32 i = 0; i < n; ++i) {
    const u32 s = i % NS;
    mbar_wait(bars + 8 * s, (i / NS) & 1);
    // Items of the chunk over NT threads: item it, chunks c0 .. c0 + cpt - 1 (rotated).
    for (u32 w = t; w < IC * 2; w += NT) {  // (item, half) units of 8 chunks
      const u32 it = w / 2, c0 = (w % 2) * 8;
      const char* st = sm + s * STB + it * IB;
      float x = 0.f;
      if (ILP) {
        uint4 a[8], b[8];
#pragma unroll
        for (u32 k = 0; k < 8; ++k) {
          const u32 ch = c0 + ((k + lane) % 8);
          a[k] = *(const uint4*)(st + ch * 16);
          b[k] = *(const uint4*)(st + CH + ch * 16);
        }
        float y[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (u32 k = 0; k < 8; ++k) y[k % 4] += dot8(a[k], b[k]);
        x = (y[0] + y[1]) + (y[2] + y[3]);
      } else {
#pragma unroll
        for (u32 k = 0; k < 8; ++k) {
          const u32 ch = c0 + ((k + lane) % 8);
          x += dot8(*(const uint4*)(st + ch * 16), *(const uint4*)(st + CH + ch * 16));
        }
      }
      x += __shfl_xor_sync(__activemask(), x, 1);
      if ((w & 1) == 0) dd[(u64)i * IC + it] = x;
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(bars + 8 * (NS + s));
    if (FENCE && i % 16 == 15) {
      __threadfence();
      asm volatile("bar.sync 2, %0;\n" ::"r"(NT) : "memory");
    }
  }
}

struct Row {
  std::string method;
  int k;
  double us, gbs, gbs_sm;
};

int main(int argc, char** argv) {
  const u64 MB = argc > 1 ? strtoull(argv[1], 0, 10) : 64;  // MiB per CTA
  const int reps = argc > 2 ? atoi(argv[2]) : 5;
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  printf("# %s, %d SMs, %llu MiB per CTA, median of %d\n", prop.name, sms, MB, reps);
  const u64 bytes = MB << 20;
  char* src;
  u32* sink;
  CK(cudaMalloc(&src, bytes * sms));
  CK(cudaMemset(src, 1, bytes * sms));
  CK(cudaMalloc(&sink, 4096));
  const int one_per_sm = 200 * 1024;  // dynamic shared memory that leaves room for one CTA
  CK(cudaFuncSetAttribute((const void*)ld_stream<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, one_per_sm));
  CK(cudaFuncSetAttribute((const void*)ld_stream<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, one_per_sm));
  CK(cudaFuncSetAttribute((const void*)bulk_stream, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  auto time = [&](auto launch) {
    std::vector<float> v;
    launch();  // warm-up
    for (int r = 0; r < reps; ++r) {
      CK(cudaEventRecord(a));
      launch();
      CK(cudaEventRecord(b));
      CK(cudaEventSynchronize(b));
      float ms;
      CK(cudaEventElapsedTime(&ms, a, b));
      v.push_back(ms * 1000.f);
    }
    CK(cudaGetLastError());
    std::sort(v.begin(), v.end());
    return (double)v[v.size() / 2];
  };
  std::vector<Row> rows;
  auto add = [&](const std::string& m, int k, double us) {
    const double gbs = (double)bytes * k / us / 1e3;
    rows.push_back({m, k, us, gbs, gbs / k});
    printf("%-26s k=%3d %9.1f us %8.1f GB/s %7.1f GB/s per SM\n", m.c_str(), k, us, gbs, gbs / k);
    fflush(stdout);
  };
  std::vector<int> ks = {1, 2, 4, 8, 16, 32, 66, sms};
  if (argc > 3 && !strcmp(argv[3], "mini")) ks.clear();  // the D-CTA miniatures only
  for (int k : ks) {
    const u64 n16 = bytes / 16;
    for (int t : {256, 1024}) {
      add("ld<8>/" + std::to_string(t), k, time([&] {
            ld_stream<8><<<k, t, one_per_sm>>>((const uint4*)src, n16, sink);
          }));
    }
    add("ld<4>/1024", k, time([&] { ld_stream<4><<<k, 1024, one_per_sm>>>((const uint4*)src, n16, sink); }));
    struct B {
      u32 stages, kib, touch;
    };
    for (B c : {B{4, 16, 0}, B{8, 16, 0}, B{12, 16, 0}, B{6, 32, 0}, B{3, 64, 0}, B{8, 16, 1}, B{6, 32, 1}}) {
      const u32 chunk = c.kib * 1024;
      const size_t smem = 1024 + (size_t)c.stages * chunk;
      add("bulk " + std::to_string(c.stages) + "x" + std::to_string(c.kib) + "K" + (c.touch ? " touch" : ""), k,
          time([&] { bulk_stream<<<k, 160, smem>>>(src, bytes, chunk, c.stages, c.touch, sink); }));
    }
  }
  {
    float* dd;
    CK(cudaMalloc(&dd, (bytes / 256) * sms * 4));
    const size_t smem = 3 * 64 * 1024 + 64;
    auto mini = [&](auto kern, const char* name) {
      CK(cudaFuncSetAttribute((const void*)kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
      for (int k : {1, 8, 16, 132})
        add(name, k, time([&] { kern<<<k, 384, smem>>>(src, src + bytes * sms / 2, bytes / 2, dd); }));
    };
    // Half of each CTA's region is dO, half O.
    mini(dsm_mini<8, 0, 1>, "dsm 8w");
    mini(dsm_mini<8, 0, 0>, "dsm 8w nofence");
    mini(dsm_mini<8, 1, 1>, "dsm 8w ilp");
    mini(dsm_mini<11, 0, 1>, "dsm 11w");
    mini(dsm_mini<11, 1, 1>, "dsm 11w ilp");
  }
  for (const Row& r : rows)
    printf("{\"method\": \"%s\", \"k\": %d, \"us\": %.1f, \"gbs\": %.1f, \"gbs_per_sm\": %.2f}\n", r.method.c_str(),
           r.k, r.us, r.gbs, r.gbs_sm);
  return 0;
}
