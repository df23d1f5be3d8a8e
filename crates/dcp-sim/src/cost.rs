//! Kernel time of compute instructions under a [`Profile`].
//!
//! * Attention (`Attn`, `AttnBwd`): one launch per instruction. Each work's rows are cut into
//!   tiles of `tile_q` rows; a tile is charged for every `tile_k`-key column tile its rows' key
//!   ranges touch (tiles the mask never reaches cost nothing, partially masked tiles cost in
//!   full). Time = `launch_us + per_work_us·works + max(total / rate, longest tile row / (rate /
//!   sms))`: the second term is the critical path when a launch has too few tiles to fill the
//!   GPU. The rate is the profile's attended-FLOP rate divided by the tile overhead of the
//!   calibration shape, so a 32K causal sequence costs exactly what was measured.
//! * Fill / Copy / Merge / Sum: bytes read + written at `mem_gbps`, plus one launch per run of
//!   consecutive instructions of the same kind (an executor batches them into one launch).
//! * Comm / Wait: the staging copies of strided regions (a head subset of several tokens;
//!   `BufferDecl::staged_bytes`): one copy launch per region, bytes read + written at
//!   `mem_gbps`, packs at the `Comm` (before the group starts) and unpacks at its `Wait`.

//!
//! The CTA models of the two attention kernels ([`KernelModel`]) are derived from a profile once,
//! and travel with it in a [`Hardware`].

use dcp_core::flops::{attn_fwd_flops, BWD_FLOP_FACTOR};
use dcp_core::plan::{Dir, Instr, Program, Region, RowRanges};

pub use dcp_core::cost::kernel::{
    bwd_ctas, fwd_ctas, fwd_merge_bytes, fwd_split_ctas, lpt_makespan, row_tile_classes, CtaClass,
    CtaModel, KernelFit, KernelScratch, LaunchCost,
};

use crate::profile::Profile;

/// The CTA models of both attention kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelModel {
    pub fwd: CtaModel,
    pub bwd: CtaModel,
    /// Whether the constants were fitted on `attn_curve`.
    pub fitted: bool,
}

/// A profile with the kernel model derived from it: what the simulator runs on. Built once per
/// run ([`Hardware::new`]); the two cannot disagree because the model is only derived here.
#[derive(Debug, Clone, PartialEq)]
pub struct Hardware {
    profile: Profile,
    kernels: KernelModel,
    /// The kernel model with the profile's tile shapes (what attention instructions cost).
    fit: KernelFit,
}

impl Hardware {
    /// Derives the kernel model of `profile` (see [`KernelModel::derive`]).
    pub fn new(profile: Profile) -> Self {
        let kernels = KernelModel::derive(&profile);
        let fit = KernelFit {
            fwd: kernels.fwd,
            bwd: kernels.bwd,
            tile_q: profile.tile_q,
            tile_k: profile.tile_k,
            bwd_tile_q: profile.bwd_tile_q,
            bwd_tile_k: profile.bwd_tile_k,
            sms: profile.sms,
        };
        Hardware {
            profile,
            kernels,
            fit,
        }
    }
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    pub fn kernels(&self) -> &KernelModel {
        &self.kernels
    }

    /// The planner's cost model of this hardware (plain data for `dcp-core`): the profile's
    /// rates, the fitted kernel model with its tile shapes, and the measured send/recv curve,
    /// so that `dcp` weighs its candidates with what the simulator (and, calibrated, the GPUs)
    /// would charge.
    pub fn planner_cost(&self) -> dcp_core::cost::CostModel {
        let p = &self.profile;
        dcp_core::cost::CostModel {
            attn_fwd_tflops: p.attn_fwd_tflops,
            attn_bwd_tflops: p.attn_bwd_tflops,
            launch_us: p.launch_us,
            per_work_us: p.per_work_us,
            mem_gbps: p.mem_gbps,
            kernels: Some(self.fit),
            intra_curve: p.p2p_curve.clone(),
            source: Some(p.name.clone()),
        }
    }
}

/// What a compute instruction is, for breakdowns and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Attn,
    Elementwise,
}

