//! TMA tensor maps of the Hopper kernels' launches: the forward (`attn_fwd_sm90.cu`, `FWD_TMA`)
//! and the backward (`attn_bwd_sm90.cu`, `BWD_TMA`).
//!
//! Per work three 128-byte maps, uploaded as one array (128-byte aligned) after the launch's
//! other arguments. Forward: map `3 w` views the work's Q, `3 w + 1` its single KV region,
//! `3 w + 2` its 16-bit O. Backward: `3 w` Q, `3 w + 1` the KV region, `3 w + 2` dO (shaped like
//! Q). The kernels load 64-column halves of a tile with one `cp.async.bulk.tensor.3d` each,
//! straight into the 128-byte-swizzled layout their wgmma descriptors read (rows past the
//! tensor's end zero-filled, which also covers a partial last tile), and the forward stores a
//! consumer warpgroup's 64 staged O rows the same way (rows past the end clipped).
//! `WorkDesc::flags` says which maps exist: a work with several KV regions, an fp32 O (split-K
//! partials), or an address / stride TMA cannot take (not 16-byte aligned) has no map and the
//! kernel moves those rows with `cp.async` / stores as before (same results, the other path).

use crate::desc::{KvSeg, WorkDesc, DT_BF16, DT_F16};
use crate::error::Result;
use crate::gpu::{tensor_map_sw128, TmaElem};

/// Maps per work (Q, KV, O); the kernel's `FWD_MAPS` bytes per work are 128 times this.
pub const MAPS_PER_WORK: usize = 3;
/// Keys a backward work needs for its maps unless `DCP_CUDA_BWD_TMA_MIN_KEYS` says otherwise
/// (works with fewer keys, i.e. short kv-tile tasks, keep the `cp.async` rows).
pub const BWD_TMA_MIN_KEYS: u32 = 0;

/// `DCP_CUDA_BWD_TMA_MIN_KEYS` (unset: [`BWD_TMA_MIN_KEYS`]).
pub fn bwd_tma_min_keys(env: Option<&str>) -> std::result::Result<u32, String> {
    match env {
        None => Ok(BWD_TMA_MIN_KEYS),
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            format!("DCP_CUDA_BWD_TMA_MIN_KEYS={v:?}: expected a number of keys (0 = every work)")
        }),
    }
}

/// `WorkDesc::flags` bit: map `3 w` (the work's Q) exists.
pub const TMA_Q: u32 = 1;
/// `WorkDesc::flags` bit: map `3 w + 1` (the work's one KV region) exists.
pub const TMA_KV: u32 = 2;
/// `WorkDesc::flags` bit: map `3 w + 2` (the work's 16-bit O) exists (forward).
pub const TMA_O: u32 = 4;
/// `WorkDesc::flags` bit: map `3 w + 2` (the work's dO) exists (backward; 8 is the backward's
/// `own::WORK_DQ_ZERO`).
pub const TMA_DO: u32 = 16;
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

/// The map of a work's per-row tensor at `ptr` (Q, O, dO: `heads` heads of `d` elements per row,
/// `stride` elements between rows, `eb` bytes each), boxes of 64 columns x 1 head x `box_rows`.
fn rows_map(
    w: &WorkDesc,
    ptr: u64,
    stride: u32,
    d: u32,
    eb: u64,
    box_rows: u32,
) -> Option<MapArgs> {
    (w.n_rows > 0 && w.q_heads > 0 && aligned(ptr, stride as u64, eb)).then_some(MapArgs {
        ptr,
        dims: [d as u64, w.q_heads as u64, w.n_rows as u64],
        strides: [d as u64, stride as u64],
        boxd: [BOX_COLS, 1, box_rows],
    })
}

/// The map of a work's single KV region (its key0 0, its length the work's keys), boxes of 64
/// columns x 1 K/V slot x `bc` keys.
fn kv_map(w: &WorkDesc, segs: &[KvSeg], d: u32, group: u32, eb: u64, bc: u32) -> Option<MapArgs> {
    let kvh = w.q_heads / group;
    if w.kv_count != 1 || kvh == 0 {
        return None;
    }
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
}

/// Whether the maps' shared arguments allow any: a head dim that is a multiple of 64, 16-bit
/// elements, a nonzero GQA group.
fn mappable(d: u32, eb: u64, group: u32) -> bool {
    d.is_multiple_of(BOX_COLS) && eb == 2 && group > 0
}

/// The maps work `w` of a forward launch can have (Q, KV, O): head dim `d` (a multiple of 64),
/// `group` Q heads per KV head, `eb` bytes per element of Q and K/V, `br` / `bc` rows of a Q /
/// K-V box.
pub fn fwd_map_args(
    w: &WorkDesc,
    segs: &[KvSeg],
    d: u32,
    group: u32,
    eb: u64,
    br: u32,
    bc: u32,
) -> [Option<MapArgs>; 3] {
    if !mappable(d, eb, group) {
        return [None; 3];
    }
    let o16 = w.o_dtype == DT_BF16 || w.o_dtype == DT_F16;
    [
        rows_map(w, w.q, w.q_stride, d, eb, br),
        kv_map(w, segs, d, group, eb, bc),
        if o16 {
            rows_map(w, w.o, w.o_stride, d, 2, O_BOX_ROWS)
        } else {
            None
        },
    ]
}

