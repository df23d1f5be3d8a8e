//! The validator: symbolic execution of all devices' programs together.
//!
//! Every buffer cell (token row × head) carries a symbolic tag: which input it holds
//! (Q/KV/dO/O/LSE of a given sequence, token and head), or which partial result (O/LSE/dQ/dKV of
//! a given token and head) together with a *coverage* summary: the number of attended (query, key)
//! pairs folded into it and a 64-bit hash of which pairs those are (a sum of pseudo-random weights,
//! so that merging adds coverages). A plan is accepted when
//! * every send is matched, groups are ordered, and buffer bounds hold ([`crate::interp`]);
//! * nothing is read before it is written, nor while a transfer into it is in flight;
//! * every work reads Q and KV of one sequence with consistent GQA head mapping, and every key a
//!   row attends lies inside that row's mask;
//! * at the end each output cell on its owner holds exactly the mask's pairs: equal count and hash,
//!   so no pair is missed or computed twice (a collision needs a 2⁻⁶⁴ coincidence).

use crate::error::PlanError;
use crate::interp::{drive, program, program_name, Machine};
use crate::mask::CompiledMask;
use crate::plan::{BufferRole, FillValue, Instr, IoTensor, Plan, Program, Region};

/// Coverage summary: count of pairs and wrapping sum of their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cov {
    pub count: u64,
    pub hash: u64,
}

impl Cov {
    fn add(self, o: Cov) -> Cov {
        Cov {
            count: self.count + o.count,
            hash: self.hash.wrapping_add(o.hash),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    O,
    Lse,
    DQ,
    DKv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Unset,
    Fill(FillValue),
    In {
        t: IoTensor,
        seq: u32,
        tok: u32,
        head: u32,
    },
    Part {
        p: Part,
        seq: u32,
        tok: u32,
        head: u32,
        cov: Cov,
    },
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Weight of key token `k` (global index) in forward/dQ coverage.
fn wk(global: u64) -> u64 {
    mix(global.wrapping_mul(2).wrapping_add(1))
}
/// Weight of (query token, query head) in dKV coverage.
fn wq(global: u64, head: u32, heads: u32) -> u64 {
    mix((global * heads as u64 + head as u64).wrapping_mul(2))
}

/// Expected coverages derived straight from the batch.
struct Expected {
    seq_off: Vec<u64>,
    masks: Vec<CompiledMask>,
    /// Per sequence, prefix sums of key weights (length len+1).
    key_prefix: Vec<Vec<u64>>,
}

impl Expected {
    fn new(plan: &Plan) -> Self {
        let seq_off = plan.batch.seq_offsets();
        let masks: Vec<CompiledMask> = plan
            .batch
            .seqs
            .iter()
            .map(|s| s.mask.compile(s.len))
            .collect();
        let key_prefix = plan
            .batch
            .seqs
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let mut v = Vec::with_capacity(s.len as usize + 1);
                let mut acc = 0u64;
                v.push(0);
                for t in 0..s.len as u64 {
                    acc = acc.wrapping_add(wk(seq_off[si] + t));
                    v.push(acc);
                }
                v
            })
            .collect();
        Expected {
            seq_off,
            masks,
            key_prefix,
        }
    }

    fn q_cov(&self, seq: u32, tok: u32, buf: &mut Vec<(u32, u32)>) -> Cov {
        self.masks[seq as usize].row_ranges_into(tok, buf);
        let p = &self.key_prefix[seq as usize];
        buf.iter().fold(Cov::default(), |c, &(s, e)| {
            c.add(Cov {
                count: (e - s) as u64,
                hash: p[e as usize].wrapping_sub(p[s as usize]),
            })
        })
    }

    /// Per key token of `seq`, per KV head: coverage of the dK/dV cell.
    fn k_covs(&self, seq: u32, heads: u32, kv_heads: u32) -> Vec<Cov> {
        let len = self.masks[seq as usize].len as usize;
        let g = heads / kv_heads;
        let mut diff = vec![Cov::default(); (len + 1) * kv_heads as usize];
        let mut buf = Vec::new();
        for q in 0..len as u32 {
            self.masks[seq as usize].row_ranges_into(q, &mut buf);
            let qg = self.seq_off[seq as usize] + q as u64;
            for hk in 0..kv_heads {
                let w = (hk * g..(hk + 1) * g).fold(0u64, |a, h| a.wrapping_add(wq(qg, h, heads)));
                for &(s, e) in &buf {
                    let a = &mut diff[s as usize * kv_heads as usize + hk as usize];
                    a.count = a.count.wrapping_add(g as u64);
                    a.hash = a.hash.wrapping_add(w);
                    let b = &mut diff[e as usize * kv_heads as usize + hk as usize];
                    b.count = b.count.wrapping_sub(g as u64);
                    b.hash = b.hash.wrapping_sub(w);
                }
            }
        }
        let mut out = vec![Cov::default(); len * kv_heads as usize];
        for hk in 0..kv_heads as usize {
            let mut run = Cov::default();
            for t in 0..len {
                let d = diff[t * kv_heads as usize + hk];
                run = Cov {
                    count: run.count.wrapping_add(d.count),
                    hash: run.hash.wrapping_add(d.hash),
                };
                out[t * kv_heads as usize + hk] = run;
            }
        }
        out
    }
}

struct Pending {
    tag: u32,
    sends: Vec<Region>,
    recvs: Vec<Region>,
}

struct DevState {
    bufs: Vec<Vec<Cell>>,
    /// Heads per buffer (row stride in cells).
    heads: Vec<u32>,
    pending: Vec<Pending>,
}

struct Validator<'a> {
    plan: &'a Plan,
    backward: bool,
    exp: &'a Expected,
    devs: Vec<DevState>,
    group_recvs: Vec<Vec<Region>>,
    group_sends: Vec<Vec<Region>>,
    scratch: Vec<(u32, u32)>,
}

