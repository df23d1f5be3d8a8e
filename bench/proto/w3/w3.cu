// Prototype driver (session 23, issue 10): times w3_kernel.cuh's forward on N documents of
// W3_DOC tokens (full mask, D 128, bf16, GQA 8:2), or with W3_MODE 1 one causal-blockwise
// sequence of W3_SEQ tokens, and checks it against an fp32 reference.
// Built on the GPU machine (run.sh):
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I crates/dcp-cuda/kernels -DNC=3 \
//        -o w3_3 bench/proto/w3/w3.cu -lcuda
// Usage: w3_N [documents (1000)] [timed launches (20)]. Prints one JSON line.
#include <cuda.h>
#include <cuda_runtime.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include "common.cuh"
#include "mma.cuh"
#include "sm90.cuh"
#include "w3_kernel.cuh"

#define CK(x)                                                                             \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

__global__ void fill(__nv_bfloat16* p, size_t n, u32 seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    u32 x = (u32)i * 2654435761u ^ seed;
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    p[i] = __float2bfloat16(((x & 0xffffu) / 65535.f) * 2.f - 1.f);
  }
}

// The keys row `row` attends: [lo, hi) in the K/V tensor's rows.
__host__ __device__ inline void key_range(u32 row, u32* lo, u32* hi) {
#if W3_MODE == 1
  const u32 b = row / 256;
  *lo = b ? 256 * (b - 1) : 0;
  *hi = row + 1;
#elif W3_MODE == 2
  (void)row;
  *lo = 0;
  *hi = W3_SEQ;
#else
  *lo = row / W3_DOC * W3_DOC;
  *hi = *lo + W3_DOC;
#endif
}
#define W3_REF_KEYS (W3_MODE == 1 ? 512 : W3_MODE == 2 ? 1 : W3_DOC)

// fp32 reference: one thread per (row, head), rows 256 blockIdx.x .. + 255.
__global__ void reference(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, float* o,
                          float* lse, float scale) {
  const u32 head = blockIdx.y, row = blockIdx.x * 256 + threadIdx.x, kvh = head / (W3_H / W3_HK);
  u32 lo, hi;
  key_range(row, &lo, &hi);
  const int nk = hi - lo;
  float qr[W3_D];
  for (int d = 0; d < W3_D; ++d) qr[d] = __bfloat162float(q[((size_t)row * W3_H + head) * W3_D + d]);
  float s[W3_REF_KEYS], mx = -INFINITY;
  for (int j = 0; j < nk; ++j) {
    const __nv_bfloat16* kr = k + ((size_t)(lo + j) * W3_HK + kvh) * W3_D;
    float a = 0.f;
    for (int d = 0; d < W3_D; ++d) a += qr[d] * __bfloat162float(kr[d]);
    s[j] = a * scale;
    mx = fmaxf(mx, s[j]);
  }
  float l = 0.f;
  for (int j = 0; j < nk; ++j) {
    s[j] = expf(s[j] - mx);
    l += s[j];
  }
  for (int d = 0; d < W3_D; ++d) {
    float a = 0.f;
    for (int j = 0; j < nk; ++j) a += s[j] * __bfloat162float(v[((size_t)(lo + j) * W3_HK + kvh) * W3_D + d]);
    o[((size_t)row * W3_H + head) * W3_D + d] = a / l;
  }
  lse[(size_t)row * W3_H + head] = mx + logf(l);
}

// 3-D map over [rows][heads][D] bf16: box 64 columns x 1 head x box_rows rows, 128-byte swizzle.
static CUtensorMap make_map(void* p, u32 heads, u64 rows, u32 box_rows) {
  CUtensorMap m;
  cuuint64_t dims[3] = {W3_D, heads, rows};
  cuuint64_t strides[2] = {W3_D * 2, (cuuint64_t)heads * W3_D * 2};
  cuuint32_t box[3] = {64, 1, box_rows}, es[3] = {1, 1, 1};
  CUresult r = cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, p, dims, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    fprintf(stderr, "cuTensorMapEncodeTiled failed: %d\n", (int)r);
    exit(1);
  }
  return m;
}

