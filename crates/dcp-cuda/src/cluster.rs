//! The clustered backward for launches of many works exactly two kv tiles wide (head dims 128
//! and, since session 39, 64, where it is the only chained kernel)
//! (kernels/attn_bwd_cluster_sm90.cu, `DCP_CUDA_BWD_CLUSTER`): the two kv tiles of a (work, kv
//! head) run on the two CTAs of a thread-block cluster, walking the same (query head, q tile)
//! steps; each CTA sends its dS of each step to the other through distributed shared memory (one
//! bulk copy per warpgroup) and computes its 64 dQ columns over both kv tiles' keys, written
//! converted, once (no fp32 partial anywhere, unlike a chain's [`crate::own::chain_launch`]
//! round trip).
//!
//! A launch clusters only where it chains (the same conditions on dQ: fp32 scratch, zero, read
//! by a converting copy the launch takes over) and, in addition, every work lists exactly two kv
//! tiles whose lists name the same q tiles in the same order ([`pairs_ok`]).

use crate::desc::TaskDesc;

/// The default of `DCP_CUDA_BWD_CLUSTER`: on since session 15 (the pair exchanges dS and each
/// CTA computes its dQ column half over both kv tiles: works1000's backward 2.10 -> 1.635 ms
/// against chains, bench/results/kernels-2026-11-29-kb15).
pub const DEFAULT_CLUSTER: bool = true;

/// Parses `DCP_CUDA_BWD_CLUSTER` (unset: [`DEFAULT_CLUSTER`]): `1` chained launches whose works
/// are all two kv tiles wide run as clusters, `0` they run as chains.
pub fn parse(v: Option<&str>) -> Result<bool, String> {
    crate::switch::parse("DCP_CUDA_BWD_CLUSTER", v, DEFAULT_CLUSTER)
}

/// `DCP_CUDA_BWD_CLUSTER` of this process's environment.
pub fn from_env() -> Result<bool, String> {
    parse(std::env::var("DCP_CUDA_BWD_CLUSTER").ok().as_deref())
}

