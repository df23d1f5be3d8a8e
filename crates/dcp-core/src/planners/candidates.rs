//! Plan-free predictions of the static candidates (`ring`, `zigzag`, `local`) under the planner's
//! cost model, so `dcp` compares against them without building their plans.
//!
//! Each function replays, on per-(device, step) aggregates, exactly the instruction sequence the
//! corresponding planner emits and the clock rules of [`crate::cost::predict`] (a group starts
//! when its last device launches it; per device, α plus the larger of its intra and inter-node
//! volumes, inter-node volume also shared per node). The attended pairs of a work come from the
//! mask's closed-form tile counts instead of its row ranges. Cost: O(devices² · sequences) tile
//! counts for the ring planners — against O(devices² · sequences) *works with row ranges* to
//! build the plan — and O(sequences) for `local`. Tests compare every prediction with `predict`
//! on the built plan. The head-parallel candidates (`ulysses`, `usp`) likewise
//! ([`predict_head_parallel`]): all-to-all and ring volumes per device, and per ring step the
//! attended pairs of (head group, query part, KV group) per sequence from its query strips
//! against the KV blocks they reach (a product where every row attends the whole block, a tile
//! count only at the mask's edges: O(sequences · R²) cheap steps); `dcp` predicts them only above
//! [`compute_lower_bound_ms`]. With a fitted kernel model (attention costed by the CTA tiles of
//! row ranges) every candidate is built and predicted exactly.

use crate::cost::{CostModel, Prediction};
use crate::error::PlanningError;
use crate::mask::CompiledMask;
use crate::plan::Plan;
use crate::planners::local::assign_local;
use crate::planners::ring::{chunk_layout, Piece};
use crate::planners::ulysses::{check_ulysses, plan_ulysses};
use crate::planners::usp::{plan_usp, usp_head_degree};
use crate::planners::PlannerKind;
use crate::spec::{BatchSpec, Topology};

/// Bytes of `tokens` rows of `heads` × `width` elements of `size` bytes.
fn nbytes(tokens: u32, heads: u32, width: u32, size: u64) -> f64 {
    (tokens as u64 * heads as u64 * width as u64 * size) as f64
}

/// The per-device clocks of one program.
struct Clocks<'a> {
    topo: &'a Topology,
    cost: &'a CostModel,
    compute: Vec<f64>,
    comm: Vec<f64>,
}

impl<'a> Clocks<'a> {
    fn new(topo: &'a Topology, cost: &'a CostModel, n: usize) -> Self {
        Clocks {
            topo,
            cost,
            compute: vec![0.0; n],
            comm: vec![0.0; n],
        }
    }

    /// One ring group in which every device sends `out[i]` bytes to device i+1 (and so receives
    /// `out[i−1]`); returns each device's completion time and advances its comm clock.
    fn ring_group(&mut self, out: &[f64]) -> Vec<f64> {
        let n = out.len();
        let t = self.topo;
        let starts: Vec<f64> = (0..n).map(|i| self.compute[i].max(self.comm[i])).collect();
        let latest = starts.iter().copied().fold(0.0, f64::max);
        let mut node = vec![(0.0f64, 0.0f64); t.nodes as usize];
        let crosses = |a: usize, b: usize| !t.same_node(a as u32, b as u32);
        for i in 0..n {
            let next = (i + 1) % n;
            if crosses(i, next) {
                node[t.node_of(i as u32) as usize].0 += out[i];
                node[t.node_of(next as u32) as usize].1 += out[i];
            }
        }
        (0..n)
            .map(|i| {
                let (next, prev) = ((i + 1) % n, (i + n - 1) % n);
                let (o_inter, i_inter) = (crosses(i, next), crosses(prev, i));
                let split = |x: f64, inter: bool| if inter { (0.0, x) } else { (x, 0.0) };
                let (oa, ob) = split(out[i], o_inter);
                let (ia, ib) = split(out[prev], i_inter);
                let nd = node[t.node_of(i as u32) as usize];
                let inter = (ob.max(ib) / (t.inter_gbps * 1e9))
                    .max(nd.0.max(nd.1) / (t.node_inter_gbps() * 1e9));
                let end = latest + self.cost.group_s(t, oa.max(ia), o_inter || i_inter, inter);
                self.comm[i] = end;
                end
            })
            .collect()
    }

    fn wait(&mut self, i: usize, at: f64) {
        self.compute[i] = self.compute[i].max(at);
    }

    /// Waits for device `i`'s completion of a group, if there was one.
    fn wait_on(&mut self, i: usize, ends: Option<&Vec<f64>>) {
        if let Some(x) = ends {
            self.wait(i, x[i]);
        }
    }

    fn end_ms(&self) -> f64 {
        self.compute
            .iter()
            .zip(&self.comm)
            .map(|(a, b)| a.max(*b))
            .fold(0.0, f64::max)
            * 1e3
    }
}

/// Attended pairs per head of query piece `q` against KV piece `k` (same sequence).
fn piece_pairs(mask: &CompiledMask, q: &Piece, k: &Piece) -> u64 {
    let mut n = 0;
    for &(qs, ql) in &q.spans {
        for &(ks, kl) in &k.spans {
            n += mask.count_tile(qs, qs + ql, ks, ks + kl);
        }
    }
    n
}

