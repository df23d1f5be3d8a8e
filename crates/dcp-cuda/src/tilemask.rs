//! Element masks of partial tiles, precomputed on the host for the sm90 kernels (pure CPU,
//! tested here).
//!
//! A partial (query tile, key tile) pair needs, per element, whether the row attends the key. The
//! kernels used to evaluate the row's ranges per element (four compares per element and range;
//! the backward also one 16-byte shared-memory load per query row): causal-blockwise lost 7–8 %
//! of its time to it (`bench/results/kernels-2026-11-28j`). Here each partial tile's mask is
//! built once per plan, already in the bit order of the consuming threads' accumulator fragments,
//! so a consumer reads one word (backward) or two (forward) per tile instead. The producer
//! stages a tile's block in the shared-memory slot that held the rows' first two ranges (the
//! same size: 2 KiB forward, 1 KiB backward). Tiles without a block ([`NO_MASK`]: a work with
//! fewer than 1 in 32 of its tiles partial, such as one long causal sequence, where the ~2 µs of
//! host time per mask buys nothing; or a launch past [`MAX_MASK_WORDS`]) keep the in-kernel
//! evaluation. (`DCP_CUDA_TILE_MASKS=all` builds a block for every partial tile.)
//!
//! What the in-kernel evaluation costs the sm90 backward, per evaluated tile (session 37, 1×
//! H200, per-step clock stamps of an 8 096-token full-mask document under whole q-tile lists,
//! `bench/results/gpu-x1-2026-12-01s37`): a step reached its mask bits 3 100 clocks after its
//! stage landed against 506 for a full tile (D 128: a step of 6 700 clocks against 4 200), and
//! 6 000 against 440 at D 64, whose step evaluates two q tiles. Where such tiles are rare and
//! spread over the grid that is well under 1 % of a launch (one long causal sequence: 1 in 128
//! backward steps at 32K, 1 in 512 at 128K); where they line up in one q-tile list they set its length, which the
//! partial-first task order (`order.rs`) hides. The host pays ~5–7 µs to build a new mask and
//! ~0.7 µs to find a repeated one (`tilemask_cost` below, release, 2-core machine): ~1.4 ms for
//! the backward masks of a 128K causal sequence, whose evaluated tiles (~0.2 % of its steps)
//! cost the kernel ~0.2 ms on one H200. So the threshold stays.
//!
//! Thread layout (consumer thread `ct` = thread index − 128: warpgroup `cw = ct / 128`, warp
//! `wq = ct / 32 mod 4`, `g = lane / 4`, `t4 = lane mod 4`):
//! * forward (`attn_fwd_sm90.cu`, 128 rows × 128 keys): words `2 ct + h` for rows
//!   `64 cw + 16 wq + g + 8 h`; bit `2 nt + e` is key `8 nt + 2 t4 + e`.
//! * backward (`attn_bwd_sm90.cu`, 64 query rows × 128 keys, keys as the M dimension): word `ct`
//!   for keys `ka = 64 cw + 16 wq + g` and `ka + 8`; bit `4 nt + h` is (row `8 nt + 2 t4 + h`,
//!   key `ka`), bit `4 nt + 2 + h` the same row and key `ka + 8`.
//!
//! An element is set when its row is below the rows' end, its key below `n_keys`, and the key
//! lies in one of the row's ranges — what the in-kernel evaluation computes.

use crate::desc::RowCsr;

/// Words of one forward tile mask (128 × 128 bits).
pub const FWD_MASK_WORDS: usize = 512;
/// Words of one backward tile mask (64 × 128 bits).
pub const BWD_MASK_WORDS: usize = 256;
/// Tile-mask index of a tile without a precomputed mask.
pub const NO_MASK: u32 = u32::MAX;
/// At most this many mask words per launch (64 MiB); later partial tiles get [`NO_MASK`].
pub const MAX_MASK_WORDS: usize = 16 << 20;

const TILE_KEYS: u32 = 128;

/// Attended bits of rows `r0 .. r0 + n_rows_tile` (rows from `r1` on attend nothing) against
/// keys `k0 .. k0 + 128`, row-major into `grid` (one `u128` per row).
fn grid(
    csr: &RowCsr,
    r0: u32,
    r1: u32,
    rows_tile: u32,
    k0: u32,
    n_keys: u32,
    grid: &mut Vec<u128>,
) {
    grid.clear();
    let kend = (k0 + TILE_KEYS).min(n_keys);
    for q in 0..rows_tile {
        let r = r0 + q;
        let mut bits = 0u128;
        if r < r1 {
            for &[s, e] in csr.row(r as usize) {
                let (s, e) = (s.max(k0), e.min(kend));
                if s < e {
                    let (a, b) = (s - k0, e - k0);
                    let hi = if b == 128 {
                        u128::MAX
                    } else {
                        (1u128 << b) - 1
                    };
                    bits |= hi & !((1u128 << a) - 1);
                }
            }
        }
        grid.push(bits);
    }
}

