//! Owned dK/dV rows of a backward launch (sm90, head dim 128): where the executor lets the
//! kernel *store* dK/dV instead of adding them into buffers that a `Fill` zeroed, and drops the
//! fill.
//!
//! The plans accumulate gradients in fp32 scratch: `Fill` zero, one or more `AttnBwd` adding into
//! it, a converting `Copy` out. For a launch of many small works (1000 documents of 256 tokens)
//! that scratch traffic is a large part of the backward: the fill writes every byte, and the
//! kernel's first reduction into each line reads the zeros back from memory. A task is the only
//! one adding into its kv tile's dK/dV rows when its work's dKV regions are fp32, zero (a `Fill`
//! zero covers them and no instruction has touched them since: [`ZeroSet`]), overlap no other
//! work's dKV region of the launch, and the kv tile's q-tile list is not split over several
//! tasks. Such a task stores its rows ([`TASK_DKV_STORE`]); a zero fill that such tasks cover in
//! full (every kv tile of the works listed, no list split; [`tiles_exactly`]) is dropped.
//! Measured (bench/results/kernels-2026-11-28o): 1000 documents of 256 tokens 3.11 -> 2.68 ms
//! backward together with the faster D pre-pass (kernel 1.71 -> 1.49 ms, dKV fill 0.13 ms gone);
//! causal-blockwise 32K -3 %; dense shapes unchanged.
//!
//! dQ cannot be stored this way while a q tile's contributions come from several kv tiles'
//! tasks on different CTAs. Chaining a small work's kv tiles on one CTA (first visit stores,
//! later visits add) dropped the dQ fill too but lost more than it saved: the kv tiles of a
//! document no longer ran side by side, so their shared Q/dO and dQ lines left L2 between the
//! visits (kernel 1.71 -> 1.85 ms, DRAM 4.5 -> 6.1 GB; the variant is kept in the results
//! folder's `variants_attn_bwd_sm90.cu`).
//!
//! `DCP_CUDA_BWD_OWN=0` turns the stores off (A/B runs).

use dcp_core::plan::Region;

/// TaskDesc.pad: the task is the only one adding into its kv tile's dK/dV rows, which are zero:
/// it stores them (kernels/attn_bwd_sm90.cu `B90_TASK_DKV_STORE`).
pub const TASK_DKV_STORE: u32 = 0x8000_0000;

/// Whether backward launches store owned dK/dV rows (`DCP_CUDA_BWD_OWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMode {
    /// Every task adds (the kernels before owned rows).
    Off,
    /// dK/dV stores where a task is the only one adding into zero rows (the default).
    DkvStore,
}

/// The default of `DCP_CUDA_BWD_OWN`.
pub const DEFAULT_MODE: OwnMode = OwnMode::DkvStore;

impl OwnMode {
    /// Parses `DCP_CUDA_BWD_OWN` (unset: [`DEFAULT_MODE`]).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_MODE),
            Some("0") => Ok(OwnMode::Off),
            Some("1") => Ok(OwnMode::DkvStore),
            Some(o) => Err(format!("DCP_CUDA_BWD_OWN={o}: expected 0 or 1")),
        }
    }

    /// The mode of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_OWN").ok().as_deref())
    }
}

/// Whether `outer` contains every element of `inner` (same buffer; an empty `inner` is
/// contained anywhere in its buffer).
pub fn contains(outer: &Region, inner: &Region) -> bool {
    outer.buf == inner.buf
        && (inner.len == 0
            || inner.heads == 0
            || (outer.tok <= inner.tok
                && inner.tok + inner.len <= outer.tok + outer.len
                && outer.head <= inner.head
                && inner.head + inner.heads <= outer.head + outer.heads))
}

/// Regions known to be zero at the current point of a program, each with the op index of the
/// fill that zeroed it (while lowering instructions in order).
#[derive(Debug, Default, Clone)]
pub struct ZeroSet {
    fills: Vec<(Region, usize)>,
}

impl ZeroSet {
    /// A zero fill of `r` issued as op `op` (older records it overlaps are dropped: the newer
    /// fill is the one that leaves the zeros).
    pub fn add(&mut self, r: Region, op: usize) {
        self.forget(&r);
        self.fills.push((r, op));
    }

    /// An instruction reads or writes `r`: records it overlaps are no longer known zero (a read
    /// too, since a dropped fill would change what it reads).
    pub fn forget(&mut self, r: &Region) {
        self.fills.retain(|(z, _)| !z.overlaps(r));
    }

    /// Whether every element of `r` is known zero.
    pub fn is_zero(&self, r: &Region) -> bool {
        self.fills.iter().any(|(z, _)| contains(z, r))
    }