/// Per-instruction cost of one program: duration (µs) for compute instructions, 0 otherwise.
#[derive(Debug, Clone)]
pub struct ProgramCost {
    pub dur_us: Vec<f64>,
    /// Forward-equivalent attended FLOPs per instruction (backward × [`BWD_FLOP_FACTOR`] included).
    pub flops: Vec<f64>,
}

fn region_bytes(p: &Program, r: &Region) -> u64 {
    let b = &p.buffers[r.buf as usize];
    r.len as u64 * r.heads as u64 * b.width as u64 * b.dtype.size()
}

/// Costs every instruction of `prog` (`backward` selects the backward kernel).
pub fn program_cost(prog: &Program, head_dim: u32, hw: &Hardware, backward: bool) -> ProgramCost {
    let n = prog.instrs.len();
    let mut dur_us = vec![0.0; n];
    let mut flops = vec![0.0; n];
    let prof = hw.profile();
    let factor = if backward { BWD_FLOP_FACTOR } else { 1.0 };
    let mem = prof.mem_gbps * 1e3; // bytes per µs
    let merge_bw = prof.merge_gbps.unwrap_or(prof.mem_gbps) * 1e3;
    let per_elem = attn_fwd_flops(1.0, head_dim) * factor;
    let mut prev_kind: Option<&'static str> = None;
    let mut scratch = KernelScratch::default();
    // (tag, µs of the unpack copies of that group's strided receives).
    let mut unpacks: Vec<(u32, f64)> = Vec::new();
    let lc = LaunchCost {
        launch_us: prof.launch_us,
        per_work_us: prof.per_work_us,
        mem_gbps: prof.mem_gbps,
    };
    for (i, ins) in prog.instrs.iter().enumerate() {
        let kind = ins.name();
        let (d, f) = match ins {
            Instr::Attn { .. } | Instr::AttnBwd { .. } => {
                let attended: f64 = match ins {
                    Instr::Attn { works, .. } => works
                        .iter()
                        .map(|w| w.rows.attended() as f64 * w.q.heads as f64)
                        .sum(),
                    Instr::AttnBwd { works, .. } => works
                        .iter()
                        .map(|w| w.rows.attended() as f64 * w.q.heads as f64)
                        .sum(),
                    _ => unreachable!("matched above"),
                };
                let t = hw
                    .fit
                    .attn_us(prog, ins, head_dim, &lc, &mut scratch)
                    .expect("an attention instruction");
                (t, attended * per_elem)
            }
            Instr::Fill { dst, .. } => (region_bytes(prog, dst) as f64 / mem, 0.0),
            Instr::Copy { src, dst } => (
                (region_bytes(prog, src) + region_bytes(prog, dst)) as f64 / mem,
                0.0,
            ),
            Instr::Merge { o, lse, inputs } => {
                let b: u64 = inputs
                    .iter()
                    .map(|(a, l)| region_bytes(prog, a) + region_bytes(prog, l))
                    .sum::<u64>()
                    + region_bytes(prog, o)
                    + region_bytes(prog, lse);
                (b as f64 / merge_bw, 0.0)
            }
            Instr::Sum { dst, inputs } => {
                let b: u64 = inputs.iter().map(|r| region_bytes(prog, r)).sum::<u64>()
                    + region_bytes(prog, dst);
                (b as f64 / mem, 0.0)
            }
            Instr::Comm { tag, ops } => {
                // Packs of the strided sends now; the receives' unpacks at the group's Wait.
                let (mut pack, mut unpack) = (0.0, 0.0);
                for op in ops {
                    let b = prog.buffers[op.region.buf as usize].staged_bytes(&op.region);
                    if b > 0 {
                        let t = prof.launch_us + 2.0 * b as f64 / mem;
                        match op.dir {
                            Dir::Send => pack += t,
                            Dir::Recv => unpack += t,
                        }
                    }
                }
                unpacks.push((*tag, unpack));
                dur_us[i] = pack;
                prev_kind = None;
                continue;
            }
            Instr::Wait { tag } => {
                dur_us[i] = unpacks.iter().find(|u| u.0 == *tag).map_or(0.0, |u| u.1);
                prev_kind = None;
                continue;
            }
        };
        let elementwise = !matches!(ins, Instr::Attn { .. } | Instr::AttnBwd { .. });
        let launch = if elementwise && prev_kind != Some(kind) {
            prof.launch_us
        } else {
            0.0
        };
        prev_kind = Some(kind);
        dur_us[i] = d + launch;
        flops[i] = f;
    }
    ProgramCost { dur_us, flops }
}

