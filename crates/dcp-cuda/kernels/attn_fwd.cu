// Blockwise attention forward over a work list (FlashAttention-2 style).
//
// One CTA = one task: BR = 16 * FWD_MT * FWD_WARPS query rows of one head of one work, against
// the kv tiles (BC keys each) listed for that q tile. Each warp owns 16 * FWD_MT consecutive rows
// (FWD_MT = 2 for head dims up to 128): every K/V fragment read from shared memory feeds FWD_MT
// mma's, which is what bounds this kernel (shared-memory bytes per mma: 256 with one m-tile,
// 160 with two). K/V tiles stream through shared memory double buffered with cp.async; Q, K and
// V operands come through ldmatrix; S = Q K^T and O += P V run on mma.sync m16n8k16; online
// softmax in fp32 registers in the log2 domain. Only tiles flagged partial apply the per-row
// range mask. Rows with no key: O = 0, LSE = -inf.

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef FWD_WARPS
#define FWD_WARPS 4
#endif
#ifndef FWD_MT
#define FWD_MT 2
#endif
#define FWD_WR (16 * FWD_MT)
#define FWD_BR (FWD_WR * FWD_WARPS)
#ifndef FWD_BC
#define FWD_BC 64
#endif
#define LDS (HEAD_DIM + 8)

extern "C" __global__ void __launch_bounds__(FWD_WARPS * 32)
dcp_attn_fwd(const WorkDesc* __restrict__ works, const KvSeg* __restrict__ segs,
             const TaskDesc* __restrict__ tasks, const u32* __restrict__ tiles,
             const u32* __restrict__ row_ptr, const uint2* __restrict__ ranges, u32 group,
             float scale_log2) {
  constexpr int D = HEAD_DIM;
  constexpr int NT = FWD_WARPS * 32;
  constexpr int CH = D / 8;  // 16-byte chunks per row
  constexpr int MT = FWD_MT;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  elem_t* sQ = (elem_t*)smem_raw;
  elem_t* sK = sQ + FWD_BR * LDS;
  elem_t* sV = sK + 2 * FWD_BC * LDS;
  u64* sKp = (u64*)(sV + 2 * FWD_BC * LDS);  // [2][FWD_BC] key row addresses (0: masked)
  uint2* sRp = (uint2*)(sKp + 2 * FWD_BC);   // [FWD_BR] range index span of each row

  const TaskDesc task = tasks[blockIdx.x];
  const WorkDesc& w = works[task.work];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const u32 head = task.head, kvh = head / group;
  const elem_t* qbase = (const elem_t*)w.q;
  const u32 n_tiles = task.tiles_n;
  const u32* my_tiles = tiles + task.tiles_off;
  const int wr = warp * FWD_WR;  // first row of this warp within the tile

  // Q tile and the rows' range spans.
  for (int c = tid; c < FWD_BR * CH; c += NT) {
    int r = c / CH, col = (c % CH) * 8;
    u32 row = task.row0 + r;
    bool ok = row < w.n_rows;
    const elem_t* src = qbase + (ok ? ((u64)row * w.q_stride + head * D + col) : 0);
    cp_async16(sQ + r * LDS + col, src, ok);
  }
  cp_async_commit();
  for (int r = tid; r < FWD_BR; r += NT) {
    u32 row = task.row0 + r;
    sRp[r] = row < w.n_rows ? make_uint2(row_ptr[w.row_off + row], row_ptr[w.row_off + row + 1])
                            : make_uint2(0, 0);
  }

  auto key_ptrs = [&](u32 tile, int buf) {
    if (tid < FWD_BC) {
      u32 key = tile * FWD_BC + tid;
      u64 p = 0;
      if (key < w.n_keys && w.kv_count > 0) {
        const KvSeg& sg = segs[kv_seg_index(w.kv_first, w.kv_count, segs, key)];
        if (key >= sg.key0 && key < sg.key0 + sg.len)
          p = sg.k + ((u64)(key - sg.key0) * sg.stride + kvh * 2 * D) * sizeof(elem_t);
      }
      sKp[buf * FWD_BC + tid] = p;
    }
  };
  auto load_kv = [&](int buf) {
    for (int c = tid; c < FWD_BC * CH; c += NT) {
      int r = c / CH, col = (c % CH) * 8;
      u64 p = sKp[buf * FWD_BC + r];
      bool ok = p != 0;
      const elem_t* src = ok ? (const elem_t*)p + col : qbase;
      cp_async16(sK + (buf * FWD_BC + r) * LDS + col, src, ok);
      cp_async16(sV + (buf * FWD_BC + r) * LDS + col, ok ? src + D : qbase, ok);
    }
  };

  float o[MT][D / 8][4];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int i = 0; i < D / 8; ++i) o[mi][i][0] = o[mi][i][1] = o[mi][i][2] = o[mi][i][3] = 0.f;
  // Running max (log2 domain, scaled) and sum; [mi][0]: row g, [mi][1]: row g + 8.
  float mm[MT][2], ll[MT][2];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) mm[mi][0] = mm[mi][1] = -INFINITY, ll[mi][0] = ll[mi][1] = 0.f;

  // Per-lane ldmatrix addresses (shared state space): Q A-fragments (rows of this warp), K
  // B-fragments (two n8 tiles per x4), V B-fragments (transposed, two d8 tiles per x4).
  const u32 qa = smem_u32(sQ) + ((wr + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8) * 2;
  const u32 ka = smem_u32(sK) + (((lane & 7) + ((lane >> 4) & 1) * 8) * LDS + ((lane >> 3) & 1) * 8) * 2;
  const u32 va = smem_u32(sV) + (((lane & 7) + ((lane >> 3) & 1) * 8) * LDS + (lane >> 4) * 8) * 2;

  if (n_tiles > 0) {
    key_ptrs(my_tiles[0] & 0x7fffffffu, 0);
    __syncthreads();
    load_kv(0);
    cp_async_commit();
  }
  for (u32 it = 0; it < n_tiles; ++it) {
    const int buf = it & 1;
    if (it + 1 < n_tiles) {
      key_ptrs(my_tiles[it + 1] & 0x7fffffffu, buf ^ 1);
      __syncthreads();
      load_kv(buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u32 tile_word = my_tiles[it];
    const u32 k0 = (tile_word & 0x7fffffffu) * FWD_BC;
    const bool partial = tile_word >> 31;
    const u32 kb = ka + buf * (FWD_BC * LDS * 2), vb = va + buf * (FWD_BC * LDS * 2);

    // S = Q K^T: per k16 step, MT A fragments (Q) and BC/16 x4 B loads (K), each B used MT times.
    float s[MT][FWD_BC / 8][4];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int nt = 0; nt < FWD_BC / 8; ++nt) s[mi][nt][0] = s[mi][nt][1] = s[mi][nt][2] = s[mi][nt][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      u32 a[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
        ldsm_x4(a[mi], qa + (mi * 16 * LDS + kk * 16) * 2);
#pragma unroll
      for (int np = 0; np < FWD_BC / 16; ++np) {
        u32 b[4];
        ldsm_x4(b, kb + (np * 16 * LDS + kk * 16) * 2);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816(s[mi][2 * np], a[mi], b);
          mma16816(s[mi][2 * np + 1], a[mi], b + 2);
        }
      }
    }
    if (partial) {
      // One pass over each row's ranges builds a bit mask of this thread's 2 * BC/8 keys, so the
      // scores stay in registers (an in_ranges call per element demoted them to local memory).
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint2 rp = sRp[wr + mi * 16 + g + 8 * h];
          const u32 bits = row_mask_bits<FWD_BC / 8>(ranges, rp.x, rp.y, k0, t4);
#pragma unroll
          for (int nt = 0; nt < FWD_BC / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const u32 key = k0 + nt * 8 + t4 * 2 + e;
              if (!((bits >> (nt * 2 + e)) & 1u) || key >= w.n_keys) s[mi][nt][2 * h + e] = -INFINITY;
            }
        }
      }
    }
    // Online softmax (log2 domain).
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FWD_BC / 8; ++nt)
          mx = fmaxf(mx, fmaxf(s[mi][nt][2 * h], s[mi][nt][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(mm[mi][h], mx * scale_log2);
        const float mu = mn == -INFINITY ? 0.f : mn;
        const float al = exp2f(mm[mi][h] - mu);
        mm[mi][h] = mn;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < FWD_BC / 8; ++nt) {
          s[mi][nt][2 * h] = exp2f(fmaf(s[mi][nt][2 * h], scale_log2, -mu));
          s[mi][nt][2 * h + 1] = exp2f(fmaf(s[mi][nt][2 * h + 1], scale_log2, -mu));
          sum += s[mi][nt][2 * h] + s[mi][nt][2 * h + 1];
        }
        ll[mi][h] = ll[mi][h] * al + sum;
#pragma unroll
        for (int i = 0; i < D / 8; ++i) {
          o[mi][i][2 * h] *= al;
          o[mi][i][2 * h + 1] *= al;
        }
      }
    }
    // O += P V: each V fragment (ldmatrix.trans) feeds MT x 2 mma's.