/// Predicted forward and backward times of the `ring` (`zigzag = false`) or `zigzag` plan of
/// `batch`, without building it.
pub fn predict_ring(
    batch: &BatchSpec,
    topo: &Topology,
    cost: &CostModel,
    zigzag: bool,
) -> Prediction {
    if cost.is_fitted() {
        // Measured models need the plan's works and groups: build it.
        return match crate::planners::ring::plan_ring(batch, topo, zigzag) {
            Ok(p) => crate::cost::predict(&p, cost),
            Err(_) => Prediction {
                fwd_ms: f64::INFINITY,
                bwd_ms: f64::INFINITY,
            },
        };
    }
    let n = topo.n_devices() as usize;
    let m = batch.model;
    let (h, hkv, d, e) = (m.heads, m.kv_heads, m.head_dim, m.dtype.size());
    let masks: Vec<CompiledMask> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
    let pieces = chunk_layout(batch, n as u32, zigzag);
    let tokens: Vec<u32> = pieces
        .iter()
        .map(|p| p.iter().map(Piece::len).sum())
        .collect();
    // Piece of each sequence on each device.
    let mut at: Vec<Vec<Option<usize>>> = vec![vec![None; n]; batch.seqs.len()];
    for (dev, ps) in pieces.iter().enumerate() {
        for (k, p) in ps.iter().enumerate() {
            at[p.seq as usize][dev] = Some(k);
        }
    }
    let src = |i: usize, s: usize| (i + n - s % n) % n;
    // Per (device, step): attended FLOPs and whether the step has its work (then also its merge
    // of the whole partial output).
    let mut flops = vec![0.0f64; n * n];
    let mut works = vec![0usize; n * n];
    let fl = crate::flops::attn_fwd_flops(h as f64, d);
    for (si, on) in at.iter().enumerate() {
        for i in 0..n {
            let Some(qi) = on[i] else { continue };
            let qp = &pieces[i][qi];
            for s in 0..n {
                let j = src(i, s);
                let Some(kj) = on[j] else { continue };
                let att = piece_pairs(&masks[si], qp, &pieces[j][kj]);
                if att > 0 {
                    flops[i * n + s] += fl * att as f64;
                    works[i * n + s] = 1;
                }
            }
        }
    }
    let merge_s: Vec<f64> = (0..n * n)
        .map(|x| {
            let t = tokens[x / n];
            if works[x] > 0 {
                cost.mem_s(3.0 * nbytes(t, h, d, 4))
            } else {
                0.0
            }
        })
        .collect();
    let kv_out = |s: usize, size: u64| -> Vec<f64> {
        (0..n)
            .map(|i| nbytes(tokens[src(i, s)], hkv, 2 * d, size))
            .collect()
    };

    // Forward: fills, then per step the next KV hop, the works, their merges, the wait.
    let mut f = Clocks::new(topo, cost, n);
    for i in 0..n {
        f.compute[i] += cost.mem_s(nbytes(tokens[i], h, d, 4));
        f.compute[i] += cost.mem_s(nbytes(tokens[i], h, 1, 4));
    }
    for s in 0..n {
        let ends = (s + 1 < n).then(|| f.ring_group(&kv_out(s, e)));
        for i in 0..n {
            if works[i * n + s] > 0 {
                f.compute[i] += cost.attn_fwd_s(flops[i * n + s], works[i * n + s]);
            }
            f.compute[i] += merge_s[i * n + s];
            if let Some(ends) = &ends {
                f.wait(i, ends[i]);
            }
        }
    }
    for i in 0..n {
        f.compute[i] += cost.mem_s(nbytes(tokens[i], h, d, 4 + e));
        f.compute[i] += cost.mem_s(nbytes(tokens[i], h, 1, 8));
    }

    // Backward: KV hop, waits for the previous KV and dKV hops, the works, the dKV hop.
    let mut b = Clocks::new(topo, cost, n);
    for i in 0..n {
        b.compute[i] += cost.mem_s(nbytes(tokens[i], h, d, 4));
        b.compute[i] += cost.mem_s(nbytes(tokens[i], hkv, 2 * d, 4));
    }
    let (mut kv_end, mut dkv_end): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    for s in 0..n {
        let this_kv = (s + 1 < n).then(|| b.ring_group(&kv_out(s, e)));
        for i in 0..n {
            if s > 0 {
                b.wait_on(i, kv_end.as_ref());
                b.wait_on(i, dkv_end.as_ref());
            }
            if works[i * n + s] > 0 {
                b.compute[i] += cost.attn_bwd_s(flops[i * n + s], works[i * n + s]);
            }
        }
        kv_end = this_kv;
        if n > 1 {
            dkv_end = Some(b.ring_group(&kv_out(s, 4)));
        }
    }
    for i in 0..n {
        b.wait_on(i, dkv_end.as_ref());
        b.compute[i] += cost.mem_s(nbytes(tokens[i], hkv, 2 * d, 4 + e));
        b.compute[i] += cost.mem_s(nbytes(tokens[i], h, d, 4 + e));
    }
    Prediction {
        fwd_ms: f.end_ms(),
        bwd_ms: b.end_ms(),
    }
}

/// The `local` candidate: its predicted times and its compute imbalance (max/mean of the
/// devices' attended FLOPs), without building the plan.
pub fn predict_local(
    batch: &BatchSpec,
    topo: &Topology,
    cost: &CostModel,
    budget_tokens: Option<u64>,
) -> Result<(Prediction, f64), PlanningError> {
    if cost.is_fitted() {
        let plan = crate::planners::local::plan_local(batch, topo, budget_tokens)?;
        let imb = crate::stats::plan_stats(&plan).compute_imbalance;
        return Ok((crate::cost::predict(&plan, cost), imb));
    }
    let assign = assign_local(batch, topo, budget_tokens)?;
    let m = batch.model;
    let (h, hkv, d, e) = (m.heads, m.kv_heads, m.head_dim, m.dtype.size());
    let fl = crate::flops::attn_fwd_flops(h as f64, d);
    let (mut fwd, mut bwd, mut dev_flops) = (0.0f64, 0.0f64, Vec::new());
    for seqs in &assign {
        let t: u32 = seqs.iter().map(|&s| batch.seqs[s].len).sum();
        let (mut flops, mut works, mut f) = (0.0f64, 0usize, 0.0f64);
        for &s in seqs {
            let len = batch.seqs[s].len;
            let att = batch.seqs[s].mask.compile(len).count_all();
            if att > 0 {
                flops += fl * att as f64;
                works += 1;
            } else {
                // No work writes this sequence's O / LSE: the plan fills them.
                f += cost.mem_s(nbytes(len, h, d, e)) + cost.mem_s(nbytes(len, h, 1, 4));
            }
        }
        let mut b = cost.mem_s(nbytes(t, h, d, 4));
        b += cost.mem_s(nbytes(t, hkv, 2 * d, 4));
        if works > 0 {
            f += cost.attn_fwd_s(flops, works);
            b += cost.attn_bwd_s(flops, works);
        }
        if t > 0 {
            b += cost.mem_s(nbytes(t, h, d, 4 + e));
            b += cost.mem_s(nbytes(t, hkv, 2 * d, 4 + e));
        }
        fwd = fwd.max(f);
        bwd = bwd.max(b);
        dev_flops.push(flops);
    }
    let mean = dev_flops.iter().sum::<f64>() / dev_flops.len().max(1) as f64;
    let imb = if mean == 0.0 {
        1.0
    } else {
        dev_flops.iter().copied().fold(0.0, f64::max) / mean
    };
    Ok((
        Prediction {
            fwd_ms: fwd * 1e3,
            bwd_ms: bwd * 1e3,
        },
        imb,
    ))
}