int main(int argc, char** argv) {
  const u32 docs = argc > 1 ? atoi(argv[1]) : 1000, reps = argc > 2 ? atoi(argv[2]) : 20;
#if W3_MODE != 0
  const u64 T = W3_SEQ;
#else
  const u64 T = (u64)docs * W3_DOC;
#endif
  const size_t nq = T * W3_H * W3_D, nk = T * W3_HK * W3_D;
  __nv_bfloat16 *q, *k, *v, *o;
  float *lse, *oref, *lref;
  CK(cudaMalloc(&q, nq * 2));
  CK(cudaMalloc(&o, nq * 2));
  CK(cudaMalloc(&k, nk * 2));
  CK(cudaMalloc(&v, nk * 2));
  CK(cudaMalloc(&lse, T * W3_H * 4));
  CK(cudaMalloc(&oref, nq * 4));
  CK(cudaMalloc(&lref, T * W3_H * 4));
  fill<<<1024, 256>>>(q, nq, 1u);
  fill<<<1024, 256>>>(k, nk, 2u);
  fill<<<1024, 256>>>(v, nk, 3u);
  CK(cudaMemset(o, 0, nq * 2));
  CUtensorMap qm = make_map(q, W3_H, T, 64), om = make_map(o, W3_H, T, 64);
  CUtensorMap km = make_map(k, W3_HK, T, 128), vm = make_map(v, W3_HK, T, 128);
  int sms;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CK(cudaFuncSetAttribute(w3_fwd, cudaFuncAttributeMaxDynamicSharedMemorySize, W3_SMEM));
#if W3_MODE == 1
  const u32 n_units = W3_HK * (W3_SEQ / 256) * 2;
#elif W3_MODE == 2
  const u32 n_units = W3_HK * (W3_SEQ / 64);
#else
  const u32 n_units = docs * W3_HK;
#endif
  const float scale = 1.f / sqrtf((float)W3_D), scale_log2 = scale * 1.4426950408889634f;
  u64* clk;
  CK(cudaMalloc(&clk, 4 * sms * sizeof(u64)));
  u64* clk_arg = nullptr;
  auto launch = [&]() { w3_fwd<<<sms, W3_THREADS, W3_SMEM>>>(qm, km, vm, om, lse, n_units, scale_log2, clk_arg); };
  launch();
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  // Check against the fp32 reference.
#if W3_MODE == 2
  // (No reference: a row's 8K scores do not fit a thread's local array; mode 2 is for the
  // clock. The check below then compares against zeros and fails.)
  CK(cudaMemset(oref, 0, nq * 4));
  CK(cudaMemset(lref, 0, T * W3_H * 4));
#else
  reference<<<dim3(T / 256, W3_H), 256>>>(q, k, v, oref, lref, scale);
#endif
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  std::vector<__nv_bfloat16> ho(nq);
  std::vector<float> hr(nq), hl(T * W3_H), hlr(T * W3_H);
  CK(cudaMemcpy(ho.data(), o, nq * 2, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hr.data(), oref, nq * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hl.data(), lse, T * W3_H * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hlr.data(), lref, T * W3_H * 4, cudaMemcpyDeviceToHost));
  double max_err = 0, max_ref = 0, lse_err = 0;
  for (size_t i = 0; i < nq; ++i) {
    max_err = fmax(max_err, fabs((double)__bfloat162float(ho[i]) - hr[i]));
    max_ref = fmax(max_ref, fabs((double)hr[i]));
  }
  for (size_t i = 0; i < hl.size(); ++i) lse_err = fmax(lse_err, fabs((double)hl[i] - hlr[i]));
  const double rel = max_err / max_ref;
  const bool pass = rel < 1e-2 && lse_err < 1e-3 && std::isfinite(rel);
  // Time.
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  std::vector<float> ts;
  for (u32 i = 0; i < reps; ++i) {
    CK(cudaEventRecord(e0));
    launch();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    ts.push_back(ms);
  }
  CK(cudaGetLastError());
  // One more launch with the clock stamps: mean SM clock over the CTAs (MHz).
  clk_arg = clk;
  launch();
  CK(cudaDeviceSynchronize());
  std::vector<u64> hc(4 * sms);
  CK(cudaMemcpy(hc.data(), clk, hc.size() * sizeof(u64), cudaMemcpyDeviceToHost));
  double mhz = 0;
  for (int b = 0; b < sms; ++b) mhz += (double)(hc[4 * b + 2] - hc[4 * b]) / (double)(hc[4 * b + 3] - hc[4 * b + 1]) * 1e3;
  mhz /= sms;
#if W3_STAMP
  // The per-phase stamps of that launch, raw (u64 [CTAS][NC][TASKS][10]), for stamps.py.
  if (const char* f = getenv("W3_STAMP_OUT")) {
    std::vector<u64> hs(W3_STAMP_CTAS * NC * W3_STAMP_TASKS * 10);
    CK(cudaMemcpyFromSymbol(hs.data(), w3_stamps, hs.size() * sizeof(u64)));
    FILE* fp = fopen(f, "wb");
    if (!fp || fwrite(hs.data(), sizeof(u64), hs.size(), fp) != hs.size()) {
      fprintf(stderr, "cannot write %s\n", f);
      exit(1);
    }
    fclose(fp);
  }
#endif
  // Sustained load for the clock / power sampler (W3_SUSTAIN_MS of launches, after the timing).
  if (const char* e = getenv("W3_SUSTAIN_MS")) {
    clk_arg = nullptr;
    const int n = (int)(atof(e) / ts[0]) + 1;
    for (int i = 0; i < n; ++i) launch();
    CK(cudaDeviceSynchronize());
  }
  std::sort(ts.begin(), ts.end());
  const double med = ts[ts.size() / 2];
  double pairs = 0;
  for (u64 r = 0; r < T; ++r) {
    u32 lo, hi;
    key_range((u32)r, &lo, &hi);
    pairs += hi - lo;
  }
  const double flops = 4.0 * W3_H * pairs * W3_D;
  printf("{\"proto\": \"w3\", \"mode\": %d, \"tokens\": %llu, \"nc\": %d, \"docs\": %u, \"doc\": %d, \"fwd_ms\": %.4f, \"fwd_min_ms\": %.4f, "
         "\"tflops\": %.1f, \"o_max_abs_err\": %.3e, \"o_rel_err\": %.3e, \"lse_max_err\": %.3e, \"pass\": %s, "
         "\"smem\": %d, \"threads\": %d, \"sm_mhz\": %.0f}\n",
         W3_MODE, (unsigned long long)T, NC, docs, W3_DOC, med, ts[0], flops / (med * 1e-3) / 1e12, max_err, std::isfinite(rel) ? rel : -1.0, std::isfinite(lse_err) ? lse_err : -1.0, pass ? "true" : "false",
         W3_SMEM, W3_THREADS, mhz);
  return pass ? 0 : 2;
}