pub fn op_kind(ins: &Instr) -> Option<OpKind> {
    match ins {
        Instr::Attn { .. } | Instr::AttnBwd { .. } => Some(OpKind::Attn),
        Instr::Comm { .. } | Instr::Wait { .. } => None,
        _ => Some(OpKind::Elementwise),
    }
}

/// Built-in CTA constants of the project's kernels (fitted on the 2× H100 calibration of
/// 2026-11-25, `bench/results/gpu-2026-11-25b/profile_x2.json`), used when a profile has no
/// `attn_curve` and does not give them.
pub const DEFAULT_FWD_CTA_US: f64 = 21.1;
pub const DEFAULT_BWD_CTA_US: f64 = 63.8;
pub const DEFAULT_FWD_PARTIAL_TILE_COST: f64 = 1.25;
pub const DEFAULT_BWD_PARTIAL_TILE_COST: f64 = 1.0;

/// One sequence of `len` tokens under `mask` (a [`dcp_core::mask::MaskSpec::parse`] form; the
/// profile loader has checked it), as the row ranges of one work (the planners' own
/// [`dcp_core::builder::work_rows`]).
fn sequence_rows(len: u32, mask: &str) -> RowRanges {
    let cm = dcp_core::mask::MaskSpec::parse(mask)
        .expect("attn_curve masks are checked when the profile is loaded")
        .compile(len);
    dcp_core::builder::work_rows(&cm, &[(0, len)], &[(0, len)]).0
}

/// A calibration shape: fixed µs outside the attention kernel and its CTAs.
struct Shape {
    fixed_us: f64,
    ctas: Vec<CtaClass>,
}

/// The calibration shape of one sequence of `len` tokens under `mask`, in the calibration's
/// model: 8 query heads, 2 KV heads, head dim 128, bf16. The forward's long CTAs are cut as the
/// executor's split-K cuts them ([`fwd_split_ctas`]), their merge a fixed cost of the shape.
fn shape(p: &Profile, len: u32, mask: &str, backward: bool) -> Shape {
    let (heads, kv_heads, d) = (8u32, 2u32, 128u64);
    let rows = sequence_rows(len, mask);
    let mut ctas = Vec::new();
    let fixed_us = if backward {
        bwd_ctas(
            std::iter::once((&rows, heads, kv_heads)),
            p.bwd_tile_q,
            p.bwd_tile_k,
            p.sms,
            &mut ctas,
        );
        let dd = len as u64 * heads as u64 * (2 * 2 * d + 4);
        2.0 * p.launch_us + p.per_work_us + dd as f64 / (p.mem_gbps * 1e3)
    } else {
        fwd_ctas(
            std::iter::once((&rows, heads)),
            p.tile_q,
            p.tile_k,
            &mut ctas,
        );
        let slots = (p.sms * p.fwd_ctas_per_sm).max(1) as usize;
        let merged = fwd_split_ctas(&mut ctas, p.tile_q, p.tile_k, slots, &mut Vec::new());
        let merge = if merged.0 > 0.0 {
            p.launch_us + fwd_merge_bytes(merged, d as u32) / (p.mem_gbps * 1e3)
        } else {
            0.0
        };
        p.launch_us + p.per_work_us + merge
    };
    // Equal CTAs as one class (a sparse mask's thousands of row tiles are a few shapes): the
    // fit evaluates each shape's makespan over a grid of models.
    ctas.sort_by(|a, b| {
        (a.full, a.partial)
            .partial_cmp(&(b.full, b.partial))
            .expect("finite")
    });
    ctas.dedup_by(|b, a| {
        let same = a.full == b.full && a.partial == b.partial;
        if same {
            a.count += b.count;
        }
        same
    });
    Shape { fixed_us, ctas }
}

