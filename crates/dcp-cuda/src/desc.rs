//! Host-side work lists for the attention kernels, built once per plan (pure CPU, tested here).
//!
//! The structs mirror `kernels/common.cuh` (`#[repr(C)]`, sizes asserted). For each attention
//! launch we expand the works' [`RowRanges`] into per-row CSR ranges, classify every
//! (q tile, kv tile) pair as empty, full or partial from the row ranges (difference arrays over
//! tiles, O(rows × ranges + tiles) per q tile), and emit one task per CTA with its list of
//! non-empty tiles (`tile | PARTIAL`). Empty tiles cost nothing on the GPU; only partial tiles
//! evaluate the element mask.

use dcp_core::plan::RowRanges;

/// Tile word flag: the tile needs the per-element mask.
pub const PARTIAL: u32 = 0x8000_0000;

pub const DT_BF16: u32 = 0;
pub const DT_F16: u32 = 1;
pub const DT_F32: u32 = 2;

pub fn dtype_code(d: dcp_core::spec::DType) -> u32 {
    match d {
        dcp_core::spec::DType::Bf16 => DT_BF16,
        dcp_core::spec::DType::F16 => DT_F16,
        dcp_core::spec::DType::F32 => DT_F32,
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RegionDesc {
    pub ptr: u64,
    pub stride: u32,
    pub dtype: u32,
    pub len: u32,
    pub heads: u32,
    pub width: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct KvSeg {
    pub k: u64,
    pub dk: u64,
    pub key0: u32,
    pub len: u32,
    pub stride: u32,
    pub dstride: u32,
    pub ddtype: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct WorkDesc {
    pub q: u64,
    pub o: u64,
    pub lse: u64,
    pub dout: u64,
    pub dq: u64,
    pub q_stride: u32,
    pub o_stride: u32,
    pub lse_stride: u32,
    pub do_stride: u32,
    pub dq_stride: u32,
    pub o_dtype: u32,
    pub dq_dtype: u32,
    pub n_rows: u32,
    pub n_keys: u32,
    pub q_heads: u32,
    pub kv_first: u32,
    pub kv_count: u32,
    pub row_off: u32,
    pub dd_off: u32,
    /// Flags, disjoint bits. Forward on sm90 (`tensormaps.rs`): `TMA_Q` (1), `TMA_KV` (2), `TMA_O`
    /// (4), the launch's tensor-map array holds a TMA map of this work's Q, single KV segment,
    /// 16-bit O (the kernel then moves them by TMA). Backward on sm90 (`own.rs`):
    /// `WORK_DQ_ZERO` (8), the D pre-pass zeroes the work's fp32 dQ rows; (`tensormaps.rs`)
    /// `TMA_Q` (1), `TMA_KV` (2), `TMA_DO` (16): maps of Q, the KV region, dO.
    pub flags: u32,
    /// Backward on sm90: the first of the work's alternate KV segments (same keys, dK/dV in the
    /// fp32 scratch) that `own::TASK_DKV_ALT` tasks add into; 0 where there are none.
    pub kv_alt: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TaskDesc {
    pub work: u32,
    pub row0: u32,
    pub head: u32,
    pub tiles_off: u32,
    pub tiles_n: u32,
    pub pad: u32,
}

/// Per backward work whose dQ its last writer converts (kernels/attn_bwd_sm90.cu `DqConv`,
/// [`crate::own`]): the destination rows of the plan's converting copy, and where the work's
/// arrival counters and expected arrivals per q tile start.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DqConv {
    pub dst: u64,
    pub stride: u32,
    pub dtype: u32,
    pub cnt_off: u32,
    pub exp_off: u32,
}

/// One merge of a batched merge launch (`dcp_merge`): output O and LSE regions, its inputs
/// `inputs[first..first + n]` (O_k, LSE_k pairs) of the launch's input array, and `row0`, its
/// first row in the launch's rows (rows are (token, head) pairs of O, merges back to back).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MergeDesc {
    pub o: RegionDesc,
    pub lse: RegionDesc,
    pub row0: u64,
    pub first: u32,
    pub n: u32,
}

const _: () = assert!(std::mem::size_of::<RegionDesc>() == 32);
const _: () = assert!(std::mem::size_of::<MergeDesc>() == 80);
const _: () = assert!(std::mem::size_of::<KvSeg>() == 40);
const _: () = assert!(std::mem::size_of::<WorkDesc>() == 104);
const _: () = assert!(std::mem::size_of::<TaskDesc>() == 24);
const _: () = assert!(std::mem::size_of::<DqConv>() == 24);

/// Byte view of a slice of plain-data values (descriptors, integers, arrays of them). `Pod`
/// (derived above) proves at compile time that the type has no padding, so every byte is
/// initialised.
pub fn as_bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Per-row key ranges of a work in CSR form: row r has `ranges[ptr[r]..ptr[r+1]]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCsr {
    pub ptr: Vec<u32>,
    pub ranges: Vec<[u32; 2]>,
}

impl RowCsr {
    pub fn expand(rows: &RowRanges, n_rows: u32) -> Self {
        let mut csr = RowCsr {
            ptr: Vec::with_capacity(n_rows as usize + 1),
            ranges: Vec::new(),
        };
        let mut buf = Vec::new();
        csr.ptr.push(0);
        // Walk segments in order instead of a binary search per row.
        let mut seg_i = 0usize;
        for r in 0..n_rows {
            while seg_i < rows.segs.len() && rows.segs[seg_i].row0 + rows.segs[seg_i].rows <= r {
                seg_i += 1;
            }
            buf.clear();
            if let Some(seg) = rows.segs.get(seg_i) {
                if seg.row0 <= r {
                    for lr in &seg.ranges {
                        let (s, e) = (lr.start.at(r as i64), lr.end.at(r as i64));
                        if s < e {
                            buf.push([s.max(0) as u32, e.max(0) as u32]);
                        }
                    }
                }
            }
            csr.ranges.extend_from_slice(&buf);
            csr.ptr.push(csr.ranges.len() as u32);
        }
        csr
    }

    pub fn row(&self, r: usize) -> &[[u32; 2]] {
        &self.ranges[self.ptr[r] as usize..self.ptr[r + 1] as usize]
    }
}

/// Tile words (`tile | PARTIAL?`, ascending) for query rows `[r0, r1)` against `n_keys` keys in
/// tiles of `bc`. A tile is listed when any row attends a key in it; it is full (no flag) when
/// every row attends all of its keys and the tile lies wholly below `n_keys`.
#[allow(
    clippy::too_many_arguments,
    reason = "the three scratch vectors are reused across calls in the hot lowering loop"
)]
pub fn classify(
    csr: &RowCsr,
    r0: usize,
    r1: usize,
    n_keys: u32,
    bc: u32,
    touched: &mut Vec<i32>,
    full: &mut Vec<i32>,
    out: &mut Vec<u32>,
) {
    // The difference arrays stay zero between calls: each call zeroes what it touched (the
    // entries lo..=hi) before it returns, so a call costs its rows' ranges and its tile span,
    // not the key count.
    let nt = n_keys.div_ceil(bc) as usize;
    if touched.len() < nt + 1 {
        touched.resize(nt + 1, 0);
        full.resize(nt + 1, 0);
    }
    debug_assert!(touched.iter().chain(full.iter()).all(|&x| x == 0));
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for r in r0..r1 {
        for &[s, e] in csr.row(r) {
            let e = e.min(n_keys);
            if s >= e {
                continue;
            }
            let ts = (s / bc) as usize;
            let te = e.div_ceil(bc) as usize;
            touched[ts] += 1;
            touched[te] -= 1;
            lo = lo.min(ts);
            hi = hi.max(te);
            let fs = s.div_ceil(bc) as usize;
            let fe = (e / bc) as usize;
            if fs < fe {
                full[fs] += 1;
                full[fe] -= 1;
            }
        }
    }
    out.clear();
    if lo >= hi {
        return;
    }
    let rows = (r1 - r0) as i32;
    // Below `lo` every entry is zero: each range adds at its first tile (>= lo) and subtracts
    // after it.
    let (mut tc, mut fc) = (0i32, 0i32);
    for t in lo..hi {
        tc += touched[t];
        fc += full[t];
        if tc > 0 {
            let whole = (t as u32 + 1) * bc <= n_keys;
            out.push(if fc == rows && whole {
                t as u32
            } else {
                t as u32 | PARTIAL
            });
        }
    }
    touched[lo..=hi].fill(0);
    full[lo..=hi].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(rows: &[Vec<(u32, u32)>], r0: usize, r1: usize, n_keys: u32, bc: u32) -> Vec<u32> {
        let nt = n_keys.div_ceil(bc);
        let mut out = Vec::new();
        for t in 0..nt {
            let (k0, k1) = (t * bc, ((t + 1) * bc).min(n_keys));
            let mut any = false;
            let mut all = (t + 1) * bc <= n_keys;
            for row in &rows[r0..r1] {
                for k in k0..k1 {
                    let hit = row.iter().any(|&(s, e)| k >= s && k < e);
                    any |= hit;
                    all &= hit;
                }
            }
            if any {
                out.push(if all { t } else { t | PARTIAL });
            }
        }
        out
    }

    #[test]
    fn classify_matches_brute_force() {
        let mut seed = 12345u64;
        let mut rnd = |m: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as u32
        };
        for case in 0..200 {
            let n_keys = 1 + rnd(300);
            let n_rows = 1 + rnd(100);
            let rows: Vec<Vec<(u32, u32)>> = (0..n_rows)
                .map(|r| match case % 4 {
                    0 => vec![(0, (r + 1).min(n_keys))],
                    1 => vec![(0, n_keys)],
                    2 => {
                        let a = rnd(n_keys);
                        let b = a + rnd(n_keys - a + 1);
                        if a < b {
                            vec![(a, b)]
                        } else {
                            vec![]
                        }
                    }
                    _ => {
                        let a = rnd(n_keys / 2 + 1);
                        let b = a + rnd(8);
                        let c = (b + 1 + rnd(20)).min(n_keys);
                        let d = (c + rnd(50)).min(n_keys);
                        let mut v = vec![];
                        if a < b.min(n_keys) {
                            v.push((a, b.min(n_keys)));
                        }
                        if c < d && c > b {
                            v.push((c, d));
                        }
                        v
                    }
                })
                .collect();
            let rr = RowRanges::from_rows(&rows);
            let csr = RowCsr::expand(&rr, n_rows);
            for (r, row) in rows.iter().enumerate() {
                let want: Vec<[u32; 2]> = row.iter().map(|&(a, b)| [a, b]).collect();
                assert_eq!(csr.row(r), &want[..]);
            }
            let bc = [16u32, 64, 7][case % 3];
            let br = [16usize, 64, 5][(case / 3) % 3];
            let (mut t, mut f, mut out) = (vec![], vec![], vec![]);
            let mut r0 = 0;
            while r0 < n_rows as usize {
                let r1 = (r0 + br).min(n_rows as usize);
                classify(&csr, r0, r1, n_keys, bc, &mut t, &mut f, &mut out);
                assert_eq!(
                    out,
                    brute(&rows, r0, r1, n_keys, bc),
                    "case {case} rows {r0}..{r1}"
                );
                r0 = r1;
            }
        }
    }
}
