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

/// D clusters (`DCP_CUDA_BWD_CLUSTER_DSM`, kernels/attn_bwd_cluster_sm90.cu `CL_DSM`, session
/// 44): where a clustered launch's dO and O rows are one flat run each ([`crate::own::dd_flat`]),
/// the launch's first k clusters stream D = rowsum(dO ∘ O) beside the pairs instead of the D
/// pre-pass running alone before the kernel. One SM streams ~180 GB/s by bulk copies with no
/// per-chunk search (bench/gpu/sm_stream.cu), so a few SMs keep up with the pairs, which run on
/// the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dsm {
    /// The D pre-pass, as before.
    Off,
    /// k D clusters for every launch that allows them.
    Clusters(u32),
    /// k from [`dsm_auto_clusters`], where [`dsm_pays`].
    Auto,
}

/// The default of `DCP_CUDA_BWD_CLUSTER_DSM`: `auto`. Session 44's racecheck reported the stage
/// hand-offs of its first form (one arrival per consumer warp after `__syncwarp`) and the pairs'
/// slot (beside a named barrier); the form here (every consumer thread arrives; each D-loading
/// warp acquires from lane 0) passed the CPU f64 checks, memcheck and racecheck at D 64 and 128
/// and measured, against the pre-pass, +5.7 / +5.4 / +5.2 % backward on works1000 / 1 600 × 160
/// / 1 000 × 200 tokens at D 128, +5.8 / +4.3 / +3.5 % at D 64, onework ±0.1 %
/// (bench/results/gpu-x1-2026-12-03s45, call 1).
pub const DEFAULT_DSM: Dsm = Dsm::Auto;

/// Parses `DCP_CUDA_BWD_CLUSTER_DSM`: `0` off, `auto`, or a number of D clusters from 1 to 16;
/// unset or empty: [`DEFAULT_DSM`].
pub fn parse_dsm(v: Option<&str>) -> Result<Dsm, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(DEFAULT_DSM),
        Some("0") => Ok(Dsm::Off),
        Some("auto") => Ok(Dsm::Auto),
        Some(t) => match t.parse::<u32>() {
            Ok(k) if (1..=16).contains(&k) => Ok(Dsm::Clusters(k)),
            _ => Err(format!(
                "DCP_CUDA_BWD_CLUSTER_DSM={t}: expected 0, auto or a number of D clusters from 1 \
                 to 16"
            )),
        },
    }
}

/// `DCP_CUDA_BWD_CLUSTER_DSM` of this process's environment.
pub fn dsm_from_env() -> Result<Dsm, String> {
    parse_dsm(std::env::var("DCP_CUDA_BWD_CLUSTER_DSM").ok().as_deref())
}

/// Bytes of dO (and of O) per D unit: the D CTAs release D in units of this many bytes of each
/// tensor, 16 bulk copies of 32 KiB (`DSM_CHUNK`).
pub const DSM_UNIT_BYTES: u64 = 512 * 1024;

/// What a launch with D clusters passes to its pre-pass and kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DsmPlan {
    /// D clusters (the grid's first 2 k CTAs).
    pub k: u32,
    /// Pair clusters.
    pub pair_clusters: u32,
    /// log2 of the items ((row, head) pairs) per unit.
    pub unit_shift: u32,
    /// The first unit the D CTAs compute; the pre-pass computes the items below it.
    pub unit0: u32,
    /// Units of the launch (the flags the pre-pass zeroes).
    pub n_units: u32,
    /// Items the pre-pass computes: `unit0` units, at most all of them.
    pub prefix_items: u64,
}

impl DsmPlan {
    /// The kernel's D block (`dq_expect`): k, unit shift, unit0, units, items, dO, O (64-bit
    /// values as two words, low first).
    pub fn info(&self, n_items: u64, dout: u64, o: u64) -> [u32; 10] {
        let lo_hi = |x: u64| [x as u32, (x >> 32) as u32];
        let [a, b] = lo_hi(n_items);
        let [c, e] = lo_hi(dout);
        let [f, g] = lo_hi(o);
        [
            self.k,
            self.unit_shift,
            self.unit0,
            self.n_units,
            a,
            b,
            c,
            e,
            f,
            g,
        ]
    }

    /// The launch's grid: two CTAs per cluster.
    pub fn grid(&self) -> u32 {
        2 * (self.k + self.pair_clusters)
    }
}

