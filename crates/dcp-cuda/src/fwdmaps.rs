//! TMA tensor maps of a forward launch of the Hopper kernel (`attn_fwd_sm90.cu`, `FWD_TMA`).
//!
//! Per work three 128-byte maps, uploaded as one array (128-byte aligned) after the launch's
//! other arguments: map `3 w` views the work's Q, `3 w + 1` its single KV region, `3 w + 2` its
//! 16-bit O. The kernel loads 64-column halves of a 128-row tile with one
//! `cp.async.bulk.tensor.3d` each, straight into the 128-byte-swizzled layout its wgmma
//! descriptors read (rows past the tensor's end zero-filled, which also covers a partial last
//! tile), and stores a consumer warpgroup's 64 staged O rows the same way (rows past the end
//! clipped). `WorkDesc::flags` says which maps exist: a work with several KV regions, an fp32 O
//! (split-K partials), or an address / stride TMA cannot take (not 16-byte aligned) has no map
//! and the kernel moves those rows with `cp.async` / stores as before (same results, the other
//! path).

use crate::desc::{KvSeg, WorkDesc, DT_BF16, DT_F16};
use crate::error::Result;
use crate::gpu::{tensor_map_sw128, TmaElem};

/// Maps per work (Q, KV, O); the kernel's `FWD_MAPS` bytes per work are 128 times this.
pub const MAPS_PER_WORK: usize = 3;
/// `WorkDesc::flags` bit: map `3 w` (the work's Q) exists.
pub const TMA_Q: u32 = 1;
/// `WorkDesc::flags` bit: map `3 w + 1` (the work's one KV region) exists.
pub const TMA_KV: u32 = 2;
/// `WorkDesc::flags` bit: map `3 w + 2` (the work's 16-bit O) exists.
pub const TMA_O: u32 = 4;
/// Every TMA bit of `WorkDesc::flags` (the other bits belong to the backward).
const TMA_BITS: u32 = TMA_Q | TMA_KV | TMA_O;
/// Rows per O box: one consumer warpgroup's.
const O_BOX_ROWS: u32 = 64;
/// Columns per box (128 bytes of 16-bit elements: one 128-byte swizzle row).
const BOX_COLS: u32 = 64;

/// The arguments of one 3-D map: base address, dims (columns, heads or K/V slots, rows),
/// strides in elements (slot, row) and box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapArgs {
    pub ptr: u64,
    pub dims: [u64; 3],
    pub strides: [u64; 2],
    pub boxd: [u32; 3],
}

fn aligned(ptr: u64, stride: u64, eb: u64) -> bool {
    ptr != 0 && ptr.is_multiple_of(16) && (stride * eb).is_multiple_of(16) && stride > 0
}

/// The maps work `w` can have (Q, KV, O): head dim `d` (a multiple of 64), `group` Q heads per
/// KV head, `eb` bytes per element of Q and K/V, `br` / `bc` rows of a Q / K-V box.
pub fn fwd_map_args(
    w: &WorkDesc,
    segs: &[KvSeg],
    d: u32,
    group: u32,
    eb: u64,
    br: u32,
    bc: u32,
) -> [Option<MapArgs>; 3] {
    if !d.is_multiple_of(BOX_COLS) || eb != 2 || group == 0 {
        return [None; 3];
    }
    let q =
        (w.n_rows > 0 && w.q_heads > 0 && aligned(w.q, w.q_stride as u64, eb)).then_some(MapArgs {
            ptr: w.q,
            dims: [d as u64, w.q_heads as u64, w.n_rows as u64],
            strides: [d as u64, w.q_stride as u64],
            boxd: [BOX_COLS, 1, br],
        });
    let kvh = w.q_heads / group;
    let kv = if w.kv_count == 1 && kvh > 0 {
        segs.get(w.kv_first as usize).and_then(|s| {
            (s.key0 == 0 && s.len > 0 && s.len == w.n_keys && aligned(s.k, s.stride as u64, eb))
                .then_some(MapArgs {
                    ptr: s.k,
                    // Per key row: K then V of each KV head, D elements each (slot 2 h: K, 2 h + 1: V).
                    dims: [d as u64, 2 * kvh as u64, s.len as u64],
                    strides: [d as u64, s.stride as u64],
                    boxd: [BOX_COLS, 1, bc],
                })
        })
    } else {
        None
    };
    let o16 = w.o_dtype == DT_BF16 || w.o_dtype == DT_F16;
    let o = (o16 && w.n_rows > 0 && w.q_heads > 0 && aligned(w.o, w.o_stride as u64, 2)).then_some(
        MapArgs {
            ptr: w.o,
            dims: [d as u64, w.q_heads as u64, w.n_rows as u64],
            strides: [d as u64, w.o_stride as u64],
            boxd: [BOX_COLS, 1, O_BOX_ROWS],
        },
    );
    [q, kv, o]
}

fn tma_elem(dtype: u32) -> Option<TmaElem> {
    match dtype {
        DT_BF16 => Some(TmaElem::Bf16),
        DT_F16 => Some(TmaElem::F16),
        _ => None,
    }
}

