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
//! on the built plan. The head-parallel candidates (`ulysses`, `usp`) have no closed form here:
//! `dcp` builds and predicts them only above [`compute_lower_bound_ms`].

use crate::cost::{CostModel, Prediction};
use crate::error::PlanningError;
use crate::mask::CompiledMask;
use crate::planners::local::assign_local;
use crate::planners::ring::{chunk_layout, Piece};
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
                if let Some(x) = &kv_end {
                    b.wait(i, x[i]);
                }
                if let Some(x) = &dkv_end {
                    b.wait(i, x[i]);
                }
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
        if let Some(x) = &dkv_end {
            b.wait(i, x[i]);
        }
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
        let (mut flops, mut works) = (0.0f64, 0usize);
        for &s in seqs {
            let att = batch.seqs[s].mask.compile(batch.seqs[s].len).count_all();
            if att > 0 {
                flops += fl * att as f64;
                works += 1;
            }
        }
        let mut f = cost.mem_s(nbytes(t, h, d, e)) + cost.mem_s(nbytes(t, h, 1, 4));
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
/// head-parallel candidates (`ulysses`, `usp`) are built and predicted only above it.
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
                },
                bwd: CtaModel {
                    tile_us: 2.4,
                    partial: 1.0,
                    cta_us: 40.0,
                    slots: 132,
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
