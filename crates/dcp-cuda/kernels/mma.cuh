// Tensor-core helpers: mma.sync m16n8k16 (bf16 or f16 inputs, fp32 accumulate), ldmatrix,
// cp.async. ELEM_F16 selects fp16 operands; bf16 otherwise.
#pragma once

#ifdef ELEM_F16
typedef __half elem_t;
#define MMA_TYPE "f16"
__device__ __forceinline__ u32 pack2(float a, float b) {
  __half2 h = __floats2half2_rn(a, b);
  return *(u32*)&h;
}
#define ELEM_DT DT_F16
#else
typedef __nv_bfloat16 elem_t;
#define MMA_TYPE "bf16"
__device__ __forceinline__ u32 pack2(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *(u32*)&h;
}
#define ELEM_DT DT_BF16
#endif

// c += a * b; a: 16x16 (row), b: 16x8 (col), c: 16x8 fp32.
__device__ __forceinline__ void mma16816(float* c, const u32* a, const u32* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ u32 smem_u32(const void* p) {
  return (u32)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

__device__ __forceinline__ void ldmatrix_x4(u32* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p)));
}

// Same, with a precomputed shared-state-space address (saves 64-bit address registers).
__device__ __forceinline__ void ldsm_x4(u32* r, u32 a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(u32* r, u32 a) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// 16-byte async copy global -> shared; zero-fills when !valid.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
               "r"(n));
}
// 4-byte async copy global -> shared; zero-fills when !valid.
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool valid) {
  int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
               "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ u32 ld_s32(const elem_t* p) { return *(const u32*)p; }

// Is key `k` inside one of the row's ranges [ranges[a], ranges[b])?
__device__ __forceinline__ bool in_ranges(const uint2* ranges, u32 a, u32 b, u32 k) {
  for (u32 i = a; i < b; ++i) {
    uint2 r = ranges[i];
    if (k >= r.x && k < r.y) return true;
  }
  return false;
}

// Forward partial tiles: bit (nt * 2 + e) set when key k0 + nt * 8 + t4 * 2 + e (this thread's
// columns of a row of NT n8 tiles) lies in one of the row's ranges [ranges[a], ranges[b]).
template <int NT>
__device__ __forceinline__ u32 row_mask_bits(const uint2* ranges, u32 a, u32 b, u32 k0, int t4) {
  u32 bits = 0;
  for (u32 i = a; i < b; ++i) {
    const uint2 r = ranges[i];
    if (r.y <= k0 || r.x >= k0 + NT * 8) continue;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const u32 key = k0 + nt * 8 + t4 * 2 + e;
        if (key >= r.x && key < r.y) bits |= 1u << (nt * 2 + e);
      }
  }
  return bits;
}

// Backward, transposed scores S^T (keys x query rows) in the m16n8 accumulator layout, NT n8
// tiles (element nt * 4 + e: key e < 2 ? key_a : key_b, step row nt * 8 + t4 * 2 + (e & 1)).
// mask_bits: bit nt * 4 + e set when the element is attended (rp: the rows' range spans).
template <int NT>
__device__ __forceinline__ u32 bwd_mask_bits(const uint2* ranges, const u32* rp, u32 key_a,
                                             u32 key_b, u32 n_keys, int t4) {
  u32 bits = 0;
#pragma unroll 1
  for (int j = 0; j < NT * 4; ++j) {
    const int nt = j >> 2, e = j & 3;
    const int ql = nt * 8 + t4 * 2 + (e & 1);
    const u32 key = e < 2 ? key_a : key_b;
    if (key < n_keys && in_ranges(ranges, rp[2 * ql], rp[2 * ql + 1], key)) bits |= 1u << j;
  }
  return bits;
}
// P^T = exp(S^T * scale - LSE) in place where `bits` says attended, 0 elsewhere and for rows
// whose LSE is -inf (no key).
template <int NT>
__device__ __forceinline__ void bwd_probs(float* st, u32 bits, const float* lse, float scale_log2,
                                          int t4) {
  const float LOG2E = 1.4426950408889634f;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int ql = nt * 8 + t4 * 2 + (e & 1);
      const float l = lse[ql];
      const float L = l == -INFINITY ? INFINITY : l * LOG2E;
      st[nt * 4 + e] =
          ((bits >> (nt * 4 + e)) & 1u) ? exp2f(fmaf(st[nt * 4 + e], scale_log2, -L)) : 0.f;
    }
  }
}

__device__ __forceinline__ void atomic_add_out(void* base, u64 i, u32 dt, float a, float b) {
  // Adds (a, b) to elements i, i+1 (i even, 4-byte aligned pair for 16-bit types).
  if (dt == DT_F32) {
#if __CUDA_ARCH__ >= 900
    atomicAdd((float2*)((float*)base + i), make_float2(a, b));  // one vector red (sm_90)
#else
    atomicAdd((float*)base + i, a);  // no float2 atomics before sm_90 (A100: sm_80)
    atomicAdd((float*)base + i + 1, b);
#endif
  } else if (dt == DT_BF16) {
    atomicAdd((__nv_bfloat162*)((__nv_bfloat16*)base + i), __floats2bfloat162_rn(a, b));
  } else {
    atomicAdd((__half2*)((__half*)base + i), __floats2half2_rn(a, b));
  }
}