/// A lower bound (ms, forward + backward) of every plan of `total_flops` attended FLOPs on `n`
/// devices under `cost`: perfect compute balance, no launch overheads, no communication. The
/// head-parallel candidates (`ulysses`, `usp`) are predicted only above it.
pub fn compute_lower_bound_ms(cost: &CostModel, total_flops: f64, n: u32) -> f64 {
    let nf = n.max(1) as f64;
    let (fr, br) = cost.peak_tflops();
    let f = total_flops / nf / (fr * 1e12);
    let b = crate::flops::BWD_FLOP_FACTOR * total_flops / nf / (br * 1e12);
    (f + b) * 1e3
}

/// A lower bound of [`predict_ring`] (ms, forward + backward) in O(devices + sequences): perfect
/// compute balance, and per device the serialized KV (and fp32 dKV) hops of its ring, each at
/// least α plus its bytes over the link it crosses.
pub fn ring_lower_bound_ms(
    batch: &BatchSpec,
    topo: &Topology,
    cost: &CostModel,
    total_flops: f64,
    zigzag: bool,
) -> f64 {
    let n = topo.n_devices() as usize;
    if cost.is_fitted() {
        // A measured curve has no α/β split to bound hops with: compute alone.
        return compute_lower_bound_ms(cost, total_flops, n as u32);
    }
    let m = batch.model;
    let (hkv, d, e) = (m.kv_heads, m.head_dim, m.dtype.size());
    // Tokens per device without building pieces: the chunk rule of `chunk_layout`.
    let mut tokens = vec![0u64; n];
    let nc = if zigzag { 2 * n as u64 } else { n as u64 };
    for s in &batch.seqs {
        let l = s.len as u64;
        let chunk = |c: u64| (c + 1) * l / nc - c * l / nc;
        for (i, t) in tokens.iter_mut().enumerate() {
            *t += chunk(i as u64);
            if zigzag {
                *t += chunk(2 * n as u64 - 1 - i as u64);
            }
        }
    }
    let nf = n as f64;
    let comp_f = total_flops / nf / (cost.attn_fwd_tflops * 1e12);
    let comp_b = crate::flops::BWD_FLOP_FACTOR * total_flops / nf / (cost.attn_bwd_tflops * 1e12);
    if n == 1 {
        return compute_lower_bound_ms(cost, total_flops, 1);
    }
    // Device i sends, at step s, the KV of device (i − s) mod n: forward, every device's tokens
    // but those of i + 1 (n − 1 hops); backward the same KV hops and n fp32 dKV hops (all tokens).
    let total: u64 = tokens.iter().sum();
    let row = |size: u64| (2 * hkv as u64 * d as u64 * size) as f64;
    let (mut comm_f, mut comm_b) = (0.0f64, 0.0f64);
    for i in 0..n {
        let next = (i + 1) % n;
        let (bw, lat) = if topo.same_node(i as u32, next as u32) {
            (topo.intra_gbps, topo.intra_latency_us)
        } else {
            (topo.inter_gbps, topo.inter_latency_us)
        };
        let kv_tok = (total - tokens[next]) as f64;
        let f = (nf - 1.0) * lat * 1e-6 + kv_tok * row(e) / (bw * 1e9);
        comm_f = comm_f.max(f);
        comm_b = comm_b.max(f + nf * lat * 1e-6 + total as f64 * row(4) / (bw * 1e9));
    }
    (comp_f.max(comm_f) + comp_b.max(comm_b)) * 1e3
}

/// Bytes of one communication group on each device, as the predictor accumulates them from the
/// group's sends ([`crate::cost::predict`]): `has` marks the devices some send starts or ends at.
#[derive(Clone, Copy, Default)]
struct Acc {
    has: bool,
    out_intra: f64,
    out_inter: f64,
    in_intra: f64,
    in_inter: f64,
    inter: bool,
}

/// The sends of one group (every device of the plan takes part in it).
struct Sends<'a> {
    topo: &'a Topology,
    acc: Vec<Acc>,
}

impl<'a> Sends<'a> {
    fn new(topo: &'a Topology, n: usize) -> Self {
        Sends {
            topo,
            acc: vec![Acc::default(); n],
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: f64) {
        let inter = !self.topo.same_node(from as u32, to as u32);
        for (dev, out) in [(from, true), (to, false)] {
            let a = &mut self.acc[dev];
            a.has = true;
            a.inter |= inter;
            *match (out, inter) {
                (true, true) => &mut a.out_inter,
                (true, false) => &mut a.out_intra,
                (false, true) => &mut a.in_inter,
                (false, false) => &mut a.in_intra,
            } += bytes;
        }
    }
}

impl Clocks<'_> {
    /// One group that every device reaches (its `Comm` of one tag), with the predictor's rules
    /// in its order of devices: the first device's completion waits for the latest launch among
    /// itself and the devices with sends, whose per-node inter-node bytes it also shares; once
    /// the last of those completed, each remaining device (no sends) completes alone. Returns
    /// each device's completion time and advances its comm clock.
    fn group(&mut self, acc: &[Acc]) -> Vec<f64> {
        let t = self.topo;
        let n = acc.len();
        let starts: Vec<f64> = (0..n).map(|i| self.compute[i].max(self.comm[i])).collect();
        let mut node = vec![(0.0f64, 0.0f64); t.nodes as usize];
        for (i, a) in acc.iter().enumerate().filter(|x| x.1.has) {
            let x = &mut node[t.node_of(i as u32) as usize];
            x.0 += a.out_inter;
            x.1 += a.in_inter;
        }
        let mut remaining = acc.iter().filter(|a| a.has).count();
        // (latest launch, whether the node sums of the senders apply) of the current round.
        let mut cur: Option<(f64, bool)> = None;
        let mut ends = Vec::with_capacity(n);
        for d in 0..n {
            let (latest, shared) = *cur.get_or_insert_with(|| {
                let l = (0..n)
                    .filter(|&i| remaining > 0 && acc[i].has)
                    .map(|i| starts[i])
                    .fold(starts[d], f64::max);
                (l, remaining > 0)
            });
            let g = acc[d];
            if g.has {
                remaining -= 1;
            }
            if remaining == 0 {
                cur = None;
            }
            let nd = if shared {
                node[t.node_of(d as u32) as usize]
            } else {
                (0.0, 0.0)
            };
            let inter = (g.out_inter.max(g.in_inter) / (t.inter_gbps * 1e9))
                .max(nd.0.max(nd.1) / (t.node_inter_gbps() * 1e9));
            let end = latest
                + self
                    .cost
                    .group_s(t, g.out_intra.max(g.in_intra), g.inter, inter);
            self.comm[d] = end;
            ends.push(end);
        }
        ends
    }
}