/// Validates both programs of every device; `Ok` means the plan is complete and safe.
pub fn validate(plan: &Plan) -> Result<(), PlanError> {
    plan.batch
        .validate()
        .map_err(|e| PlanError::at_end(0, "plan", format!("batch: {e}")))?;
    if plan.devices.is_empty() {
        return Err(PlanError::at_end(0, "plan", "the plan has no devices"));
    }
    check_layout(plan)?;
    let exp = Expected::new(plan);
    for backward in [false, true] {
        let mut v = Validator::new(plan, backward, &exp)?;
        drive(plan, backward, &mut v)?;
        v.finish()?;
    }
    Ok(())
}

/// Every token of every sequence is held by exactly one device.
fn check_layout(plan: &Plan) -> Result<(), PlanError> {
    let mut seen: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); plan.batch.seqs.len()];
    for d in &plan.devices {
        for s in &d.layout {
            let Some(seq) = plan.batch.seqs.get(s.seq as usize) else {
                return Err(PlanError::at_end(
                    d.device,
                    "layout",
                    format!("names sequence {} which the batch lacks", s.seq),
                ));
            };
            if s.len == 0 || s.start + s.len > seq.len {
                return Err(PlanError::at_end(
                    d.device,
                    "layout",
                    format!(
                        "span {}..{} of sequence {} is empty or out of bounds ({} tokens)",
                        s.start,
                        s.start + s.len,
                        s.seq,
                        seq.len
                    ),
                ));
            }
            seen[s.seq as usize].push((s.start, s.start + s.len, d.device));
        }
    }
    for (si, spans) in seen.iter_mut().enumerate() {
        spans.sort_unstable();
        let mut at = 0;
        for &(a, b, dev) in spans.iter() {
            if a != at {
                let what = if a < at {
                    "held twice"
                } else {
                    "held by no device"
                };
                return Err(PlanError::at_end(
                    dev,
                    "layout",
                    format!("sequence {si}: tokens from {} are {what}", at.min(a)),
                ));
            }
            at = b;
        }
        if at != plan.batch.seqs[si].len {
            return Err(PlanError::at_end(
                0,
                "layout",
                format!("sequence {si}: tokens from {at} are held by no device"),
            ));
        }
    }
    Ok(())
}

fn io_width(t: IoTensor, d: u32) -> u32 {
    match t {
        IoTensor::Kv | IoTensor::DKv => 2 * d,
        IoTensor::Lse => 1,
        _ => d,
    }
}

fn io_heads(t: IoTensor, heads: u32, kv_heads: u32) -> u32 {
    match t {
        IoTensor::Kv | IoTensor::DKv => kv_heads,
        _ => heads,
    }
}

impl<'a> Validator<'a> {
    fn new(plan: &'a Plan, backward: bool, exp: &'a Expected) -> Result<Self, PlanError> {
        let pname = program_name(backward);
        let m = plan.batch.model;
        let required: &[IoTensor] = if backward {
            &[
                IoTensor::Q,
                IoTensor::Kv,
                IoTensor::O,
                IoTensor::Lse,
                IoTensor::DO,
                IoTensor::DQ,
                IoTensor::DKv,
            ]
        } else {
            &[IoTensor::Q, IoTensor::Kv, IoTensor::O, IoTensor::Lse]
        };
        let mut devs = Vec::new();
        for (di, d) in plan.devices.iter().enumerate() {
            if d.device != di as u32 {
                return Err(PlanError::at_end(
                    di as u32,
                    pname,
                    format!("device entry {di} says it is device {}", d.device),
                ));
            }
            let prog = program(plan, di, backward);
            let local = d.local_tokens();
            let mut bufs = Vec::new();
            for (bi, b) in prog.buffers.iter().enumerate() {
                let mut cells = vec![Cell::Unset; (b.tokens as usize) * (b.heads as usize)];
                if let BufferRole::Io(t) = b.role {
                    if !required.contains(&t) {
                        return Err(PlanError::at_end(
                            d.device,
                            pname,
                            format!(
                                "buffer {bi} `{}` is {t:?}, which this program does not use",
                                b.name
                            ),
                        ));
                    }
                    if b.tokens != local
                        || b.heads != io_heads(t, m.heads, m.kv_heads)
                        || b.width != io_width(t, m.head_dim)
                    {
                        return Err(PlanError::at_end(
                            d.device,
                            pname,
                            format!("buffer {bi} `{}` ({t:?}) has shape {}×{}×{}, the layout needs {}×{}×{}", b.name, b.tokens, b.heads, b.width, local, io_heads(t, m.heads, m.kv_heads), io_width(t, m.head_dim)),
                        ));
                    }
                    if t.is_input(backward) {
                        let mut row = 0usize;
                        for s in &d.layout {
                            for k in 0..s.len {
                                for h in 0..b.heads {
                                    cells[row * b.heads as usize + h as usize] = Cell::In {
                                        t,
                                        seq: s.seq,
                                        tok: s.start + k,
                                        head: h,
                                    };
                                }
                                row += 1;
                            }
                        }
                    }
                }
                bufs.push(cells);
            }
            for &t in required {
                if local > 0 && prog.io(t).is_none() {
                    return Err(PlanError::at_end(
                        d.device,
                        pname,
                        format!("no buffer declared for {t:?}"),
                    ));
                }
            }
            let heads = prog.buffers.iter().map(|b| b.heads).collect();
            devs.push(DevState {
                bufs,
                heads,
                pending: Vec::new(),
            });
        }
        Ok(Validator {
            plan,
            backward,
            exp,
            devs,
            group_recvs: Vec::new(),
            group_sends: Vec::new(),
            scratch: Vec::new(),
        })
    }

