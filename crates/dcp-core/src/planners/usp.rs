//! The 2-D head-parallel × ring planner `usp` (the scheme of USP / LoongTrain), and the engine
//! the `ulysses` planner ([`crate::ulysses`]) runs with a ring of one.
//!
//! Devices form an H×R grid: device `d = r·H + h` is member `h` of head group `r` (consecutive
//! devices, so a head group stays inside a node when H ≤ GPUs per node) and rank `r` of ring
//! `h`. Inputs and outputs use the static zigzag layout (each sequence in 2N chunks, device i
//! holds chunks i and 2N−1−i), so head group r together holds chunks r and 2R−1−r of a 2R split.
//!
//! Forward: one all-to-all inside each head group turns the sequence split into a head split
//! (member h receives its head share of every token of its group); a zigzag ring across the R
//! groups then passes the head share's KV around, exactly as the `zigzag` planner does with
//! whole heads; partial (O, LSE) merge in fp32; a second all-to-all returns O and LSE to the
//! sequence split. Backward: the all-to-all brings Q, KV, O, LSE and dO; dKV accumulators
//! (fp32) travel with KV and take one more hop home; dQ/dKV accumulate only in fp32 and are
//! converted once into the 16-bit outputs (the return all-to-all carries bf16 where each value
//! is final on the sender, fp32 where partial sums still have to be added).
//!
//! Head shares. With H dividing the KV heads, member h takes KV heads `[h·kv/H, (h+1)·kv/H)` and
//! their query heads. With more members than KV heads (H a multiple of kv, ρ = H/kv members per
//! KV head), the KV head is replicated on its ρ members, as DeepSpeed-Ulysses replicates KV
//! heads. A work of the IR (validator, CUDA executor) reads whole GQA groups, so the ρ members of
//! one KV head split that group's query work by *rows* rather than by query heads: member h
//! (part `h mod ρ`) takes all g query heads of its KV head for the tokens held by the members of
//! its part. FLOPs per device are the same as a head split (g·T/ρ = heads·T/H query-head rows);
//! each member receives the whole group's KV (the replication cost, see [`crate::ulysses`]),
//! and the ρ partial dKV of a KV head are summed in fp32 by the token's owner.
//!
//! In the IR an all-to-all is one `Comm` group; each member sends each peer one region per
//! tensor (rows of its buffer × the peer's head share) and receives one block per peer, so a
//! receive buffer holds the group's tokens in member order. Each ring step is one work (as in
//! [`crate::planners::ring`]): all the member's query rows against the whole KV buffer, with
//! block-diagonal row ranges that send each query piece to its sequence's KV spans at their
//! buffer rows, and one merge of the whole partial output. Per-piece works made building the
//! `usp` plan at 1M tokens on 256 devices cost 3–5 s; now 0.5–0.7 s. `dcp` does not build it to
//! weigh it: [`crate::planners::candidates::predict_head_parallel`] predicts it plan-free.

use crate::builder::{work_rows, ProgramBuilder};
use crate::error::PlanningError;
use crate::mask::{CompiledMask, Lin, LinRange};
use crate::plan::{
    BufferRole, BwdWork, DevicePlan, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Plan, Region,
    RowRanges, SegRanges, PLAN_FORMAT_VERSION,
};
use crate::spec::{BatchSpec, DType, ModelShape, Topology};

use super::ring::{chunk_layout, layout_of, Attends, Piece, QSpan};

/// What member `h` of a head group computes: KV heads `[kv0, kv0 + kvn)` (and their query
/// heads) for the tokens of the members `j` with `j mod parts == part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) kv0: u32,
    pub(crate) kvn: u32,
    pub(crate) part: u32,
    pub(crate) parts: u32,
}

pub(crate) fn share(model: &ModelShape, h_deg: u32, h: u32) -> Share {
    let kv = model.kv_heads;
    if h_deg <= kv {
        let kvn = kv / h_deg;
        Share {
            kv0: h * kvn,
            kvn,
            part: 0,
            parts: 1,
        }
    } else {
        let parts = h_deg / kv;
        Share {
            kv0: h / parts,
            kvn: 1,
            part: h % parts,
            parts,
        }
    }
}

/// Head-parallel degrees H that the `usp` engine accepts for this model on `n` devices:
/// H divides n, H ≤ query heads, and H divides the KV heads or is a multiple of them.
pub fn valid_head_degrees(model: &ModelShape, n: u32) -> Vec<u32> {
    (1..=n)
        .filter(|&h| {
            n.is_multiple_of(h)
                && h <= model.heads
                && (model.kv_heads.is_multiple_of(h) || h.is_multiple_of(model.kv_heads))
        })
        .collect()
}

/// The default head-parallel degree of `usp`: the largest H dividing both the KV heads and the
/// device count (no KV replication; replication is what the ring dimension exists to avoid).
pub fn default_head_degree(model: &ModelShape, n: u32) -> u32 {
    (1..=n.min(model.kv_heads))
        .rev()
        .find(|&h| n.is_multiple_of(h) && model.kv_heads.is_multiple_of(h))
        .unwrap_or(1)
}

/// The head-parallel degree `plan_usp` uses for `h_deg` (None: [`default_head_degree`]) after
/// validating the batch; a typed error naming the degree when the shape does not allow it.
pub(crate) fn usp_head_degree(
    batch: &BatchSpec,
    topo: &Topology,
    h_deg: Option<u32>,
) -> Result<u32, PlanningError> {
    batch.validate()?;
    let n = topo.n_devices();
    let h = h_deg.unwrap_or_else(|| default_head_degree(&batch.model, n));
    let valid = valid_head_degrees(&batch.model, n);
    if !valid.contains(&h) {
        let list: Vec<String> = valid.iter().map(|v| v.to_string()).collect();
        return Err(PlanningError::Unsupported {
            planner: "usp",
            what: format!(
                "head-parallel degree {h} on {n} devices with {} query / {} KV heads (H must divide the device count, be at most the query heads, and divide or be a multiple of the KV heads; allowed here: {})",
                batch.model.heads,
                batch.model.kv_heads,
                list.join(", ")
            ),
        });
    }
    Ok(h)
}

/// The `usp` planner with head-parallel degree `h_deg` (None: [`default_head_degree`]).
pub fn plan_usp(
    batch: &BatchSpec,
    topo: &Topology,
    h_deg: Option<u32>,
) -> Result<Plan, PlanningError> {
    let h = usp_head_degree(batch, topo, h_deg)?;
    let name = match h_deg {
        None => "usp".to_string(),
        Some(h) => format!("usp:{h}"),
    };
    plan_grid(batch, topo, h, name)
}

/// Everything a device's programs need to know about the grid.
struct Grid<'a> {
    batch: &'a BatchSpec,
    masks: Vec<CompiledMask>,
    pieces: Vec<Vec<Piece>>,
    /// Index of each sequence's piece on each device (`[seq][device]`).
    piece_at: Vec<Vec<Option<u32>>>,
    /// Each piece's query spans with what their rows attend (`[device][piece]`).
    qspans: Vec<Vec<Vec<QSpan>>>,
    tokens: Vec<u32>,
    h: u32,
    r: u32,
}