/// Tile cost `t` and per-launch cost `a` (both ≥ 0) minimising the squared relative error of
/// `fixed_i + a + t·m_i` against `y_i`, and that error. Where the two-parameter optimum has a
/// negative part, the tile cost alone is fitted (`a` = 0).
fn fit_tile(pts: &[(f64, f64, f64)]) -> (f64, f64, f64) {
    // Residual i: t·x_i + a·z_i − b_i with x = m / y, z = 1 / y, b = 1 − fixed / y.
    let (mut xx, mut xz, mut zz, mut xb, mut zb) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(fixed, m, y) in pts {
        let (x, z, b) = (m / y, 1.0 / y, 1.0 - fixed / y);
        xx += x * x;
        xz += x * z;
        zz += z * z;
        xb += x * b;
        zb += z * b;
    }
    let one = |num: f64, den: f64| if den > 0.0 { (num / den).max(0.0) } else { 0.0 };
    let det = xx * zz - xz * xz;
    let (mut t, mut a) = (one(xb, xx), 0.0);
    if det > 1e-12 * xx * zz {
        let (t2, a2) = ((xb * zz - zb * xz) / det, (zb * xx - xb * xz) / det);
        if t2 >= 0.0 && a2 >= 0.0 {
            (t, a) = (t2, a2);
        }
    }
    let sse = pts
        .iter()
        .map(|&(fixed, m, y)| ((fixed + a + t * m) / y - 1.0).powi(2))
        .sum();
    (t, a, sse)
}

/// The profile's `attn_curve` as calibration shapes of one pass, each with its measured µs.
fn curve_shapes(p: &Profile, backward: bool) -> Vec<(Shape, f64)> {
    p.attn_curve
        .iter()
        .map(|a| {
            let y = if backward { a.bwd_ms } else { a.fwd_ms } * 1e3;
            (shape(p, a.len, &a.mask, backward), y)
        })
        .collect()
}

/// The CTA model of one pass at partial-tile cost `partial` (else the profile's or built-in),
/// fitted on `shapes` ([`curve_shapes`], built once per pass: they do not depend on the model).
fn pass_model(
    p: &Profile,
    shapes: &[(Shape, f64)],
    backward: bool,
    partial: Option<f64>,
) -> (CtaModel, f64) {
    let slots = (p.sms
        * if backward {
            p.bwd_ctas_per_sm
        } else {
            p.fwd_ctas_per_sm
        })
    .max(1);
    let given_cta = if backward { p.bwd_cta_us } else { p.fwd_cta_us };
    let mut buf = Vec::new();
    let mut model = CtaModel {
        tile_us: 1.0,
        partial: partial.or(p.partial_tile_cost).unwrap_or(if backward {
            DEFAULT_BWD_PARTIAL_TILE_COST
        } else {
            DEFAULT_FWD_PARTIAL_TILE_COST
        }),
        cta_us: 0.0,
        slots: slots as usize,
        launch_us: 0.0,
    };
    if let (false, Some(cta)) = (p.attn_curve.is_empty(), given_cta) {
        // CTA cost given: fit the tile and launch costs alone on the curve.
        let pts: Vec<(f64, f64, f64)> = shapes
            .iter()
            .map(|(sh, y)| {
                model.tile_us = 0.0;
                model.cta_us = cta;
                let fixed = sh.fixed_us + model.makespan(&sh.ctas, 128, &mut buf);
                model.tile_us = 1.0;
                model.cta_us = 0.0;
                let m = model.makespan(&sh.ctas, 128, &mut buf);
                (fixed, m, *y)
            })
            .collect();
        let (t, launch, sse) = fit_tile(&pts);
        model.tile_us = t;
        model.cta_us = cta;
        model.launch_us = launch;
        return (model, sse);
    }
    let fit_curve = !p.attn_curve.is_empty() && given_cta.is_none();
    if !fit_curve {
        // Tile cost from the rate at the reference shape (one 32K causal sequence).
        let cta = given_cta.unwrap_or(if backward {
            DEFAULT_BWD_CTA_US
        } else {
            DEFAULT_FWD_CTA_US
        });
        let sh = shape(p, 32768, "causal", backward);
        let rate = if backward {
            p.attn_bwd_tflops / BWD_FLOP_FACTOR
        } else {
            p.attn_fwd_tflops
        };
        let flops = attn_fwd_flops(8.0 * (32768.0 * 32769.0 / 2.0), 128);
        let y = flops / (rate * 1e6);
        // makespan is linear in (cta, tile): split the cta part off.
        model.cta_us = cta;
        model.tile_us = 0.0;
        let m_cta = model.makespan(&sh.ctas, 128, &mut buf);
        model.tile_us = 1.0;
        model.cta_us = 0.0;
        let m_tile = model.makespan(&sh.ctas, 128, &mut buf);
        model.cta_us = cta;
        model.tile_us = ((y - sh.fixed_us - m_cta) / m_tile).max(1e-6);
        return (model, 0.0);
    }
    let shapes: Vec<&(Shape, f64)> = shapes.iter().filter(|(_, y)| *y > 0.0).collect();
    let mut best = (f64::INFINITY, model);
    // Grid over the CTA cost in tile units; the tile and launch costs then have a closed form.
    for step in 0..=96 {
        let r = step as f64 * 0.25;
        model.tile_us = 1.0;
        model.cta_us = r;
        let pts: Vec<(f64, f64, f64)> = shapes
            .iter()
            .map(|(s, y)| (s.fixed_us, model.makespan(&s.ctas, 128, &mut buf), *y))
            .collect();
        let (t, launch, sse) = fit_tile(&pts);
        if sse < best.0 {
            best = (
                sse,
                CtaModel {
                    tile_us: t,
                    cta_us: r * t,
                    launch_us: launch,
                    ..model
                },
            );
        }
    }
    (best.1, best.0)
}