/// One tensor of an all-to-all of the head-parallel planners: heads per KV head, row width,
/// element size, and whether only members of the same query part exchange it.
#[derive(Clone, Copy)]
struct Tensor {
    per_kv: u32,
    width: u32,
    size: u64,
    q_like: bool,
}

/// Reused temporaries of [`strip_counts`].
#[derive(Default)]
struct StripScratch {
    common: Vec<(u32, u32)>,
    extents: Vec<(u32, u32)>,
}

/// Attended pairs of query rows `[qa, qb)` against each key block `[bounds[j], bounds[j+1])`,
/// reported as `add(j, pairs)` for the blocks with any: blocks outside every key extent of the
/// rows are skipped, blocks inside keys every row attends cost a product, only the rest a
/// tile count. (Exact: the same sum as `count_tile` on every block.)
fn strip_counts(
    mask: &CompiledMask,
    qa: u32,
    qb: u32,
    bounds: &[u32],
    sc: &mut StripScratch,
    mut add: impl FnMut(usize, u64),
) {
    mask.common_keys_into(qa, qb, &mut sc.common);
    mask.key_extents_into(qa, qb, &mut sc.extents);
    sc.extents.sort_unstable();
    let blocks = bounds.len() - 1;
    // Next block not yet counted (merged extents may meet one block twice).
    let mut next = 0usize;
    for x in 0..sc.extents.len() {
        let (s, e) = sc.extents[x];
        // First block ending after s.
        let mut j = bounds[1..].partition_point(|&b| b <= s).max(next);
        while j < blocks && bounds[j] < e {
            let (ka, kb) = (bounds[j], bounds[j + 1]);
            if ka < kb {
                let full = sc.common.iter().any(|&(cs, ce)| cs <= ka && kb <= ce);
                let pairs = if full {
                    (qb - qa) as u64 * (kb - ka) as u64
                } else {
                    mask.count_tile(qa, qb, ka, kb)
                };
                if pairs > 0 {
                    add(j, pairs);
                }
            }
            j += 1;
        }
        next = next.max(j);
    }
}

/// The H×R grid of [`crate::usp`] as aggregates: tokens per device, member shares, and the
/// attended pairs per head of every (group, query part, KV group).
struct GridModel {
    h: usize,
    r: usize,
    tokens: Vec<u32>,
    shares: Vec<crate::usp::Share>,
    /// `[(ring · parts + part) · r + kv_ring]`.
    attended: Vec<u64>,
}

impl GridModel {
    fn new(batch: &BatchSpec, n: u32, h: u32) -> Self {
        let (hh, r) = (h as usize, (n / h) as usize);
        let shares: Vec<_> = (0..h)
            .map(|j| crate::usp::share(&batch.model, h, j))
            .collect();
        let parts = shares[0].parts as usize;
        let nc = 2 * n as u64;
        let mut tokens = vec![0u32; n as usize];
        let mut attended = vec![0u64; r * parts * r];
        let mut scratch = StripScratch::default();
        // Query strips: the chunks of one head group (parts = 1) or of one device, each of
        // them in one (group, part); KV blocks: the 2R runs of H chunks, block j of group
        // j or 2R−1−j.
        let gq = if parts == 1 { hh } else { 1 };
        for s in &batch.seqs {
            let l = s.len as u64;
            // Chunk c of the zigzag layout ([`chunk_layout`]): tokens [c·l/2n, (c+1)·l/2n).
            let at = |c: u64| (c * l / nc) as u32;
            for (i, t) in tokens.iter_mut().enumerate() {
                let i = i as u64;
                *t += at(i + 1) - at(i) + at(nc - i) - at(nc - 1 - i);
            }
            let bounds: Vec<u32> = (0..=2 * r as u64).map(|j| at(j * hh as u64)).collect();
            let mask = s.mask.compile(s.len);
            for st in 0..nc / gq as u64 {
                let (c, qa, qb) = (st * gq as u64, at(st * gq as u64), at((st + 1) * gq as u64));
                if qa == qb {
                    continue;
                }
                let dev = (if c < n as u64 { c } else { nc - 1 - c }) as usize;
                let (ring, member) = (dev / hh, dev % hh);
                let u = ring * parts + member % parts;
                strip_counts(&mask, qa, qb, &bounds, &mut scratch, |j, pairs| {
                    let kr = if j < r { j } else { 2 * r - 1 - j };
                    attended[u * r + kr] += pairs;
                });
            }
        }
        GridModel {
            h: hh,
            r,
            tokens,
            shares,
            attended,
        }
    }

    fn dev(&self, ring: usize, member: usize) -> usize {
        ring * self.h + member
    }
    /// Tokens of head group `ring`.
    fn kv_rows(&self, ring: usize) -> u32 {
        (0..self.h).map(|j| self.tokens[self.dev(ring, j)]).sum()
    }
    /// Query rows member `me` of group `ring` computes.
    fn q_rows(&self, ring: usize, me: usize) -> u32 {
        let sh = self.shares[me];
        (0..self.h)
            .filter(|&j| j as u32 % sh.parts == sh.part)
            .map(|j| self.tokens[self.dev(ring, j)])
            .sum()
    }
    /// Attended pairs per head of member `me` of group `ring` at ring step `s`.
    fn step_attended(&self, ring: usize, me: usize, s: usize) -> u64 {
        let sh = self.shares[me];
        let u = ring * sh.parts as usize + sh.part as usize;
        self.attended[u * self.r + (ring + self.r - s) % self.r]
    }

    /// Every transfer of one all-to-all of `tensors` inside every head group, scatter from the
    /// caller layout to the head split (`to_split`) or gather back: `f(from, to, rows, heads,
    /// tensor)`. Scatter: `from` sends its own rows of `to`'s heads; gather: `from` sends `to`'s
    /// rows of its own heads.
    fn a2a_each(
        &self,
        tensors: &[Tensor],
        to_split: bool,
        mut f: impl FnMut(usize, usize, u32, u32, &Tensor),
    ) {
        for ring in 0..self.r {
            for me in 0..self.h {
                let (from, t_me) = (self.dev(ring, me), self.tokens[self.dev(ring, me)]);
                for j in (0..self.h).filter(|&j| j != me) {
                    let (to, t_j) = (self.dev(ring, j), self.tokens[self.dev(ring, j)]);
                    let (sm, sj) = (self.shares[me], self.shares[j]);
                    for t in tensors {
                        if t.q_like && sm.part != sj.part {
                            continue;
                        }
                        let (rows, heads) = if to_split {
                            (t_me, sj.kvn * t.per_kv)
                        } else {
                            (t_j, sm.kvn * t.per_kv)
                        };
                        f(from, to, rows, heads, t);
                    }
                }
            }
        }
    }

