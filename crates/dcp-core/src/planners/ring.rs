//! The static ring planners in the Plan IR, so every comparison runs through the same
//! validator, simulator and executors:
//! * `ring`: every sequence split evenly (contiguously) over all devices; KV passed around the
//!   ring in N−1 steps; in backward, dKV accumulators travel with KV and take one more hop home.
//! * `zigzag`: each sequence in 2N chunks, device i holds chunks i and 2N−1−i; same ring.
//!
//! Ring byte counts (T tokens, e bytes per element, KV row = 2·Hkv·D elements):
//! forward (N−1)·T·KVrow·e, backward (N−1)·T·KVrow·e + N·T·KVrow·4 (dKV travels in fp32).

use crate::builder::{work_rows, ProgramBuilder, ScratchKind};
use crate::error::PlanningError;
use crate::mask::CompiledMask;
use crate::plan::{
    BwdWork, DevicePlan, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Plan, Program, Region,
    RowRanges, TokenSpan, PLAN_FORMAT_VERSION,
};
use crate::planners::par_map;
use crate::spec::{BatchSpec, DType, ModelShape, Topology};

/// A sequence's tokens on one device: its spans and the buffer row where they start.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(crate) seq: u32,
    pub(crate) row: u32,
    pub(crate) spans: Vec<(u32, u32)>,
}

impl Piece {
    pub(crate) fn len(&self) -> u32 {
        self.spans.iter().map(|s| s.1).sum()
    }
}

/// Per device, the pieces of each sequence it holds (sequence order).
pub(crate) fn chunk_layout(batch: &BatchSpec, n: u32, zigzag: bool) -> Vec<Vec<Piece>> {
    let mut dev: Vec<Vec<Piece>> = vec![Vec::new(); n as usize];
    let mut rows = vec![0u32; n as usize];
    for (si, s) in batch.seqs.iter().enumerate() {
        let l = s.len as u64;
        let nc = if zigzag { 2 * n as u64 } else { n as u64 };
        let chunk = |c: u64| ((c * l / nc) as u32, ((c + 1) * l / nc - c * l / nc) as u32);
        for i in 0..n as u64 {
            let mut spans = vec![chunk(i)];
            if zigzag {
                spans.push(chunk(2 * n as u64 - 1 - i));
            }
            spans.retain(|s| s.1 > 0);
            if spans.is_empty() {
                continue;
            }
            let p = Piece {
                seq: si as u32,
                row: rows[i as usize],
                spans,
            };
            rows[i as usize] += p.len();
            dev[i as usize].push(p);
        }
    }
    dev
}

/// The device layout of `pieces` (one span after another, in order).
pub(crate) fn layout_of(pieces: &[Piece]) -> Vec<TokenSpan> {
    pieces
        .iter()
        .flat_map(|p| {
            p.spans.iter().map(move |&(start, len)| TokenSpan {
                seq: p.seq,
                start,
                len,
            })
        })
        .collect()
}

/// Works of one ring step on one device: (query piece, KV piece on the source, row ranges).
type StepWorks = Vec<(usize, usize, RowRanges)>;

/// One device of a ring plan: its position, the layout of every device, and its works by step.
struct RingDev<'a> {
    n: u32,
    i: u32,
    model: ModelShape,
    pieces: &'a [Vec<Piece>],
    tokens: &'a [u32],
    max_t: u32,
}