/// The plan of a clustered launch with `k` D clusters on `sm_count` SMs: `ranges` per pair in
/// claim order the D indices its work spans ([lo, hi)), `n_items` the launch's items, `d` the
/// head dim (a power of two up to 128, as [`crate::own::dd_flat`] takes). `None` where D clusters
/// cannot serve the launch: pairs not in D-index order (the D CTAs stream units in index order,
/// so a pair claimed early could wait for a late unit), no unit left after the pre-pass's, or
/// no SMs left for the pairs. The pre-pass covers the D of the first wave of pairs and a quarter
/// of the next (their units; the D CTAs need a few microseconds for their first units).
pub fn dsm_plan(
    ranges: &[(u64, u64)],
    n_items: u64,
    d: u32,
    sm_count: u32,
    k: u32,
) -> Option<DsmPlan> {
    if k == 0 || !d.is_power_of_two() || d > 128 || ranges.is_empty() || n_items == 0 {
        return None;
    }
    if ranges.windows(2).any(|w| w[1].0 < w[0].0) {
        return None;
    }
    let slots = (sm_count / 2).max(1);
    if k >= slots {
        return None;
    }
    let pair_clusters = (slots - k).min(ranges.len() as u32);
    let unit_shift = (DSM_UNIT_BYTES / (2 * d as u64)).trailing_zeros();
    let unit = 1u64 << unit_shift;
    let n_units = n_items.div_ceil(unit);
    let first = (pair_clusters as usize + pair_clusters as usize / 4).min(ranges.len());
    let end = ranges[..first].iter().map(|r| r.1).max()?;
    let unit0 = end.div_ceil(unit).max(1);
    if unit0 >= n_units {
        return None;
    }
    Some(DsmPlan {
        k,
        pair_clusters,
        unit_shift,
        unit0: u32::try_from(unit0).ok()?,
        n_units: u32::try_from(n_units).ok()?,
        prefix_items: unit0 * unit,
    })
}

/// Puts a clustered launch's pairs (tasks 2 p and 2 p + 1) in the D-index order of their works
/// (`dd_off` per work), as D clusters need ([`dsm_plan`]: the D CTAs produce units in index
/// order). This replaces [`order_pairs`]'s longest first: the local plan lists a batch's
/// documents longest first, not in token order, and pairs of a clustered launch differ by a q
/// tile or two at most (works of 129 to 256 rows: 3 or 4 q tiles of 64), so the tail that order
/// shortened is one pair's length. Stable: the pairs of one work keep their order.
pub fn pairs_in_d_order(tasks: &mut Vec<TaskDesc>, dd_off: impl Fn(u32) -> u32) {
    if tasks.len() < 4 || !tasks.len().is_multiple_of(2) {
        return;
    }
    let mut pairs: Vec<[TaskDesc; 2]> = tasks.chunks(2).map(|c| [c[0], c[1]]).collect();
    pairs.sort_by_key(|p| dd_off(p[0].work));
    *tasks = pairs.into_iter().flatten().collect();
}

/// Plans D clusters on the pairs of `tasks` in D order ([`pairs_in_d_order`]) and keeps that
/// order only where `plan` (given the reordered tasks) returns a plan: a launch that runs
/// without D clusters keeps the claim order it came with (longest first, [`order_pairs`]),
/// which D order would have given up for nothing. An error from `plan` leaves `tasks` as they
/// came as well.
pub fn plan_in_d_order<P, E>(
    tasks: &mut Vec<TaskDesc>,
    dd_off: impl Fn(u32) -> u32,
    plan: impl FnOnce(&[TaskDesc]) -> Result<Option<P>, E>,
) -> Result<Option<P>, E> {
    let mut ordered = tasks.clone();
    pairs_in_d_order(&mut ordered, dd_off);
    let p = plan(&ordered)?;
    if p.is_some() {
        *tasks = ordered;
    }
    Ok(p)
}

/// One D SM's stream in GB/s inside the clustered kernel, for the auto choice: ~96 GB/s measured
/// where D production bounded works1000's kernel (3 D clusters, session 44; 120 GB/s in
/// bench/gpu/sm_stream.cu's miniature with no pairs beside it, 182 for the bulk copies alone).
/// The bulk copies write every byte into shared memory and the dot products read it back, so
/// the SM's ~250 GB/s of shared-memory bandwidth caps this near 125. 100 in the rule: over ten
/// shapes at both head dims (session 45, call 2: k 3-7 forced), the fewest clusters that keep
/// up at 100 GB/s were the fastest k or within 0.7 % of it; at 96 GB/s, documents of 240 tokens
/// got one cluster too many (-1.3 % at D 128, -2.7 % at D 64).
pub const DSM_SM_GBS: f64 = 100.0;

/// The pairs' rate in TFLOP/s for the auto choice (works1000's clustered kernel alone: ~566 at
/// head dim 128, ~420 at 64; bench/results/gpu-x1-2026-12-03s43).
fn pair_tflops(d: u32) -> f64 {
    if d >= 128 {
        560.0
    } else {
        420.0
    }
}