/// The maps work `w` of a backward launch can have (Q, KV, dO): as [`fwd_map_args`], with dO
/// (of Q's dtype and shape) in the third place and `br` rows per Q / dO box.
pub fn bwd_map_args(
    w: &WorkDesc,
    segs: &[KvSeg],
    d: u32,
    group: u32,
    eb: u64,
    br: u32,
    bc: u32,
) -> [Option<MapArgs>; 3] {
    if !mappable(d, eb, group) {
        return [None; 3];
    }
    [
        rows_map(w, w.q, w.q_stride, d, eb, br),
        kv_map(w, segs, d, group, eb, bc),
        rows_map(w, w.dout, w.do_stride, d, eb, br),
    ]
}

fn tma_elem(dtype: u32) -> Option<TmaElem> {
    match dtype {
        DT_BF16 => Some(TmaElem::Bf16),
        DT_F16 => Some(TmaElem::F16),
        _ => None,
    }
}

/// The maps of a forward launch ([`MAPS_PER_WORK`] per work, zeros where a work has none) and
/// each work's `flags` TMA bits (`TMA_Q`, `TMA_KV`, `TMA_O`). `dtype`: of Q and K/V, 16-bit only
/// (another dtype: no maps). `o`: false builds no O map (the kernel's generic O store).
#[allow(
    clippy::too_many_arguments,
    reason = "the map arguments plus the O switch"
)]
pub fn fwd_tensor_maps(
    works: &mut [WorkDesc],
    segs: &[KvSeg],
    d: u32,
    group: u32,
    dtype: u32,
    br: u32,
    bc: u32,
    o: bool,
) -> Result<Vec<[u64; 16]>> {
    tensor_maps(works, dtype, [TMA_Q, TMA_KV, TMA_O], |w, elem| {
        let mut args = fwd_map_args(w, segs, d, group, elem.bytes(), br, bc);
        if !o {
            args[2] = None;
        }
        let elems = [Some(elem), Some(elem), tma_elem(w.o_dtype)];
        [0, 1, 2].map(|j| args[j].zip(elems[j]))
    })
}

/// The maps of a backward launch ([`MAPS_PER_WORK`] per work: Q, KV, dO; zeros where a work has
/// none) and each work's `flags` TMA bits (`TMA_Q`, `TMA_KV`, `TMA_DO`; the others, e.g.
/// `WORK_DQ_ZERO`, kept). `dtype`: of Q, K/V and dO, 16-bit only (another dtype: no maps).
/// Works with fewer than `min_keys` keys get none.
#[allow(
    clippy::too_many_arguments,
    reason = "the map arguments plus the size threshold"
)]
pub fn bwd_tensor_maps(
    works: &mut [WorkDesc],
    segs: &[KvSeg],
    d: u32,
    group: u32,
    dtype: u32,
    br: u32,
    bc: u32,
    min_keys: u32,
) -> Result<Vec<[u64; 16]>> {
    tensor_maps(works, dtype, [TMA_Q, TMA_KV, TMA_DO], |w, elem| {
        if w.n_keys < min_keys {
            return [None; 3];
        }
        bwd_map_args(w, segs, d, group, elem.bytes(), br, bc).map(|a| a.map(|a| (a, elem)))
    })
}