impl Grid<'_> {
    fn dev(&self, ring: u32, member: u32) -> u32 {
        ring * self.h + member
    }
    fn share(&self, member: u32) -> Share {
        share(&self.batch.model, self.h, member)
    }
    /// Tokens of head group `ring`, and each member's first row in a buffer holding them all.
    fn kv_blocks(&self, ring: u32) -> (u32, Vec<u32>) {
        let mut off = Vec::with_capacity(self.h as usize);
        let mut acc = 0;
        for j in 0..self.h {
            off.push(acc);
            acc += self.tokens[self.dev(ring, j) as usize];
        }
        (acc, off)
    }
    /// Query rows member `member` of group `ring` computes, and each source member's first row
    /// (None: not a source of this member's part).
    fn q_blocks(&self, ring: u32, member: u32) -> (u32, Vec<Option<u32>>) {
        let sh = self.share(member);
        let mut off = Vec::with_capacity(self.h as usize);
        let mut acc = 0;
        for j in 0..self.h {
            if j % sh.parts == sh.part {
                off.push(Some(acc));
                acc += self.tokens[self.dev(ring, j) as usize];
            } else {
                off.push(None);
            }
        }
        (acc, off)
    }

    /// Row ranges of one ring step on member `member` of group `ring`, for one work of all
    /// its query rows (laid out as [`Grid::q_blocks`]) against the whole KV buffer of group
    /// `kv_ring` (laid out as [`Grid::kv_blocks`]): block-diagonal, each query piece attending
    /// its sequence's KV spans at their buffer rows. `None` when no row attends anything.
    fn step_rows(&self, ring: u32, member: u32, kv_ring: u32) -> Option<RowRanges> {
        let (_, qoff) = self.q_blocks(ring, member);
        let (_, koff) = self.kv_blocks(kv_ring);
        let mut rows = RowRanges::default();
        let mut attended = 0u64;
        let mut scratch = SpanScratch::default();
        let kpos = |k: u32, _: u32, _: u32, r: u32| Some(koff[k as usize] + r);
        for (j, qo) in qoff.iter().enumerate() {
            let Some(qo) = qo else { continue };
            let qpos = |_: u32, _: u32, r: u32| Some(qo + r);
            let pos: Pos = (&qpos, &kpos);
            attended += self.rows_into(ring, j as u32, kv_ring, pos, &mut rows, &mut scratch);
        }
        (attended > 0).then_some(rows)
    }

    /// Appends the row ranges of member `j`'s (of group `ring`) pieces against the KV of group
    /// `kv_ring`. `pos.0(seq, span start, member row)` places a query span's first row at a
    /// work row (None: not in this work); `pos.1(k, seq, span start, member row)` places member
    /// k's KV span at a key position (None: not in the work's KV). Returns the attended pairs
    /// per head.
    fn rows_into(
        &self,
        ring: u32,
        j: u32,
        kv_ring: u32,
        pos: Pos,
        rows: &mut RowRanges,
        scratch: &mut SpanScratch,
    ) -> u64 {
        let (qpos, kpos) = pos;
        let mut attended = 0u64;
        // (token start, key position, len) of every KV span of one sequence in the group.
        let mut kv: Vec<(u32, u32, u32)> = Vec::new();
        let qd = self.dev(ring, j) as usize;
        for (qi, qp) in self.pieces[qd].iter().enumerate() {
            // The work row of each query span (member rows run span after span).
            let q_at = |i: usize| {
                let row = qp.row + qp.spans[..i].iter().map(|s| s.1).sum::<u32>();
                qpos(qp.seq, qp.spans[i].0, row)
            };
            if (0..qp.spans.len()).all(|i| q_at(i).is_none()) {
                continue;
            }
            kv.clear();
            for jk in 0..self.h {
                let kd = self.dev(kv_ring, jk) as usize;
                if let Some(k) = self.piece_at[qp.seq as usize][kd] {
                    let kp = &self.pieces[kd][k as usize];
                    let mut row = kp.row;
                    for &(start, len) in &kp.spans {
                        if let Some(at) = kpos(jk, qp.seq, start, row) {
                            kv.push((start, at, len));
                        }
                        row += len;
                    }
                }
            }
            let mask = &self.masks[qp.seq as usize];
            for (i, qs) in self.qspans[qd][qi].iter().enumerate() {
                if let Some(at) = q_at(i) {
                    attended += span_rows(mask, qs, &kv, at, rows, scratch);
                }
            }
        }
        attended
    }
}

/// Where [`Grid::rows_into`] places query spans (seq, span start, member row -> work row) and
/// KV spans (member, seq, span start, member row -> key position); None leaves a span out.
type Pos<'a> = (
    &'a dyn Fn(u32, u32, u32) -> Option<u32>,
    &'a dyn Fn(u32, u32, u32, u32) -> Option<u32>,
);

/// Reused temporaries of [`span_rows`] (it runs once per query span and step: millions of times
/// for a large plan).
#[derive(Default)]
struct SpanScratch {
    /// (buffer row of a KV span, its rows' ranges in the span's keys unless attended in full,
    /// its length).
    blocks: Vec<(u32, Option<RowRanges>, u32)>,
    cuts: Vec<u32>,
}