/// Which kernel's fragment order a mask is built in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `attn_fwd_sm90.cu`: 128 rows × 128 keys, [`FWD_MASK_WORDS`] words.
    Fwd,
    /// `attn_bwd_sm90.cu`: 64 query rows × 128 keys, [`BWD_MASK_WORDS`] words.
    Bwd,
}

impl Layout {
    /// Query rows of one tile's mask.
    pub fn rows(self) -> u32 {
        match self {
            Layout::Fwd => 128,
            Layout::Bwd => 64,
        }
    }

    /// Words of one tile's mask.
    pub fn words(self) -> usize {
        match self {
            Layout::Fwd => FWD_MASK_WORDS,
            Layout::Bwd => BWD_MASK_WORDS,
        }
    }
}

/// Consumer thread `ct` as (warpgroup, warp in it, lane / 4, lane mod 4).
fn thread(ct: u32) -> (u32, u32, u32, u32) {
    let lane = ct % 32;
    (ct / 128, (ct / 32) % 4, lane / 4, lane % 4)
}

/// Bits 0 and 1 of every byte of `y`, packed: byte j's pair lands at bits 2j, 2j + 1.
fn pack_pairs(y: u128) -> u32 {
    let mut y = y & 0x0303_0303_0303_0303_0303_0303_0303_0303;
    y = (y | (y >> 6)) & 0x000f_000f_000f_000f_000f_000f_000f_000f;
    y = (y | (y >> 12)) & 0x0000_00ff_0000_00ff_0000_00ff_0000_00ff;
    y = (y | (y >> 24)) & 0x0000_0000_0000_ffff_0000_0000_0000_ffff;
    ((y | (y >> 48)) & 0xffff_ffff) as u32
}

/// Bit pair i of `x` (bits 2i, 2i + 1) moved to bits 4i, 4i + 1.
fn spread_pairs(x: u16) -> u32 {
    let mut y = x as u32;
    y = (y | (y << 8)) & 0x00ff_00ff;
    y = (y | (y << 4)) & 0x0f0f_0f0f;
    (y | (y << 2)) & 0x3333_3333
}