#pragma unroll
    for (int kc = 0; kc < FWD_BC / 16; ++kc) {
      u32 pa[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        pa[mi][0] = pack2(s[mi][2 * kc][0], s[mi][2 * kc][1]);
        pa[mi][1] = pack2(s[mi][2 * kc][2], s[mi][2 * kc][3]);
        pa[mi][2] = pack2(s[mi][2 * kc + 1][0], s[mi][2 * kc + 1][1]);
        pa[mi][3] = pack2(s[mi][2 * kc + 1][2], s[mi][2 * kc + 1][3]);
      }
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        u32 b[4];
        ldsm_x4_t(b, vb + (kc * 16 * LDS + dn * 16) * 2);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816(o[mi][2 * dn], pa[mi], b);
          mma16816(o[mi][2 * dn + 1], pa[mi], b + 2);
        }
      }
    }
    __syncthreads();
  }

  // Epilogue.
  const float LN2 = 0.6931471805599453f;
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = ll[mi][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const u32 row = task.row0 + wr + mi * 16 + g + 8 * h;
      if (row < w.n_rows) {
        u64 base = (u64)row * w.o_stride + head * D;
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
          u64 i = base + nt * 8 + t4 * 2;
          float x = o[mi][nt][2 * h] * inv, y = o[mi][nt][2 * h + 1] * inv;
          if (w.o_dtype == DT_F32) *(float2*)((float*)w.o + i) = make_float2(x, y);
          else if (w.o_dtype == DT_BF16) *(__nv_bfloat162*)((__nv_bfloat16*)w.o + i) = __floats2bfloat162_rn(x, y);
          else *(__half2*)((__half*)w.o + i) = __floats2half2_rn(x, y);
        }
        if (t4 == 0)
          ((float*)w.lse)[(u64)row * w.lse_stride + head] =
              l > 0.f ? (mm[mi][h] + __log2f(l)) * LN2 : -INFINITY;
      }
    }
  }
}