impl RingDev<'_> {
    /// The device whose KV this device holds at step `s`.
    fn src(&self, s: u32) -> u32 {
        (self.i + self.n - s % self.n) % self.n
    }
    fn piece(&self, d: u32, k: usize) -> &Piece {
        &self.pieces[d as usize][k]
    }

    /// Forward: KV around the ring, each step's partial (O, LSE) merged into fp32 accumulators.
    fn forward(&self, steps: &[StepWorks]) -> Program {
        let (n, i, model, tokens, max_t) = (self.n, self.i, self.model, self.tokens, self.max_t);
        let (t_i, next, prev) = (tokens[i as usize], (i + 1) % n, (i + n - 1) % n);
        let src = |i: u32, s: u32| (i + n - s % n) % n;
        let piece = |d: u32, k: usize| self.piece(d, k);
        let mut f = ProgramBuilder::new();
        let q = f.io(IoTensor::Q, &model, t_i);
        let kv = f.io(IoTensor::Kv, &model, t_i);
        let o = f.io(IoTensor::O, &model, t_i);
        let lse = f.io(IoTensor::Lse, &model, t_i);
        let ring = [
            f.scratch("kv_ring0", &model, ScratchKind::Kv, max_t, model.dtype),
            f.scratch("kv_ring1", &model, ScratchKind::Kv, max_t, model.dtype),
        ];
        let o_acc = f.scratch("o_acc", &model, ScratchKind::Q, t_i, DType::F32);
        let l_acc = f.scratch("lse_acc", &model, ScratchKind::Lse, t_i, DType::F32);
        let o_tmp = f.scratch("o_part", &model, ScratchKind::Q, t_i, DType::F32);
        let l_tmp = f.scratch("lse_part", &model, ScratchKind::Lse, t_i, DType::F32);
        let kv_at = |s: u32| if s == 0 { kv } else { ring[(s % 2) as usize] };
        f.push(Instr::Fill {
            dst: f.rows(o_acc, 0, t_i),
            value: FillValue::Zero,
        });
        f.push(Instr::Fill {
            dst: f.rows(l_acc, 0, t_i),
            value: FillValue::NegInf,
        });
        for s in 0..n {
            if s + 1 < n {
                let ops = ring_step(
                    f.rows(kv_at(s), 0, tokens[src(i, s) as usize]),
                    f.rows(
                        ring[((s + 1) % 2) as usize],
                        0,
                        tokens[src(i, s + 1) as usize],
                    ),
                    next,
                    prev,
                );
                f.push(Instr::Comm { tag: s, ops });
            }
            let mut fw = Vec::new();
            let mut merges = Vec::new();
            for (qi, kj, rows) in &steps[s as usize] {
                let (qp, kp) = (piece(i, *qi), piece(src(i, s), *kj));
                let (qr, ql) = (qp.row, qp.len());
                fw.push(FwdWork {
                    q: f.rows(q, qr, ql),
                    kv: vec![f.rows(kv_at(s), kp.row, kp.len())],
                    o: f.rows(o_tmp, qr, ql),
                    lse: f.rows(l_tmp, qr, ql),
                    rows: rows.clone(),
                });
                merges.push(Instr::Merge {
                    o: f.rows(o_acc, qr, ql),
                    lse: f.rows(l_acc, qr, ql),
                    inputs: vec![
                        (f.rows(o_acc, qr, ql), f.rows(l_acc, qr, ql)),
                        (f.rows(o_tmp, qr, ql), f.rows(l_tmp, qr, ql)),
                    ],
                });
            }
            if !fw.is_empty() {
                f.push(Instr::Attn {
                    stage: s,
                    works: fw,
                });
            }
            for m in merges {
                f.push(m);
            }
            if s + 1 < n {
                f.push(Instr::Wait { tag: s });
            }
        }
        f.push(Instr::Copy {
            src: f.rows(o_acc, 0, t_i),
            dst: f.rows(o, 0, t_i),
        });
        f.push(Instr::Copy {
            src: f.rows(l_acc, 0, t_i),
            dst: f.rows(lse, 0, t_i),
        });
        f.finish()
    }

    /// Backward: KV around the ring with the fp32 dKV accumulators following it one hop behind,
    /// then home.
    fn backward(&self, steps: &mut [StepWorks]) -> Program {
        let (n, i, model, tokens, max_t) = (self.n, self.i, self.model, self.tokens, self.max_t);
        let (t_i, next, prev) = (tokens[i as usize], (i + 1) % n, (i + n - 1) % n);
        let src = |i: u32, s: u32| (i + n - s % n) % n;
        let piece = |d: u32, k: usize| self.piece(d, k);
        let mut b = ProgramBuilder::new();
        let q = b.io(IoTensor::Q, &model, t_i);
        let kv = b.io(IoTensor::Kv, &model, t_i);
        let o = b.io(IoTensor::O, &model, t_i);
        let lse = b.io(IoTensor::Lse, &model, t_i);
        let d_o = b.io(IoTensor::DO, &model, t_i);
        let dq = b.io(IoTensor::DQ, &model, t_i);
        let dkv = b.io(IoTensor::DKv, &model, t_i);
        let ring = [
            b.scratch("kv_ring0", &model, ScratchKind::Kv, max_t, model.dtype),
            b.scratch("kv_ring1", &model, ScratchKind::Kv, max_t, model.dtype),
        ];
        let dring = [
            b.scratch("dkv_ring0", &model, ScratchKind::Kv, max_t, DType::F32),
            b.scratch("dkv_ring1", &model, ScratchKind::Kv, max_t, DType::F32),
        ];
        let dq_acc = b.scratch("dq_acc", &model, ScratchKind::Q, t_i, DType::F32);
        let kv_at = |s: u32| if s == 0 { kv } else { ring[(s % 2) as usize] };
        b.push(Instr::Fill {
            dst: b.rows(dq_acc, 0, t_i),
            value: FillValue::Zero,
        });
        b.push(Instr::Fill {
            dst: b.rows(dring[0], 0, t_i),
            value: FillValue::Zero,
        });
        for s in 0..n {
            if s + 1 < n {
                let ops = ring_step(
                    b.rows(kv_at(s), 0, tokens[src(i, s) as usize]),
                    b.rows(
                        ring[((s + 1) % 2) as usize],
                        0,
                        tokens[src(i, s + 1) as usize],
                    ),
                    next,
                    prev,
                );
                b.push(Instr::Comm { tag: 2 * s, ops });
            }
            if s > 0 {
                b.push(Instr::Wait { tag: 2 * (s - 1) });
                b.push(Instr::Wait { tag: 2 * s - 1 });
            }
            let dcur = dring[(s % 2) as usize];
            let works: Vec<BwdWork> = std::mem::take(&mut steps[s as usize])
                .into_iter()
                .map(|(qi, kj, rows)| {
                    let (qp, kp) = (piece(i, qi), piece(src(i, s), kj));
                    let (qr, ql) = (qp.row, qp.len());
                    BwdWork {
                        q: b.rows(q, qr, ql),
                        kv: vec![b.rows(kv_at(s), kp.row, kp.len())],
                        o: b.rows(o, qr, ql),
                        lse: b.rows(lse, qr, ql),
                        do_: b.rows(d_o, qr, ql),
                        dq: b.rows(dq_acc, qr, ql),
                        dkv: vec![b.rows(dcur, kp.row, kp.len())],
                        rows,
                    }
                })
                .collect();
            if !works.is_empty() {
                b.push(Instr::AttnBwd { stage: s, works });
            }
            if n > 1 {
                let ops = ring_step(
                    b.rows(dcur, 0, tokens[src(i, s) as usize]),
                    b.rows(
                        dring[((s + 1) % 2) as usize],
                        0,
                        tokens[src(i, s + 1) as usize],
                    ),
                    next,
                    prev,
                );
                b.push(Instr::Comm {
                    tag: 2 * s + 1,
                    ops,
                });
            }
        }
        if n > 1 {
            b.push(Instr::Wait { tag: 2 * n - 1 });
        }
        let home = if n > 1 {
            dring[(n % 2) as usize]
        } else {
            dring[0]
        };
        b.push(Instr::Copy {
            src: b.rows(home, 0, t_i),
            dst: b.rows(dkv, 0, t_i),
        });
        b.push(Instr::Copy {
            src: b.rows(dq_acc, 0, t_i),
            dst: b.rows(dq, 0, t_i),
        });

        b.finish()
    }
}