/// Whether a (chained) launch's kv-tile lists pair up: `lists` per (work, kv tile) in work then
/// key order, its q-tile words (bit 31: partial tile). Every work has exactly two entries,
/// consecutive, and their q tile indices agree one by one (the partial flags may differ).
pub fn pairs_ok(lists: &[(u32, &[u32])]) -> bool {
    if lists.is_empty() || !lists.len().is_multiple_of(2) {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    lists.chunks(2).all(|p| {
        let ((w0, a), (w1, b)) = (p[0], p[1]);
        w0 == w1
            && seen.insert(w0)
            && !a.is_empty()
            && a.len() == b.len()
            && a.iter()
                .zip(b.iter())
                .all(|(x, y)| x & 0x7fff_ffff == y & 0x7fff_ffff)
    })
}

/// The tasks of a clustered launch from its chains (per (work, kv head) its tasks in key order,
/// two each): pair p's kv tiles at 2 p and 2 p + 1, pairs longest first; and the number of
/// pairs (the kernel's claim counter hands out pairs). `None` if some chain is not two tasks
/// with the same number of steps.
pub fn order_pairs(mut chains: Vec<Vec<TaskDesc>>) -> Option<(Vec<TaskDesc>, u32)> {
    if chains
        .iter()
        .any(|c| c.len() != 2 || c[0].tiles_n != c[1].tiles_n)
    {
        return None;
    }
    chains.sort_by_key(|c| std::cmp::Reverse(c[0].tiles_n));
    let n = u32::try_from(chains.len()).ok()?;
    Some((chains.into_iter().flatten().collect(), n))
}

/// Shared memory the clustered kernel needs beyond the sm90 backward's layout
/// ([`crate::exec::sm90_bwd_smem`]): the peer's K tile, the 64 columns of the CTA's dQ (its half at
/// head dim 128, all of them at 64; 128 keys x 64 x 16-bit; the peer's dS buffers take the dQ
/// staging's place, 32 KiB at both head dims), and 1 KiB per consumer
/// warp for the dK/dV stores through `stmatrix`, a task-counter word per consumer thread and two
/// 64-byte slots of per-task segment / DqConv copies (`B90_CL_SCRATCH`, session 16).
pub const SMEM_EXTRA: u32 = 128 * 64 * 2 + 9 * 1024 + 128;

/// Grid of a clustered launch: two CTAs per pair, at most one cluster per two SMs.
pub fn grid(pairs: u32, sm_count: u32) -> u32 {
    2 * pairs.min((sm_count / 2).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// End of the clustered kernel's shared-memory layout at head dim `d` (the offsets of
    /// kernels/attn_bwd_cluster_sm90.cu: sK, sV, two Q and two dO stages, two dS buffers, two peer
    /// dS buffers `CL_PDS`, the peer K columns, `B90_CL_SCRATCH`, two small stage blocks, two
    /// info slots, 128 bytes of mbarriers), before the up to 1 023 bytes that align its base.
    fn kernel_layout_end(d: u32) -> u32 {
        let sr = 64 * if d == 64 { 2 } else { 1 };
        let (kv, q, ds, pds) = (128 * d * 2, sr * d * 2, sr * 128 * 2, 2 * 64 * 128);
        2 * kv
            + 4 * q
            + 2 * ds
            + 2 * pds
            + 128 * 64 * 2
            + (9 * 1024 + 128)
            + 2 * (sr * 32 + 16)
            + 2 * 160
            + 128
    }

    #[test]
    fn cluster_smem_fits_the_sm90_limit_and_the_kernel_layout() {
        for d in [64, 128] {
            let host = crate::exec::sm90_bwd_smem(d) + SMEM_EXTRA;
            assert!(host <= 232_448, "d {d}: {host}");
            assert!(
                kernel_layout_end(d) + 1023 <= host,
                "d {d}: {} + 1023 > {host}",
                kernel_layout_end(d)
            );
        }
    }

    fn t(work: u32, row0: u32, head: u32, n: u32) -> TaskDesc {
        TaskDesc {
            work,
            row0,
            head,
            tiles_off: 0,
            tiles_n: n,
            pad: 0,
        }
    }

    #[test]
    fn parse_takes_0_1_and_unset() {
        assert_eq!(parse(None), Ok(DEFAULT_CLUSTER));
        assert_eq!(parse(Some("")), Ok(DEFAULT_CLUSTER));
        assert_eq!(parse(Some("1")), Ok(true));
        assert_eq!(parse(Some(" 0 ")), Ok(false));
        assert!(parse(Some("yes")).is_err());
    }

    #[test]
    fn pairs_need_two_tiles_with_the_same_q_tiles() {
        let a = [0u32, 1, 2, 0x8000_0003];
        let b = [0x8000_0000u32, 1, 2, 3];
        assert!(pairs_ok(&[(0, &a), (0, &b), (1, &a), (1, &a)]));
        // A work with one kv tile, or three.
        assert!(!pairs_ok(&[(0, &a), (0, &b), (1, &a)]));
        assert!(!pairs_ok(&[(0, &a), (0, &b), (0, &a), (1, &a)]));
        // Different q tiles (causal: the second kv tile lists fewer).
        let c = [2u32, 3];
        assert!(!pairs_ok(&[(0, &a), (0, &c)]));
        let d = [0u32, 1, 3, 2];
        assert!(!pairs_ok(&[(0, &a), (0, &d)]));
        // Pairs from two works, or a work twice.
        assert!(!pairs_ok(&[(0, &a), (1, &a)]));
        assert!(!pairs_ok(&[(0, &a), (0, &a), (0, &a), (0, &a)]));
        assert!(!pairs_ok(&[]));
    }

    #[test]
    fn order_pairs_keeps_pairs_together_longest_first() {
        let chains = vec![
            vec![t(0, 0, 0, 2), t(0, 1, 0, 2)],
            vec![t(1, 0, 1, 4), t(1, 1, 1, 4)],
        ];
        let (tasks, n) = order_pairs(chains).unwrap();
        assert_eq!(n, 2);
        let key: Vec<(u32, u32, u32)> = tasks.iter().map(|t| (t.work, t.row0, t.head)).collect();
        assert_eq!(key, vec![(1, 0, 1), (1, 1, 1), (0, 0, 0), (0, 1, 0)]);
        assert!(order_pairs(vec![vec![t(0, 0, 0, 2)]]).is_none());
        assert!(order_pairs(vec![vec![t(0, 0, 0, 2), t(0, 1, 0, 3)]]).is_none());
    }

    #[test]
    fn grid_is_two_ctas_per_pair_up_to_the_sms() {
        assert_eq!(grid(2000, 132), 132);
        assert_eq!(grid(10, 132), 20);
        assert_eq!(grid(5, 1), 2);
    }
}