/// The D pre-pass's rate in GB/s of dO and O read (the flat pass: 4.1 TB/s on works1000).
const PASS_GBS: f64 = 4100.0;

/// D clusters for a launch of `flops` (backward, every listed tile counted whole) whose D reads
/// `d_bytes` of dO and O together, on `sm_count` SMs: the fewest with which the D SMs keep up
/// with the pairs, which run on the rest. No margin beyond that: the pre-pass's head start
/// ([`dsm_plan`]: the first wave and a quarter) absorbs the D SMs' jitter, while each cluster
/// more than needed costs its two SMs' share of the pairs, 1-2 % of the backward. The rule until
/// session 45 (90 GB/s, a quarter to spare) took one or two clusters too many on documents of
/// 160-256 tokens: 1-4 % of their backward (bench/results/gpu-x1-2026-12-03s45, call 2).
pub fn dsm_auto_clusters(d_bytes: u64, flops: f64, d: u32, sm_count: u32) -> u32 {
    let t_pairs = flops / (pair_tflops(d) * 1e12);
    let slots = (sm_count / 2).max(2);
    (1..slots)
        .find(|&k| {
            let t = t_pairs * (2 * slots) as f64 / (2 * (slots - k)) as f64;
            (2 * k) as f64 * DSM_SM_GBS * 1e9 * t >= d_bytes as f64
        })
        .unwrap_or(slots - 1)
        .min(16)
}