    /// The sends of one all-to-all of `tensors` ([`GridModel::a2a_each`]).
    fn a2a(&self, topo: &Topology, tensors: &[Tensor], to_split: bool) -> Vec<Acc> {
        let mut s = Sends::new(topo, self.tokens.len());
        self.a2a_each(tensors, to_split, |from, to, rows, heads, t| {
            if rows > 0 {
                s.send(from, to, nbytes(rows, heads, t.width, t.size));
            }
        });
        s.acc
    }

    /// Seconds of staging copies per device of the all-to-all [`GridModel::a2a`] of `tensors`:
    /// a share of the caller layout (all `kv_heads × per_kv` heads of its rows) is a strided
    /// region, so the executor packs it before the group when scattering (`to_split`, on the
    /// sender) and unpacks it after the group's wait when gathering (on the receiver; see
    /// [`crate::plan::BufferDecl::staged_bytes`]); the head-split side is contiguous. One copy
    /// launch per (peer, tensor), reading and writing its bytes.
    fn a2a_staging(
        &self,
        tensors: &[Tensor],
        to_split: bool,
        kv_heads: u32,
        cost: &CostModel,
    ) -> Vec<f64> {
        let mut out = vec![0.0; self.tokens.len()];
        self.a2a_each(tensors, to_split, |from, to, rows, heads, t| {
            if rows > 1 && heads < kv_heads * t.per_kv {
                out[if to_split { from } else { to }] +=
                    cost.mem_s(2.0 * nbytes(rows, heads, t.width, t.size));
            }
        });
        out
    }

    /// The sends of ring step `s`: every member passes the KV-layout buffer (elements of
    /// `size` bytes) of group `ring − s` to the same member of the next group.
    fn ring(&self, topo: &Topology, s: usize, width: u32, size: u64) -> Vec<Acc> {
        let mut out = Sends::new(topo, self.tokens.len());
        for ring in 0..self.r {
            let rows = self.kv_rows((ring + self.r - s % self.r) % self.r);
            for me in 0..self.h {
                let bytes = nbytes(rows, self.shares[me].kvn, width, size);
                out.send(self.dev(ring, me), self.dev((ring + 1) % self.r, me), bytes);
            }
        }
        out.acc
    }
}