    fn prog(&self, dev: u32) -> &'a Program {
        program(self.plan, dev as usize, self.backward)
    }

    fn err(&self, dev: u32, idx: usize, msg: impl Into<String>) -> PlanError {
        PlanError::new(dev, program_name(self.backward), idx, msg)
    }

    fn check_region(&self, dev: u32, idx: usize, r: &Region, what: &str) -> Result<u32, PlanError> {
        let Some(b) = self.prog(dev).buffers.get(r.buf as usize) else {
            return Err(self.err(
                dev,
                idx,
                format!("{what}: buffer {} is not declared", r.buf),
            ));
        };
        if r.tok as u64 + r.len as u64 > b.tokens as u64
            || r.head as u64 + r.heads as u64 > b.heads as u64
        {
            return Err(self.err(
                dev,
                idx,
                format!(
                    "{what}: region tokens {}..{} heads {}..{} is out of bounds of buffer {} `{}` ({} tokens × {} heads)",
                    r.tok,
                    r.tok + r.len,
                    r.head,
                    r.head + r.heads,
                    r.buf,
                    b.name,
                    b.tokens,
                    b.heads
                ),
            ));
        }
        Ok(b.width)
    }

    /// A compute instruction may read `r` only when no in-flight transfer writes it.
    fn check_read(&self, dev: u32, idx: usize, r: &Region, what: &str) -> Result<(), PlanError> {
        for p in &self.devs[dev as usize].pending {
            if p.recvs.iter().any(|x| x.overlaps(r)) {
                return Err(self.err(dev, idx, format!("{what} reads a region that comm group {} is still receiving into (no wait before it)", p.tag)));
            }
        }
        Ok(())
    }

    fn check_write(&self, dev: u32, idx: usize, r: &Region, what: &str) -> Result<(), PlanError> {
        for p in &self.devs[dev as usize].pending {
            if p.recvs.iter().chain(&p.sends).any(|x| x.overlaps(r)) {
                return Err(self.err(dev, idx, format!("{what} writes a region that comm group {} is still transferring (no wait before it)", p.tag)));
            }
        }
        Ok(())
    }

    #[inline]
    fn cell(&self, dev: u32, r: &Region, t: u32, h: u32) -> Cell {
        let st = &self.devs[dev as usize];
        st.bufs[r.buf as usize][((r.tok + t) * st.heads[r.buf as usize] + r.head + h) as usize]
    }

    #[inline]
    fn set(&mut self, dev: u32, r: &Region, t: u32, h: u32, c: Cell) {
        let st = &mut self.devs[dev as usize];
        let heads = st.heads[r.buf as usize];
        st.bufs[r.buf as usize][((r.tok + t) * heads + r.head + h) as usize] = c;
    }

    fn read_all(&self, dev: u32, r: &Region) -> Vec<Cell> {
        let mut v = Vec::with_capacity((r.len * r.heads) as usize);
        for t in 0..r.len {
            for h in 0..r.heads {
                v.push(self.cell(dev, r, t, h));
            }
        }
        v
    }

    fn finish(&mut self) -> Result<(), PlanError> {
        let m = self.plan.batch.model;
        let pname = program_name(self.backward);
        for (di, d) in self.plan.devices.iter().enumerate() {
            let dev = di as u32;
            if let Some(p) = self.devs[di].pending.first() {
                return Err(PlanError::at_end(
                    dev,
                    pname,
                    format!("comm group {} is never waited for", p.tag),
                ));
            }
            let prog = self.prog(dev);
            let outs: &[IoTensor] = if self.backward {
                &[IoTensor::DQ, IoTensor::DKv]
            } else {
                &[IoTensor::O, IoTensor::Lse]
            };
            for &t in outs {
                let Some(b) = prog.io(t) else { continue };
                let mut row = 0u32;
                let mut kcache: Option<(u32, Vec<Cov>)> = None;
                for s in &d.layout {
                    if t == IoTensor::DKv && kcache.as_ref().map(|c| c.0) != Some(s.seq) {
                        kcache = Some((s.seq, self.exp.k_covs(s.seq, m.heads, m.kv_heads)));
                    }
                    for k in 0..s.len {
                        let tok = s.start + k;
                        let heads = prog.buffers[b as usize].heads;
                        let q_want = if t == IoTensor::DKv {
                            Cov::default()
                        } else {
                            self.exp.q_cov(s.seq, tok, &mut self.scratch)
                        };
                        for h in 0..heads {
                            let want = if t == IoTensor::DKv {
                                kcache.as_ref().unwrap().1[(tok * m.kv_heads + h) as usize]
                            } else {
                                q_want
                            };
                            let got = self.devs[di].bufs[b as usize][(row * heads + h) as usize];
                            let part = match t {
                                IoTensor::O => Part::O,
                                IoTensor::Lse => Part::Lse,
                                IoTensor::DQ => Part::DQ,
                                _ => Part::DKv,
                            };
                            let ok = match got {
                                Cell::Part {
                                    p,
                                    seq,
                                    tok: tt,
                                    head,
                                    cov,
                                } => {
                                    p == part
                                        && seq == s.seq
                                        && tt == tok
                                        && head == h
                                        && cov == want
                                }
                                Cell::Fill(_) => want.count == 0,
                                _ => false,
                            };
                            if !ok {
                                let detail = match got {
                                    Cell::Part {
                                        cov,
                                        seq,
                                        tok: tt,
                                        head,
                                        ..
                                    } if seq == s.seq && tt == tok && head == h => {
                                        if cov.count == want.count {
                                            format!("holds {} pairs as required but not the right ones (some pairs computed twice, others missed)", cov.count)
                                        } else {
                                            format!(
                                                "holds {} attended pairs, the mask has {}",
                                                cov.count, want.count
                                            )
                                        }
                                    }
                                    Cell::Unset => "was never written".to_string(),
                                    other => format!("holds {other:?}"),
                                };
                                return Err(PlanError::at_end(
                                    dev,
                                    pname,
                                    format!(
                                        "output {t:?} of sequence {} token {tok} head {h} {detail}",
                                        s.seq
                                    ),
                                ));
                            }
                        }
                        row += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn fwd_or_bwd_work(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &crate::plan::RowRanges,
        bwd: Option<&crate::plan::BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Result<(), PlanError> {
        let model = self.plan.batch.model;
        let g = model.group();
        let d = model.head_dim;
        let what = format!("work {wi}");
        if self.check_region(dev, idx, q, &what)? != d {
            return Err(self.err(
                dev,
                idx,
                format!("{what}: the query buffer's width is not the head dim {d}"),
            ));
        }
        self.check_read(dev, idx, q, &what)?;
        if kv.is_empty() {
            return Err(self.err(dev, idx, format!("{what}: no KV regions")));
        }
        let nk = kv[0].heads;
        if q.heads != nk * g {
            return Err(self.err(
                dev,
                idx,
                format!(
                    "{what}: {} query heads need {} KV heads (group {g}), the KV regions have {nk}",
                    q.heads,
                    q.heads / g
                ),
            ));
        }
        for r in kv {
            if self.check_region(dev, idx, r, &what)? != 2 * d || r.heads != nk {
                return Err(self.err(
                    dev,
                    idx,
                    format!("{what}: KV region must have width 2·{d} and {nk} heads"),
                ));
            }
            self.check_read(dev, idx, r, &what)?;
        }
        if rows.n_rows() > q.len {
            return Err(self.err(
                dev,
                idx,
                format!(
                    "{what}: row ranges cover {} rows but the query region has {}",
                    rows.n_rows(),
                    q.len
                ),
            ));
        }
        // Query cells: one sequence, one token per row, one global head per column.
        let mut q_tok = vec![0u32; q.len as usize];
        let mut q_head = vec![0u32; q.heads as usize];
        let mut q_seq = None;
        for t in 0..q.len {
            for h in 0..q.heads {
                match self.cell(dev, q, t, h) {
                    Cell::In {
                        t: IoTensor::Q,
                        seq,
                        tok,
                        head,
                    } => {
                        if *q_seq.get_or_insert(seq) != seq {
                            return Err(self.err(
                                dev,
                                idx,
                                format!(
                                    "{what}: query rows come from sequences {} and {seq}",
                                    q_seq.unwrap()
                                ),
                            ));
                        }
                        if h == 0 {
                            q_tok[t as usize] = tok;
                        } else if q_tok[t as usize] != tok {
                            return Err(self.err(
                                dev,
                                idx,
                                format!("{what}: query row {t} mixes tokens across heads"),
                            ));
                        }
                        if t == 0 {
                            q_head[h as usize] = head;
                        } else if q_head[h as usize] != head {
                            return Err(self.err(
                                dev,
                                idx,
                                format!("{what}: query column {h} mixes heads across rows"),
                            ));
                        }
                    }
                    Cell::Unset => {
                        return Err(self.err(
                            dev,
                            idx,
                            format!(
                                "{what}: reads query row {t} head {h}, which was never written"
                            ),
                        ))
                    }
                    other => {
                        return Err(self.err(
                            dev,
                            idx,
                            format!("{what}: query row {t} head {h} holds {other:?}, not Q"),
                        ))
                    }
                }
            }
        }
        let Some(seq) = q_seq else { return Ok(()) };
        // KV cells, concatenated.
        let total: u32 = kv.iter().map(|r| r.len).sum();
        let mut kv_tok = Vec::with_capacity(total as usize);
        let mut kv_head = vec![u32::MAX; nk as usize];
        for r in kv {
            for t in 0..r.len {
                let mut tok0 = None;
                for h in 0..r.heads {
                    match self.cell(dev, r, t, h) {
                        Cell::In {
                            t: IoTensor::Kv,
                            seq: s,
                            tok,
                            head,
                        } => {
                            if s != seq {
                                return Err(self.err(dev, idx, format!("{what}: KV from sequence {s} attended by a query of sequence {seq}")));
                            }
                            if *tok0.get_or_insert(tok) != tok {
                                return Err(self.err(
                                    dev,
                                    idx,
                                    format!("{what}: KV row mixes tokens across heads"),
                                ));
                            }
                            if kv_head[h as usize] == u32::MAX {
                                kv_head[h as usize] = head;
                            } else if kv_head[h as usize] != head {
                                return Err(self.err(
                                    dev,
                                    idx,
                                    format!("{what}: KV column {h} mixes heads across rows"),
                                ));
                            }
                        }
                        Cell::Unset => {
                            return Err(self.err(
                                dev,
                                idx,
                                format!("{what}: reads KV that was never written"),
                            ))
                        }
                        other => {
                            return Err(self.err(
                                dev,
                                idx,
                                format!("{what}: KV region holds {other:?}, not KV"),
                            ))
                        }
                    }
                }
                kv_tok.push(tok0.unwrap_or(0));
            }
        }
        for (j, &qh) in q_head.iter().enumerate() {
            if total > 0 && qh / g != kv_head[j / g as usize] {
                return Err(self.err(
                    dev,
                    idx,
                    format!(
                        "{what}: query head {qh} is paired with KV head {} (GQA needs {})",
                        kv_head[j / g as usize],
                        qh / g
                    ),
                ));
            }
        }
        // Runs of consecutive key tokens, and key-weight prefix sums over concat positions.
        let off = self.exp.seq_off[seq as usize];
        let mut runs: Vec<(u32, u32, u32)> = Vec::new(); // (concat start, token start, len)
        for (c, &t) in kv_tok.iter().enumerate() {
            match runs.last_mut() {
                Some(r) if r.1 + r.2 == t && r.0 + r.2 == c as u32 => r.2 += 1,
                _ => runs.push((c as u32, t, 1)),
            }
        }
        let mut pw = Vec::with_capacity(kv_tok.len() + 1);
        let mut acc = 0u64;
        pw.push(0);
        for &t in &kv_tok {
            acc = acc.wrapping_add(wk(off + t as u64));
            pw.push(acc);
        }
        let mask = &self.exp.masks[seq as usize];
        let mut row_cov = vec![Cov::default(); q.len as usize];
        let mut rr = Vec::new();
        // Backward: per concat position and KV column, dKV coverage deltas.
        let mut kdiff = if bwd.is_some() {
            vec![Cov::default(); (total as usize + 1) * nk as usize]
        } else {
            Vec::new()
        };
        for r in 0..q.len {
            rows.row(r, &mut rr);
            let qt = q_tok[r as usize];
            let mut prev_end = 0u32;
            for (ri, &(a, b)) in rr.iter().enumerate() {
                if b > total || (ri > 0 && a < prev_end) {
                    return Err(self.err(dev, idx, format!("{what}: row {r} range [{a}, {b}) is out of order or beyond the {total} concatenated keys")));
                }
                prev_end = b;
                // Every key of [a, b) must be in the row's mask.
                let mut inside = 0u64;
                let first = runs.partition_point(|x| x.0 + x.2 <= a);
                for run in &runs[first..] {
                    if run.0 >= b {
                        break;
                    }
                    let s = a.max(run.0);
                    let e = b.min(run.0 + run.2);
                    let t0 = run.1 + (s - run.0);
                    inside += mask.count_tile(qt, qt + 1, t0, t0 + (e - s));
                }
                if inside != (b - a) as u64 {
                    return Err(self.err(
                        dev,
                        idx,
                        format!("{what}: row {r} (sequence {seq} token {qt}) attends {} key(s) outside its mask in range [{a}, {b})", (b - a) as u64 - inside),
                    ));
                }
                row_cov[r as usize] = row_cov[r as usize].add(Cov {
                    count: (b - a) as u64,
                    hash: pw[b as usize].wrapping_sub(pw[a as usize]),
                });
                if bwd.is_some() {
                    for (j, &qh) in q_head.iter().enumerate() {
                        let col = j / g as usize;
                        let w = wq(off + qt as u64, qh, model.heads);
                        let x = &mut kdiff[a as usize * nk as usize + col];
                        x.count = x.count.wrapping_add(1);
                        x.hash = x.hash.wrapping_add(w);
                        let y = &mut kdiff[b as usize * nk as usize + col];
                        y.count = y.count.wrapping_sub(1);
                        y.hash = y.hash.wrapping_sub(w);
                    }
                }
            }
        }
        match bwd {
            None => {
                let (o, lse) = outs.unwrap();
                for (r, w) in [(o, d), (lse, 1)] {
                    if self.check_region(dev, idx, r, &what)? != w
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.err(dev, idx, format!("{what}: output region must match the query region's shape with width {w}")));
                    }
                    self.check_write(dev, idx, r, &what)?;
                }
                for t in 0..q.len {
                    for h in 0..q.heads {
                        let cov = row_cov[t as usize];
                        let (tok, head) = (q_tok[t as usize], q_head[h as usize]);
                        self.set(
                            dev,
                            o,
                            t,
                            h,
                            Cell::Part {
                                p: Part::O,
                                seq,
                                tok,
                                head,
                                cov,
                            },
                        );
                        self.set(
                            dev,
                            lse,
                            t,
                            h,
                            Cell::Part {
                                p: Part::Lse,
                                seq,
                                tok,
                                head,
                                cov,
                            },
                        );
                    }
                }
            }
            Some(w) => {
                for (r, t_in, width) in [
                    (&w.o, IoTensor::O, d),
                    (&w.lse, IoTensor::Lse, 1),
                    (&w.do_, IoTensor::DO, d),
                ] {
                    if self.check_region(dev, idx, r, &what)? != width
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.err(
                            dev,
                            idx,
                            format!("{what}: {t_in:?} region must match the query region's shape"),
                        ));
                    }
                    self.check_read(dev, idx, r, &what)?;
                    for t in 0..q.len {
                        for h in 0..q.heads {
                            let want = Cell::In {
                                t: t_in,
                                seq,
                                tok: q_tok[t as usize],
                                head: q_head[h as usize],
                            };
                            let got = self.cell(dev, r, t, h);
                            if got != want {
                                return Err(self.err(dev, idx, format!("{what}: {t_in:?} row {t} head {h} holds {got:?}, expected {want:?}")));
                            }
                        }
                    }
                }
                if self.check_region(dev, idx, &w.dq, &what)? != d
                    || w.dq.len != q.len
                    || w.dq.heads != q.heads
                {
                    return Err(self.err(
                        dev,
                        idx,
                        format!("{what}: dQ region must match the query region"),
                    ));
                }
                self.check_write(dev, idx, &w.dq, &what)?;
                for t in 0..q.len {
                    for h in 0..q.heads {
                        let (tok, head) = (q_tok[t as usize], q_head[h as usize]);
                        let add = row_cov[t as usize];
                        let new = self.accumulate(
                            dev,
                            idx,
                            &what,
                            self.cell(dev, &w.dq, t, h),
                            Part::DQ,
                            seq,
                            tok,
                            head,
                            add,
                        )?;
                        self.set(dev, &w.dq, t, h, new);
                    }
                }
                if w.dkv.len() != kv.len() {
                    return Err(self.err(
                        dev,
                        idx,
                        format!(
                            "{what}: {} dKV regions for {} KV regions",
                            w.dkv.len(),
                            kv.len()
                        ),
                    ));
                }
                let mut c = 0usize;
                let mut run = vec![Cov::default(); nk as usize];
                for (kr, dr) in kv.iter().zip(&w.dkv) {
                    if self.check_region(dev, idx, dr, &what)? != 2 * d
                        || dr.len != kr.len
                        || dr.heads != kr.heads
                    {
                        return Err(self.err(
                            dev,
                            idx,
                            format!("{what}: dKV region must match its KV region"),
                        ));
                    }
                    self.check_write(dev, idx, dr, &what)?;
                    for t in 0..dr.len {
                        for h in 0..nk {
                            let x = kdiff[c * nk as usize + h as usize];
                            let acc = &mut run[h as usize];
                            *acc = Cov {
                                count: acc.count.wrapping_add(x.count),
                                hash: acc.hash.wrapping_add(x.hash),
                            };
                            let add = *acc;
                            let cell = self.cell(dev, dr, t, h);
                            let new = self.accumulate(
                                dev,
                                idx,
                                &what,
                                cell,
                                Part::DKv,
                                seq,
                                kv_tok[c],
                                kv_head[h as usize],
                                add,
                            )?;
                            self.set(dev, dr, t, h, new);
                        }
                        c += 1;
                    }
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn accumulate(
        &self,
        dev: u32,
        idx: usize,
        what: &str,
        cell: Cell,
        p: Part,
        seq: u32,
        tok: u32,
        head: u32,
        add: Cov,
    ) -> Result<Cell, PlanError> {
        match cell {
            Cell::Fill(FillValue::Zero) => Ok(Cell::Part { p, seq, tok, head, cov: add }),
            Cell::Part { p: p2, seq: s2, tok: t2, head: h2, cov } if p2 == p && s2 == seq && t2 == tok && h2 == head => {
                Ok(Cell::Part { p, seq, tok, head, cov: cov.add(add) })
            }
            other => Err(self.err(dev, idx, format!("{what}: accumulates {p:?} of sequence {seq} token {tok} head {head} into a cell holding {other:?} (zero-fill accumulators first)"))),
        }
    }

    /// Merge/Sum: combine cells of the same identity.
    fn combine(
        &self,
        dev: u32,
        idx: usize,
        cells: &[Cell],
        p: Part,
        identity: FillValue,
    ) -> Result<Cell, PlanError> {
        let mut out: Option<Cell> = None;
        for &c in cells {
            match c {
                Cell::Fill(v) if v == identity => {}
                Cell::Part {
                    p: p2,
                    seq,
                    tok,
                    head,
                    cov,
                } if p2 == p => {
                    out = Some(match out {
                        None => c,
                        Some(Cell::Part {
                            seq: s0,
                            tok: t0,
                            head: h0,
                            cov: c0,
                            ..
                        }) if (s0, t0, h0) == (seq, tok, head) => Cell::Part {
                            p,
                            seq,
                            tok,
                            head,
                            cov: c0.add(cov),
                        },
                        Some(o) => {
                            return Err(self.err(
                                dev,
                                idx,
                                format!(
                                    "{} combines {o:?} with {c:?}",
                                    if p == Part::O || p == Part::Lse {
                                        "merge"
                                    } else {
                                        "sum"
                                    }
                                ),
                            ))
                        }
                    })
                }
                Cell::Unset => {
                    return Err(self.err(dev, idx, "reads a region that was never written"))
                }
                other => {
                    return Err(self.err(dev, idx, format!("cannot combine {other:?} as {p:?}")))
                }
            }
        }
        Ok(out.unwrap_or(Cell::Fill(identity)))
    }
}

impl Machine for Validator<'_> {
    fn local(&mut self, dev: u32, idx: usize, instr: &Instr) -> Result<(), PlanError> {
        match instr {
            Instr::Fill { dst, value } => {
                self.check_region(dev, idx, dst, "fill")?;
                self.check_write(dev, idx, dst, "fill")?;
                for t in 0..dst.len {
                    for h in 0..dst.heads {
                        self.set(dev, dst, t, h, Cell::Fill(*value));
                    }
                }
            }
            Instr::Copy { src, dst } => {
                let ws = self.check_region(dev, idx, src, "copy source")?;
                let wd = self.check_region(dev, idx, dst, "copy destination")?;
                if ws != wd || src.len != dst.len || src.heads != dst.heads {
                    return Err(self.err(dev, idx, "copy between regions of different shapes"));
                }
                self.check_read(dev, idx, src, "copy")?;
                self.check_write(dev, idx, dst, "copy")?;
                let cells = self.read_all(dev, src);
                if cells.contains(&Cell::Unset) {
                    return Err(self.err(dev, idx, "copy reads a region that was never written"));
                }
                let mut k = 0;
                for t in 0..dst.len {
                    for h in 0..dst.heads {
                        self.set(dev, dst, t, h, cells[k]);
                        k += 1;
                    }
                }
            }
            Instr::Wait { tag } => {
                let st = &mut self.devs[dev as usize];
                let Some(pos) = st.pending.iter().position(|p| p.tag == *tag) else {
                    return Err(self.err(
                        dev,
                        idx,
                        format!("waits for comm group {tag}, which is not in flight"),
                    ));
                };
                st.pending.remove(pos);
            }
            Instr::Attn { works, .. } => {
                // Works of one launch must not write each other's outputs.
                for (wi, w) in works.iter().enumerate() {
                    self.fwd_or_bwd_work(
                        dev,
                        idx,
                        wi,
                        &w.q,
                        &w.kv,
                        &w.rows,
                        None,
                        Some((&w.o, &w.lse)),
                    )?;
                }
                for (i, a) in works.iter().enumerate() {
                    for b in &works[i + 1..] {
                        if a.o.overlaps(&b.o) || a.lse.overlaps(&b.lse) {
                            return Err(self.err(
                                dev,
                                idx,
                                "two works of one launch write the same output region",
                            ));
                        }
                    }
                }
            }
            Instr::AttnBwd { works, .. } => {
                if !self.backward {
                    return Err(self.err(dev, idx, "attention backward in the forward program"));
                }
                for (wi, w) in works.iter().enumerate() {
                    self.fwd_or_bwd_work(dev, idx, wi, &w.q, &w.kv, &w.rows, Some(w), None)?;
                }
            }
            Instr::Merge { o, lse, inputs } => {
                let d = self.plan.batch.model.head_dim;
                if self.check_region(dev, idx, o, "merge output")? != d
                    || self.check_region(dev, idx, lse, "merge LSE")? != 1
                    || o.len != lse.len
                    || o.heads != lse.heads
                {
                    return Err(self.err(
                        dev,
                        idx,
                        "merge output (O, LSE) regions have wrong shapes",
                    ));
                }
                self.check_write(dev, idx, o, "merge")?;
                self.check_write(dev, idx, lse, "merge")?;
                let mut ins_o = Vec::new();
                let mut ins_l = Vec::new();
                for (io, il) in inputs {
                    if self.check_region(dev, idx, io, "merge input")? != d
                        || self.check_region(dev, idx, il, "merge input LSE")? != 1
                        || io.len != o.len
                        || io.heads != o.heads
                        || il.len != o.len
                        || il.heads != o.heads
                    {
                        return Err(self.err(
                            dev,
                            idx,
                            "merge input shapes differ from the output",
                        ));
                    }
                    self.check_read(dev, idx, io, "merge")?;
                    self.check_read(dev, idx, il, "merge")?;
                    ins_o.push(self.read_all(dev, io));
                    ins_l.push(self.read_all(dev, il));
                }
                let (mut co, mut cl): (Vec<Cell>, Vec<Cell>) = (Vec::new(), Vec::new());
                let mut k = 0;
                for t in 0..o.len {
                    for h in 0..o.heads {
                        co.clear();
                        co.extend(ins_o.iter().map(|v| v[k]));
                        cl.clear();
                        cl.extend(ins_l.iter().map(|v| v[k]));
                        for (a, b) in co.iter().zip(&cl) {
                            if *a == Cell::Unset || *b == Cell::Unset {
                                return Err(self.err(
                                    dev,
                                    idx,
                                    "merge reads a region that was never written",
                                ));
                            }
                            let ok = match (a, b) {
                                (Cell::Fill(FillValue::Zero), Cell::Fill(FillValue::NegInf)) => {
                                    true
                                }
                                (
                                    Cell::Part {
                                        p: Part::O,
                                        seq,
                                        tok,
                                        head,
                                        cov,
                                    },
                                    Cell::Part {
                                        p: Part::Lse,
                                        seq: s2,
                                        tok: t2,
                                        head: h2,
                                        cov: c2,
                                    },
                                ) => (seq, tok, head, cov) == (s2, t2, h2, c2),
                                _ => false,
                            };
                            if !ok {
                                return Err(self.err(dev, idx, format!("merge input pair does not hold matching partial O and LSE ({a:?}, {b:?})")));
                            }
                        }
                        let ro = self.combine(dev, idx, &co, Part::O, FillValue::Zero)?;
                        let rl = self.combine(dev, idx, &cl, Part::Lse, FillValue::NegInf)?;
                        self.set(dev, o, t, h, ro);
                        self.set(dev, lse, t, h, rl);
                        k += 1;
                    }
                }
            }
            Instr::Sum { dst, inputs } => {
                let w = self.check_region(dev, idx, dst, "sum output")?;
                self.check_write(dev, idx, dst, "sum")?;
                let mut ins = Vec::new();
                for r in inputs {
                    if self.check_region(dev, idx, r, "sum input")? != w
                        || r.len != dst.len
                        || r.heads != dst.heads
                    {
                        return Err(self.err(dev, idx, "sum input shape differs from the output"));
                    }
                    self.check_read(dev, idx, r, "sum")?;
                    ins.push(self.read_all(dev, r));
                }
                let part = if w == 2 * self.plan.batch.model.head_dim {
                    Part::DKv
                } else {
                    Part::DQ
                };
                let mut cs: Vec<Cell> = Vec::new();
                let mut k = 0;
                for t in 0..dst.len {
                    for h in 0..dst.heads {
                        cs.clear();
                        cs.extend(ins.iter().map(|v| v[k]));
                        let c = self.combine(dev, idx, &cs, part, FillValue::Zero)?;
                        self.set(dev, dst, t, h, c);
                        k += 1;
                    }
                }
            }
            Instr::Comm { .. } => unreachable!("the driver handles comm"),
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
        self.check_region(from, usize::MAX, src, "send")?;
        self.check_region(to, usize::MAX, dst, "receive")?;
        let cells = self.read_all(from, src);
        if cells.contains(&Cell::Unset) {
            return Err(self.err(
                from,
                usize::MAX,
                format!("sends to device {to} a region that was never written"),
            ));
        }
        let mut k = 0;
        for t in 0..dst.len {
            for h in 0..dst.heads {
                self.set(to, dst, t, h, cells[k]);
                k += 1;
            }
        }
        let n = self.plan.devices.len();
        if self.group_recvs.len() != n {
            self.group_recvs = vec![Vec::new(); n];
            self.group_sends = vec![Vec::new(); n];
        }
        self.group_sends[from as usize].push(*src);
        self.group_recvs[to as usize].push(*dst);
        Ok(())
    }

    fn group_done(
        &mut self,
        dev: u32,
        idx: usize,
        tag: u32,
        instr: &Instr,
    ) -> Result<(), PlanError> {
        let Instr::Comm { ops, .. } = instr else {
            unreachable!()
        };
        let n = self.plan.devices.len();
        if self.group_recvs.len() != n {
            self.group_recvs = vec![Vec::new(); n];
            self.group_sends = vec![Vec::new(); n];
        }
        let recvs = std::mem::take(&mut self.group_recvs[dev as usize]);
        let sends = std::mem::take(&mut self.group_sends[dev as usize]);
        debug_assert!(recvs.len() + sends.len() <= ops.len());
        for (i, a) in recvs.iter().enumerate() {
            if recvs[i + 1..].iter().chain(&sends).any(|b| a.overlaps(b)) {
                return Err(self.err(dev, idx, format!("comm group {tag} receives into a region it also sends or receives elsewhere")));
            }
        }
        // Groups run in list order on one stream, so regions of earlier groups are no hazard here.
        self.devs[dev as usize]
            .pending
            .push(Pending { tag, sends, recvs });
        Ok(())
    }
}
