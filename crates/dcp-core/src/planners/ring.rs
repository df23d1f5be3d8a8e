//! The static ring planners in the Plan IR, so every comparison runs through the same
//! validator, simulator and executors:
//! * `ring`: every sequence split evenly (contiguously) over all devices; KV passed around the
//!   ring in N−1 steps; in backward, dKV accumulators travel with KV and take one more hop home.
//! * `zigzag`: each sequence in 2N chunks, device i holds chunks i and 2N−1−i; same ring.
//!
//! Each step is one work per device: all its query rows against all the KV rows it holds, with
//! block-diagonal row ranges (a sequence's piece attends only the same sequence's piece), and
//! one merge of the whole partial output. Per-piece works made a 1M-token plan on 256 devices
//! hold ~7 M works each with its own allocations; one work per step keeps the plan's size
//! devices² + segments. A (query span, KV span) pair attended in full or not at all (every pair
//! but the diagonal's under a causal mask) becomes a constant range without evaluating rows.
//!
//! Ring byte counts (T tokens, e bytes per element, KV row = 2·Hkv·D elements):
//! forward (N−1)·T·KVrow·e, backward (N−1)·T·KVrow·e + N·T·KVrow·4 (dKV travels in fp32).

use crate::builder::{work_rows, ProgramBuilder, ScratchKind};
use crate::error::PlanningError;
use crate::mask::{CompiledMask, Lin, LinRange};
use crate::plan::{
    BwdWork, DevicePlan, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Plan, Program, Region,
    RowRanges, SegRanges, TokenSpan, PLAN_FORMAT_VERSION,
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

/// A query span of a local piece with what its rows attend, to classify KV spans against it
/// without building their row ranges.
pub(crate) struct QSpan {
    pub(crate) start: u32,
    pub(crate) len: u32,
    /// Smallest key interval holding every key the rows attend (`None`: they attend nothing).
    bbox: Option<(u32, u32)>,
    /// Key intervals every row attends in full (conservative).
    common: Vec<(u32, u32)>,
}

/// How the rows of a query span attend a KV span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attends {
    Nothing,
    All,
    /// Some keys on some rows: the rows must be evaluated ([`work_rows`]).
    Part,
}

impl QSpan {
    /// How every row of this span attends keys `[k0, k1)` (closed-form counts only).
    pub(crate) fn attends(&self, mask: &CompiledMask, k0: u32, k1: u32) -> Attends {
        if self.common.iter().any(|&(a, b)| a <= k0 && k1 <= b) {
            return Attends::All;
        }
        if self.bbox.is_none_or(|(a, b)| k1 <= a || b <= k0) {
            return Attends::Nothing;
        }
        match mask.count_tile(self.start, self.start + self.len, k0, k1) {
            0 => Attends::Nothing,
            c if c == self.len as u64 * (k1 - k0) as u64 => Attends::All,
            _ => Attends::Part,
        }
    }

    pub(crate) fn of(mask: &CompiledMask, piece: &Piece) -> Vec<QSpan> {
        piece
            .spans
            .iter()
            .map(|&(start, len)| {
                let mut common = Vec::new();
                mask.common_keys_into(start, start + len, &mut common);
                QSpan {
                    start,
                    len,
                    bbox: mask.key_span(start, start + len),
                    common,
                }
            })
            .collect()
    }
}

/// Appends to `out` the row ranges of query piece `q` (its rows from `row0` on) against KV
/// piece `kp` (its keys from `key0` on); returns the attended pairs per head. A (query span, KV
/// span) pair that every row attends in full or not at all (all of them in a ring plan but the
/// diagonal's) becomes a constant range without evaluating rows; only the others go through
/// [`work_rows`].
fn piece_rows(
    mask: &CompiledMask,
    q: &[QSpan],
    kp: &Piece,
    row0: u32,
    key0: u32,
    out: &mut RowRanges,
) -> u64 {
    let mut attended = 0u64;
    let mut row = row0;
    for qs in q {
        let mut ranges = SegRanges::new();
        let mut full_keys = 0u64;
        let mut partial = false;
        let mut key = key0 as i64;
        for &(ks, kl) in &kp.spans {
            let how = qs.attends(mask, ks, ks + kl);
            if how == Attends::Part {
                partial = true;
                break;
            }
            if how == Attends::All {
                let end = Lin::c(key + kl as i64);
                match ranges.last_mut() {
                    Some(last) if last.end == Lin::c(key) => last.end = end,
                    _ => ranges.push(LinRange::new(Lin::c(key), end)),
                }
                full_keys += kl as u64;
            }
            key += kl as i64;
        }
        if partial {
            let (rows, att) = work_rows(mask, &[(qs.start, qs.len)], &kp.spans);
            out.push_shifted(&rows, row, key0);
            attended += att;
        } else if !ranges.is_empty() {
            out.push_seg(row, qs.len, ranges);
            attended += qs.len as u64 * full_keys;
        }
        row += qs.len;
    }
    attended
}

/// One device of a ring plan: its position, the layout of every device, and its works by step.
struct RingDev<'a> {
    n: u32,
    i: u32,
    model: ModelShape,
    tokens: &'a [u32],
    max_t: u32,
}