/// Predicted times of the H×R grid plan of [`crate::usp`] (`h` valid for the batch and
/// topology), replaying its programs' instruction sequence on per-device aggregates: the
/// all-to-all and ring byte volumes, the element-wise instructions' bytes, and per ring step
/// the attended pairs of the step's one work from [`strip_counts`]. Cost: O(sequences · R²)
/// (× H with replicated KV heads) block steps, tile counts only for blocks at the mask's edges,
/// plus O(devices · H) for the all-to-alls and O(devices · R) for the ring groups, where
/// building the plan computes row ranges of every (device, step, piece).
fn predict_grid(batch: &BatchSpec, topo: &Topology, cost: &CostModel, h: u32) -> Prediction {
    let n = topo.n_devices();
    let nn = n as usize;
    let m = batch.model;
    let (d, e, g) = (m.head_dim, m.dtype.size(), m.group());
    let gm = GridModel::new(batch, n, h);
    let r = gm.r;
    let ten = |per_kv, width, size, q_like| Tensor {
        per_kv,
        width,
        size,
        q_like,
    };
    let (tq, tkv, tlse) = (
        ten(g, d, e, true),
        ten(1, 2 * d, e, false),
        ten(g, 1, 4, true),
    );
    // Per device: (ring, member, own tokens, query heads, KV heads, query rows, KV rows).
    let dims: Vec<(usize, usize, u32, u32, u32, u32, u32)> = (0..nn)
        .map(|dv| {
            let (ring, me) = (dv / gm.h, dv % gm.h);
            let kvn = gm.shares[me].kvn;
            let t = gm.tokens[dv];
            (
                ring,
                me,
                t,
                kvn * g,
                kvn,
                gm.q_rows(ring, me),
                gm.kv_rows(ring),
            )
        })
        .collect();
    let flops = |dv: usize, s: usize| {
        let (ring, me, _, qn, ..) = dims[dv];
        let att = gm.step_attended(ring, me, s);
        (att > 0).then(|| crate::flops::attn_fwd_flops(qn as f64 * att as f64, d))
    };
    // The caller-layout ↔ head-split copy of the device's own rows of each tensor.
    let own_copies = |c: &mut Clocks, dv: usize, tensors: &[Tensor]| {
        let (_, me, t, ..) = dims[dv];
        if t > 0 {
            for x in tensors {
                let b = nbytes(t, gm.shares[me].kvn * x.per_kv, x.width, x.size);
                c.compute[dv] += cost.mem_s(b + b);
            }
        }
    };

    // Forward: Q and KV in; per ring step the next KV hop, the work and its merge, the wait;
    // O and LSE out.
    let kvh = m.kv_heads;
    let packs = |c: &mut Clocks, tensors: &[Tensor]| {
        for (dv, s) in gm
            .a2a_staging(tensors, true, kvh, cost)
            .into_iter()
            .enumerate()
        {
            c.compute[dv] += s;
        }
    };
    let mut f = Clocks::new(topo, cost, nn);
    packs(&mut f, &[tq, tkv]);
    let ends = f.group(&gm.a2a(topo, &[tq, tkv], true));
    for dv in 0..nn {
        own_copies(&mut f, dv, &[tq, tkv]);
        f.wait(dv, ends[dv]);
        if r > 1 {
            let (_, _, _, qn, _, q_rows, _) = dims[dv];
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, 4));
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, 1, 4));
        }
    }
    for s in 0..r {
        let ends = (s + 1 < r).then(|| f.group(&gm.ring(topo, s, 2 * d, e)));
        for dv in 0..nn {
            let (_, _, _, qn, _, q_rows, _) = dims[dv];
            if let Some(fl) = flops(dv, s) {
                f.compute[dv] += cost.attn_fwd_s(fl, 1);
                if r > 1 {
                    f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, 4) * 3.0);
                }
            }
            if let Some(ends) = &ends {
                f.wait(dv, ends[dv]);
            }
        }
    }
    for dv in 0..nn {
        let (_, _, _, qn, _, q_rows, _) = dims[dv];
        if r > 1 {
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, 4) + nbytes(q_rows, qn, d, e));
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, 1, 4) + nbytes(q_rows, qn, 1, 4));
        } else if flops(dv, 0).is_none() && q_rows > 0 {
            // No work wrote the outputs: O = 0 and LSE = −∞ fills.
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, e));
            f.compute[dv] += cost.mem_s(nbytes(q_rows, qn, 1, 4));
        }
    }
    let ends = f.group(&gm.a2a(topo, &[tq, tlse], false));
    let unpack = gm.a2a_staging(&[tq, tlse], false, kvh, cost);
    for (dv, end) in ends.into_iter().enumerate() {
        own_copies(&mut f, dv, &[tq, tlse]);
        f.wait(dv, end);
        f.compute[dv] += unpack[dv];
    }

    // Backward: dO in (Q, KV, O and LSE stay head-split from the forward); per step the KV
    // hop, the waits for the previous KV and dKV hops, the work, the dKV hop; dQ and dKV out
    // (fp32 partials with replicated KV heads).
    let mut b = Clocks::new(topo, cost, nn);
    let inputs = [tq];
    packs(&mut b, &inputs);
    let ends = b.group(&gm.a2a(topo, &inputs, true));
    for dv in 0..nn {
        let (_, _, _, qn, kvn, q_rows, k_rows) = dims[dv];
        b.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, 4));
        b.compute[dv] += cost.mem_s(nbytes(k_rows, kvn, 2 * d, 4));
        own_copies(&mut b, dv, &inputs);
        b.wait(dv, ends[dv]);
    }
    let (mut kv_end, mut dkv_end): (Option<Vec<f64>>, Option<Vec<f64>>) = (None, None);
    for s in 0..r {
        let this_kv = (s + 1 < r).then(|| b.group(&gm.ring(topo, s, 2 * d, e)));
        for dv in 0..nn {
            if s > 0 {
                b.wait_on(dv, kv_end.as_ref());
                b.wait_on(dv, dkv_end.as_ref());
            }
            if let Some(fl) = flops(dv, s) {
                b.compute[dv] += cost.attn_bwd_s(fl, 1);
            }
        }
        kv_end = this_kv;
        if r > 1 {
            dkv_end = Some(b.group(&gm.ring(topo, s, 2 * d, 4)));
        }
    }
    let parts = gm.shares[0].parts;
    for dv in 0..nn {
        b.wait_on(dv, dkv_end.as_ref());
        let (_, _, _, qn, kvn, q_rows, k_rows) = dims[dv];
        b.compute[dv] += cost.mem_s(nbytes(q_rows, qn, d, 4) + nbytes(q_rows, qn, d, e));
        if parts == 1 {
            b.compute[dv] +=
                cost.mem_s(nbytes(k_rows, kvn, 2 * d, 4) + nbytes(k_rows, kvn, 2 * d, e));
        }
    }
    if parts == 1 {
        let ends = b.group(&gm.a2a(topo, &[tq, tkv], false));
        let unpack = gm.a2a_staging(&[tq, tkv], false, kvh, cost);
        for (dv, end) in ends.into_iter().enumerate() {
            own_copies(&mut b, dv, &[tq, tkv]);
            b.wait(dv, end);
            b.compute[dv] += unpack[dv];
        }
    } else {
        // dQ gathers by part; each member returns its fp32 partial dKV of every peer's tokens
        // (one KV head) to the peer, which sums the `parts` slots.
        let mut acc = gm.a2a(topo, &[tq], false);
        let mut sends = Sends::new(topo, nn);
        std::mem::swap(&mut sends.acc, &mut acc);
        for ring in 0..r {
            for me in 0..gm.h {
                for j in (0..gm.h).filter(|&j| j != me) {
                    let t_j = gm.tokens[gm.dev(ring, j)];
                    if t_j > 0 {
                        sends.send(gm.dev(ring, me), gm.dev(ring, j), nbytes(t_j, 1, 2 * d, 4));
                    }
                }
            }
        }
        let ends = b.group(&sends.acc);
        let mut unpack = gm.a2a_staging(&[tq], false, kvh, cost);
        // The partials land in one KV head of the `parts` slots buffer (all KV heads wide).
        for (dv, u) in unpack.iter_mut().enumerate() {
            let t = dims[dv].2;
            if t > 1 && kvh > 1 {
                *u += (gm.h - 1) as f64 * cost.mem_s(2.0 * nbytes(t, 1, 2 * d, 4));
            }
        }
        for (dv, end) in ends.into_iter().enumerate() {
            let t = dims[dv].2;
            own_copies(&mut b, dv, &[tq]);
            if t > 0 {
                let x = nbytes(t, 1, 2 * d, 4);
                b.compute[dv] += cost.mem_s(x + x);
            }
            b.wait(dv, end);
            b.compute[dv] += unpack[dv];
            if t > 0 {
                b.compute[dv] += cost.mem_s(nbytes(t, m.kv_heads, 2 * d, e) * (parts as f64 + 1.0));
            }
        }
    }
    Prediction {
        fwd_ms: f.end_ms(),
        bwd_ms: b.end_ms(),
    }
}

