//! The CPU reference executor: runs any valid plan numerically in f64 on virtual devices, and
//! the dense masked attention it is checked against, computed straight from the batch.
//!
//! Layouts: Q/O/dO/dQ are `[token][head][D]`, KV/dKV `[token][kv head][K(D) | V(D)]`, LSE
//! `[token][head]` (natural log, of scores already scaled by 1/√D).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{PlanError, PlanErrorKind};
use crate::interp::{drive, program, Machine};
use crate::plan::{BufferRole, FillValue, Instr, IoTensor, Plan, Region};
use crate::spec::BatchSpec;

/// Whole-batch tensors in global token order (sequences concatenated).
#[derive(Debug, Clone)]
pub struct Tensors {
    pub q: Vec<f64>,
    pub kv: Vec<f64>,
    pub d_o: Vec<f64>,
}

/// Dense results in global token order.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub o: Vec<f64>,
    pub lse: Vec<f64>,
    pub dq: Vec<f64>,
    pub dkv: Vec<f64>,
}

impl Tensors {
    /// Uniform random inputs in [-1, 1) (scaled Q so that softmax is not flat).
    pub fn random(batch: &BatchSpec, seed: u64) -> Self {
        let m = batch.model;
        let t = batch.total_tokens() as usize;
        let d = m.head_dim as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut gen = |n: usize, s: f64| {
            (0..n)
                .map(|_| rng.random_range(-1.0..1.0) * s)
                .collect::<Vec<f64>>()
        };
        Tensors {
            q: gen(t * m.heads as usize * d, 2.0),
            kv: gen(t * m.kv_heads as usize * 2 * d, 1.0),
            d_o: gen(t * m.heads as usize * d, 1.0),
        }
    }
}