impl KernelModel {
    /// The CTA models of the attention kernels: fitted on `attn_curve` when the profile has one
    /// (and does not fix the constants), else the kernel's built-in constants with the tile
    /// cost set so that one 32K causal sequence runs at `attn_*_tflops`.
    pub fn derive(p: &Profile) -> KernelModel {
        let fitted = !p.attn_curve.is_empty();
        let one = |backward: bool| {
            let shapes = curve_shapes(p, backward);
            if !fitted || p.partial_tile_cost.is_some() {
                return pass_model(p, &shapes, backward, None).0;
            }
            // Also fit the partial-tile cost (causal vs full shapes tell it apart).
            let mut best = (f64::INFINITY, None);
            for k in 0..=12 {
                let rho = 1.0 + k as f64 * 0.25;
                let (m, sse) = pass_model(p, &shapes, backward, Some(rho));
                if sse < best.0 {
                    best = (sse, Some(m));
                }
            }
            best.1.expect("grid")
        };
        KernelModel {
            fwd: one(false),
            bwd: one(true),
            fitted,
        }
    }
}

/// Model times (µs, forward and backward) of the profile's `attn_curve` shapes.
pub fn curve_predictions(hw: &Hardware) -> Vec<(f64, f64)> {
    let (p, km) = (hw.profile(), hw.kernels());
    let mut buf = Vec::new();
    p.attn_curve
        .iter()
        .map(|a| {
            let f = shape(p, a.len, &a.mask, false);
            let b = shape(p, a.len, &a.mask, true);
            (
                f.fixed_us + km.fwd.launch_us + km.fwd.makespan(&f.ctas, 128, &mut buf),
                b.fixed_us + km.bwd.launch_us + km.bwd.makespan(&b.ctas, 128, &mut buf),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causal_rows(n: u32) -> RowRanges {
        let rows: Vec<Vec<(u32, u32)>> = (0..n).map(|r| vec![(0, r + 1)]).collect();
        RowRanges::from_rows(&rows)
    }

    fn classes(rows: &RowRanges, tq: u32, tk: u32) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        row_tile_classes(rows, tq, tk, |_, f, p| v.push((f, p)));
        v
    }

    #[test]
    fn tiles_of_causal_and_band() {
        // 128-row tiles, 64-key tiles. Row tile 0 touches key tiles 0..2, none full (row 0
        // attends one key); row tile 1 touches 0..4, of which 0..2 are full.
        assert_eq!(classes(&causal_rows(256), 128, 64), vec![(0, 2), (2, 2)]);
        // Two disjoint ranges per row: a sink [0, 4) and a band far away.
        let rows: Vec<Vec<(u32, u32)>> = (0..128)
            .map(|r| vec![(0, 4), (1000 + r, 1001 + r)])
            .collect();
        // Sink: tile 0 (partial); band 1000..1128 spans tiles 15..18 (3 tiles, partial).
        assert_eq!(classes(&RowRanges::from_rows(&rows), 128, 64), vec![(0, 4)]);
        // Full rows: every touched tile is full except a ragged last one.
        let rows: Vec<Vec<(u32, u32)>> = (0..64).map(|_| vec![(0, 200)]).collect();
        assert_eq!(classes(&RowRanges::from_rows(&rows), 64, 64), vec![(3, 1)]);
    }

    #[test]
    fn longest_first_makespan() {
        // 2 slots: [2, 2], then 2 → [4, 2], then 1 → [4, 3].
        assert_eq!(lpt_makespan(&mut [(1.0, 1), (2.0, 3)], 2), 4.0);
        // Ten unit CTAs on three slots: four waves.
        assert_eq!(lpt_makespan(&mut [(1.0, 10)], 3), 4.0);
        assert_eq!(lpt_makespan(&mut [(5.0, 1), (1.0, 6)], 3), 5.0);
    }

    /// The forward's split-K as the executor's: a launch of many short CTAs and a few long ones
    /// (causal-blockwise's last block) has the long ones cut, and the merge rows counted; a
    /// launch whose CTAs already fill the GPU evenly is left whole.
    #[test]
    fn forward_split_cuts_only_few_long_ctas() {
        let c = |units: f64, count: u64| CtaClass {
            full: units,
            partial: 0.0,
            count,
        };
        let mut buf = Vec::new();
        // 1000 CTAs of 10 tiles and 8 of 512 (64-key tiles), 264 slots: chunk = 32 tiles
        // (2048 keys), so the long ones are cut into min(16, 512 / 32) = 16 pieces of 32.
        let mut ctas = vec![c(10.0, 1000), c(512.0, 8)];
        let rows = fwd_split_ctas(&mut ctas, 64, 64, 264, &mut buf);
        assert_eq!(rows, ((8 * 16 * 64) as f64, (8 * 64) as f64));
        assert_eq!(ctas[0], c(10.0, 1000));
        assert_eq!(ctas[1], c(32.0, 128));
        // Every CTA the same length, four waves: cutting would not shorten the schedule.
        let mut even = vec![c(100.0, 1000)];
        assert_eq!(fwd_split_ctas(&mut even, 64, 64, 264, &mut buf), (0.0, 0.0));
        assert_eq!(even, vec![c(100.0, 1000)]);
        // Nothing longer than the 2048-key floor: nothing to cut.
        let mut short = vec![c(30.0, 10)];
        assert_eq!(
            fwd_split_ctas(&mut short, 64, 64, 264, &mut buf),
            (0.0, 0.0)
        );
    }

    /// A profile calibrated with the sparse shapes (`dcp calibrate` since session 24: causal-
    /// blockwise and lambda at 32K beside causal and full): every point, the sparse ones
    /// included, within 6 % forward and 10 % backward, with a per-launch cost fitted.
    #[test]
    fn calibration_curve_with_sparse_shapes_is_fitted() {
        let text = include_str!("../../../bench/results/gpu-x2-2026-11-30s24/new/profile_x4.json");
        let (p, _) = Profile::from_json(text).unwrap();
        assert!(p
            .attn_curve
            .iter()
            .any(|a| a.mask.starts_with("causal-blockwise")));
        let hw = Hardware::new(p.clone());
        assert!(hw.kernels().fwd.launch_us > 0.0, "{:?}", hw.kernels().fwd);
        for (a, (f, b)) in p.attn_curve.iter().zip(curve_predictions(&hw)) {
            assert!((f / 1e3 / a.fwd_ms - 1.0).abs() < 0.06, "{a:?} {f}");
            assert!((b / 1e3 / a.bwd_ms - 1.0).abs() < 0.10, "{a:?} {b}");
        }
    }

    #[test]
    fn calibration_curve_is_fitted() {
        let text = include_str!("../../../bench/results/gpu-2026-11-25b/profile_x2.json");
        let (p, _) = Profile::from_json(text).unwrap();
        let hw = Hardware::new(p.clone());
        assert!(hw.kernels().fitted);
        for (a, (f, b)) in p.attn_curve.iter().zip(curve_predictions(&hw)) {
            assert!((f / 1e3 / a.fwd_ms - 1.0).abs() < 0.05, "{a:?} {f}");
            assert!((b / 1e3 / a.bwd_ms - 1.0).abs() < 0.05, "{a:?} {b}");
        }
    }
}
