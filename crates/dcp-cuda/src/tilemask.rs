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
//! same size: 2 KiB forward, 1 KiB backward). Tiles without a block ([`NO_MASK`], when a launch
//! would need more than [`MAX_MASK_WORDS`]) keep the in-kernel evaluation.
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

/// Appends the mask of rows `r0..r1` (a tile of 128 rows forward, 64 backward, starting at
/// `r0`) and key tile `kt` in `layout`'s order to `out` (`layout.words()` words).
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
    let rows_tile = if layout == Layout::Fwd { 128 } else { 64 };
    grid(csr, r0, r1, rows_tile, kt * TILE_KEYS, n_keys, scratch);
    for ct in 0..256u32 {
        let (cw, wq, g, t4) = thread(ct);
        match layout {
            Layout::Fwd => {
                for h in 0..2 {
                    let row = scratch[(64 * cw + 16 * wq + g + 8 * h) as usize];
                    let mut w = 0u32;
                    for nt in 0..16 {
                        for e in 0..2 {
                            let c = 8 * nt + 2 * t4 + e;
                            w |= (((row >> c) & 1) as u32) << (2 * nt + e);
                        }
                    }
                    out.push(w);
                }
            }
            Layout::Bwd => {
                let ka = 64 * cw + 16 * wq + g;
                let mut w = 0u32;
                for nt in 0..8 {
                    for h in 0..2 {
                        let row = scratch[(8 * nt + 2 * t4 + h) as usize];
                        w |= (((row >> ka) & 1) as u32) << (4 * nt + h);
                        w |= (((row >> (ka + 8)) & 1) as u32) << (4 * nt + 2 + h);
                    }
                }
                out.push(w);
            }
        }
    }
}

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
}