/// Transposes a 16 × 16 bit matrix in place: bit c of `a[r]` becomes bit r of `a[c]` (swaps
/// of the off-diagonal 8-, 4-, 2- and 1-blocks).
fn transpose16(a: &mut [u16; 16]) {
    let (mut j, mut m) = (8usize, 0x00ffu16);
    while j != 0 {
        let mut k = 0usize;
        while k < 16 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Appends the mask of rows `r0..r1` (a tile of 128 rows forward, 64 backward, starting at
/// `r0`) and key tile `kt` in `layout`'s order to `out` (`layout.words()` words). A few
/// microseconds a tile: the forward's words are each row's bits shifted and packed, the
/// backward's the columns of 16 × 16 bit blocks.
#[allow(clippy::too_many_arguments)] // the tile's coordinates plus two caller-owned buffers
pub fn push(
    layout: Layout,
    csr: &RowCsr,
    r0: u32,
    r1: u32,
    kt: u32,
    n_keys: u32,
    scratch: &mut Vec<u128>,
    out: &mut Vec<u32>,
) {
    grid(csr, r0, r1, layout.rows(), kt * TILE_KEYS, n_keys, scratch);
    pack(layout, scratch, out);
}

/// The masks one launch has built so far, by content: tiles with equal masks share one
/// (packed batches repeat a few shapes — a 2-GPU longalign causal plan's forward has 131
/// distinct masks among 5 710 partial tiles — so the host builds and uploads each shape once).
#[derive(Debug, Default, Clone)]
pub struct Distinct {
    /// Each distinct mask's rows ([`grid`]), `layout.rows()` apiece, in index order.
    grids: Vec<u128>,
    /// Hash of a grid -> indices of the distinct masks with that hash.
    by_hash: std::collections::HashMap<u64, Vec<u32>>,
}

impl Distinct {
    /// [`fwd_half_bits`] of forward mask `idx` (built by [`push_distinct`] in
    /// [`Layout::Fwd`]), read off its rows instead of the rows' ranges.
    pub fn fwd_half_bits(&self, idx: u32) -> u32 {
        let rows = Layout::Fwd.rows() as usize;
        let g = &self.grids[idx as usize * rows..(idx as usize + 1) * rows];
        let mut bits = 0;
        for cw in 0..2 {
            let any = g[64 * cw..64 * (cw + 1)].iter().fold(0u128, |a, &r| a | r);
            for h in 0..2 {
                if (any >> (64 * h)) as u64 != 0 {
                    bits |= 1 << (2 * cw + h);
                }
            }
        }
        bits
    }
}

/// A hash of a mask's rows: four independent multiply-xor lanes (one long dependency chain
/// cost as much as building the rows), folded at the end.
fn grid_hash(layout: Layout, g: &[u128]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = [layout as u64, 1, 2, 3];
    for p in g.chunks(2) {
        for (i, &r) in p.iter().enumerate() {
            let (a, b) = (2 * i, 2 * i + 1);
            h[a] = (h[a].rotate_left(5) ^ r as u64).wrapping_mul(K);
            h[b] = (h[b].rotate_left(5) ^ (r >> 64) as u64).wrapping_mul(K);
        }
    }
    h.iter()
        .fold(0u64, |acc, &x| (acc.rotate_left(5) ^ x).wrapping_mul(K))
}

/// The index of the mask of rows `r0..r1` and key tile `kt` among the masks in `out` (built in
/// `layout`'s order, `seen` their record): an equal mask's index, or a new one appended, or
/// `None` when it is new and `out` would grow past `max_words`.
#[allow(clippy::too_many_arguments)] // the tile's coordinates plus the caller-owned buffers
pub fn push_distinct(
    layout: Layout,
    csr: &RowCsr,
    r0: u32,
    r1: u32,
    kt: u32,
    n_keys: u32,
    scratch: &mut Vec<u128>,
    seen: &mut Distinct,
    out: &mut Vec<u32>,
    max_words: usize,
) -> Option<u32> {
    let rows = layout.rows() as usize;
    grid(csr, r0, r1, rows as u32, kt * TILE_KEYS, n_keys, scratch);
    let h = grid_hash(layout, scratch);
    let same = seen.by_hash.get(&h).and_then(|c| {
        c.iter()
            .copied()
            .find(|&i| seen.grids[i as usize * rows..(i as usize + 1) * rows] == scratch[..])
    });
    if same.is_some() {
        return same;
    }
    if out.len() + layout.words() > max_words {
        return None;
    }
    let idx = (out.len() / layout.words()) as u32;
    pack(layout, scratch, out);
    seen.grids.extend_from_slice(scratch);
    seen.by_hash.entry(h).or_default().push(idx);
    Some(idx)
}

/// Appends the mask whose rows [`grid`] built in `g` to `out` in `layout`'s order.
fn pack(layout: Layout, scratch: &[u128], out: &mut Vec<u32>) {
    match layout {
        Layout::Fwd => {
            // Word 2 ct + h: row 64 cw + 16 wq + g + 8 h, keys 8 nt + 2 t4 + e at bit 2 nt + e.
            for ct in 0..256u32 {
                let (cw, wq, g, t4) = thread(ct);
                for h in 0..2 {
                    let row = scratch[(64 * cw + 16 * wq + g + 8 * h) as usize];
                    out.push(pack_pairs(row >> (2 * t4)));
                }
            }
        }
        Layout::Bwd => {
            // Word ct (keys ka = 16 j + g and ka + 8, j = 4 cw + wq): bit 4 nt + h is row
            // 8 nt + 2 t4 + h at key ka, bit 4 nt + 2 + h the same row at ka + 8. Per t4 the 16
            // rows form planes p = 2 nt + h; per 16-key group j a 16 × 16 transpose gives each
            // key's column of planes.
            let base = out.len();
            out.resize(base + BWD_MASK_WORDS, 0);
            for t4 in 0..4u32 {
                let planes: [u128; 16] = std::array::from_fn(|p| {
                    let (nt, h) = (p as u32 / 2, p as u32 % 2);
                    scratch[(8 * nt + 2 * t4 + h) as usize]
                });
                for j in 0..8u32 {
                    let mut a: [u16; 16] = std::array::from_fn(|p| (planes[p] >> (16 * j)) as u16);
                    transpose16(&mut a);
                    let (cw, wq) = (j / 4, j % 4);
                    for g in 0..8u32 {
                        let ct = 128 * cw + 32 * wq + 4 * g + t4;
                        out[base + ct as usize] =
                            spread_pairs(a[g as usize]) | spread_pairs(a[8 + g as usize]) << 2;
                    }
                }
            }
        }
    }
}

/// Forward half tile (`attn_fwd_sm90.cu` `FWD_HALF`): whether, in key tile `kt` of the 128-row
/// query tile of rows `r0..r1` (rows from `r1` on attend nothing), the 64 rows of one consumer
/// warpgroup (`r0 + 64 cw ..`) attend keys of at most one of the tile's two 64-key halves (keys
/// from `n_keys` on do not count). That warpgroup then computes the tile on one half or skips
/// it. The kernel decides the same from the tile's mask bits; the host only routes the tile
/// through the kernel's half step (`exec.rs`), so a wrong answer here costs time, not results.
pub fn fwd_half(csr: &RowCsr, r0: u32, r1: u32, kt: u32, n_keys: u32) -> bool {
    let k0 = kt * TILE_KEYS;
    let half = |h: u32| (k0 + 64 * h, (k0 + 64 * (h + 1)).min(n_keys));
    (0..2u32).any(|cw| {
        let (a, b) = (r0 + 64 * cw, (r0 + 64 * (cw + 1)).min(r1));
        let sees = |(hs, he): (u32, u32)| {
            (a..b).any(|r| {
                csr.row(r as usize)
                    .iter()
                    .any(|&[s, e]| s.max(hs) < e.min(he))
            })
        };
        !(sees(half(0)) && sees(half(1)))
    })
}

/// Forward half-tile bits (`attn_fwd_sm90.cu` `FWD_HALFBITS`, `DCP_CUDA_FWD_HALFBITS`): bit
/// `2 cw + h` is set where the 64 rows of consumer warpgroup `cw` of the 128-row query tile of rows
/// `r0..r1` (rows from `r1` on attend nothing) attend some key of 64-key half `h` of key tile `kt`
/// (keys from `n_keys` on do not count). The kernel decides its half step from these bits
/// instead of its mask words, so, unlike [`fwd_half`], a wrong bit would drop keys: they follow
/// the rows' ranges exactly (unit-tested against the mask). A tile is a half tile
/// ([`fwd_half`]) exactly where some warpgroup's two bits are not both set.
pub fn fwd_half_bits(csr: &RowCsr, r0: u32, r1: u32, kt: u32, n_keys: u32) -> u32 {
    let k0 = kt * TILE_KEYS;
    let mut bits = 0;
    for cw in 0..2u32 {
        let (a, b) = (r0 + 64 * cw, (r0 + 64 * (cw + 1)).min(r1));
        for h in 0..2u32 {
            let (hs, he) = (k0 + 64 * h, (k0 + 64 * (h + 1)).min(n_keys));
            let sees = hs < he
                && (a..b).any(|r| {
                    csr.row(r as usize)
                        .iter()
                        .any(|&[s, e]| s.max(hs) < e.min(he))
                });
            if sees {
                bits |= 1 << (2 * cw + h);
            }
        }
    }
    bits
}

/// Backward half step (`attn_bwd_sm90.cu` `BWD_HALF`): tile word bits of the 64-row q tile of
/// rows `r0..r1` (rows from `r1` on attend nothing) in key tile `kt`: [`BWD_HALF_LO`] where no
/// row attends any of keys 0-63 of the tile, [`BWD_HALF_HI`] where none attends keys 64-127 (keys
/// from `n_keys` on do not count); 0 for a tile that some row sees in both halves, or in
/// neither (an empty tile is never listed). The consumer warpgroup of an unseen half skips the
/// step, and the step's dQ runs over the other half's keys only: a wrong bit would drop
/// gradient terms, so the bits follow the rows' ranges exactly (unit-tested against the mask).
pub fn bwd_half_bits(csr: &RowCsr, r0: u32, r1: u32, kt: u32, n_keys: u32) -> u32 {
    let k0 = kt * TILE_KEYS;
    let sees = |h: u32| {
        let (hs, he) = (k0 + 64 * h, (k0 + 64 * (h + 1)).min(n_keys));
        hs < he
            && (r0..r1).any(|r| {
                csr.row(r as usize)
                    .iter()
                    .any(|&[s, e]| s.max(hs) < e.min(he))
            })
    };
    match (sees(0), sees(1)) {
        (false, true) => BWD_HALF_LO,
        (true, false) => BWD_HALF_HI,
        _ => 0,
    }
}

/// Backward tile word bit: no row of the q tile attends keys 0-63 of the kv tile
/// (`B90_TILE_HLO`).
pub const BWD_HALF_LO: u32 = 0x4000_0000;
/// Backward tile word bit: no row of the q tile attends keys 64-127 of the kv tile
/// (`B90_TILE_HHI`).
pub const BWD_HALF_HI: u32 = 0x2000_0000;

#[cfg(test)]
mod tests {
    use super::*;
    use dcp_core::plan::RowRanges;

    fn attends(rows: &[Vec<(u32, u32)>], r: u32, r1: u32, k: u32, n_keys: u32) -> bool {
        r < r1 && k < n_keys && rows[r as usize].iter().any(|&(s, e)| s <= k && k < e)
    }

    fn random_rows(seed: &mut u64, n_rows: u32, n_keys: u32) -> Vec<Vec<(u32, u32)>> {
        let mut rnd = |m: u32| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % m.max(1) as u64) as u32
        };
        (0..n_rows)
            .map(|_| {
                let n = rnd(4);
                let mut v: Vec<(u32, u32)> = (0..n)
                    .map(|_| {
                        let a = rnd(n_keys + 40);
                        (a, a + rnd(200))
                    })
                    .collect();
                v.sort_unstable();
                // Disjoint, as row ranges are.
                let mut out: Vec<(u32, u32)> = Vec::new();
                for (s, e) in v {
                    match out.last_mut() {
                        Some(l) if s <= l.1 => l.1 = l.1.max(e),
                        _ => out.push((s, e)),
                    }
                }
                out
            })
            .collect()
    }

    fn csr_of(rows: &[Vec<(u32, u32)>]) -> RowCsr {
        RowCsr::expand(&RowRanges::from_rows(rows), rows.len() as u32)
    }

    /// Equal masks share an index (also once the cap is reached); a new mask past the cap is
    /// refused; the indices name masks equal to those `push` builds, in either layout.
    #[test]
    fn distinct_masks_are_shared_and_capped() {
        // Rows attending a 300-key causal window over 1 024 keys: the diagonal tiles repeat one
        // shape, the window starts a few.
        let rows: Vec<Vec<(u32, u32)>> = (0..1024u32)
            .map(|r| vec![(r.saturating_sub(300), r + 1)])
            .collect();
        let csr = csr_of(&rows);
        for layout in [Layout::Fwd, Layout::Bwd] {
            let (rt, w) = (layout.rows(), layout.words());
            let (mut scratch, mut seen, mut out) = (Vec::new(), Distinct::default(), Vec::new());
            let mut at = |csr: &RowCsr, r0: u32, kt: u32, out: &mut Vec<u32>, cap: usize| {
                let (a, b) = (&mut scratch, &mut seen);
                push_distinct(layout, csr, r0, r0 + rt, kt, 1024, a, b, out, cap)
            };
            let mut fresh = (Vec::new(), Vec::new());
            let mut idx = Vec::new();
            for r0 in (0..1024).step_by(rt as usize) {
                for kt in 0..8 {
                    let got = at(&csr, r0, kt, &mut out, usize::MAX).unwrap() as usize;
                    fresh.1.clear();
                    push(
                        layout,
                        &csr,
                        r0,
                        r0 + rt,
                        kt,
                        1024,
                        &mut fresh.0,
                        &mut fresh.1,
                    );
                    assert_eq!(out[got * w..(got + 1) * w], fresh.1[..]);
                    idx.push((r0, kt, got as u32));
                }
            }
            let n = out.len() / w;
            assert!(
                n < idx.len() / 4,
                "{layout:?}: {n} masks for {} tiles",
                idx.len()
            );
            // Full: a known mask still gets its index, a new one none.
            let (r0, kt, m) = idx[9];
            let cap = out.len();
            assert_eq!(at(&csr, r0, kt, &mut out, cap), Some(m));
            let other: Vec<Vec<(u32, u32)>> = (0..1024u32).map(|r| vec![(0, r / 3 + 1)]).collect();
            let new = at(&csr_of(&other), 512, 1, &mut out, cap);
            assert_eq!((new, out.len()), (None, cap));
        }
    }

    /// Every bit of both layouts against the definition, on random ranges with rows and keys
    /// that end inside a tile.
    #[test]
    fn masks_match_the_fragment_layouts() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut scratch = Vec::new();
        for case in 0..40u32 {
            let n_rows = 100 + case * 7;
            let n_keys = 150 + case * 11;
            let rows = random_rows(&mut seed, n_rows, n_keys);
            let csr = csr_of(&rows);
            for kt in 0..n_keys.div_ceil(128) {
                // Forward: 128-row tiles.
                let mut r0 = 0;
                while r0 < n_rows {
                    let r1 = (r0 + 128).min(n_rows);
                    let mut m = Vec::new();
                    push(Layout::Fwd, &csr, r0, r1, kt, n_keys, &mut scratch, &mut m);
                    assert_eq!(m.len(), FWD_MASK_WORDS);
                    for ct in 0..256u32 {
                        let (cw, wq, g, t4) = thread(ct);
                        for h in 0..2 {
                            let r = r0 + 64 * cw + 16 * wq + g + 8 * h;
                            for nt in 0..16 {
                                for e in 0..2 {
                                    let k = kt * 128 + 8 * nt + 2 * t4 + e;
                                    let bit = (m[(2 * ct + h) as usize] >> (2 * nt + e)) & 1 == 1;
                                    assert_eq!(
                                        bit,
                                        attends(&rows, r, r1, k, n_keys),
                                        "fwd case {case} r {r} k {k}"
                                    );
                                }
                            }
                        }
                    }
                    r0 = r1;
                }
                // Backward: 64-row tiles.
                let mut r0 = 0;
                while r0 < n_rows {
                    let r1 = (r0 + 64).min(n_rows);
                    let mut m = Vec::new();
                    push(Layout::Bwd, &csr, r0, r1, kt, n_keys, &mut scratch, &mut m);
                    assert_eq!(m.len(), BWD_MASK_WORDS);
                    for ct in 0..256u32 {
                        let (cw, wq, g, t4) = thread(ct);
                        let ka = kt * 128 + 64 * cw + 16 * wq + g;
                        for nt in 0..8 {
                            for h in 0..2 {
                                let r = r0 + 8 * nt + 2 * t4 + h;
                                let w = m[ct as usize];
                                assert_eq!(
                                    (w >> (4 * nt + h)) & 1 == 1,
                                    attends(&rows, r, r1, ka, n_keys)
                                );
                                assert_eq!(
                                    (w >> (4 * nt + 2 + h)) & 1 == 1,
                                    attends(&rows, r, r1, ka + 8, n_keys),
                                    "bwd case {case} r {r} k {}",
                                    ka + 8
                                );
                            }
                        }
                    }
                    r0 = r1;
                }
            }
        }
    }

    /// Mean half tiles per 128-row q tile ([`fwd_half`] over the partial tiles) of `spec` over
    /// `len` tokens: what `DCP_CUDA_FWD_HALF_MAX` compares (exec.rs `half_tiles_ok`).
    fn half_tiles_per_qtile(spec: &dcp_core::mask::MaskSpec, len: u32) -> f64 {
        let m = spec.compile(len);
        let rows: Vec<Vec<(u32, u32)>> = (0..len).map(|i| m.row_ranges(i)).collect();
        let csr = csr_of(&rows);
        let (mut half, mut qt) = (0u32, 0u32);
        for r0 in (0..len).step_by(128) {
            let r1 = (r0 + 128).min(len);
            qt += 1;
            for kt in 0..len.div_ceil(TILE_KEYS) {
                let (k0, k1) = (kt * TILE_KEYS, ((kt + 1) * TILE_KEYS).min(len));
                let n = m.count_tile(r0, r1, k0, k1);
                let partial = n > 0 && n < (r1 - r0) as u64 * (k1 - k0) as u64;
                half += (partial && fwd_half(&csr, r0, r1, kt, len)) as u32;
            }
        }
        half as f64 / qt as f64
    }

    /// Why D 64's `DCP_CUDA_FWD_HALF_MAX` is 2.5: at the kernel-bench lengths, causal (one half
    /// tile per q tile, its diagonal), causal-blockwise (1.97 at 32K, 1.99 at 128K) and
    /// shared-question (2.20, 1.60) stay under it and take the half-tile kernel (measured faster
    /// or equal there), lambda (sink, window start and diagonal: three from 4 096 rows on; 2.74,
    /// 2.94) goes over it (the half kernel cost it 6.4 %). Shorter lambda sequences, whose first
    /// 4 096 rows weigh more, come under it (16K: 2.5).
    #[test]
    fn half_tiles_per_q_tile_put_lambda_over_d64s_limit() {
        use dcp_core::mask::MaskSpec;
        let limit = 2.5;
        let per = |spec: &MaskSpec, len| half_tiles_per_qtile(spec, len);
        for len in [32_768, 131_072] {
            let causal = per(&MaskSpec::Causal, len);
            assert!((causal - 1.0).abs() < 1e-9, "causal {len}: {causal}");
            for spec in [MaskSpec::causal_blockwise(), MaskSpec::shared_question()] {
                let x = per(&spec, len);
                assert!(x > 1.0 && x <= limit, "{} {len}: {x}", spec.name());
            }
            let lambda = per(&MaskSpec::lambda(), len);
            assert!(lambda > limit, "lambda {len}: {lambda}");
        }
    }

    /// `fwd_half` is what the forward kernel's half step decides from a tile's mask words (per
    /// consumer warpgroup, the OR of its threads' words: bits 0-15 are keys 0-63, bits 16-31
    /// keys 64-127; a half tile when a warpgroup's OR misses one of them), on random ranges,
    /// causal rows and rows that see everything, with rows and keys ending inside tiles.
    #[test]
    fn fwd_half_is_the_kernels_decision_from_the_mask() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut scratch = Vec::new();
        let (mut halves, mut wholes) = (0, 0);
        for case in 0..60u32 {
            let n_rows = 60 + case * 9;
            let n_keys = 100 + case * 13;
            let rows = match case % 3 {
                0 => random_rows(&mut seed, n_rows, n_keys),
                1 => (0..n_rows)
                    .map(|r| vec![(0, (r + 1).min(n_keys))])
                    .collect(),
                _ => (0..n_rows).map(|_| vec![(0, n_keys)]).collect(),
            };
            let csr = csr_of(&rows);
            for kt in 0..n_keys.div_ceil(128) {
                let mut r0 = 0;
                while r0 < n_rows {
                    let r1 = (r0 + 128).min(n_rows);
                    let mut m = Vec::new();
                    push(Layout::Fwd, &csr, r0, r1, kt, n_keys, &mut scratch, &mut m);
                    let kernel = (0..2usize).any(|cw| {
                        let or = m[256 * cw..256 * (cw + 1)].iter().fold(0u32, |a, &w| a | w);
                        or & 0xffff == 0 || or >> 16 == 0
                    });
                    assert_eq!(
                        fwd_half(&csr, r0, r1, kt, n_keys),
                        kernel,
                        "case {case} rows {r0}..{r1} kt {kt}"
                    );
                    // FWD_HALFBITS: each warpgroup's halves, as its mask words' OR has them.
                    let bits = (0..2usize).fold(0u32, |acc, cw| {
                        let or = m[256 * cw..256 * (cw + 1)].iter().fold(0u32, |a, &w| a | w);
                        acc | (((or & 0xffff != 0) as u32) | ((or >> 16 != 0) as u32) << 1)
                            << (2 * cw)
                    });
                    assert_eq!(
                        fwd_half_bits(&csr, r0, r1, kt, n_keys),
                        bits,
                        "bits: case {case} rows {r0}..{r1} kt {kt}"
                    );
                    assert_eq!(
                        (0..2).any(|cw| (bits >> (2 * cw)) & 3 != 3),
                        kernel,
                        "case {case} rows {r0}..{r1} kt {kt}"
                    );
                    if kernel {
                        halves += 1;
                    } else {
                        wholes += 1;
                    }
                    r0 = r1;
                }
            }
        }
        assert!(
            halves > 100 && wholes > 100,
            "{halves} half, {wholes} whole tiles"
        );
    }

    /// `bwd_half_bits` against the backward mask words (bit set where every thread of the
    /// consumer warpgroup of that half has a zero word), on random ranges, causal rows, rows
    /// that see everything and a sliding window, with rows and keys ending inside tiles.
    #[test]
    fn bwd_half_bits_are_the_masks_unseen_halves() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut scratch = Vec::new();
        let (mut halves, mut wholes) = (0, 0);
        for case in 0..60u32 {
            let n_rows = 60 + case * 9;
            let n_keys = 100 + case * 13;
            let rows = match case % 4 {
                0 => random_rows(&mut seed, n_rows, n_keys),
                1 => (0..n_rows)
                    .map(|r| vec![(0, (r + 1).min(n_keys))])
                    .collect(),
                2 => (0..n_rows).map(|_| vec![(0, n_keys)]).collect(),
                _ => (0..n_rows)
                    .map(|r| vec![((r + 1).saturating_sub(90).min(n_keys), (r + 1).min(n_keys))])
                    .collect(),
            };
            let csr = csr_of(&rows);
            for kt in 0..n_keys.div_ceil(128) {
                let mut r0 = 0;
                while r0 < n_rows {
                    let r1 = (r0 + 64).min(n_rows);
                    let mut m = Vec::new();
                    push(Layout::Bwd, &csr, r0, r1, kt, n_keys, &mut scratch, &mut m);
                    let seen = |cw: usize| m[128 * cw..128 * (cw + 1)].iter().any(|&w| w != 0);
                    let want = match (seen(0), seen(1)) {
                        (false, true) => BWD_HALF_LO,
                        (true, false) => BWD_HALF_HI,
                        _ => 0,
                    };
                    assert_eq!(
                        bwd_half_bits(&csr, r0, r1, kt, n_keys),
                        want,
                        "case {case} rows {r0}..{r1} kt {kt}"
                    );
                    if want != 0 {
                        halves += 1;
                    } else if seen(0) {
                        wholes += 1;
                    }
                    r0 = r1;
                }
            }
        }
        assert!(
            halves > 100 && wholes > 100,
            "{halves} half, {wholes} whole tiles"
        );
    }

    /// The bit helpers against their definitions.
    #[test]
    fn bit_helpers() {
        let mut x = 0x1234_5678_9abc_def0_0fed_cba9_8765_4321u128;
        for _ in 0..200 {
            x = x
                .wrapping_mul(0x2545_f491_4f6c_dd1d_9e37_79b9_7f4a_7c15)
                .wrapping_add(1442695040888963407);
            let a0: [u16; 16] = std::array::from_fn(|r| (x >> (8 * r)) as u16 ^ (x >> 64) as u16);
            let mut a = a0;
            transpose16(&mut a);
            for (r, row) in a0.iter().enumerate() {
                for (c, col) in a.iter().enumerate() {
                    assert_eq!((col >> r) & 1, (row >> c) & 1);
                }
            }
            let p = pack_pairs(x);
            for j in 0..16 {
                for e in 0..2 {
                    assert_eq!((p >> (2 * j + e)) & 1, ((x >> (8 * j + e)) & 1) as u32);
                }
            }
            let v = x as u16;
            let sp = spread_pairs(v);
            for i in 0..8 {
                for e in 0..2 {
                    assert_eq!((sp >> (4 * i + e)) & 1, ((v >> (2 * i + e)) & 1) as u32);
                }
                assert_eq!((sp >> (4 * i + 2)) & 3, 0);
            }
        }
    }

    /// A mask appended after others lands at the end and equals one built alone.
    #[test]
    fn masks_append() {
        let mut seed = 7u64;
        let rows = random_rows(&mut seed, 200, 300);
        let csr = csr_of(&rows);
        let mut scratch = Vec::new();
        for layout in [Layout::Fwd, Layout::Bwd] {
            let (mut alone, mut both) = (Vec::new(), vec![5u32; 3]);
            push(layout, &csr, 64, 200, 1, 300, &mut scratch, &mut alone);
            push(layout, &csr, 64, 200, 1, 300, &mut scratch, &mut both);
            assert_eq!(both.len(), 3 + layout.words());
            assert_eq!(&both[..3], &[5, 5, 5]);
            assert_eq!(&both[3..], &alone[..]);
        }
    }

    /// Host cost of the masks of one 131 072-token causal sequence (run by hand:
    /// `cargo test --release -p dcp-cuda tilemask_cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn tilemask_cost() {
        let n = 131_072u32;
        let rows: Vec<Vec<(u32, u32)>> = (0..n).map(|r| vec![(0, r + 1)]).collect();
        let csr = csr_of(&rows);
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        let t = std::time::Instant::now();
        for qt in 0..n / 128 {
            push(
                Layout::Fwd,
                &csr,
                qt * 128,
                qt * 128 + 128,
                qt,
                n,
                &mut scratch,
                &mut out,
            );
        }
        let f = t.elapsed();
        let t = std::time::Instant::now();
        for qt in 0..n / 64 {
            push(
                Layout::Bwd,
                &csr,
                qt * 64,
                qt * 64 + 64,
                qt / 2,
                n,
                &mut scratch,
                &mut out,
            );
        }
        eprintln!(
            "forward {} tiles {f:?}, backward {} tiles {:?}",
            n / 128,
            n / 64,
            t.elapsed()
        );
        assert_eq!(
            out.len(),
            (n / 128) as usize * FWD_MASK_WORDS + (n / 64) as usize * BWD_MASK_WORDS
        );
        // What launches run: push_distinct, where equal masks (every diagonal tile of a causal
        // sequence) cost the rows and a hash, not the packing.
        let (mut seen, mut dist) = (Distinct::default(), Vec::new());
        let t = std::time::Instant::now();
        for qt in 0..n / 64 {
            let (r0, kt) = (qt * 64, qt / 2);
            let idx = push_distinct(
                Layout::Bwd,
                &csr,
                r0,
                r0 + 64,
                kt,
                n,
                &mut scratch,
                &mut seen,
                &mut dist,
                MAX_MASK_WORDS,
            );
            assert!(idx.is_some());
        }
        eprintln!(
            "backward, distinct: {} tiles {:?}, {} masks",
            n / 64,
            t.elapsed(),
            dist.len() / BWD_MASK_WORDS
        );
        assert_eq!(dist.len(), 2 * BWD_MASK_WORDS, "two diagonal shapes");
    }
}