/// Whether `k` D clusters beat the pre-pass on such a launch: the SMs they take from the pairs
/// cost less than 0.8 of the pass's time.
pub fn dsm_pays(d_bytes: u64, flops: f64, d: u32, sm_count: u32, k: u32) -> bool {
    let t_pairs = flops / (pair_tflops(d) * 1e12);
    let slots = (sm_count / 2).max(2) as f64;
    let cost = t_pairs * k as f64 / (slots - k as f64).max(1.0);
    let pass = d_bytes as f64 / (PASS_GBS * 1e9);
    cost < 0.8 * pass
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

    #[test]
    fn dsm_switch_takes_off_auto_and_counts() {
        assert_eq!(parse_dsm(None), Ok(DEFAULT_DSM));
        assert_eq!(parse_dsm(Some(" 0 ")), Ok(Dsm::Off));
        assert_eq!(parse_dsm(Some("auto")), Ok(Dsm::Auto));
        assert_eq!(parse_dsm(Some("4")), Ok(Dsm::Clusters(4)));
        for bad in ["17", "-1", "x", "1.5"] {
            let e = parse_dsm(Some(bad)).unwrap_err();
            assert!(e.contains("DCP_CUDA_BWD_CLUSTER_DSM"), "{e}");
        }
    }

    #[test]
    fn dsm_plan_covers_the_first_wave_and_leaves_the_rest_to_the_d_ctas() {
        // works1000 at head dim 128: 2 000 pairs (two kv heads a work), 2 048 items a work.
        let ranges: Vec<(u64, u64)> = (0..2000u64)
            .map(|p| (p / 2 * 2048, p / 2 * 2048 + 2048))
            .collect();
        let p = dsm_plan(&ranges, 1000 * 2048, 128, 132, 3).unwrap();
        assert_eq!(p.unit_shift, 11); // 2 048 items of 256 bytes: 512 KiB a tensor
        assert_eq!(p.pair_clusters, 63);
        assert_eq!(p.grid(), 132);
        assert_eq!(p.n_units, 1000);
        // The first 63 + 15 pairs: works 0 ..= 38.
        assert_eq!(p.unit0, 39);
        assert_eq!(p.prefix_items, 39 * 2048);
        let info = p.info(1000 * 2048, 0x1_0000_0010, 0x2_0000_0020);
        assert_eq!(info, [3, 11, 39, 1000, 2_048_000, 0, 0x10, 1, 0x20, 2]);
        // Head dim 64: 4 096 items a unit.
        assert_eq!(
            dsm_plan(&ranges, 1000 * 2048, 64, 132, 3)
                .unwrap()
                .unit_shift,
            12
        );
        // Pairs out of D order, no SM left, nothing left after the pre-pass: none.
        let mut back = ranges.clone();
        back.swap(0, 1999);
        assert_eq!(dsm_plan(&back, 1000 * 2048, 128, 132, 3), None);
        assert_eq!(dsm_plan(&ranges, 1000 * 2048, 128, 132, 66), None);
        assert_eq!(dsm_plan(&ranges[..20], 10 * 2048, 128, 132, 3), None);
        assert_eq!(dsm_plan(&ranges, 1000 * 2048, 96, 132, 3), None);
        assert_eq!(dsm_plan(&ranges, 1000 * 2048, 128, 132, 0), None);
    }

    #[test]
    fn dsm_auto_takes_a_few_clusters_where_d_is_heavy_and_pays_only_there() {
        // Documents of `len` tokens, 8 query heads, full mask: D's bytes and the backward's
        // FLOPs over whole tiles (64 query rows x 128 keys).
        let shape = |len: u64, n: u64, d: u64| {
            let bytes = len * n * 8 * d * 2 * 2;
            let tiles = len.div_ceil(64) * len.div_ceil(128) * n * 8;
            (bytes, (tiles * 10 * 64 * 128 * d) as f64)
        };
        // The fastest forced k (within 0.7 %) of session 45's sweep (call 2: k 3-7 forced,
        // alternated x2, backward TFLOP/s; works1000 at D 64: k 3 1.068 and k 4 1.061 x off).
        for (len, n, d, want) in [
            (256, 1000, 128, 5),
            (160, 1600, 128, 4),
            (200, 1000, 128, 4),
            (240, 1100, 128, 4),
            (256, 1000, 64, 4),
            (160, 1600, 64, 3),
            (200, 1000, 64, 3),
            (240, 1100, 64, 3),
        ] {
            let (bytes, flops) = shape(len, n, d);
            let k = dsm_auto_clusters(bytes, flops, d as u32, 132);
            assert_eq!(k, want, "{n} x {len} tokens, D {d}");
            assert!(
                dsm_pays(bytes, flops, d as u32, 132, k),
                "{n} x {len}, D {d}"
            );
        }
        // One long sequence's worth of FLOPs per D byte: the pass is cheaper.
        assert!(!dsm_pays(134_217_728, 45e12, 128, 132, 1));
    }

    #[test]
    fn pairs_go_in_d_order() {
        // Works 0, 1, 2 at D offsets 200, 0, 100; two kv heads each.
        let off = |w: u32| [200u32, 0, 100][w as usize];
        let mut tasks = vec![
            t(0, 0, 0, 2),
            t(0, 1, 0, 2),
            t(0, 0, 1, 2),
            t(0, 1, 1, 2),
            t(1, 0, 0, 2),
            t(1, 1, 0, 2),
            t(2, 0, 0, 2),
            t(2, 1, 0, 2),
        ];
        pairs_in_d_order(&mut tasks, off);
        let key: Vec<(u32, u32, u32)> = tasks.iter().map(|t| (t.work, t.row0, t.head)).collect();
        assert_eq!(
            key,
            vec![
                (1, 0, 0),
                (1, 1, 0),
                (2, 0, 0),
                (2, 1, 0),
                (0, 0, 0),
                (0, 1, 0),
                (0, 0, 1),
                (0, 1, 1)
            ]
        );
        // Different lengths: D order too.
        let mut mixed = vec![t(0, 0, 0, 3), t(0, 1, 0, 3), t(1, 0, 0, 2), t(1, 1, 0, 2)];
        pairs_in_d_order(&mut mixed, |w| [100u32, 0][w as usize]);
        let key: Vec<u32> = mixed.iter().map(|t| t.work).collect();
        assert_eq!(key, vec![1, 1, 0, 0]);
    }

    #[test]
    fn d_order_is_kept_only_where_d_clusters_are_planned() {
        let off = |w: u32| [100u32, 0][w as usize];
        // The claim order (longest first): work 0's pair, then work 1's.
        let mut tasks = vec![t(0, 0, 0, 3), t(0, 1, 0, 3), t(1, 0, 0, 2), t(1, 1, 0, 2)];
        let works = |ts: &[TaskDesc]| ts.iter().map(|t| t.work).collect::<Vec<_>>();
        // The plan sees the D order in either case.
        let none: Result<Option<()>, ()> = plan_in_d_order(&mut tasks, off, |ts| {
            assert_eq!(works(ts), vec![1, 1, 0, 0]);
            Ok(None)
        });
        assert_eq!(none, Ok(None));
        assert_eq!(works(&tasks), vec![0, 0, 1, 1], "no plan: claim order kept");
        let err: Result<Option<()>, &str> = plan_in_d_order(&mut tasks, off, |_| Err("bad"));
        assert_eq!(err, Err("bad"));
        assert_eq!(works(&tasks), vec![0, 0, 1, 1], "error: claim order kept");
        let some: Result<Option<u32>, ()> = plan_in_d_order(&mut tasks, off, |_| Ok(Some(7)));
        assert_eq!(some, Ok(Some(7)));
        assert_eq!(works(&tasks), vec![1, 1, 0, 0], "plan: D order");
    }
}