impl RingDev<'_> {
    /// The device whose KV this device holds at step `s`.
    fn src(&self, s: u32) -> u32 {
        (self.i + self.n - s % self.n) % self.n
    }

    /// Step `s`'s hop around the ring (KV forward and backward, dKV backward): `cur`, the `t_s`
    /// rows of the device held at step `s`, to the next device; from the previous one, those held
    /// at `s + 1` into `ring[(s + 1) % 2]`.
    #[inline(always)]
    fn hop(&self, b: &ProgramBuilder, (cur, t_s): (u32, u32), ring: [u32; 2], s: u32) -> Vec<P2p> {
        let (n, i, tokens) = (self.n, self.i, self.tokens);
        ring_step(
            b.rows(cur, 0, t_s),
            b.rows(
                ring[((s + 1) % 2) as usize],
                0,
                tokens[self.src(s + 1) as usize],
            ),
            (i + 1) % n,
            (i + n - 1) % n,
        )
    }

    /// Forward: KV around the ring; per step one work (all local query rows against all held
    /// KV rows) whose partial (O, LSE) is merged into fp32 accumulators.
    fn forward(&self, steps: &[Option<RowRanges>]) -> Program {
        let (n, i, model, tokens, max_t) = (self.n, self.i, self.model, self.tokens, self.max_t);
        let t_i = tokens[i as usize];
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
            let t_s = tokens[self.src(s) as usize];
            if s + 1 < n {
                let ops = self.hop(&f, (kv_at(s), t_s), ring, s);
                f.push(Instr::Comm { tag: s, ops });
            }
            if let Some(rows) = &steps[s as usize] {
                f.push(Instr::Attn {
                    stage: s,
                    works: vec![FwdWork {
                        q: f.rows(q, 0, t_i),
                        kv: vec![f.rows(kv_at(s), 0, t_s)],
                        o: f.rows(o_tmp, 0, t_i),
                        lse: f.rows(l_tmp, 0, t_i),
                        rows: rows.clone(),
                    }],
                });
                // Rows attending nothing this step hold LSE = −∞ and merge as no-ops.
                f.push(Instr::Merge {
                    o: f.rows(o_acc, 0, t_i),
                    lse: f.rows(l_acc, 0, t_i),
                    inputs: vec![
                        (f.rows(o_acc, 0, t_i), f.rows(l_acc, 0, t_i)),
                        (f.rows(o_tmp, 0, t_i), f.rows(l_tmp, 0, t_i)),
                    ],
                });
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
    /// then home; per step one work over all local query rows and all held KV rows.
    fn backward(&self, steps: Vec<Option<RowRanges>>) -> Program {
        let (n, i, model, tokens, max_t) = (self.n, self.i, self.model, self.tokens, self.max_t);
        let t_i = tokens[i as usize];
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
        for (s, rows) in (0..n).zip(steps) {
            let t_s = tokens[self.src(s) as usize];
            if s + 1 < n {
                let ops = self.hop(&b, (kv_at(s), t_s), ring, s);
                b.push(Instr::Comm { tag: 2 * s, ops });
            }
            if s > 0 {
                b.push(Instr::Wait { tag: 2 * (s - 1) });
                b.push(Instr::Wait { tag: 2 * s - 1 });
            }
            let dcur = dring[(s % 2) as usize];
            if let Some(rows) = rows {
                b.push(Instr::AttnBwd {
                    stage: s,
                    works: vec![BwdWork {
                        q: b.rows(q, 0, t_i),
                        kv: vec![b.rows(kv_at(s), 0, t_s)],
                        o: b.rows(o, 0, t_i),
                        lse: b.rows(lse, 0, t_i),
                        do_: b.rows(d_o, 0, t_i),
                        dq: b.rows(dq_acc, 0, t_i),
                        dkv: vec![b.rows(dcur, 0, t_s)],
                        rows,
                    }],
                });
            }
            if n > 1 {
                let ops = self.hop(&b, (dcur, t_s), dring, s);
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
            tokens: &tokens,
            max_t,
        };
        let local = &pieces[i as usize];
        let qspans: Vec<Vec<QSpan>> = local
            .iter()
            .map(|p| QSpan::of(&masks[p.seq as usize], p))
            .collect();
        // Row ranges of step s: every local sequence piece against the same sequence's piece
        // on src (found by index, not by search), block-diagonal in one work; `None` when no
        // row attends anything. Computed once for both programs.
        let steps: Vec<Option<RowRanges>> = (0..n)
            .map(|s| {
                let j = dev.src(s) as usize;
                let mut rows = RowRanges {
                    segs: Vec::with_capacity(local.len()),
                };
                let mut attended = 0u64;
                for (qi, qp) in local.iter().enumerate() {
                    if let Some(kj) = piece_at[qp.seq as usize][j] {
                        let kp = &pieces[j][kj as usize];
                        let mask = &masks[qp.seq as usize];
                        attended += piece_rows(mask, &qspans[qi], kp, qp.row, kp.row, &mut rows);
                    }
                }
                (attended > 0).then_some(rows)
            })
            .collect();
        DevicePlan {
            device: i,
            node: topo.node_of(i),
            layout: layout_of(local),
            forward: dev.forward(&steps),
            backward: dev.backward(steps),
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