/// Encodes per work the maps `args` gives (with their element types) and sets `bits[j]` in its
/// flags where map `j` exists, clearing it elsewhere.
fn tensor_maps(
    works: &mut [WorkDesc],
    dtype: u32,
    bits: [u32; MAPS_PER_WORK],
    args: impl Fn(&WorkDesc, TmaElem) -> [Option<(MapArgs, TmaElem)>; MAPS_PER_WORK],
) -> Result<Vec<[u64; 16]>> {
    let mut maps = vec![[0u64; 16]; MAPS_PER_WORK * works.len()];
    let all = bits.iter().fold(0, |a, b| a | b);
    let Some(elem) = tma_elem(dtype) else {
        works.iter_mut().for_each(|w| w.flags &= !all);
        return Ok(maps);
    };
    for (i, w) in works.iter_mut().enumerate() {
        let a = args(w, elem);
        w.flags &= !all;
        for (j, bit) in bits.into_iter().enumerate() {
            if let Some((a, e)) = a[j] {
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
    fn backward_maps_view_q_the_kv_region_and_do() {
        let segs = [
            seg(0x10000, 0, 1000, 2 * 2 * 128),
            seg(0x10008, 0, 1000, 512),
        ];
        let mut w = work(0x20000, 8 * 128, 0, 1);
        w.dout = 0x40000;
        w.do_stride = 8 * 128 + 64;
        let [q, kv, d_o] = bwd_map_args(&w, &segs, 128, 4, 2, 64, 128);
        let rows = |ptr, stride| MapArgs {
            ptr,
            dims: [128, 8, 300],
            strides: [128, stride],
            boxd: [64, 1, 64],
        };
        assert_eq!(q, Some(rows(0x20000, 1024)));
        assert_eq!(d_o, Some(rows(0x40000, 1088)));
        // The KV map is the forward's (box of 128 keys).
        assert_eq!(kv, fwd_map_args(&w, &segs, 128, 4, 2, 128, 128)[1]);
        assert_eq!(kv.unwrap().dims, [128, 4, 1000]);
        // D 64: boxes of one 64-column half.
        let [q, _, _] = bwd_map_args(&w, &segs, 64, 4, 2, 64, 128);
        assert_eq!(q.unwrap().dims, [64, 8, 300]);
        // dO misaligned (address, stride): no dO map, Q and KV kept; no KV map for a
        // misaligned region; none for f32 or D 96.
        let mut v = w;
        v.dout = 0x40008;
        assert!(matches!(
            bwd_map_args(&v, &segs, 128, 4, 2, 64, 128),
            [Some(_), Some(_), None]
        ));
        v.dout = 0x40000;
        v.do_stride = 1028;
        assert!(bwd_map_args(&v, &segs, 128, 4, 2, 64, 128)[2].is_none());
        let u = work(0x20000, 1024, 1, 1);
        assert!(bwd_map_args(&u, &segs, 128, 4, 2, 64, 128)[1].is_none());
        assert_eq!(bwd_map_args(&w, &segs, 128, 4, 4, 64, 128), [None; 3]);
        assert_eq!(bwd_map_args(&w, &segs, 96, 4, 2, 64, 128), [None; 3]);
    }

    #[test]
    fn backward_flags_keep_the_other_bits() {
        let segs = [seg(0x10008, 0, 1000, 512)];
        let mut ws = [work(0x20008, 1024, 0, 1)];
        ws[0].dout = 0x40008;
        ws[0].flags = TMA_Q | TMA_KV | TMA_DO | crate::own::WORK_DQ_ZERO;
        let maps = bwd_tensor_maps(&mut ws, &segs, 128, 4, DT_BF16, 64, 128, 0).unwrap();
        assert_eq!(maps.len(), 3);
        assert!(maps.iter().all(|m| m.iter().all(|&x| x == 0)));
        assert_eq!(ws[0].flags, crate::own::WORK_DQ_ZERO);
        ws[0].flags |= TMA_DO;
        bwd_tensor_maps(&mut ws, &segs, 128, 4, crate::desc::DT_F32, 64, 128, 0).unwrap();
        assert_eq!(ws[0].flags, crate::own::WORK_DQ_ZERO);
        // Fewer keys than the threshold (1000 < 1001): no maps, the other bits kept.
        ws[0].flags |= TMA_KV;
        bwd_tensor_maps(&mut ws, &segs, 128, 4, DT_BF16, 64, 128, 1001).unwrap();
        assert_eq!(ws[0].flags, crate::own::WORK_DQ_ZERO);
        assert_eq!(bwd_tma_min_keys(None), Ok(BWD_TMA_MIN_KEYS));
        assert_eq!(bwd_tma_min_keys(Some("1024")), Ok(1024));
        let e = bwd_tma_min_keys(Some("lots")).unwrap_err();
        assert!(
            e.contains("DCP_CUDA_BWD_TMA_MIN_KEYS") && e.contains("lots"),
            "{e}"
        );
    }

    #[test]
    fn unmappable_works_get_zero_maps_without_the_driver() {
        let segs = [seg(0x10008, 0, 1000, 512)];
        let mut ws = [work(0x20008, 1024, 0, 1), work(0, 1024, 0, 1)];
        ws[1].o = 0;
        ws[0].flags = 7;
        let maps = fwd_tensor_maps(&mut ws, &segs, 128, 4, DT_BF16, 128, 128, true).unwrap();
        assert_eq!(maps.len(), 6);
        assert!(maps.iter().all(|m| m.iter().all(|&x| x == 0)));
        assert!(ws.iter().all(|w| w.flags == 0));
        ws[0].flags = 7;
        let maps =
            fwd_tensor_maps(&mut ws, &segs, 128, 4, crate::desc::DT_F32, 128, 128, true).unwrap();
        assert_eq!((maps.len(), ws[0].flags), (6, 0));
        // An O that has a map (aligned) with Q / KV that have none: `o` false builds none.
        let mut ws = [work(0x20008, 1024, 0, 1)];
        ws[0].o = 0x40000;
        ws[0].flags = 7;
        assert!(fwd_map_args(&ws[0], &segs, 128, 4, 2, 128, 128)[2].is_some());
        let maps = fwd_tensor_maps(&mut ws, &segs, 128, 4, DT_BF16, 128, 128, false).unwrap();
        assert_eq!((maps.len(), ws[0].flags), (3, 0));
        assert!(maps.iter().all(|m| m.iter().all(|&x| x == 0)));
    }
}