/// The maps of a forward launch ([`MAPS_PER_WORK`] per work, zeros where a work has none) and
/// each work's `flags` TMA bits. `dtype`: of Q and K/V, 16-bit only (another dtype: no maps).
pub fn fwd_tensor_maps(
    works: &mut [WorkDesc],
    segs: &[KvSeg],
    d: u32,
    group: u32,
    dtype: u32,
    br: u32,
    bc: u32,
) -> Result<Vec<[u64; 16]>> {
    let mut maps = vec![[0u64; 16]; MAPS_PER_WORK * works.len()];
    let Some(elem) = tma_elem(dtype) else {
        works.iter_mut().for_each(|w| w.flags &= !TMA_BITS);
        return Ok(maps);
    };
    for (i, w) in works.iter_mut().enumerate() {
        let args = fwd_map_args(w, segs, d, group, elem.bytes(), br, bc);
        let elems = [Some(elem), Some(elem), tma_elem(w.o_dtype)];
        w.flags &= !TMA_BITS;
        for (j, bit) in [TMA_Q, TMA_KV, TMA_O].into_iter().enumerate() {
            if let (Some(a), Some(e)) = (args[j], elems[j]) {
                maps[MAPS_PER_WORK * i + j] =
                    tensor_map_sw128(a.ptr, e, &a.dims, &a.strides, &a.boxd)?;
                w.flags |= bit;
            }
        }
    }
    Ok(maps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(q: u64, q_stride: u32, kv_first: u32, kv_count: u32) -> WorkDesc {
        WorkDesc {
            q,
            q_stride,
            o: q + (1 << 20),
            o_stride: q_stride,
            o_dtype: DT_F16,
            n_rows: 300,
            n_keys: 1000,
            q_heads: 8,
            kv_first,
            kv_count,
            ..Default::default()
        }
    }
    fn seg(k: u64, key0: u32, len: u32, stride: u32) -> KvSeg {
        KvSeg {
            k,
            key0,
            len,
            stride,
            ..Default::default()
        }
    }

    #[test]
    fn map_arguments_follow_the_kv_row_layout() {
        let segs = [seg(0x10000, 0, 1000, 2 * 2 * 128)];
        let [q, kv, o] = fwd_map_args(&work(0x20000, 8 * 128, 0, 1), &segs, 128, 4, 2, 128, 128);
        assert_eq!(
            q,
            Some(MapArgs {
                ptr: 0x20000,
                dims: [128, 8, 300],
                strides: [128, 1024],
                boxd: [64, 1, 128],
            })
        );
        // 2 KV heads (8 Q heads / 4): slots K0, V0, K1, V1 of 128 elements each.
        assert_eq!(
            kv,
            Some(MapArgs {
                ptr: 0x10000,
                dims: [128, 4, 1000],
                strides: [128, 512],
                boxd: [64, 1, 128],
            })
        );
        // O: a consumer warpgroup's 64 rows per box.
        assert_eq!(
            o,
            Some(MapArgs {
                ptr: 0x20000 + (1 << 20),
                dims: [128, 8, 300],
                strides: [128, 1024],
                boxd: [64, 1, 64],
            })
        );
    }

    #[test]
    fn works_tma_cannot_take_have_no_map() {
        let segs = [
            seg(0x10000, 0, 500, 512),
            seg(0x30000, 500, 500, 512),
            seg(0x10008, 0, 1000, 512),
            seg(0x10000, 0, 1000, 516),
        ];
        let f = |w: &WorkDesc, d| fwd_map_args(w, &segs, d, 4, 2, 128, 128);
        // Two KV regions: cp.async rows (Q still mapped).
        let [q, kv, o] = f(&work(0x20000, 1024, 0, 2), 128);
        assert!(q.is_some() && kv.is_none() && o.is_some());
        // Misaligned KV address, KV stride not a multiple of 16 bytes, Q and O likewise.
        assert!(f(&work(0x20000, 1024, 2, 1), 128)[1].is_none());
        assert!(f(&work(0x20000, 1024, 3, 1), 128)[1].is_none());
        let [q, _, o] = f(&work(0x20008, 1024, 0, 2), 128);
        assert!(q.is_none() && o.is_none());
        let [q, _, o] = f(&work(0x20000, 1028, 0, 2), 128);
        assert!(q.is_none() && o.is_none());
        // fp32 O (split-K partials): no O map.
        let w = WorkDesc {
            o_dtype: crate::desc::DT_F32,
            ..work(0x20000, 1024, 0, 2)
        };
        assert!(f(&w, 128)[2].is_none() && f(&w, 128)[0].is_some());
        // A segment shorter than the work's keys (not its only one): no map.
        assert!(f(&work(0x20000, 1024, 0, 1), 128)[1].is_none());
        // Head dims other than multiples of 64, f32 elements: none.
        assert_eq!(f(&work(0x20000, 1024, 0, 2), 96), [None; 3]);
        let w = work(0x20000, 1024, 0, 2);
        assert_eq!(fwd_map_args(&w, &segs, 128, 4, 4, 128, 128), [None; 3]);
    }

    #[test]
    fn unmappable_works_get_zero_maps_without_the_driver() {
        let segs = [seg(0x10008, 0, 1000, 512)];
        let mut ws = [work(0x20008, 1024, 0, 1), work(0, 1024, 0, 1)];
        ws[1].o = 0;
        ws[0].flags = 7;
        let maps = fwd_tensor_maps(&mut ws, &segs, 128, 4, DT_BF16, 128, 128).unwrap();
        assert_eq!(maps.len(), 6);
        assert!(maps.iter().all(|m| m.iter().all(|&x| x == 0)));
        assert!(ws.iter().all(|w| w.flags == 0));
        ws[0].flags = 7;
        let maps = fwd_tensor_maps(&mut ws, &segs, 128, 4, crate::desc::DT_F32, 128, 128).unwrap();
        assert_eq!((maps.len(), ws[0].flags), (6, 0));
    }
}
