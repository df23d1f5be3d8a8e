// kbb15: microbenchmark of the backward's fixed passes (D pre-pass with the dQ zero, the fp32 ->
// bf16 dQ conversion) against their bytes' floors, main's kernels (util.cu) vs variants
// (util_new.cu), alternated in rounds, outputs checked against main's.
//   nvcc -O3 -std=c++17 -arch=sm_90a -o ddbench ddbench.cu && ./ddbench
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>
#include <functional>
#include <algorithm>
#include <cmath>
#include <cuda_runtime.h>
#include "common.cuh"
#include "util.cu"
#include "util_new.cu"
#include "util_kbb15.cu"

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); exit(1); } } while (0)

__global__ void init_b16(unsigned short* p, u64 n, u32 seed) {
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    u32 h = (u32)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    const float v = ((h & 0xffff) / 65536.f - 0.5f) * 2.f;
    const __nv_bfloat16 b = __float2bfloat16(v);
    p[i] = *(const unsigned short*)&b;
  }
}
__global__ void init_f32(float* p, u64 n, u32 seed) {
  for (u64 i = blockIdx.x * (u64)blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) {
    u32 h = (u32)i * 2654435761u ^ seed; h ^= h >> 13; h *= 0x5bd1e995u; h ^= h >> 15;
    p[i] = ((h & 0xffffff) / 16777216.f - 0.5f) * 3.f;
  }
}

typedef std::function<void()> Fn;
struct Var { std::string name; Fn run; double bytes; std::vector<float> us; };

static void launch(const void* f, u32 grid, void** args, size_t smem = 0) {
  CK(cudaLaunchKernel(f, dim3(grid), dim3(256), args, smem, 0));
}
template <int U, int S>
static size_t async_smem() { return (size_t)S * U * 2 * 256 * 16 + (size_t)S * 256 * 4; }