/// Appends to `out` the row ranges of query span `qs` (its rows from `row0` on) against KV spans
/// `(token start, buffer row, len)` at their buffer rows; returns the attended pairs per head.
/// A KV span the rows attend in full or not at all is a constant range (or none); the others'
/// rows come from [`work_rows`] one span at a time, overlaid in buffer-row order (the spans'
/// buffer rows are disjoint, so that order is the same on every row).
fn span_rows(
    mask: &CompiledMask,
    qs: &QSpan,
    kv: &[(u32, u32, u32)],
    row0: u32,
    out: &mut RowRanges,
    scratch: &mut SpanScratch,
) -> u64 {
    let mut attended = 0u64;
    let SpanScratch { blocks, cuts } = scratch;
    blocks.clear();
    for &(start, krow, len) in kv {
        match qs.attends(mask, start, start + len) {
            Attends::Nothing => {}
            Attends::All => {
                attended += qs.len as u64 * len as u64;
                blocks.push((krow, None, len));
            }
            Attends::Part => {
                let (r, a) = work_rows(mask, &[(qs.start, qs.len)], &[(start, len)]);
                attended += a;
                blocks.push((krow, Some(r), len));
            }
        }
    }
    if blocks.is_empty() {
        return attended;
    }
    blocks.sort_unstable_by_key(|b| b.0);
    // Rows where some block's ranges change: the overlay's segment bounds.
    cuts.clear();
    cuts.extend([0, qs.len]);
    for (_, r, _) in blocks.iter() {
        for seg in r.iter().flat_map(|r| &r.segs) {
            cuts.extend([seg.row0, seg.row0 + seg.rows]);
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    // A span's key position p is buffer row krow + p; its rows start at row0.
    let at = |l: Lin, krow: u32| Lin {
        c: l.c - l.slope * row0 as i64 + krow as i64,
        slope: l.slope,
    };
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mut ranges = SegRanges::new();
        for (krow, r, len) in blocks.iter() {
            match r {
                None => {
                    let (s, e) = (Lin::c(*krow as i64), Lin::c((*krow + *len) as i64));
                    match ranges.last_mut() {
                        Some(last) if last.end == s => last.end = e,
                        _ => ranges.push(LinRange::new(s, e)),
                    }
                }
                Some(r) => {
                    let i = r.segs.partition_point(|g| g.row0 + g.rows <= a);
                    if let Some(seg) = r.segs.get(i).filter(|g| g.row0 <= a) {
                        for lr in &seg.ranges {
                            ranges.push(LinRange::new(at(lr.start, *krow), at(lr.end, *krow)));
                        }
                    }
                }
            }
        }
        if !ranges.is_empty() {
            out.push_seg(row0 + a, b - a, ranges);
        }
    }
    attended
}

/// A region of `len` rows from `tok` and heads `[head, head + heads)` of buffer `buf`.
fn reg(buf: u32, tok: u32, len: u32, head: u32, heads: u32) -> Region {
    Region {
        buf,
        tok,
        len,
        head,
        heads,
    }
}

fn send(peer: u32, region: Region) -> P2p {
    P2p {
        dir: Dir::Send,
        peer,
        region,
    }
}

fn recv(peer: u32, region: Region) -> P2p {
    P2p {
        dir: Dir::Recv,
        peer,
        region,
    }
}

/// One tensor of an all-to-all inside a head group, seen from member `me`.
struct A2a {
    /// The caller-layout buffer (rows: this device's tokens, all heads of the tensor).
    io: u32,
    /// The head-split buffer (rows: the member-ordered blocks, heads: this member's share).
    split: u32,
    /// Heads of the tensor per KV head (g for Q-like tensors, 1 for KV-like ones).
    per_kv: u32,
    /// Q-like (only members of the same part exchange) or KV-like (everyone).
    q_like: bool,
    /// Direction: inputs scatter the io buffer into `split`, outputs gather back.
    to_split: bool,
}

/// Builds the ops and local copies of one all-to-all group for member `me` of group `ring`.
fn all_to_all(g: &Grid, ring: u32, me: u32, tensors: &[A2a]) -> (Vec<P2p>, Vec<Instr>) {
    all_to_all_rows(g, ring, me, tensors, &|j| {
        (0, g.tokens[g.dev(ring, j) as usize], None)
    })
}

/// [`all_to_all`] of rows `rows(j) = (first, count, at)` of each member j's tokens only (one
/// phase of a pipelined Ulysses, [`Phases`]), placed in the head-split buffers at row `at`
/// (None: where [`all_to_all`] places j's first token, plus `first`).
fn all_to_all_rows(
    g: &Grid,
    ring: u32,
    me: u32,
    tensors: &[A2a],
    rows: &dyn Fn(u32) -> (u32, u32, Option<u32>),
) -> (Vec<P2p>, Vec<Instr>) {
    let mut ops = Vec::new();
    let mut copies = Vec::new();
    let my_sh = g.share(me);
    let (s_me, t_me, at_mine) = rows(me);
    let (_, my_q) = g.q_blocks(ring, me);
    let (_, my_k) = g.kv_blocks(ring);
    for j in 0..g.h {
        let peer = g.dev(ring, j);
        let (s_j, t_j, at_j) = rows(j);
        let sh = g.share(j);
        for t in tensors {
            // The peer's share of my rows (I scatter) / my share of the peer's rows (I gather).
            let exchange = !t.q_like || sh.part == my_sh.part;
            if !exchange {
                continue;
            }
            // Row of the peer's first moved token inside my split buffer.
            let block = if t.q_like {
                my_q[j as usize].expect("same part")
            } else {
                my_k[j as usize]
            };
            let split_at = at_j.unwrap_or(block + s_j);
            let (hp0, hpn) = (sh.kv0 * t.per_kv, sh.kvn * t.per_kv);
            let (hm0, hmn) = (my_sh.kv0 * t.per_kv, my_sh.kvn * t.per_kv);
            if j == me {
                if t_me > 0 {
                    let (io, sp) = (
                        reg(t.io, s_me, t_me, hm0, hmn),
                        reg(t.split, at_mine.unwrap_or(block + s_me), t_me, 0, hmn),
                    );
                    copies.push(if t.to_split {
                        Instr::Copy { src: io, dst: sp }
                    } else {
                        Instr::Copy { src: sp, dst: io }
                    });
                }
                continue;
            }
            if t.to_split {
                if t_me > 0 {
                    ops.push(send(peer, reg(t.io, s_me, t_me, hp0, hpn)));
                }
                if t_j > 0 {
                    ops.push(recv(peer, reg(t.split, split_at, t_j, 0, hmn)));
                }
            } else {
                if t_j > 0 {
                    ops.push(send(peer, reg(t.split, split_at, t_j, 0, hmn)));
                }
                if t_me > 0 {
                    ops.push(recv(peer, reg(t.io, s_me, t_me, hp0, hpn)));
                }
            }
        }
    }
    (ops, copies)
}

/// Emits the plan of an H×R grid (`h` divides the device count; checked by the callers).
pub(crate) fn plan_grid(
    batch: &BatchSpec,
    topo: &Topology,
    h: u32,
    name: String,
) -> Result<Plan, PlanningError> {
    plan_grid_pp(batch, topo, h, name, false)
}

/// [`plan_grid`]; with `pipeline` (`ulysses-pp`: a grid with no ring, checked by the caller) the
/// all-to-alls run in two phases ([`Phases`]), each beside the attention of the other phase.
/// Where nothing can overlap ([`Phases::of`] is None) the programs are `ulysses`'s.
pub(crate) fn plan_grid_pp(
    batch: &BatchSpec,
    topo: &Topology,
    h: u32,
    name: String,
    pipeline: bool,
) -> Result<Plan, PlanningError> {
    let n = topo.n_devices();
    let model = batch.model;
    let pieces = chunk_layout(batch, n, true);
    let tokens: Vec<u32> = pieces
        .iter()
        .map(|p| p.iter().map(Piece::len).sum())
        .collect();
    let masks: Vec<CompiledMask> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
    let mut piece_at = vec![vec![None; n as usize]; batch.seqs.len()];
    for (d, ps) in pieces.iter().enumerate() {
        for (k, p) in ps.iter().enumerate() {
            piece_at[p.seq as usize][d] = Some(k as u32);
        }
    }
    let qspans = pieces
        .iter()
        .map(|ps| {
            ps.iter()
                .map(|p| QSpan::of(&masks[p.seq as usize], p))
                .collect()
        })
        .collect();
    let g = Grid {
        batch,
        masks,
        piece_at,
        qspans,
        pieces,
        tokens,
        h,
        r: n / h,
    };
    let max_group = (0..g.r).map(|r| g.kv_blocks(r).0).max().unwrap_or(0);
    let phases = if pipeline {
        assert!(
            g.r == 1,
            "the caller checks that a pipelined grid has no ring"
        );
        Phases::of(&g, 0)
    } else {
        None
    };
    let mut devices = Vec::with_capacity(n as usize);
    for d in 0..n {
        let (ring, me) = (d / h, d % h);
        if let Some(ph) = &phases {
            let (forward, saved) = forward_pp(&g, &model, me, ph);
            devices.push(DevicePlan {
                device: d,
                node: topo.node_of(d),
                layout: layout_of(&g.pieces[d as usize]),
                forward,
                backward: backward_pp(&g, &model, me, ph, saved),
            });
            continue;
        }
        // Row ranges of every ring step, computed once for both programs.
        let steps: Vec<Option<RowRanges>> = (0..g.r)
            .map(|s| g.step_rows(ring, me, (ring + g.r - s) % g.r))
            .collect();
        let (forward, saved) = forward(&g, &model, ring, me, max_group, &steps);
        devices.push(DevicePlan {
            device: d,
            node: topo.node_of(d),
            layout: layout_of(&g.pieces[d as usize]),
            forward,
            backward: backward(&g, &model, ring, me, max_group, steps, saved),
        });
    }
    Ok(Plan {
        version: PLAN_FORMAT_VERSION,
        planner: name,
        batch: batch.clone(),
        topology: *topo,
        devices,
        candidate: None,
    })
}

/// The two phases of a pipelined Ulysses (`ulysses-pp`, no ring): sequences `[0, split)` and
/// `[split, ..)`. Documents never attend each other, so a phase's rows need only its own keys:
/// phase 2's input all-to-all runs beside phase 1's attention, and phase 1's output all-to-all
/// beside phase 2's.
struct Phases {
    kind: Split,
    /// Per member, the first of its rows (its own tokens) that belongs to phase 2.
    second: Vec<u32>,
}

/// Where a pipelined Ulysses splits the batch.
enum Split {
    /// Sequences `[0, k)` and `[k, ..)`.
    Seqs(u32),
    /// One sequence's tokens before `half` and from it on (zigzag chunks 0..N and N..2N, so
    /// each member's first span and its second), for a mask whose first half attends nothing
    /// in the second.
    Half(u32),
}

impl Phases {
    /// The split of the group's sequences at about half of its tokens (so that the two phases'
    /// transfers are alike), or of a lone sequence at its middle chunk boundary when its first
    /// half attends nothing in its second (causal-like masks); None otherwise (nothing to
    /// overlap).
    fn of(g: &Grid, ring: u32) -> Option<Phases> {
        let lens: Vec<u64> = g.batch.seqs.iter().map(|s| s.len as u64).collect();
        let kind = match lens.len() {
            0 => return None,
            1 => {
                // The zigzag layout's boundary between chunk N - 1 and chunk N.
                let n = g.h as u64 * g.r as u64;
                let half = (n * lens[0] / (2 * n)) as u32;
                let l = lens[0] as u32;
                if half == 0 || half >= l {
                    return None;
                }
                let (_, reach) = work_rows(&g.masks[0], &[(0, half)], &[(half, l - half)]);
                if reach > 0 {
                    return None;
                }
                Split::Half(half)
            }
            _ => {
                let total: u64 = lens.iter().sum();
                let mut acc = 0;
                let mut split = lens.len() - 1;
                for (i, l) in lens.iter().enumerate() {
                    if i > 0 && 2 * acc >= total {
                        split = i;
                        break;
                    }
                    acc += l;
                }
                Split::Seqs(split as u32)
            }
        };
        let mut ph = Phases {
            kind,
            second: Vec::new(),
        };
        ph.second = (0..g.h)
            .map(|j| {
                g.pieces[g.dev(ring, j) as usize]
                    .iter()
                    .flat_map(|p| p.spans.iter().map(move |s| (p.seq, *s)))
                    .filter(|(seq, s)| ph.in_first(*seq, s.0))
                    .map(|(_, s)| s.1)
                    .sum()
            })
            .collect();
        Some(ph)
    }

    /// Whether the span of sequence `seq` starting at token `start` (its rows and its keys)
    /// belongs to phase 1.
    fn in_first(&self, seq: u32, start: u32) -> bool {
        match self.kind {
            Split::Seqs(k) => seq < k,
            Split::Half(half) => start < half,
        }
    }

    /// Whether phase 2's rows also attend phase 1's keys (a split inside one sequence): phase
    /// 2's work then reads both phases' KV, and phase 1's dKV is final only after phase 2.
    fn second_reads_first(&self) -> bool {
        matches!(self.kind, Split::Half(_))
    }

    /// Member `j`'s rows of phase `p` among its own tokens: (first, count). Phase 1's spans come
    /// first in every member's rows (sequences in order; a piece's first-half chunk first).
    fn rows(&self, g: &Grid, ring: u32, p: usize, j: u32) -> (u32, u32) {
        let (t, s) = (g.tokens[g.dev(ring, j) as usize], self.second[j as usize]);
        if p == 0 {
            (0, s)
        } else {
            (s, t - s)
        }
    }
}

/// Phase `p` in the head-split buffers of a pipelined Ulysses, which hold the group's tokens
/// phase-major (phase 1's rows of every member in member order, then phase 2's), so that each
/// phase is one contiguous block of rows.
struct PhaseRows {
    /// The phase's first row and its row count.
    first: u32,
    len: u32,
    /// Per member: its first token of the phase (among its own), how many, and their row.
    members: Vec<(u32, u32, u32)>,
}

impl PhaseRows {
    /// The KV-like layout (every member's tokens): [`Grid::kv_blocks`] made phase-major.
    fn of(g: &Grid, ring: u32, ph: &Phases, p: usize) -> PhaseRows {
        Self::of_members(g, ring, ph, p, |_| true)
    }

    /// The Q-like layout of member `me` (the tokens of the members of its part, whose query
    /// rows it computes): [`Grid::q_blocks`] made phase-major. Other members have no rows.
    fn q_of(g: &Grid, ring: u32, ph: &Phases, p: usize, me: u32) -> PhaseRows {
        let part = g.share(me).part;
        Self::of_members(g, ring, ph, p, |j| g.share(j).part == part)
    }

    fn of_members(
        g: &Grid,
        ring: u32,
        ph: &Phases,
        p: usize,
        mine: impl Fn(u32) -> bool,
    ) -> PhaseRows {
        let count = |p: usize, j: u32| if mine(j) { ph.rows(g, ring, p, j).1 } else { 0 };
        let first = if p == 0 {
            0
        } else {
            (0..g.h).map(|j| count(0, j)).sum()
        };
        let mut at = first;
        let members = (0..g.h)
            .map(|j| {
                let (f, n) = (ph.rows(g, ring, p, j).0, count(p, j));
                at += n;
                (f, n, at - n)
            })
            .collect();
        PhaseRows {
            first,
            len: at - first,
            members,
        }
    }

    /// The rows an all-to-all of this phase moves ([`all_to_all_rows`]).
    fn a2a(&self, j: u32) -> (u32, u32, Option<u32>) {
        let (f, n, at) = self.members[j as usize];
        (f, n, Some(at))
    }

    /// Rows `[first, first + len)` of buffer `buf`.
    fn reg(&self, buf: u32, heads: u32) -> Region {
        reg(buf, self.first, self.len, 0, heads)
    }
}

/// Phase `p`'s one work: its row ranges (None: nothing attended) and its KV rows (first,
/// count) in the phase-major buffers: the phase's own, or with a split inside one sequence both
/// phases' for phase 2.
fn phase_work(
    g: &Grid,
    ring: u32,
    ph: &Phases,
    qr: &[PhaseRows; 2],
    kr: &[PhaseRows; 2],
    p: usize,
) -> (Option<RowRanges>, (u32, u32)) {
    let both = p == 1 && ph.second_reads_first();
    let kv = if both {
        (0, kr[0].len + kr[1].len)
    } else {
        (kr[p].first, kr[p].len)
    };
    let kpos = |k: u32, seq: u32, start: u32, r: u32| {
        let kp = usize::from(!ph.in_first(seq, start));
        (kp == p || both).then(|| {
            let (f, _, at) = kr[kp].members[k as usize];
            at + r - f - kv.0
        })
    };
    let mut rows = RowRanges::default();
    let mut scratch = SpanScratch::default();
    let mut attended = 0;
    for j in 0..g.h {
        let (f, n, at) = qr[p].members[j as usize];
        if n == 0 {
            continue;
        }
        let qpos = |seq: u32, start: u32, r: u32| {
            (ph.in_first(seq, start) == (p == 0)).then(|| at - qr[p].first + r - f)
        };
        attended += g.rows_into(ring, j, ring, (&qpos, &kpos), &mut rows, &mut scratch);
    }
    ((attended > 0).then_some(rows), kv)
}

/// One phase's all-to-all group of member `me`: Q-like tensors `q` with rows `qr`, KV-like
/// tensors `kv` with rows `kr` (their layouts differ when KV heads are replicated).
fn phase_a2a(
    g: &Grid,
    me: u32,
    q: &[A2a],
    qr: &PhaseRows,
    kv: &[A2a],
    kr: &PhaseRows,
) -> (Vec<P2p>, Vec<Instr>) {
    let (mut ops, mut copies) = all_to_all_rows(g, 0, me, q, &|j| qr.a2a(j));
    let (o2, c2) = all_to_all_rows(g, 0, me, kv, &|j| kr.a2a(j));
    ops.extend(o2);
    copies.extend(c2);
    (ops, copies)
}

/// O = 0, LSE = −∞ on `rows` (first, count) of the head-split outputs (rows no key reaches).
fn fill_empty(f: &mut ProgramBuilder, o_h: u32, lse_h: u32, rows: (u32, u32), qn: u32) {
    f.push(Instr::Fill {
        dst: reg(o_h, rows.0, rows.1, 0, qn),
        value: FillValue::Zero,
    });
    f.push(Instr::Fill {
        dst: reg(lse_h, rows.0, rows.1, 0, qn),
        value: FillValue::NegInf,
    });
}

/// The forward of member `me` of a pipelined Ulysses (`ulysses-pp`): Q and KV of phase 1 in,
/// then phase 2's all-to-all beside phase 1's attention, phase 1's O and LSE out beside phase
/// 2's attention, phase 2's out last (tags 0-3).
fn forward_pp(
    g: &Grid,
    model: &ModelShape,
    me: u32,
    ph: &Phases,
) -> (crate::plan::Program, [u32; 4]) {
    let ring = 0;
    let mut f = ProgramBuilder::new();
    let Common {
        dims: Dims { qn, kvn, .. },
        io,
        q_h,
        kv_h,
        o_h,
        lse_h,
        ..
    } = declare(&mut f, g, model, ring, me, 0, None);
    let [q, kv, o, lse] = io.expect("the forward declares the caller's tensors");
    let a2a = |io, split, per_kv, q_like, to_split| A2a {
        io,
        split,
        per_kv,
        q_like,
        to_split,
    };
    let inputs = [
        a2a(q, q_h, model.group(), true, true),
        a2a(kv, kv_h, 1, false, true),
    ];
    let outputs = [
        a2a(o, o_h, model.group(), true, false),
        a2a(lse, lse_h, model.group(), true, false),
    ];
    let qr = [0, 1].map(|p| PhaseRows::q_of(g, ring, ph, p, me));
    let kr = [0, 1].map(|p| PhaseRows::of(g, ring, ph, p));
    let exchange = |f: &mut ProgramBuilder, tag: u32, q: &[A2a], kv: &[A2a], p: usize| {
        let (ops, copies) = phase_a2a(g, me, q, &qr[p], kv, &kr[p]);
        f.push(Instr::Comm { tag, ops });
        for c in copies {
            f.push(c);
        }
    };
    exchange(&mut f, 0, &inputs[..1], &inputs[1..], 0);
    f.push(Instr::Wait { tag: 0 });
    exchange(&mut f, 1, &inputs[..1], &inputs[1..], 1);
    for (p, pr) in qr.iter().enumerate() {
        if p == 1 {
            f.push(Instr::Wait { tag: 1 });
        }
        if pr.len > 0 {
            let (wr, kv_rows) = phase_work(g, ring, ph, &qr, &kr, p);
            match wr {
                Some(wr) => f.push(Instr::Attn {
                    stage: p as u32,
                    works: vec![FwdWork {
                        q: pr.reg(q_h, qn),
                        kv: vec![reg(kv_h, kv_rows.0, kv_rows.1, 0, kvn)],
                        o: pr.reg(o_h, qn),
                        lse: pr.reg(lse_h, qn),
                        rows: wr,
                    }],
                }),
                None => fill_empty(&mut f, o_h, lse_h, (pr.first, pr.len), qn),
            }
        }
        exchange(&mut f, 2 + p as u32, &outputs, &[], p);
    }
    f.push(Instr::Wait { tag: 2 });
    f.push(Instr::Wait { tag: 3 });
    (f.finish(), [q_h, kv_h, o_h, lse_h])
}

/// The backward of member `me` of a pipelined Ulysses: dO of phase 1 in, then phase 2's dO
/// beside phase 1's backward, phase 1's dQ out beside phase 2's backward (with phase 1's dKV
/// when phases are whole sequences: no other document reaches its keys), phase 2's out last
/// (with all of dKV when the phases halve one sequence). Tags 0-3.
fn backward_pp(
    g: &Grid,
    model: &ModelShape,
    me: u32,
    ph: &Phases,
    saved: [u32; 4],
) -> crate::plan::Program {
    let ring = 0;
    let mut b = ProgramBuilder::new();
    let Common {
        dims:
            Dims {
                d,
                qn,
                kvn,
                t_me,
                q_rows,
                k_rows,
            },
        q_h,
        kv_h,
        o_h,
        lse_h,
        ..
    } = declare(&mut b, g, model, ring, me, 0, Some(saved));
    let gq = model.group();
    let [d_o, dq, dkv, do_h, dq_acc] = bwd_buffers(&mut b, model, t_me, q_rows, qn);
    let dkv_acc = scratch(&mut b, "dkv_acc", DType::F32, k_rows, kvn, 2 * d);
    let dq_h = scratch(&mut b, "dq_heads", model.dtype, q_rows, qn, d);
    let a2a = |io, split, per_kv, q_like, to_split| A2a {
        io,
        split,
        per_kv,
        q_like,
        to_split,
    };
    let inputs = [a2a(d_o, do_h, gq, true, true)];
    let mut outputs = vec![a2a(dq, dq_h, gq, true, false)];
    // Whole KV heads: dKV is final on its member and returns converted to 16 bits.
    let dkv_h = (g.share(me).parts == 1).then(|| {
        let h = scratch(&mut b, "dkv_heads", model.dtype, k_rows, kvn, 2 * d);
        outputs.push(a2a(dkv, h, 1, false, false));
        h
    });
    let qr = [0, 1].map(|p| PhaseRows::q_of(g, ring, ph, p, me));
    let kr = [0, 1].map(|p| PhaseRows::of(g, ring, ph, p));
    let sh = g.share(me);
    // Replicated KV heads: each of the `parts` members of a KV head holds a partial dKV of every
    // token of the group; partials return in fp32 into one slot per part, and the owner sums
    // the slots once at the end (as `backward` does).
    let slots = (sh.parts > 1).then(|| {
        scratch(
            &mut b,
            "dkv_parts",
            DType::F32,
            t_me * sh.parts,
            model.kv_heads,
            2 * d,
        )
    });
    let (ops, copies) = phase_a2a(g, me, &inputs, &qr[0], &[], &kr[0]);
    b.push(Instr::Comm { tag: 0, ops });
    b.push(Instr::Fill {
        dst: reg(dq_acc, 0, q_rows, 0, qn),
        value: FillValue::Zero,
    });
    b.push(Instr::Fill {
        dst: reg(dkv_acc, 0, k_rows, 0, kvn),
        value: FillValue::Zero,
    });
    for c in copies {
        b.push(c);
    }
    b.push(Instr::Wait { tag: 0 });
    let (ops, copies) = phase_a2a(g, me, &inputs, &qr[1], &[], &kr[1]);
    b.push(Instr::Comm { tag: 1, ops });
    for c in copies {
        b.push(c);
    }
    // dKV goes out with its phase's dQ when the phase's keys are final after its own launch
    // (phases of whole sequences); with a split inside one sequence phase 2's rows also reach
    // phase 1's keys, so all of dKV goes out last.
    let with_dkv = |p: usize| p == 1 || !ph.second_reads_first();
    for (p, pr) in qr.iter().enumerate() {
        if p == 1 {
            b.push(Instr::Wait { tag: 1 });
        }
        // Rows no key reaches keep dQ = 0 (the fill).
        if pr.len > 0 {
            let (wr, kv_rows) = phase_work(g, ring, ph, &qr, &kr, p);
            if let Some(wr) = wr {
                let kv_reg = |buf| reg(buf, kv_rows.0, kv_rows.1, 0, kvn);
                b.push(Instr::AttnBwd {
                    stage: p as u32,
                    works: vec![BwdWork {
                        q: pr.reg(q_h, qn),
                        kv: vec![kv_reg(kv_h)],
                        o: pr.reg(o_h, qn),
                        lse: pr.reg(lse_h, qn),
                        do_: pr.reg(do_h, qn),
                        dq: pr.reg(dq_acc, qn),
                        dkv: vec![kv_reg(dkv_acc)],
                        rows: wr,
                    }],
                });
            }
        }
        // The phase's dQ is final: convert once, then return it (with dKV, see above).
        b.push(Instr::Copy {
            src: pr.reg(dq_acc, qn),
            dst: pr.reg(dq_h, qn),
        });
        let (mut ops, mut copies) = phase_a2a(g, me, &outputs[..1], pr, &[], &kr[p]);
        if with_dkv(p) {
            let kv_phases: &[usize] = if ph.second_reads_first() {
                &[0, 1]
            } else {
                &[p]
            };
            for &kp in kv_phases {
                let k = &kr[kp];
                match (slots, dkv_h) {
                    (_, Some(dkv_h)) => {
                        b.push(Instr::Copy {
                            src: k.reg(dkv_acc, kvn),
                            dst: k.reg(dkv_h, kvn),
                        });
                        let (o2, c2) = phase_a2a(g, me, &[], &qr[kp], &outputs[1..], k);
                        ops.extend(o2);
                        copies.extend(c2);
                    }
                    (slots, None) => {
                        let slots = slots.expect("a member without whole KV heads has slots");
                        let (f_me, n_me, _) = k.members[me as usize];
                        let (o2, c2) = partial_dkv(
                            g,
                            ring,
                            me,
                            dkv_acc,
                            slots,
                            t_me,
                            &|j| {
                                let (_, n, at) = k.members[j as usize];
                                (at, n)
                            },
                            (f_me, n_me),
                        );
                        ops.extend(o2);
                        copies.extend(c2);
                    }
                }
            }
        }
        b.push(Instr::Comm {
            tag: 2 + p as u32,
            ops,
        });
        for c in copies {
            b.push(c);
        }
    }
    b.push(Instr::Wait { tag: 2 });
    b.push(Instr::Wait { tag: 3 });
    if let (Some(slots), true) = (slots, t_me > 0) {
        b.push(Instr::Sum {
            dst: reg(dkv, 0, t_me, 0, model.kv_heads),
            inputs: (0..sh.parts)
                .map(|p| reg(slots, p * t_me, t_me, 0, model.kv_heads))
                .collect(),
        });
    }
    b.finish()
}

/// Replicated KV heads: the sends (and the local copy) of member `me`'s partial dKV of each
/// member j's tokens (rows `src(j) = (first, count)` of `home`) to j's slot of `me`'s part, and
/// the receives of its own tokens `mine = (first, count)` from every member into their parts'
/// slots (`slots`: `parts` × `t_me` rows, one head per KV head).
#[allow(clippy::too_many_arguments)]
fn partial_dkv(
    g: &Grid,
    ring: u32,
    me: u32,
    home: u32,
    slots: u32,
    t_me: u32,
    src: &dyn Fn(u32) -> (u32, u32),
    mine: (u32, u32),
) -> (Vec<P2p>, Vec<Instr>) {
    let (mut ops, mut copies) = (Vec::new(), Vec::new());
    let sh = g.share(me);
    let (f_me, n_me) = mine;
    for j in 0..g.h {
        let (at_j, n_j) = src(j);
        let js = g.share(j);
        if j == me {
            if n_me > 0 {
                copies.push(Instr::Copy {
                    src: reg(home, at_j, n_j, 0, 1),
                    dst: reg(slots, sh.part * t_me + f_me, n_me, sh.kv0, 1),
                });
            }
            continue;
        }
        let peer = g.dev(ring, j);
        if n_j > 0 {
            ops.push(send(peer, reg(home, at_j, n_j, 0, 1)));
        }
        if n_me > 0 {
            ops.push(recv(
                peer,
                reg(slots, js.part * t_me + f_me, n_me, js.kv0, 1),
            ));
        }
    }
    (ops, copies)
}

/// The backward's caller gradients and its head-split dO and fp32 dQ accumulator, for `t_me`
/// own tokens and `q_rows` computed rows of `qn` query heads: [dO, dQ, dKV, dO heads, dQ acc].
fn bwd_buffers(
    b: &mut ProgramBuilder,
    model: &ModelShape,
    t_me: u32,
    q_rows: u32,
    qn: u32,
) -> [u32; 5] {
    let d = model.head_dim;
    [
        b.io(IoTensor::DO, model, t_me),
        b.io(IoTensor::DQ, model, t_me),
        b.io(IoTensor::DKv, model, t_me),
        scratch(b, "do_heads", model.dtype, q_rows, qn, d),
        scratch(b, "dq_acc", DType::F32, q_rows, qn, d),
    ]
}

/// Scratch buffer of `tokens` rows, `heads` heads, `width` elements.
fn scratch(b: &mut ProgramBuilder, name: &str, dt: DType, tokens: u32, heads: u32, w: u32) -> u32 {
    b.buffer(name, BufferRole::Scratch, dt, tokens, heads, w)
}

/// Ring step `s` of both passes: the buffer holding its KV (step 0: the group's own head-split
/// KV, then the two ring buffers in turn) and, before the last step, the send / receive that
/// bring step `s + 1`'s KV into the other ring buffer.
fn kv_ring_step(
    g: &Grid,
    ring: u32,
    me: u32,
    s: u32,
    kv_h: u32,
    ring_bufs: [u32; 2],
    heads: u32,
) -> (u32, Option<Vec<P2p>>) {
    let cur = if s == 0 {
        kv_h
    } else {
        ring_bufs[(s % 2) as usize]
    };
    let next = (s + 1 < g.r).then(|| {
        ring_ops(
            g,
            ring,
            me,
            s,
            cur,
            ring_bufs[((s + 1) % 2) as usize],
            heads,
        )
    });
    (cur, next)
}

/// The ring step `s` exchange of member `me` of group `ring`: send the KV-layout buffer of
/// group `ring − s` (in `cur`) to the next group, receive group `ring − s − 1`'s into `next`.
fn ring_ops(g: &Grid, ring: u32, me: u32, s: u32, cur: u32, next: u32, heads: u32) -> Vec<P2p> {
    let r = g.r;
    let src = |s: u32| (ring + r - s % r) % r;
    vec![
        send(
            g.dev((ring + 1) % r, me),
            reg(cur, 0, g.kv_blocks(src(s)).0, 0, heads),
        ),
        recv(
            g.dev((ring + r - 1) % r, me),
            reg(next, 0, g.kv_blocks(src(s + 1)).0, 0, heads),
        ),
    ]
}

/// Sizes of one member's buffers.
struct Dims {
    d: u32,
    /// Query heads and KV heads of the member's share.
    qn: u32,
    kvn: u32,
    /// Own tokens, computed query rows, KV rows of the head group.
    t_me: u32,
    q_rows: u32,
    k_rows: u32,
}

/// Buffers both passes declare: the caller's Q, KV, O, LSE (forward only), their head-split
/// copies, and the two KV ring buffers (the head-split KV itself when there is no ring).
struct Common {
    dims: Dims,
    /// The caller's Q, KV, O and LSE (`None` in the backward, which reads the forward's
    /// head-split buffers instead).
    io: Option<[u32; 4]>,
    q_h: u32,
    kv_h: u32,
    o_h: u32,
    lse_h: u32,
    ring_bufs: [u32; 2],
}

/// `saved`: in the backward, the forward's head-split Q, KV, O and LSE buffers, which the
/// backward's start from ([`BufferRole::Saved`]).
fn declare(
    b: &mut ProgramBuilder,
    g: &Grid,
    model: &ModelShape,
    ring: u32,
    me: u32,
    max_group: u32,
    saved: Option<[u32; 4]>,
) -> Common {
    let sh = g.share(me);
    let dims = Dims {
        d: model.head_dim,
        qn: sh.kvn * model.group(),
        kvn: sh.kvn,
        t_me: g.tokens[g.dev(ring, me) as usize],
        q_rows: g.q_blocks(ring, me).0,
        k_rows: g.kv_blocks(ring).0,
    };
    let (d, qn, kvn, t_me) = (dims.d, dims.qn, dims.kvn, dims.t_me);
    let io = match saved {
        None => Some(
            [IoTensor::Q, IoTensor::Kv, IoTensor::O, IoTensor::Lse].map(|t| b.io(t, model, t_me)),
        ),
        Some(_) => None,
    };
    let role = |k: usize| match saved {
        Some(f) => BufferRole::Saved { forward: f[k] },
        None => BufferRole::Scratch,
    };
    let q_h = b.buffer("q_heads", role(0), model.dtype, dims.q_rows, qn, d);
    let kv_h = b.buffer("kv_heads", role(1), model.dtype, dims.k_rows, kvn, 2 * d);
    let o_h = b.buffer("o_heads", role(2), model.dtype, dims.q_rows, qn, d);
    let lse_h = b.buffer("lse_heads", role(3), DType::F32, dims.q_rows, qn, 1);
    let ring_bufs = if g.r > 1 {
        [
            scratch(b, "kv_ring0", model.dtype, max_group, kvn, 2 * d),
            scratch(b, "kv_ring1", model.dtype, max_group, kvn, 2 * d),
        ]
    } else {
        [kv_h, kv_h]
    };
    Common {
        dims,
        io,
        q_h,
        kv_h,
        o_h,
        lse_h,
        ring_bufs,
    }
}

/// The forward program of member `me` of group `ring`; `steps[s]`: the row ranges of ring step
/// s ([`Grid::step_rows`]).
fn forward(
    g: &Grid,
    model: &ModelShape,
    ring: u32,
    me: u32,
    max_group: u32,
    steps: &[Option<RowRanges>],
) -> (crate::plan::Program, [u32; 4]) {
    let mut f = ProgramBuilder::new();
    let Common {
        dims: Dims {
            d, qn, kvn, q_rows, ..
        },
        io,
        q_h,
        kv_h,
        o_h,
        lse_h,
        ring_bufs,
    } = declare(&mut f, g, model, ring, me, max_group, None);
    let [q, kv, o, lse] = io.expect("the forward declares the caller's tensors");
    let r = g.r;
    let inputs = [
        A2a {
            io: q,
            split: q_h,
            per_kv: model.group(),
            q_like: true,
            to_split: true,
        },
        A2a {
            io: kv,
            split: kv_h,
            per_kv: 1,
            q_like: false,
            to_split: true,
        },
    ];
    let (ops, copies) = all_to_all(g, ring, me, &inputs);
    f.push(Instr::Comm { tag: 0, ops });
    for c in copies {
        f.push(c);
    }
    f.push(Instr::Wait { tag: 0 });
    // Accumulators: with one ring step the works write the head-split outputs directly.
    let acc = if r > 1 {
        let o_acc = scratch(&mut f, "o_acc", DType::F32, q_rows, qn, d);
        let l_acc = scratch(&mut f, "lse_acc", DType::F32, q_rows, qn, 1);
        let o_tmp = scratch(&mut f, "o_part", DType::F32, q_rows, qn, d);
        let l_tmp = scratch(&mut f, "lse_part", DType::F32, q_rows, qn, 1);
        f.push(Instr::Fill {
            dst: reg(o_acc, 0, q_rows, 0, qn),
            value: FillValue::Zero,
        });
        f.push(Instr::Fill {
            dst: reg(l_acc, 0, q_rows, 0, qn),
            value: FillValue::NegInf,
        });
        Some((o_acc, l_acc, o_tmp, l_tmp))
    } else {
        None
    };
    let mut covered = vec![false; q_rows as usize];
    for s in 0..r {
        let kv_ring = (ring + r - s) % r;
        let (kv_s, next) = kv_ring_step(g, ring, me, s, kv_h, ring_bufs, kvn);
        if let Some(ops) = next {
            f.push(Instr::Comm { tag: 1 + s, ops });
        }
        // One work per step: all query rows against the whole KV of group `kv_ring`; rows
        // attending nothing hold O = 0, LSE = −∞ (merged as no-ops).
        if let Some(rows) = steps[s as usize].clone() {
            let k_rows = g.kv_blocks(kv_ring).0;
            let (wo, wl) = match acc {
                Some((_, _, o_tmp, l_tmp)) => (o_tmp, l_tmp),
                None => {
                    covered.fill(true);
                    (o_h, lse_h)
                }
            };
            f.push(Instr::Attn {
                stage: s,
                works: vec![FwdWork {
                    q: reg(q_h, 0, q_rows, 0, qn),
                    kv: vec![reg(kv_s, 0, k_rows, 0, kvn)],
                    o: reg(wo, 0, q_rows, 0, qn),
                    lse: reg(wl, 0, q_rows, 0, qn),
                    rows,
                }],
            });
            if let Some((o_acc, l_acc, o_tmp, l_tmp)) = acc {
                f.push(Instr::Merge {
                    o: reg(o_acc, 0, q_rows, 0, qn),
                    lse: reg(l_acc, 0, q_rows, 0, qn),
                    inputs: vec![
                        (reg(o_acc, 0, q_rows, 0, qn), reg(l_acc, 0, q_rows, 0, qn)),
                        (reg(o_tmp, 0, q_rows, 0, qn), reg(l_tmp, 0, q_rows, 0, qn)),
                    ],
                });
            }
        }
        if s + 1 < r {
            f.push(Instr::Wait { tag: 1 + s });
        }
    }
    match acc {
        Some((o_acc, l_acc, _, _)) => {
            f.push(Instr::Copy {
                src: reg(o_acc, 0, q_rows, 0, qn),
                dst: reg(o_h, 0, q_rows, 0, qn),
            });
            f.push(Instr::Copy {
                src: reg(l_acc, 0, q_rows, 0, qn),
                dst: reg(lse_h, 0, q_rows, 0, qn),
            });
        }
        None => {
            // Rows no work wrote (no attended key at all) still need the empty-row outputs.
            let mut row = 0;
            while row < q_rows {
                if covered[row as usize] {
                    row += 1;
                    continue;
                }
                let start = row;
                while row < q_rows && !covered[row as usize] {
                    row += 1;
                }
                f.push(Instr::Fill {
                    dst: reg(o_h, start, row - start, 0, qn),
                    value: FillValue::Zero,
                });
                f.push(Instr::Fill {
                    dst: reg(lse_h, start, row - start, 0, qn),
                    value: FillValue::NegInf,
                });
            }
        }
    }
    let outputs = [
        A2a {
            io: o,
            split: o_h,
            per_kv: model.group(),
            q_like: true,
            to_split: false,
        },
        A2a {
            io: lse,
            split: lse_h,
            per_kv: model.group(),
            q_like: true,
            to_split: false,
        },
    ];
    let (ops, copies) = all_to_all(g, ring, me, &outputs);
    f.push(Instr::Comm { tag: r, ops });
    for c in copies {
        f.push(c);
    }
    f.push(Instr::Wait { tag: r });
    (f.finish(), [q_h, kv_h, o_h, lse_h])
}

/// The backward program of member `me` of group `ring` (`steps` as for [`forward`]). It starts
/// from the forward's head-split Q, KV, O and LSE (`saved`, [`BufferRole::Saved`]), so only dO
/// goes through the input all-to-all, as in DeepSpeed-Ulysses.
fn backward(
    g: &Grid,
    model: &ModelShape,
    ring: u32,
    me: u32,
    max_group: u32,
    mut steps: Vec<Option<RowRanges>>,
    saved: [u32; 4],
) -> crate::plan::Program {
    let mut b = ProgramBuilder::new();
    let Common {
        dims:
            Dims {
                d,
                qn,
                kvn,
                t_me,
                q_rows,
                k_rows,
            },
        io: _,
        q_h,
        kv_h,
        o_h,
        lse_h,
        ring_bufs,
    } = declare(&mut b, g, model, ring, me, max_group, Some(saved));
    let sh = g.share(me);
    let gq = model.group();
    let r = g.r;
    let koff = g.kv_blocks(ring).1;
    let [d_o, dq, dkv, do_h, dq_acc] = bwd_buffers(&mut b, model, t_me, q_rows, qn);
    let drings = if r > 1 {
        [
            scratch(&mut b, "dkv_ring0", DType::F32, max_group, kvn, 2 * d),
            scratch(&mut b, "dkv_ring1", DType::F32, max_group, kvn, 2 * d),
        ]
    } else {
        let acc = scratch(&mut b, "dkv_acc", DType::F32, k_rows, kvn, 2 * d);
        [acc, acc]
    };
    let q_like = |io, split| A2a {
        io,
        split,
        per_kv: gq,
        q_like: true,
        to_split: true,
    };
    let inputs = [q_like(d_o, do_h)];
    let (ops, copies) = all_to_all(g, ring, me, &inputs);
    b.push(Instr::Comm { tag: 0, ops });
    b.push(Instr::Fill {
        dst: reg(dq_acc, 0, q_rows, 0, qn),
        value: FillValue::Zero,
    });
    b.push(Instr::Fill {
        dst: reg(drings[0], 0, k_rows, 0, kvn),
        value: FillValue::Zero,
    });
    for c in copies {
        b.push(c);
    }
    b.push(Instr::Wait { tag: 0 });
    // Ring tags: KV of step s in 1 + 2s, dKV after step s in 2 + 2s.
    for s in 0..r {
        let kv_ring = (ring + r - s) % r;
        let (kv_s, next) = kv_ring_step(g, ring, me, s, kv_h, ring_bufs, kvn);
        if let Some(ops) = next {
            b.push(Instr::Comm {
                tag: 1 + 2 * s,
                ops,
            });
        }
        if s > 0 {
            b.push(Instr::Wait { tag: 2 * s - 1 });
            b.push(Instr::Wait { tag: 2 * s });
        }
        let dcur = drings[(s % 2) as usize];
        if let Some(rows) = steps[s as usize].take() {
            let k_rows = g.kv_blocks(kv_ring).0;
            b.push(Instr::AttnBwd {
                stage: s,
                works: vec![BwdWork {
                    q: reg(q_h, 0, q_rows, 0, qn),
                    kv: vec![reg(kv_s, 0, k_rows, 0, kvn)],
                    o: reg(o_h, 0, q_rows, 0, qn),
                    lse: reg(lse_h, 0, q_rows, 0, qn),
                    do_: reg(do_h, 0, q_rows, 0, qn),
                    dq: reg(dq_acc, 0, q_rows, 0, qn),
                    dkv: vec![reg(dcur, 0, k_rows, 0, kvn)],
                    rows,
                }],
            });
        }
        if r > 1 {
            let ops = ring_ops(g, ring, me, s, dcur, drings[((s + 1) % 2) as usize], kvn);
            b.push(Instr::Comm {
                tag: 2 + 2 * s,
                ops,
            });
        }
    }
    let out_tag = if r > 1 {
        b.push(Instr::Wait { tag: 2 * r });
        2 * r + 1
    } else {
        1
    };
    let home = drings[(r % 2) as usize];
    // dQ of every computed row is final here: convert once, then return it.
    let dq_h = scratch(&mut b, "dq_heads", model.dtype, q_rows, qn, d);
    b.push(Instr::Copy {
        src: reg(dq_acc, 0, q_rows, 0, qn),
        dst: reg(dq_h, 0, q_rows, 0, qn),
    });
    let (mut ops, mut copies) = all_to_all(
        g,
        ring,
        me,
        &[A2a {
            io: dq,
            split: dq_h,
            per_kv: gq,
            q_like: true,
            to_split: false,
        }],
    );
    if sh.parts == 1 {
        // dKV is final on this member: convert once and return the 16-bit values.
        let dkv_h = scratch(&mut b, "dkv_heads", model.dtype, k_rows, kvn, 2 * d);
        b.push(Instr::Copy {
            src: reg(home, 0, k_rows, 0, kvn),
            dst: reg(dkv_h, 0, k_rows, 0, kvn),
        });
        let (o2, c2) = all_to_all(
            g,
            ring,
            me,
            &[A2a {
                io: dkv,
                split: dkv_h,
                per_kv: 1,
                q_like: false,
                to_split: false,
            }],
        );
        ops.extend(o2);
        copies.extend(c2);
        b.push(Instr::Comm { tag: out_tag, ops });
        for c in copies {
            b.push(c);
        }
        b.push(Instr::Wait { tag: out_tag });
    } else {
        // Replicated KV heads: each of the `parts` members of a KV head holds a partial dKV of
        // every token of the group. Partials return in fp32 into one slot per part; the owner
        // sums the slots and converts once.
        let parts = sh.parts;
        let slots = scratch(
            &mut b,
            "dkv_parts",
            DType::F32,
            t_me * parts,
            model.kv_heads,
            2 * d,
        );
        let src = |j: u32| (koff[j as usize], g.tokens[g.dev(ring, j) as usize]);
        let (o2, c2) = partial_dkv(g, ring, me, home, slots, t_me, &src, (0, t_me));
        ops.extend(o2);
        copies.extend(c2);
        b.push(Instr::Comm { tag: out_tag, ops });
        for c in copies {
            b.push(c);
        }
        b.push(Instr::Wait { tag: out_tag });
        if t_me > 0 {
            b.push(Instr::Sum {
                dst: reg(dkv, 0, t_me, 0, model.kv_heads),
                inputs: (0..parts)
                    .map(|p| reg(slots, p * t_me, t_me, 0, model.kv_heads))
                    .collect(),
            });
        }
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::random_case;

    /// `span_rows` against `work_rows` row by row: every KV span's keys, read at its buffer rows,
    /// for spans laid out in an order other than their tokens'.
    #[test]
    fn span_rows_equal_work_rows_at_buffer_rows() {
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for seed in 0..200u64 {
            let (batch, _) = random_case(seed, 120);
            for s in &batch.seqs {
                let (mask, l) = (s.mask.compile(s.len), s.len);
                let cut = |x: u64| {
                    (seed.wrapping_mul(2654435761).wrapping_add(x) % (l as u64 + 1)) as u32
                };
                let (a, b) = (cut(3).min(cut(11)), cut(3).max(cut(11)));
                // KV spans [0, a), [a, b), [b, l) placed in the buffer as [b, l), [0, a), [a, b).
                let spans: Vec<(u32, u32)> = [(0, a), (a, b - a), (b, l - b)]
                    .into_iter()
                    .filter(|s| s.1 > 0)
                    .collect();
                let mut order: Vec<usize> = (0..spans.len()).collect();
                order.rotate_right(1);
                let mut rows_at = vec![0u32; spans.len()];
                let mut row = 7;
                for &i in &order {
                    rows_at[i] = row;
                    row += spans[i].1 + 2;
                }
                let kv: Vec<(u32, u32, u32)> = spans
                    .iter()
                    .zip(&rows_at)
                    .map(|(&(st, ln), &r)| (st, r, ln))
                    .collect();
                let q = Piece {
                    seq: 0,
                    row: 0,
                    spans: vec![(cut(5).min(l - 1), 1 + cut(9) % (l - cut(5).min(l - 1)))],
                };
                let qs = QSpan::of(&mask, &q);
                let mut out = RowRanges::default();
                let mut scratch = SpanScratch::default();
                let att = span_rows(&mask, &qs[0], &kv, 4, &mut out, &mut scratch);
                let (ref_rows, ref_att) = work_rows(&mask, &q.spans, &spans);
                assert_eq!(att, ref_att, "seed {seed}");
                // Reference keys (concatenation in token order) moved to buffer rows.
                let to_row = |p: u32| {
                    let mut acc = 0;
                    for (k, &(_, ln)) in spans.iter().enumerate() {
                        if p < acc + ln {
                            return rows_at[k] + (p - acc);
                        }
                        acc += ln;
                    }
                    unreachable!()
                };
                for r in 0..q.spans[0].1 {
                    out.row(4 + r, &mut got);
                    ref_rows.row(r, &mut want);
                    let mut g: Vec<u32> = got.iter().flat_map(|&(s, e)| s..e).collect();
                    let mut w: Vec<u32> =
                        want.iter().flat_map(|&(s, e)| s..e).map(to_row).collect();
                    g.sort_unstable();
                    w.sort_unstable();
                    assert_eq!(g, w, "seed {seed} row {r} mask {:?}", s.mask);
                    assert!(got.windows(2).all(|x| x[0].1 <= x[1].0), "sorted, disjoint");
                }
                out.row(3, &mut got);
                assert!(got.is_empty(), "rows before the span attend nothing");
            }
        }
    }
}