/// The `ring` planner (`zigzag = false`) or the `zigzag` planner, on one thread.
pub fn plan_ring(batch: &BatchSpec, topo: &Topology, zigzag: bool) -> Result<Plan, PlanningError> {
    plan_ring_threads(batch, topo, zigzag, 1)
}

/// [`plan_ring`] with the devices' programs built on up to `threads` threads; the plan is the
/// same byte for byte.
pub fn plan_ring_threads(
    batch: &BatchSpec,
    topo: &Topology,
    zigzag: bool,
    threads: usize,
) -> Result<Plan, PlanningError> {
    batch.validate()?;
    let n = topo.n_devices();
    let model = batch.model;
    let masks: Vec<CompiledMask> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
    let pieces = chunk_layout(batch, n, zigzag);
    let tokens: Vec<u32> = pieces
        .iter()
        .map(|p| p.iter().map(Piece::len).sum())
        .collect();
    let max_t = tokens.iter().copied().max().unwrap_or(0);
    // Piece index of each sequence on each device.
    let mut piece_at: Vec<Vec<Option<u32>>> = vec![vec![None; n as usize]; batch.seqs.len()];
    for (d, ps) in pieces.iter().enumerate() {
        for (k, p) in ps.iter().enumerate() {
            piece_at[p.seq as usize][d] = Some(k as u32);
        }
    }
    let devices = par_map(n, threads, |i| {
        let dev = RingDev {
            n,
            i,
            model,
            pieces: &pieces,
            tokens: &tokens,
            max_t,
        };
        // Works of step s: every local sequence piece against the same sequence's piece on src
        // (found by index, not by search); computed once for both programs.
        let mut steps: Vec<StepWorks> = (0..n)
            .map(|s| {
                let j = dev.src(s) as usize;
                let mut v = Vec::new();
                for (qi, qp) in pieces[i as usize].iter().enumerate() {
                    if let Some(kj) = piece_at[qp.seq as usize][j] {
                        let kp = &pieces[j][kj as usize];
                        let (rows, att) = work_rows(&masks[qp.seq as usize], &qp.spans, &kp.spans);
                        if att > 0 {
                            v.push((qi, kj as usize, rows));
                        }
                    }
                }
                v
            })
            .collect();
        DevicePlan {
            device: i,
            node: topo.node_of(i),
            layout: layout_of(&pieces[i as usize]),
            forward: dev.forward(&steps),
            backward: dev.backward(&mut steps),
        }
    });
    Ok(Plan {
        version: PLAN_FORMAT_VERSION,
        planner: if zigzag { "zigzag" } else { "ring" }.to_string(),
        candidate: None,
        batch: batch.clone(),
        topology: *topo,
        devices,
    })
}

/// One ring step: send `send` to the next device, receive `recv` from the previous one.
fn ring_step(send: Region, recv: Region, next: u32, prev: u32) -> Vec<P2p> {
    vec![
        P2p {
            dir: Dir::Send,
            peer: next,
            region: send,
        },
        P2p {
            dir: Dir::Recv,
            peer: prev,
            region: recv,
        },
    ]
}