    /// The records (region, fill op).
    pub fn fills(&self) -> &[(Region, usize)] {
        &self.fills
    }
}

/// Per region: whether it overlaps no other region of the list (O(n log n) plus the overlapping
/// pairs).
pub fn disjoint(regions: &[Region]) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..regions.len()).collect();
    idx.sort_by_key(|&i| (regions[i].buf, regions[i].tok));
    let mut ok = vec![true; regions.len()];
    for (a, &i) in idx.iter().enumerate() {
        let ri = &regions[i];
        for &j in &idx[a + 1..] {
            let rj = &regions[j];
            if rj.buf != ri.buf || rj.tok >= ri.tok + ri.len {
                break;
            }
            if ri.overlaps(rj) {
                ok[i] = false;
                ok[j] = false;
            }
        }
    }
    ok
}

/// Whether `parts` tile `z` exactly: each spans z's head range, and their token ranges follow
/// each other from z's first token to its last without gap or overlap (any order).
pub fn tiles_exactly(z: &Region, parts: &[Region]) -> bool {
    if parts.is_empty() || z.len == 0 {
        return false;
    }
    let mut p: Vec<&Region> = parts.iter().collect();
    p.sort_by_key(|r| r.tok);
    let mut next = z.tok;
    for r in p {
        if r.buf != z.buf || r.head != z.head || r.heads != z.heads || r.tok != next || r.len == 0 {
            return false;
        }
        next += r.len;
    }
    next == z.tok + z.len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(buf: u32, tok: u32, len: u32, head: u32, heads: u32) -> Region {
        Region {
            buf,
            tok,
            len,
            head,
            heads,
        }
    }

    #[test]
    fn mode_parses_and_rejects_unknown() {
        assert_eq!(OwnMode::parse(None), Ok(DEFAULT_MODE));
        assert_eq!(OwnMode::parse(Some("0")), Ok(OwnMode::Off));
        assert_eq!(OwnMode::parse(Some(" 1")), Ok(OwnMode::DkvStore));
        assert!(OwnMode::parse(Some("chain"))
            .unwrap_err()
            .contains("expected 0 or 1"));
    }

    #[test]
    fn zero_set_tracks_fills_and_touches() {
        let mut z = ZeroSet::default();
        z.add(r(1, 0, 100, 0, 8), 3);
        assert!(z.is_zero(&r(1, 10, 20, 2, 4)));
        assert!(!z.is_zero(&r(1, 90, 20, 0, 8)), "runs past the fill");
        assert!(!z.is_zero(&r(2, 10, 20, 0, 8)), "other buffer");
        z.forget(&r(1, 50, 1, 7, 1));
        assert!(
            !z.is_zero(&r(1, 10, 20, 2, 4)),
            "a touch anywhere in the fill forgets it"
        );
        z.add(r(1, 0, 10, 0, 8), 4);
        z.add(r(1, 0, 100, 0, 8), 5);
        assert_eq!(
            z.fills(),
            &[(r(1, 0, 100, 0, 8), 5)],
            "the newer fill replaces the older"
        );
    }

    #[test]
    fn disjoint_flags_only_overlapping_regions() {
        let rs = [
            r(0, 0, 10, 0, 8),
            r(0, 10, 10, 0, 8),
            r(0, 15, 10, 0, 4),
            r(0, 15, 10, 4, 4),
            r(1, 0, 10, 0, 8),
            r(0, 100, 0, 0, 8),
        ];
        assert_eq!(disjoint(&rs), vec![true, false, false, false, true, true]);
        assert_eq!(disjoint(&[]), Vec::<bool>::new());
    }

    #[test]
    fn exact_tiling_needs_full_heads_and_no_gaps() {
        let z = r(2, 100, 30, 0, 8);
        assert!(tiles_exactly(
            &z,
            &[r(2, 110, 20, 0, 8), r(2, 100, 10, 0, 8)]
        ));
        assert!(
            !tiles_exactly(&z, &[r(2, 100, 10, 0, 8), r(2, 111, 19, 0, 8)]),
            "gap"
        );
        assert!(
            !tiles_exactly(&z, &[r(2, 100, 10, 0, 8), r(2, 105, 25, 0, 8)]),
            "overlap"
        );
        assert!(!tiles_exactly(&z, &[r(2, 100, 30, 0, 4)]), "half the heads");
        assert!(!tiles_exactly(&z, &[r(2, 100, 20, 0, 8)]), "short");
        assert!(!tiles_exactly(&z, &[]));
        assert!(contains(&z, &r(2, 100, 0, 0, 8)));
    }
}