/// Predicted times of a head-parallel candidate (`ulysses`, or `usp` with head degree `h_deg`,
/// None: its default), and its built plan when the cost model needed one: a fitted kernel model
/// costs attention by the CTA tiles of the works' row ranges, so then the plan is built and
/// predicted exactly (and kept for the caller to emit); otherwise, transfer curve included, the
/// plan-free `predict_grid` equals [`crate::cost::predict`] on the built plan. Errors: the
/// planner's own (the shape does not allow it).
pub fn predict_head_parallel(
    kind: PlannerKind,
    batch: &BatchSpec,
    topo: &Topology,
    cost: &CostModel,
    h_deg: Option<u32>,
) -> Result<(Prediction, Option<Plan>), PlanningError> {
    let h = match kind {
        PlannerKind::Ulysses => {
            check_ulysses(batch, topo)?;
            topo.n_devices()
        }
        PlannerKind::Usp => usp_head_degree(batch, topo, h_deg)?,
        other => {
            return Err(PlanningError::Unsupported {
                planner: "dcp",
                what: format!("{} is not a head-parallel planner", other.name()),
            })
        }
    };
    if cost.kernels.is_some() {
        let plan = match kind {
            PlannerKind::Ulysses => plan_ulysses(batch, topo)?,
            _ => plan_usp(batch, topo, h_deg)?,
        };
        return Ok((crate::cost::predict(&plan, cost), Some(plan)));
    }
    Ok((predict_grid(batch, topo, cost, h), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::random_case;
    use crate::cost::predict;
    use crate::planners::local::plan_local;
    use crate::planners::ring::plan_ring;
    use crate::stats::plan_stats;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12
    }

    #[test]
    fn ring_models_equal_the_predictor_on_built_plans() {
        let cost = CostModel::default();
        for seed in 0..150u64 {
            let (batch, topo) = random_case(seed, 200);
            let flops: f64 = batch
                .seqs
                .iter()
                .map(|s| s.mask.compile(s.len).count_all() as f64)
                .sum::<f64>()
                * 4.0
                * (batch.model.head_dim * batch.model.heads) as f64;
            for zigzag in [false, true] {
                let plan = plan_ring(&batch, &topo, zigzag).unwrap();
                let want = predict(&plan, &cost);
                let got = predict_ring(&batch, &topo, &cost, zigzag);
                assert!(
                    close(want.fwd_ms, got.fwd_ms) && close(want.bwd_ms, got.bwd_ms),
                    "seed {seed} zigzag {zigzag}: built {want:?}, model {got:?}"
                );
                let lb = ring_lower_bound_ms(&batch, &topo, &cost, flops, zigzag);
                assert!(
                    lb <= got.fwd_ms + got.bwd_ms + 1e-9,
                    "seed {seed} zigzag {zigzag}: lower bound {lb} > {got:?}"
                );
            }
        }
    }

    #[test]
    fn local_model_equals_the_predictor_on_built_plans() {
        let cost = CostModel::default();
        let mut compared = 0;
        for seed in 0..150u64 {
            let (batch, topo) = random_case(seed, 200);
            let built = plan_local(&batch, &topo, None);
            let model = predict_local(&batch, &topo, &cost, None);
            let (Ok(plan), Ok((got, imb))) = (built, model) else {
                panic!("seed {seed}: local plan and model disagree on feasibility");
            };
            let want = predict(&plan, &cost);
            assert!(
                close(want.fwd_ms, got.fwd_ms) && close(want.bwd_ms, got.bwd_ms),
                "seed {seed}: built {want:?}, model {got:?}"
            );
            assert!(
                close(plan_stats(&plan).compute_imbalance, imb),
                "seed {seed}"
            );
            compared += 1;
        }
        assert_eq!(compared, 150);
    }

    /// `usp` at every head degree the shape allows and `ulysses`: the plan-free model equals
    /// `predict` on the built plan (relative 1e-9), under the default model and under a model
    /// with a measured intra-node transfer curve (no kernel fit: still plan-free); both agree on
    /// which shapes are unsupported.
    #[test]
    fn head_parallel_models_equal_the_predictor_on_built_plans() {
        use crate::planners::usp::valid_head_degrees;
        let curve = CostModel {
            kernels: None,
            ..fitted()
        };
        let mut compared = [0usize; 2];
        // Cases with replicated KV heads (H > KV heads) and with rings or groups across nodes.
        let (mut replicated, mut nodes) = (0, 0);
        for seed in 0..150u64 {
            let (batch, topo) = random_case(seed, 200);
            let n = topo.n_devices();
            let mut cases: Vec<(PlannerKind, Option<u32>)> = valid_head_degrees(&batch.model, n)
                .into_iter()
                .map(|h| (PlannerKind::Usp, Some(h)))
                .collect();
            cases.extend([(PlannerKind::Usp, None), (PlannerKind::Ulysses, None)]);
            for (kind, h) in cases {
                let built = match kind {
                    PlannerKind::Ulysses => plan_ulysses(&batch, &topo),
                    _ => plan_usp(&batch, &topo, h),
                };
                for (ci, cost) in [CostModel::default(), curve.clone()].iter().enumerate() {
                    let model = predict_head_parallel(kind, &batch, &topo, cost, h);
                    let (plan, (got, kept)) = match (&built, model) {
                        (Ok(p), Ok(m)) => (p, m),
                        (Err(_), Err(_)) => continue,
                        (b, m) => panic!(
                            "seed {seed} {kind:?} {h:?}: built ok {} model ok {}",
                            b.is_ok(),
                            m.is_ok()
                        ),
                    };
                    assert!(kept.is_none(), "seed {seed}: plan-free path built a plan");
                    let want = predict(plan, cost);
                    assert!(
                        close(want.fwd_ms, got.fwd_ms) && close(want.bwd_ms, got.bwd_ms),
                        "seed {seed} {kind:?} H {h:?} {topo:?} cost {ci}: built {want:?}, model {got:?}"
                    );
                    compared[ci] += 1;
                    let hd = h.unwrap_or(if kind == PlannerKind::Ulysses { n } else { 0 });
                    replicated += usize::from(hd > batch.model.kv_heads);
                    nodes += usize::from(topo.nodes > 1);
                }
            }
        }
        assert!(
            compared[0] > 300 && compared[1] == compared[0],
            "{compared:?}"
        );
        assert!(replicated > 20 && nodes > 20, "{replicated} {nodes}");
    }

    /// `strip_counts` against `count_tile` on every block, for the random cases' masks and
    /// strips / blocks cut at uneven points.
    #[test]
    fn strip_counts_equal_tile_counts() {
        let mut sc = StripScratch::default();
        let mut checked = 0;
        for seed in 0..200u64 {
            let (batch, _) = random_case(seed, 300);
            for s in &batch.seqs {
                let (mask, l) = (s.mask.compile(s.len), s.len);
                let k = 1 + (seed % 7) as u32;
                let bounds: Vec<u32> = (0..=k)
                    .map(|j| (j as u64 * l as u64 / k as u64) as u32)
                    .collect();
                for q in 0..=3u32 {
                    let (qa, qb) = (q * l / 4, ((q + 1) * l / 4).min(l));
                    if qa >= qb {
                        continue;
                    }
                    let mut got = vec![0u64; k as usize];
                    strip_counts(&mask, qa, qb, &bounds, &mut sc, |j, p| got[j] += p);
                    let want: Vec<u64> = (0..k as usize)
                        .map(|j| mask.count_tile(qa, qb, bounds[j], bounds[j + 1]))
                        .collect();
                    assert_eq!(got, want, "seed {seed} mask {:?} rows {qa}..{qb}", s.mask);
                    checked += 1;
                }
            }
        }
        assert!(checked > 500, "{checked}");
    }

    /// With a fitted kernel model the head-parallel candidates are built: the prediction is
    /// `predict` on that plan, and the plan is returned for the caller to emit.
    #[test]
    fn fitted_kernels_build_head_parallel_candidates() {
        let fit = fitted();
        let mut seen = 0;
        for seed in 0..30u64 {
            let (batch, topo) = random_case(seed, 200);
            for kind in PlannerKind::HEAD_PARALLEL {
                let Ok((p, Some(plan))) = predict_head_parallel(kind, &batch, &topo, &fit, None)
                else {
                    continue;
                };
                assert_eq!(p, predict(&plan, &fit), "seed {seed} {kind:?}");
                let want = match kind {
                    PlannerKind::Ulysses => plan_ulysses(&batch, &topo).unwrap(),
                    _ => plan_usp(&batch, &topo, None).unwrap(),
                };
                assert_eq!(plan, want, "seed {seed} {kind:?}");
                seen += 1;
            }
        }
        assert!(seen > 20, "{seen}");
    }

    /// A fitted cost model of the kind `dcp calibrate` yields (hand-made constants: an
    /// H100-like CTA model and a send/recv curve with a latency floor).
    fn fitted() -> CostModel {
        use crate::cost::kernel::{CtaModel, KernelFit};
        use crate::cost::CurvePoint;
        CostModel {
            kernels: Some(KernelFit {
                fwd: CtaModel {
                    tile_us: 0.9,
                    partial: 1.25,
                    cta_us: 12.0,
                    slots: 264,
                    launch_us: 0.0,
                },
                bwd: CtaModel {
                    tile_us: 2.4,
                    partial: 1.0,
                    cta_us: 40.0,
                    slots: 132,
                    launch_us: 0.0,
                },
                tile_q: 64,
                tile_k: 64,
                bwd_tile_q: 64,
                bwd_tile_k: 128,
                sms: 132,
            }),
            intra_curve: vec![
                CurvePoint {
                    bytes: 4096.0,
                    us: 25.0,
                },
                CurvePoint {
                    bytes: 1048576.0,
                    us: 30.0,
                },
                CurvePoint {
                    bytes: 268435456.0,
                    us: 1100.0,
                },
            ],
            source: Some("test-fit".into()),
            ..CostModel::default()
        }
    }

    #[test]
    fn fitted_models_cost_plans_differently_and_bound_every_candidate() {
        use crate::planners::{make_plan, PlannerOptions};
        let fit = fitted();
        assert!(fit.is_fitted() && !CostModel::default().is_fitted());
        // Plain data: the model survives JSON (what `dcp calibrate` writes, `--cost-model`
        // and the Python planner read).
        let back = CostModel::from_json(&serde_json::to_string(&fit).unwrap()).unwrap();
        assert_eq!(back, fit);
        let mut opts = PlannerOptions::default();
        opts.dcp.cost = fit.clone();
        let mut differ = 0;
        for seed in 0..40u64 {
            let (batch, topo) = random_case(seed, 300);
            if topo.n_devices() == 1 {
                continue;
            }
            let flops: f64 = batch
                .seqs
                .iter()
                .map(|s| {
                    crate::flops::attn_fwd_flops(
                        s.mask.compile(s.len).count_all() as f64 * batch.model.heads as f64,
                        batch.model.head_dim,
                    )
                })
                .sum();
            let lb = compute_lower_bound_ms(&fit, flops, topo.n_devices());
            let dcp = make_plan("dcp", &batch, &topo, &opts).unwrap();
            let pd = predict(&dcp, &fit);
            for (name, zz) in [("zigzag", true), ("ring", false)] {
                let plan = plan_ring(&batch, &topo, zz).unwrap();
                let want = predict(&plan, &fit);
                // The fitted path builds the plan: equal to the predictor on it.
                assert_eq!(
                    predict_ring(&batch, &topo, &fit, zz),
                    want,
                    "seed {seed} {name}"
                );
                assert!(
                    ring_lower_bound_ms(&batch, &topo, &fit, flops, zz)
                        <= want.fwd_ms + want.bwd_ms + 1e-9,
                    "seed {seed} {name}: lower bound above {want:?}"
                );
                if (want.fwd_ms - predict(&plan, &CostModel::default()).fwd_ms).abs() > 1e-6 {
                    differ += 1;
                }
            }
            // Every candidate dcp weighs is bounded below by the compute bound, and dcp is
            // never predicted slower than any of them under the fitted model.
            for st in ["ring", "zigzag", "ulysses", "usp", "local", "dcp-only"] {
                let Ok(sp) = make_plan(st, &batch, &topo, &opts) else {
                    continue;
                };
                let ps = predict(&sp, &fit);
                assert!(
                    lb <= ps.fwd_ms + ps.bwd_ms + 1e-9,
                    "seed {seed} {st}: compute bound {lb} above {ps:?}"
                );
                if st != "local" {
                    assert!(
                        pd.fwd_ms + pd.bwd_ms <= ps.fwd_ms + ps.bwd_ms + 1e-9,
                        "seed {seed} {topo:?}: dcp {pd:?} vs {st} {ps:?}"
                    );
                }
            }
        }
        assert!(
            differ > 10,
            "the fitted model changed only {differ} predictions"
        );
    }

    #[test]
    fn measured_curve_replaces_alpha_beta_inside_a_node() {
        let fit = fitted();
        let topo = Topology::new(1, 4);
        // Below the first point: its time; between points: linear; above: the last rate.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-6);
        assert!(close(fit.group_s(&topo, 100.0, false, 0.0), 25e-6));
        let mid = fit.group_s(&topo, (4096.0 + 1048576.0) / 2.0, false, 0.0);
        assert!((mid - 27.5e-6).abs() < 1e-12, "{mid}");
        let big = fit.group_s(&topo, 2.0 * 268435456.0, false, 0.0);
        assert!((big - 2200e-6).abs() < 1e-9, "{big}");
        // Crossing nodes: the slower of the curve and α + the inter-node time.
        assert!(close(
            fit.group_s(&topo, 100.0, true, 1.0),
            topo.inter_latency_us * 1e-6 + 1.0
        ));
        // Without a curve: α + bytes/β as before.
        let d = CostModel::default();
        let want = topo.intra_latency_us * 1e-6 + 1e9 / (topo.intra_gbps * 1e9);
        assert!((d.group_s(&topo, 1e9, false, 0.0) - want).abs() < 1e-12);
    }
}