int main(int argc, char** argv) {
  int sms = 0; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int rounds = argc > 1 ? atoi(argv[1]) : 5, reps = 10;
  const u32 HD = 128, QH = 8, ROWW = QH * HD;  // elements per token row
  const u64 BW_ROWS = 32768, W_ROWS = 256, W_N = 1000, ALL_ROWS = W_ROWS * W_N;
  unsigned short *dout, *o, *dst16; float *dq, *dd, *src32; u32 *cnt, *sink;
  CK(cudaMalloc(&dout, ALL_ROWS * ROWW * 2)); CK(cudaMalloc(&o, ALL_ROWS * ROWW * 2));
  CK(cudaMalloc(&dq, BW_ROWS * ROWW * 4)); CK(cudaMalloc(&src32, BW_ROWS * ROWW * 4));
  CK(cudaMalloc(&dst16, BW_ROWS * ROWW * 2)); CK(cudaMalloc(&dd, ALL_ROWS * QH * 4));
  CK(cudaMalloc(&cnt, 1024)); CK(cudaMalloc(&sink, 1024));
  init_b16<<<1024, 256>>>(dout, ALL_ROWS * ROWW, 1); init_b16<<<1024, 256>>>(o, ALL_ROWS * ROWW, 2);
  init_f32<<<1024, 256>>>(src32, BW_ROWS * ROWW, 3);
  CK(cudaDeviceSynchronize());
  auto work = [&](u64 row0, u64 rows, u32 dd_off, u32 flags) {
    WorkDesc w; memset(&w, 0, sizeof w);
    w.dout = (u64)(dout + row0 * ROWW); w.o = (u64)(o + row0 * ROWW); w.dq = (u64)dq;
    w.do_stride = w.o_stride = w.dq_stride = w.q_stride = ROWW; w.o_dtype = DT_BF16; w.dq_dtype = DT_F32;
    w.n_rows = (u32)rows; w.q_heads = QH; w.dd_off = dd_off; w.flags = flags; return w;
  };
  std::vector<WorkDesc> hbw = {work(0, BW_ROWS, 0, WORK_DQ_ZERO)}, hbwn = {work(0, BW_ROWS, 0, 0)}, hw;
  for (u64 k = 0; k < W_N; ++k) hw.push_back(work(k * W_ROWS, W_ROWS, (u32)(k * W_ROWS * QH), 0));
  WorkDesc *dbw, *dbwn, *dw;
  CK(cudaMalloc(&dbw, sizeof(WorkDesc))); CK(cudaMalloc(&dbwn, sizeof(WorkDesc))); CK(cudaMalloc(&dw, W_N * sizeof(WorkDesc)));
  CK(cudaMemcpy(dbw, hbw.data(), sizeof(WorkDesc), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dbwn, hbwn.data(), sizeof(WorkDesc), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dw, hw.data(), W_N * sizeof(WorkDesc), cudaMemcpyHostToDevice));
  u32 hd = HD, dt = DT_BF16, zero = 0;
  auto dd_fn = [&](const void* f, WorkDesc* const* wp, u32 nw, u32 grid, size_t smem = 0) -> Fn {
    if (smem) CK(cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    return [=, &hd, &dt, &zero]() mutable {
      WorkDesc* w = *wp; u32 n = nw; float* d = dd; u32* c = cnt;
      void* args[] = {&w, &n, &d, &hd, &dt, &c, &zero};
      launch(f, grid, args, smem);
    };
  };
  const double bw_rd = 2.0 * BW_ROWS * ROWW * 2, bw_z = BW_ROWS * ROWW * 4.0, w_rd = 2.0 * ALL_ROWS * ROWW * 2;
  const u32 cap16 = 16 * sms, main_bw = std::min<u64>(BW_ROWS * QH / 8, cap16);
  RegionDesc rq; memset(&rq, 0, sizeof rq);
  rq.ptr = (u64)dq; rq.dtype = DT_F32; rq.len = (u32)BW_ROWS; rq.heads = QH; rq.width = HD; rq.stride = ROWW;
  auto fillq = [&]() { RegionDesc r = rq; float v = 0.f; void* args[] = {&r, &v};
    launch((const void*)dcp_fill, std::min<u64>(BW_ROWS * ROWW / 256, cap16), args); };
  std::vector<std::vector<Var>> groups(3);
  auto& G1 = groups[0]; auto& G2 = groups[1]; auto& G3 = groups[2];
  // 1. blockwise 32K: D + the dQ zero (256 MB + 1 MB of D)
  G1.push_back({"bw main cap16", dd_fn((const void*)dcp_bwd_dd, &dbw, 1, main_bw), bw_rd + bw_z, {}});
  G1.push_back({"bw kbb15 dcp_bwd_dd (2112)", dd_fn((const void*)dcp_bwd_dd_k15, &dbw, 1, std::min<u64>(BW_ROWS * QH / 64, cap16)), bw_rd + bw_z, {}});
  G1.push_back({"bw main 3/SM", dd_fn((const void*)dcp_bwd_dd, &dbw, 1, 3 * sms), bw_rd + bw_z, {}});
  G1.push_back({"bw tile<4,4> 4/SM", dd_fn((const void*)dd_tile<4, 4>, &dbw, 1, 4 * sms), bw_rd + bw_z, {}});
  G1.push_back({"bw tile<4,4> 8/SM", dd_fn((const void*)dd_tile<4, 4>, &dbw, 1, 8 * sms), bw_rd + bw_z, {}});
  G1.push_back({"bw tile<2,6> 6/SM", dd_fn((const void*)dd_tile<2, 6>, &dbw, 1, 6 * sms), bw_rd + bw_z, {}});
  G1.push_back({"bw tile<8,2> 2/SM", dd_fn((const void*)dd_tile<8, 2>, &dbw, 1, 2 * sms), bw_rd + bw_z, {}});
  G1.push_back({"bw tile<4,4> 1 tile/CTA", dd_fn((const void*)dd_tile<4, 4>, &dbw, 1, (u32)(BW_ROWS * QH / 64)), bw_rd + bw_z, {}});
  G1.push_back({"bw async<4,3,2> 2/SM", dd_fn((const void*)dd_async<4, 3, 2>, &dbw, 1, 2 * sms, async_smem<4, 3>()), bw_rd + bw_z, {}});
  G1.push_back({"bw memset+main D cap16", [&, f = dd_fn((const void*)dcp_bwd_dd, &dbwn, 1, main_bw)]() { CK(cudaMemsetAsync(dq, 0, (size_t)bw_z, 0)); f(); }, bw_rd + bw_z, {}});
  G1.push_back({"bw memset+tile<4,4> D", [&, f = dd_fn((const void*)dd_tile<4, 4>, &dbwn, 1, 4 * sms)]() { CK(cudaMemsetAsync(dq, 0, (size_t)bw_z, 0)); f(); }, bw_rd + bw_z, {}});
  G1.push_back({"bw dcp_fill only", [&]() { fillq(); }, bw_z, {}});
  G1.push_back({"bw memset only", [&]() { CK(cudaMemsetAsync(dq, 0, (size_t)bw_z, 0)); }, bw_z, {}});
  G1.push_back({"bw main D only cap16", dd_fn((const void*)dcp_bwd_dd, &dbwn, 1, main_bw), bw_rd, {}});
  G1.push_back({"bw tile<4,4> D only", dd_fn((const void*)dd_tile<4, 4>, &dbwn, 1, 4 * sms), bw_rd, {}});
  G1.push_back({"floor read2w<4> 8/SM", [&]() { const uint4* a = (const uint4*)dout; const uint4* b = (const uint4*)o; uint4* z = (uint4*)dq;
      u64 n = BW_ROWS * ROWW * 2 / 16; u32* s = sink; void* args[] = {&a, &b, &z, &n, &s}; launch((const void*)read2w<4>, 8 * sms, args); }, bw_rd + bw_z, {}});
  G1.push_back({"floor read2<4> 8/SM (bw)", [&]() { const uint4* a = (const uint4*)dout; const uint4* b = (const uint4*)o;
      u64 n = BW_ROWS * ROWW * 2 / 16; u32* s = sink; void* args[] = {&a, &b, &n, &s}; launch((const void*)read2<4>, 8 * sms, args); }, bw_rd, {}});
  // 2. works1000: D only over 1000 works (1.05 GB)
  G2.push_back({"w1000 main 3/SM", dd_fn((const void*)dcp_bwd_dd, &dw, W_N, 3 * sms), w_rd, {}});
  G2.push_back({"w1000 kbb15 dcp_bwd_dd 4/SM", dd_fn((const void*)dcp_bwd_dd_k15, &dw, W_N, 4 * sms), w_rd, {}});
  G2.push_back({"w1000 main cap16", dd_fn((const void*)dcp_bwd_dd, &dw, W_N, cap16), w_rd, {}});
  G2.push_back({"w1000 tile<4,4> 4/SM", dd_fn((const void*)dd_tile<4, 4>, &dw, W_N, 4 * sms), w_rd, {}});
  G2.push_back({"w1000 tile<4,4> 8/SM", dd_fn((const void*)dd_tile<4, 4>, &dw, W_N, 8 * sms), w_rd, {}});
  G2.push_back({"w1000 tile<2,6> 6/SM", dd_fn((const void*)dd_tile<2, 6>, &dw, W_N, 6 * sms), w_rd, {}});
  G2.push_back({"w1000 tile<8,2> 2/SM", dd_fn((const void*)dd_tile<8, 2>, &dw, W_N, 2 * sms), w_rd, {}});
  G2.push_back({"floor read2<4> 8/SM", [&]() { const uint4* a = (const uint4*)dout; const uint4* b = (const uint4*)o;
      u64 n = ALL_ROWS * ROWW * 2 / 16; u32* s = sink; void* args[] = {&a, &b, &n, &s}; launch((const void*)read2<4>, 8 * sms, args); }, w_rd, {}});
  // 3. the dQ conversion: 32M fp32 -> bf16 (192 MB)
  RegionDesc rs, rd; memset(&rs, 0, sizeof rs); memset(&rd, 0, sizeof rd);
  rs.ptr = (u64)src32; rs.dtype = DT_F32; rd.ptr = (u64)dst16; rd.dtype = DT_BF16;
  rs.len = rd.len = (u32)BW_ROWS; rs.heads = rd.heads = QH; rs.width = rd.width = HD; rs.stride = rd.stride = ROWW;
  const double cp = BW_ROWS * ROWW * 6.0;
  auto cp_fn = [&](const void* f, u32 grid) -> Fn { return [=]() mutable { RegionDesc a = rs, b = rd; void* args[] = {&a, &b}; launch(f, grid, args); }; };
  const u32 main_cp = std::min<u64>(BW_ROWS * ROWW / 256, cap16);
  G3.push_back({"copy main", cp_fn((const void*)dcp_copy, main_cp), cp, {}});
  G3.push_back({"copy kbb15 dcp_copy", cp_fn((const void*)dcp_copy_k15, main_cp), cp, {}});
  G3.push_back({"copy8<2> cap16", cp_fn((const void*)copy8<2>, main_cp), cp, {}});
  G3.push_back({"copy8<4> 8/SM", cp_fn((const void*)copy8<4>, 8 * sms), cp, {}});
  G3.push_back({"copy8<2> 8/SM", cp_fn((const void*)copy8<2>, 8 * sms), cp, {}});
  G3.push_back({"copy8<4> 4/SM", cp_fn((const void*)copy8<4>, 4 * sms), cp, {}});
  G3.push_back({"copy8<1> all chunks", cp_fn((const void*)copy8<1>, (u32)(BW_ROWS * ROWW / 8 / 256)), cp, {}});
  G3.push_back({"floor memcpy 128MB d2d", [&]() { CK(cudaMemcpyAsync(dq, src32, (size_t)(BW_ROWS * ROWW * 4), cudaMemcpyDeviceToDevice, 0)); }, 2 * BW_ROWS * ROWW * 4.0, {}});

  // Checks: D of each dd variant against main's; the zero; the copies bit-identical to main's.
  std::vector<float> ref_bw(BW_ROWS * QH), ref_w(ALL_ROWS * QH), got(ALL_ROWS * QH);
  std::vector<float> hq(BW_ROWS * ROWW);
  std::vector<unsigned short> ref_cp(BW_ROWS * ROWW), got_cp(BW_ROWS * ROWW);
  G1[0].run(); CK(cudaDeviceSynchronize()); CK(cudaMemcpy(ref_bw.data(), dd, ref_bw.size() * 4, cudaMemcpyDeviceToHost));
  G2[0].run(); CK(cudaDeviceSynchronize()); CK(cudaMemcpy(ref_w.data(), dd, ref_w.size() * 4, cudaMemcpyDeviceToHost));
  G3[0].run(); CK(cudaDeviceSynchronize()); CK(cudaMemcpy(ref_cp.data(), dst16, ref_cp.size() * 2, cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int g = 0; g < 3; ++g)
    for (auto& v : groups[g]) {
      if (v.name.rfind("floor", 0) == 0 || v.name == "bw memset only" || v.name == "bw dcp_fill only") continue;
      if (g == 0) init_f32<<<1024, 256>>>(dq, BW_ROWS * ROWW, 9);
      CK(cudaMemset(dd, 0xff, ALL_ROWS * QH * 4)); CK(cudaMemset(dst16, 0xff, BW_ROWS * ROWW * 2));
      v.run(); CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
      if (g < 2) {
        const std::vector<float>& ref = g == 0 ? ref_bw : ref_w;
        CK(cudaMemcpy(got.data(), dd, ref.size() * 4, cudaMemcpyDeviceToHost));
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, (double)fabsf(got[i] - ref[i]) / (1.0 + fabsf(ref[i])));
        bool zok = true;
        if (g == 0 && v.name.find("D only") == std::string::npos) {
          CK(cudaMemcpy(hq.data(), dq, hq.size() * 4, cudaMemcpyDeviceToHost));
          for (float x : hq) if (x != 0.f) { zok = false; break; }
        }
        const bool ok = worst < 1e-5 && zok;
        bad += !ok;
        printf("check %-28s D worst rel %.2e%s %s\n", v.name.c_str(), worst, g == 0 ? (zok ? " dQ zero ok" : " dQ NOT ZERO") : "", ok ? "ok" : "FAIL");
      } else {
        CK(cudaMemcpy(got_cp.data(), dst16, got_cp.size() * 2, cudaMemcpyDeviceToHost));
        const bool ok = got_cp == ref_cp;
        bad += !ok;
        printf("check %-28s copy %s\n", v.name.c_str(), ok ? "bit-identical ok" : "FAIL");
      }
    }
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  for (int r = 0; r < rounds; ++r)
    for (auto& grp : groups)
      for (auto& v : grp) {
        v.run();
        CK(cudaEventRecord(e0));
        for (int k = 0; k < reps; ++k) v.run();
        CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        float ms = 0; CK(cudaEventElapsedTime(&ms, e0, e1));
        v.us.push_back(ms * 1000.f / reps);
      }
  CK(cudaGetLastError());
  printf("\n%-30s %9s %9s %9s %8s   (us per launch, %d rounds x %d launches; TB/s on the median)\n", "variant", "median", "min", "max", "TB/s", rounds, reps);
  for (auto& grp : groups) {
    for (auto& v : grp) {
      std::vector<float> s = v.us; std::sort(s.begin(), s.end());
      const float med = s[s.size() / 2];
      printf("%-30s %9.1f %9.1f %9.1f %8.2f\n", v.name.c_str(), med, s.front(), s.back(), v.bytes / (med * 1e-6) / 1e12);
    }
    printf("\n");
  }
  printf("checks: %s\n", bad ? "FAIL" : "all ok");
  return bad != 0;
}