/// Dense masked attention, forward and backward, in f64 (only the attended keys of each row are
/// visited). Rows are split into chunks run in parallel: O, LSE and dQ of a row are its own, dK
/// and dV gather over rows, so each worker adds them into its own buffer and the buffers are
/// summed (a single 8K-token sequence took minutes on one thread in `bench-gpu --check`).
pub fn dense_reference(batch: &BatchSpec, x: &Tensors) -> Outputs {
    let m = batch.model;
    let (h, hk, d) = (m.heads as usize, m.kv_heads as usize, m.head_dim as usize);
    let t = batch.total_tokens() as usize;
    let mut out = Outputs {
        o: vec![0.0; t * h * d],
        lse: vec![f64::NEG_INFINITY; t * h],
        dq: vec![0.0; t * h * d],
        dkv: vec![0.0; t * hk * 2 * d],
    };
    if t == 0 {
        return out;
    }
    let offs = batch.seq_offsets();
    let masks: Vec<_> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
    // Chunks of rows: several per worker for balance (causal rows grow), at most one dK/dV
    // buffer per worker.
    let workers = rayon::current_num_threads().max(1);
    let rows = t.div_ceil(4 * workers).max(1);
    let per_worker = t.div_ceil(rows).div_ceil(workers).max(1);
    let dkv_len = out.dkv.len();
    let dkv = out
        .o
        .par_chunks_mut(rows * h * d)
        .zip(out.lse.par_chunks_mut(rows * h))
        .zip(out.dq.par_chunks_mut(rows * h * d))
        .enumerate()
        .with_min_len(per_worker)
        .fold(
            || vec![0.0; dkv_len],
            |mut dkv, (c, ((o, lse), dq))| {
                let r0 = c * rows;
                for (i, qi) in (r0..r0 + lse.len() / h).enumerate() {
                    // The row's sequence: the last offset at or before it.
                    let si = offs.partition_point(|&o| o as usize <= qi) - 1;
                    let off = offs[si] as usize;
                    let rows_out = RowOut {
                        o: &mut o[i * h * d..][..h * d],
                        lse: &mut lse[i * h..][..h],
                        dq: &mut dq[i * h * d..][..h * d],
                    };
                    reference_row(batch, x, &masks[si], off, qi, rows_out, &mut dkv);
                }
                dkv
            },
        )
        .reduce(
            || vec![0.0; dkv_len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    out.dkv = dkv;
    out
}

/// One row's outputs (all heads) in [`dense_reference`].
struct RowOut<'a> {
    o: &'a mut [f64],
    lse: &'a mut [f64],
    dq: &'a mut [f64],
}

/// Forward and backward of global row `qi` (of a sequence starting at token `off`, mask `mask`)
/// for every query head: O, LSE and dQ into `out`, dK and dV added into `dkv` (the batch's).
fn reference_row(
    batch: &BatchSpec,
    x: &Tensors,
    mask: &crate::mask::CompiledMask,
    off: usize,
    qi: usize,
    out: RowOut,
    dkv: &mut [f64],
) {
    let m = batch.model;
    let (h, hk, d) = (m.heads as usize, m.kv_heads as usize, m.head_dim as usize);
    let g = h / hk;
    let scale = 1.0 / (d as f64).sqrt();
    let mut rr = Vec::new();
    mask.row_ranges_into((qi - off) as u32, &mut rr);
    let keys: Vec<usize> = rr
        .iter()
        .flat_map(|&(a, b)| a as usize..b as usize)
        .map(|k| off + k)
        .collect();
    if keys.is_empty() {
        return;
    }
    for head in 0..h {
        let kvh = head / g;
        let qv = &x.q[(qi * h + head) * d..][..d];
        let kbase = |k: usize| (k * hk + kvh) * 2 * d;
        let scores: Vec<f64> = keys
            .iter()
            .map(|&k| scale * dot(qv, &x.kv[kbase(k)..][..d]))
            .collect();
        let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let l: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
        let lse = mx + l.ln();
        out.lse[head] = lse;
        let o = &mut out.o[head * d..][..d];
        for (j, &k) in keys.iter().enumerate() {
            let p = (scores[j] - lse).exp();
            for e in 0..d {
                o[e] += p * x.kv[kbase(k) + d + e];
            }
        }
        // Backward.
        let dov = &x.d_o[(qi * h + head) * d..][..d];
        let dd = dot(dov, o);
        let dq = &mut out.dq[head * d..][..d];
        for (j, &k) in keys.iter().enumerate() {
            let p = (scores[j] - lse).exp();
            let dp = dot(dov, &x.kv[kbase(k) + d..][..d]);
            let ds = p * (dp - dd);
            for e in 0..d {
                dq[e] += scale * ds * x.kv[kbase(k) + e];
                dkv[kbase(k) + e] += scale * ds * qv[e];
                dkv[kbase(k) + d + e] += p * dov[e];
            }
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct Cpu<'a> {
    plan: &'a Plan,
    backward: bool,
    bufs: Vec<Vec<Vec<f64>>>,
    /// Buffer geometry (heads, width) per device and buffer.
    geo: Vec<Vec<(u32, u32)>>,
}

impl Cpu<'_> {
    fn idx(&self, dev: u32, r: &Region, t: u32, h: u32) -> usize {
        let (heads, width) = self.geo[dev as usize][r.buf as usize];
        (((r.tok + t) * heads + r.head + h) * width) as usize
    }
    fn width(&self, dev: u32, r: &Region) -> usize {
        self.geo[dev as usize][r.buf as usize].1 as usize
    }
    fn read(&self, dev: u32, r: &Region) -> Vec<f64> {
        let w = self.width(dev, r);
        let mut v = Vec::with_capacity(r.len as usize * r.heads as usize * w);
        for t in 0..r.len {
            for h in 0..r.heads {
                let i = self.idx(dev, r, t, h);
                v.extend_from_slice(&self.bufs[dev as usize][r.buf as usize][i..i + w]);
            }
        }
        v
    }
    fn write(&mut self, dev: u32, r: &Region, data: &[f64]) {
        let w = self.width(dev, r);
        let mut k = 0;
        for t in 0..r.len {
            for h in 0..r.heads {
                let i = self.idx(dev, r, t, h);
                self.bufs[dev as usize][r.buf as usize][i..i + w].copy_from_slice(&data[k..k + w]);
                k += w;
            }
        }
    }
    /// Gathers the concatenated KV of a work: `[pos][kv head][2D]`.
    fn gather_kv(&self, dev: u32, kv: &[Region]) -> Vec<f64> {
        kv.iter().flat_map(|r| self.read(dev, r)).collect()
    }
}

impl Machine for Cpu<'_> {
    fn local(&mut self, dev: u32, _idx: usize, instr: &Instr) -> Result<(), PlanError> {
        let m = self.plan.batch.model;
        let d = m.head_dim as usize;
        let g = m.group() as usize;
        let scale = 1.0 / (d as f64).sqrt();
        match instr {
            Instr::Fill { dst, value } => {
                let v = match value {
                    FillValue::Zero => 0.0,
                    FillValue::NegInf => f64::NEG_INFINITY,
                };
                let n = dst.len as usize * dst.heads as usize * self.width(dev, dst);
                self.write(dev, dst, &vec![v; n]);
            }
            Instr::Copy { src, dst } => {
                let v = self.read(dev, src);
                self.write(dev, dst, &v);
            }
            Instr::Wait { .. } => {}
            Instr::Attn { works, .. } => {
                let mut rr = Vec::new();
                for w in works {
                    let q = self.read(dev, &w.q);
                    let kv = self.gather_kv(dev, &w.kv);
                    let (nq, nk) = (w.q.heads as usize, w.kv[0].heads as usize);
                    let mut o = vec![0.0; w.q.len as usize * nq * d];
                    let mut lse = vec![f64::NEG_INFINITY; w.q.len as usize * nq];
                    for r in 0..w.q.len as usize {
                        w.rows.row(r as u32, &mut rr);
                        for j in 0..nq {
                            let qv = &q[(r * nq + j) * d..][..d];
                            let col = j / g;
                            let keys = rr.iter().flat_map(|&(a, b)| a as usize..b as usize);
                            let scores: Vec<(usize, f64)> = keys
                                .map(|c| (c, scale * dot(qv, &kv[(c * nk + col) * 2 * d..][..d])))
                                .collect();
                            if scores.is_empty() {
                                continue;
                            }
                            let mx = scores.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                            let l: f64 = scores.iter().map(|x| (x.1 - mx).exp()).sum();
                            let ls = mx + l.ln();
                            lse[r * nq + j] = ls;
                            let ov = &mut o[(r * nq + j) * d..][..d];
                            for &(c, s) in &scores {
                                let p = (s - ls).exp();
                                let v = &kv[(c * nk + col) * 2 * d + d..][..d];
                                for e in 0..d {
                                    ov[e] += p * v[e];
                                }
                            }
                        }
                    }
                    self.write(dev, &w.o, &o);
                    self.write(dev, &w.lse, &lse);
                }
            }
            Instr::AttnBwd { works, .. } => {
                let mut rr = Vec::new();
                for w in works {
                    let q = self.read(dev, &w.q);
                    let kv = self.gather_kv(dev, &w.kv);
                    let o = self.read(dev, &w.o);
                    let lse = self.read(dev, &w.lse);
                    let dov = self.read(dev, &w.do_);
                    let mut dq = self.read(dev, &w.dq);
                    let mut dkv: Vec<f64> = w.dkv.iter().flat_map(|r| self.read(dev, r)).collect();
                    let (nq, nk) = (w.q.heads as usize, w.kv[0].heads as usize);
                    for r in 0..w.q.len as usize {
                        w.rows.row(r as u32, &mut rr);
                        for j in 0..nq {
                            let col = j / g;
                            let qi = (r * nq + j) * d;
                            let dd = dot(&dov[qi..qi + d], &o[qi..qi + d]);
                            let ls = lse[r * nq + j];
                            for c in rr.iter().flat_map(|&(a, b)| a as usize..b as usize) {
                                let kb = (c * nk + col) * 2 * d;
                                let p = (scale * dot(&q[qi..qi + d], &kv[kb..kb + d]) - ls).exp();
                                let dp = dot(&dov[qi..qi + d], &kv[kb + d..kb + 2 * d]);
                                let ds = p * (dp - dd);
                                for e in 0..d {
                                    dq[qi + e] += scale * ds * kv[kb + e];
                                    dkv[kb + e] += scale * ds * q[qi + e];
                                    dkv[kb + d + e] += p * dov[qi + e];
                                }
                            }
                        }
                    }
                    self.write(dev, &w.dq, &dq);
                    let mut at = 0;
                    for r in &w.dkv {
                        let n = r.len as usize * r.heads as usize * 2 * d;
                        self.write(dev, r, &dkv[at..at + n]);
                        at += n;
                    }
                }
            }
            Instr::Merge { o, lse, inputs } => {
                let ins: Vec<(Vec<f64>, Vec<f64>)> = inputs
                    .iter()
                    .map(|(a, b)| (self.read(dev, a), self.read(dev, b)))
                    .collect();
                let rows = o.len as usize * o.heads as usize;
                let mut ro = vec![0.0; rows * d];
                let mut rl = vec![f64::NEG_INFINITY; rows];
                for i in 0..rows {
                    let mx = ins.iter().map(|x| x.1[i]).fold(f64::NEG_INFINITY, f64::max);
                    if mx == f64::NEG_INFINITY {
                        continue;
                    }
                    let l: f64 = ins.iter().map(|x| (x.1[i] - mx).exp()).sum();
                    let ls = mx + l.ln();
                    rl[i] = ls;
                    for (xo, xl) in &ins {
                        let wgt = (xl[i] - ls).exp();
                        for e in 0..d {
                            ro[i * d + e] += wgt * xo[i * d + e];
                        }
                    }
                }
                self.write(dev, o, &ro);
                self.write(dev, lse, &rl);
            }
            Instr::Sum { dst, inputs } => {
                let mut acc: Option<Vec<f64>> = None;
                for r in inputs {
                    let v = self.read(dev, r);
                    acc = Some(match acc {
                        None => v,
                        Some(mut a) => {
                            a.iter_mut().zip(&v).for_each(|(x, y)| *x += y);
                            a
                        }
                    });
                }
                let n = dst.len as usize * dst.heads as usize * self.width(dev, dst);
                self.write(dev, dst, &acc.unwrap_or_else(|| vec![0.0; n]));
            }
            Instr::Comm { .. } => unreachable!(),
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        from: u32,
        src: &Region,
        to: u32,
        dst: &Region,
    ) -> Result<(), PlanError> {
        let v = self.read(from, src);
        self.write(to, dst, &v);
        Ok(())
    }

    fn group_done(&mut self, _: u32, _: usize, _: u32, _: &Instr) -> Result<(), PlanError> {
        Ok(())
    }
}

/// Per-token row width of a caller tensor, in elements.
fn io_row(plan: &Plan, t: IoTensor) -> usize {
    let m = plan.batch.model;
    let d = m.head_dim as usize;
    match t {
        IoTensor::Kv | IoTensor::DKv => m.kv_heads as usize * 2 * d,
        IoTensor::Lse => m.heads as usize,
        _ => m.heads as usize * d,
    }
}

/// Every device's buffers (f64 values, per buffer) after a program.
type DevBufs = Vec<Vec<Vec<f64>>>;

/// Runs the forward (`saved`: `None`) or the backward program (`saved`: the forward's final
/// buffers, which the backward's [`BufferRole::Saved`] buffers start from).
fn run_program(
    plan: &Plan,
    backward: bool,
    inputs: &[(IoTensor, &[f64])],
    saved: Option<&DevBufs>,
) -> Result<DevBufs, PlanError> {
    let offs = plan.batch.seq_offsets();
    let mut bufs = Vec::new();
    let mut geo = Vec::new();
    for (di, dp) in plan.devices.iter().enumerate() {
        let prog = program(plan, di, backward);
        let mut db: Vec<Vec<f64>> = prog
            .buffers
            .iter()
            .map(|b| vec![f64::NAN; b.elems() as usize])
            .collect();
        for (bi, b) in prog.buffers.iter().enumerate() {
            let BufferRole::Saved { forward } = b.role else {
                continue;
            };
            let src = saved
                .and_then(|s| s[di].get(forward as usize))
                .filter(|s| s.len() == db[bi].len());
            let Some(src) = src else {
                let kind = PlanErrorKind::SavedBuffer {
                    buf: bi as u32,
                    name: b.name.clone(),
                    forward,
                    problem: "no forward buffer of its size to start from".into(),
                };
                return Err(PlanError::new(di as u32, "backward", None, kind));
            };
            db[bi].copy_from_slice(src);
        }
        for &(t, data) in inputs {
            if let Some(bi) = prog.io(t) {
                let w = io_row(plan, t);
                let mut row = 0usize;
                for s in &dp.layout {
                    let g0 = (offs[s.seq as usize] + s.start as u64) as usize;
                    db[bi as usize][row * w..(row + s.len as usize) * w]
                        .copy_from_slice(&data[g0 * w..(g0 + s.len as usize) * w]);
                    row += s.len as usize;
                }
            }
        }
        bufs.push(db);
        geo.push(prog.buffers.iter().map(|b| (b.heads, b.width)).collect());
    }
    let mut cpu = Cpu {
        plan,
        backward,
        bufs,
        geo,
    };
    drive(plan, backward, &mut cpu)?;
    let _ = cpu.backward;
    Ok(cpu.bufs)
}

fn gather(plan: &Plan, backward: bool, bufs: &[Vec<Vec<f64>>], t: IoTensor) -> Vec<f64> {
    let offs = plan.batch.seq_offsets();
    let w = io_row(plan, t);
    let mut out = vec![f64::NAN; plan.batch.total_tokens() as usize * w];
    for (di, dp) in plan.devices.iter().enumerate() {
        let Some(bi) = program(plan, di, backward).io(t) else {
            continue;
        };
        let mut row = 0usize;
        for s in &dp.layout {
            let g0 = (offs[s.seq as usize] + s.start as u64) as usize;
            out[g0 * w..(g0 + s.len as usize) * w]
                .copy_from_slice(&bufs[di][bi as usize][row * w..(row + s.len as usize) * w]);
            row += s.len as usize;
        }
    }
    out
}

/// Runs the forward then the backward program on `x`; returns outputs in global token order.
/// The backward pass consumes the forward pass's own O and LSE.
pub fn execute(plan: &Plan, x: &Tensors) -> Result<Outputs, PlanError> {
    let fwd = run_program(
        plan,
        false,
        &[(IoTensor::Q, &x.q), (IoTensor::Kv, &x.kv)],
        None,
    )?;
    let o = gather(plan, false, &fwd, IoTensor::O);
    let lse = gather(plan, false, &fwd, IoTensor::Lse);
    let bwd = run_program(
        plan,
        true,
        &[
            (IoTensor::Q, &x.q),
            (IoTensor::Kv, &x.kv),
            (IoTensor::O, &o),
            (IoTensor::Lse, &lse),
            (IoTensor::DO, &x.d_o),
        ],
        Some(&fwd),
    )?;
    let dq = gather(plan, true, &bwd, IoTensor::DQ);
    let dkv = gather(plan, true, &bwd, IoTensor::DKv);
    Ok(Outputs { o, lse, dq, dkv })
}

/// Largest absolute difference per output (−∞ LSEs must agree exactly).
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxErr {
    pub o: f64,
    pub lse: f64,
    pub dq: f64,
    pub dkv: f64,
}

impl MaxErr {
    pub fn max(&self) -> f64 {
        self.o.max(self.lse).max(self.dq).max(self.dkv)
    }
}

pub fn compare(a: &Outputs, b: &Outputs) -> MaxErr {
    fn diff(x: &[f64], y: &[f64]) -> f64 {
        if x.len() != y.len() {
            return f64::INFINITY;
        }
        x.iter()
            .zip(y)
            .map(|(p, q)| {
                if p == q {
                    0.0
                } else if p.is_finite() && q.is_finite() {
                    (p - q).abs()
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0, f64::max)
    }
    MaxErr {
        o: diff(&a.o, &b.o),
        lse: diff(&a.lse, &b.lse),
        dq: diff(&a.dq, &b.dq),
        dkv: diff(&a.dkv, &b.dkv),
    }
}
