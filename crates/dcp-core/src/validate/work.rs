//! Attention works: a work reads query rows of one sequence and KV rows of the same sequence with
//! GQA-consistent heads, its row ranges are in order and inside the concatenated keys, every
//! attended key lies inside the row's mask, and its outputs become partial results whose
//! coverage is the work's pairs ([`WorkPairs`], built per run of query rows × KV run × range).

use std::rc::Rc;

use super::pairs::{
    constant_order_runs, count_inside_mask, leaf, trap_sum, Cells, Cov, Hasher, Trap, WorkPairs,
};
use super::split::sub_rows;
use super::state::{refine, Part, Rows, Val};
use super::{Item, Validator};
use crate::error::{PlanError, PlanErrorKind};
use crate::mask::Lin;
use crate::plan::{BwdWork, FwdWork, IoTensor, Region, RowRanges};

/// Runs of a region's rows holding consecutive tokens: `(r0, r1, first token)`.
type TokRuns = Vec<(u32, u32, u32)>;

/// Columns as runs of consecutive heads: `(c0, c1, first head)`. A column never read holds
/// `u32::MAX` and stays a run of its own (checked add: `MAX + 1` must not wrap onto head 0).
fn head_runs(heads: &[u32]) -> Vec<(u32, u32, u32)> {
    let mut out: Vec<(u32, u32, u32)> = Vec::new();
    for (j, &h) in heads.iter().enumerate() {
        match out.last_mut() {
            Some(r) if r.2.checked_add(r.1 - r.0) == Some(h) => r.1 += 1,
            _ => out.push((j as u32, j as u32 + 1, h)),
        }
    }
    out
}

fn push_run(runs: &mut TokRuns, r0: u32, r1: u32, tok: u32) {
    match runs.last_mut() {
        Some(l) if l.1 == r0 && l.2 + (l.1 - l.0) == tok => l.1 = r1,
        _ => runs.push((r0, r1, tok)),
    }
}

/// The identity rows `runs × cols` of tensor `t` (for comparing and accumulating).
fn ident_rows(t: IoTensor, seq: u32, runs: &TokRuns, cols: &[(u32, u32, u32)]) -> Vec<Rows> {
    runs.iter()
        .map(|&(r0, r1, tok)| Rows {
            r0,
            r1,
            cols: cols
                .iter()
                .map(|&(c0, c1, head)| (c0, c1, Val::In { t, seq, tok, head }))
                .collect(),
        })
        .collect()
}

/// Whether `rows` hold exactly input `t` of `seq` laid out as `runs × cols` (row bands and
/// column runs matching one to one): the common case of a backward work's O, LSE and dO, checked
/// without building the expected rows and refining.
fn holds_input(
    rows: &[Rows],
    t: IoTensor,
    seq: u32,
    runs: &TokRuns,
    cols: &[(u32, u32, u32)],
) -> bool {
    rows.len() == runs.len()
        && rows.iter().zip(runs).all(|(rw, &(r0, r1, tok))| {
            rw.r0 == r0
                && rw.r1 == r1
                && rw.cols.len() == cols.len()
                && rw
                    .cols
                    .iter()
                    .zip(cols)
                    .all(|(&(c0, c1, ref v), &(d0, d1, head))| {
                        (c0, c1) == (d0, d1)
                            && matches!(*v, Val::In { t: vt, seq: s, tok: k, head: h }
                            if vt == t && s == seq && k == tok && h == head)
                    })
        })
}

/// Two overlapping regions of a list (indices in the list, smaller first), by a sweep over
/// regions sorted by buffer and first token: each is compared only with those starting before
/// it ends.
fn first_overlap(regions: Vec<Region>) -> Option<(usize, usize)> {
    let mut order: Vec<usize> = (0..regions.len()).collect();
    order.sort_by_key(|&i| (regions[i].buf, regions[i].tok, i));
    for (k, &i) in order.iter().enumerate() {
        let a = &regions[i];
        for &j in &order[k + 1..] {
            let b = &regions[j];
            if b.buf != a.buf || b.tok >= a.tok + a.len {
                break;
            }
            if a.overlaps(b) {
                return Some((i.min(j), i.max(j)));
            }
        }
    }
    None
}

/// One coverage leaf per query run of a work: its pairs for those query tokens.
fn q_leaves(h: &Hasher, pairs: &Rc<WorkPairs>, runs: &TokRuns) -> Vec<Cov> {
    runs.iter()
        .map(|&(r0, r1, tok)| {
            let clip = Cells {
                q: (tok, tok + (r1 - r0)),
                ..Cells::ALL
            };
            leaf(h, pairs.clone(), None, clip)
        })
        .collect()
}

/// What a work reads: query rows and heads, KV runs and heads, of one sequence.
struct Operands {
    seq: u32,
    q_runs: TokRuns,
    q_head: Vec<u32>,
    /// Per KV region: runs in concatenated key positions `(c0, c1, first token)`.
    kv_runs: Vec<TokRuns>,
    kv_head: Vec<u32>,
    keys: u32,
}

impl Validator<'_> {
    pub(super) fn attn(
        &mut self,
        dev: u32,
        idx: usize,
        works: &[FwdWork],
    ) -> Result<(), PlanError> {
        for (wi, w) in works.iter().enumerate() {
            let outs = [&w.o, &w.lse];
            match self.seq_parts(dev, idx, wi, &w.q, &w.kv, &outs, &w.rows)? {
                None => self.work(
                    dev,
                    idx,
                    wi,
                    &w.q,
                    &w.kv,
                    &w.rows,
                    None,
                    Some((&w.o, &w.lse)),
                )?,
                Some(parts) => {
                    for p in parts {
                        let kv: Vec<Region> = p.kv.iter().map(|x| x.1).collect();
                        let (o, lse) = (sub_rows(&w.o, p.r0, p.r1), sub_rows(&w.lse, p.r0, p.r1));
                        let q = sub_rows(&w.q, p.r0, p.r1);
                        self.work(dev, idx, wi, &q, &kv, &p.rows, None, Some((&o, &lse)))?;
                    }
                }
            }
        }
        // Works of one launch must not write each other's outputs.
        for out in [|w: &FwdWork| w.o, |w: &FwdWork| w.lse] {
            if let Some((a, b)) = first_overlap(works.iter().map(out).collect()) {
                return Err(self.err(dev, idx, PlanErrorKind::OverlappingOutputs { a, b }));
            }
        }
        Ok(())
    }

    pub(super) fn attn_bwd(
        &mut self,
        dev: u32,
        idx: usize,
        works: &[BwdWork],
    ) -> Result<(), PlanError> {
        if !self.backward {
            return Err(self.err(dev, idx, PlanErrorKind::BackwardInForward));
        }
        for (wi, w) in works.iter().enumerate() {
            let dkv_fits =
                w.dkv.len() == w.kv.len() && w.kv.iter().zip(&w.dkv).all(|(k, d)| k.len == d.len);
            let outs = [&w.o, &w.lse, &w.do_, &w.dq];
            let parts = if dkv_fits {
                self.seq_parts(dev, idx, wi, &w.q, &w.kv, &outs, &w.rows)?
            } else {
                None
            };
            let Some(parts) = parts else {
                self.work(dev, idx, wi, &w.q, &w.kv, &w.rows, Some(w), None)?;
                continue;
            };
            for p in parts {
                let (r0, r1) = (p.r0, p.r1);
                let dkv =
                    p.kv.iter()
                        .map(|&(ri, r)| {
                            let t0 = r.tok - w.kv[ri].tok;
                            sub_rows(&w.dkv[ri], t0, t0 + r.len)
                        })
                        .collect();
                let part = BwdWork {
                    q: sub_rows(&w.q, r0, r1),
                    kv: p.kv.iter().map(|x| x.1).collect(),
                    o: sub_rows(&w.o, r0, r1),
                    lse: sub_rows(&w.lse, r0, r1),
                    do_: sub_rows(&w.do_, r0, r1),
                    dq: sub_rows(&w.dq, r0, r1),
                    dkv,
                    rows: p.rows,
                };
                self.work(
                    dev,
                    idx,
                    wi,
                    &part.q,
                    &part.kv,
                    &part.rows,
                    Some(&part),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// Reads and checks a work's query and KV operands.
    fn operands(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
    ) -> Result<Option<Operands>, PlanError> {
        let g = self.plan.batch.model.group();
        let qi = Item::Work(wi, "query", None);
        let rows = self.read_set(dev, idx, q, qi)?;
        let mut seq = None;
        let mut q_runs = TokRuns::new();
        let mut q_head = vec![u32::MAX; q.heads as usize];
        let at = (dev, idx, wi);
        self.input_runs(
            at,
            &rows,
            IoTensor::Q,
            qi,
            0,
            &mut seq,
            &mut q_runs,
            &mut q_head,
        )?;
        let Some(seq) = seq else { return Ok(None) };
        let nk = kv[0].heads;
        let mut kv_head = vec![u32::MAX; nk as usize];
        let mut kv_runs = Vec::with_capacity(kv.len());
        let mut keys = 0u32;
        for (ri, r) in kv.iter().enumerate() {
            let item = Item::Work(wi, "KV", Some(ri));
            let rows = self.read_set(dev, idx, r, item)?;
            let mut runs = TokRuns::new();
            let mut s = Some(seq);
            self.input_runs(
                at,
                &rows,
                IoTensor::Kv,
                item,
                keys,
                &mut s,
                &mut runs,
                &mut kv_head,
            )?;
            keys += r.len;
            kv_runs.push(runs);
        }
        if keys > 0 {
            for (j, &qh) in q_head.iter().enumerate() {
                let kh = kv_head[j / g as usize];
                if qh / g != kh {
                    return Err(self.err(
                        dev,
                        idx,
                        PlanErrorKind::GqaMismatch {
                            work: wi,
                            q_head: qh,
                            kv_head: kh,
                            want: qh / g,
                        },
                    ));
                }
            }
        }
        Ok(Some(Operands {
            seq,
            q_runs,
            q_head,
            kv_runs,
            kv_head,
            keys,
        }))
    }

    /// Reads rows holding input `t`: all of sequence `seq` (set by the first row if `None`),
    /// one token per row across heads (runs appended to `runs`, rows shifted by `row0`) and one
    /// head per column across rows (`heads`, `u32::MAX` = not yet seen).
    #[allow(clippy::too_many_arguments)]
    fn input_runs(
        &self,
        (dev, idx, wi): (u32, usize, usize),
        rows: &[Rows],
        t: IoTensor,
        item: Item,
        row0: u32,
        seq: &mut Option<u32>,
        runs: &mut TokRuns,
        heads: &mut [u32],
    ) -> Result<(), PlanError> {
        let wrong = |v: &Val, expected: &str| {
            self.err(
                dev,
                idx,
                PlanErrorKind::WrongContent {
                    item: item.to_string(),
                    found: v.describe(),
                    expected: expected.into(),
                },
            )
        };
        for rw in rows {
            let mut tok0 = None;
            for (c0, c1, v) in &rw.cols {
                let Val::In {
                    t: vt,
                    seq: s,
                    tok,
                    head,
                } = *v
                else {
                    return Err(wrong(v, &format!("{t:?}")));
                };
                if vt != t {
                    return Err(wrong(v, &format!("{t:?}")));
                }
                let want = *seq.get_or_insert(s);
                if want != s {
                    let kind = PlanErrorKind::MixedSequences {
                        work: wi,
                        a: want,
                        b: s,
                    };
                    return Err(self.err(dev, idx, kind));
                }
                if *tok0.get_or_insert(tok) != tok {
                    return Err(wrong(v, "one token per row across heads"));
                }
                for j in *c0..*c1 {
                    let h = head + (j - c0);
                    let slot = &mut heads[j as usize];
                    if *slot == u32::MAX {
                        *slot = h;
                    } else if *slot != h {
                        return Err(wrong(v, "one head per column across rows"));
                    }
                }
            }
            if let Some(tok) = tok0 {
                push_run(runs, row0 + rw.r0, row0 + rw.r1, tok);
            }
        }
        Ok(())
    }

    /// Row-range segments in row order without overlap; ranges in order and inside the
    /// concatenated keys, checked once per run of rows on which no two range ends cross (the
    /// checks then hold on every row of the run or none).
    pub(super) fn check_rows(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        rows: &RowRanges,
        keys: u32,
    ) -> Result<(), PlanError> {
        let mut lines: Vec<Lin> = Vec::new();
        let mut bad = None;
        // Segments in row order without overlap: what `RowRanges::row` (the executors' reading)
        // assumes, and what makes the segments' pairs exactly the rows' pairs.
        let mut next = 0u64;
        for seg in &rows.segs {
            if (seg.row0 as u64) < next {
                bad = Some((seg.row0, seg.row0.saturating_add(seg.rows)));
                break;
            }
            next = seg.row0 as u64 + seg.rows as u64;
        }
        let segs = if bad.is_some() {
            &[][..]
        } else {
            &rows.segs[..]
        };
        for seg in segs {
            lines.clear();
            lines.extend(seg.ranges.iter().flat_map(|r| [r.start, r.end]));
            lines.extend([Lin::c(0), Lin::c(keys as i64)]);
            let (a, b) = (seg.row0 as i64, seg.row0 as i64 + seg.rows as i64);
            constant_order_runs(a, b, &lines, |ra, rb| {
                if bad.is_some() {
                    return;
                }
                let mut prev_end = 0i64;
                let mut first = true;
                for lr in &seg.ranges {
                    let (s, e) = (lr.start.at(ra), lr.end.at(ra));
                    if s >= e {
                        continue;
                    }
                    let (s, e) = (s.max(0), e.max(0));
                    if e > keys as i64 || (!first && s < prev_end) {
                        bad = Some((ra as u32, rb as u32));
                        return;
                    }
                    first = false;
                    prev_end = e;
                }
            });
        }
        match bad {
            Some(rows) => Err(self.err(
                dev,
                idx,
                PlanErrorKind::RowRanges {
                    work: wi,
                    rows,
                    keys,
                },
            )),
            None => Ok(()),
        }
    }

    /// The work's pairs as trapezoids in (query token, key token); each checked inside the mask.
    fn pairs(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        ops: &Operands,
        rows: &RowRanges,
    ) -> Result<WorkPairs, PlanError> {
        let seq = ops.seq;
        let mask = &self.cx.masks[seq as usize];
        let h = &self.cx.hasher;
        // KV runs over all regions, sorted by concatenated position (they are, by construction).
        let runs: Vec<(u32, u32, u32, u32)> = ops
            .kv_runs
            .iter()
            .enumerate()
            .flat_map(|(ri, rs)| rs.iter().map(move |&(c0, c1, t)| (c0, c1, t, ri as u32)))
            .collect();
        let mut traps = Vec::new();
        for seg in &rows.segs {
            let (s0, s1) = (seg.row0, seg.row0 + seg.rows);
            for &(qr0, qr1, qtok) in &ops.q_runs {
                let (ra, rb) = (s0.max(qr0), s1.min(qr1));
                if ra >= rb {
                    continue;
                }
                // Row r holds query token q = qtok + r − qr0: a line c + s·r becomes, in q,
                // (c + s·(qr0 − qtok)) + s·q.
                let shift = qr0 as i64 - qtok as i64;
                let (q0, q1) = (qtok + (ra - qr0), qtok + (rb - qr0));
                for lr in &seg.ranges {
                    // Concatenated positions this range can reach over the rows.
                    let (last, first) = (rb as i64 - 1, ra as i64);
                    let lo = lr.start.at(first).min(lr.start.at(last)).max(0);
                    let hi = lr.end.at(first).max(lr.end.at(last));
                    if lo >= hi {
                        continue;
                    }
                    let from = runs.partition_point(|r| (r.1 as i64) <= lo);
                    for &(c0, c1, t0, ri) in &runs[from..] {
                        if c0 as i64 >= hi {
                            break;
                        }
                        // Key token k = position − c0 + t0.
                        let to_k = t0 as i64 - c0 as i64;
                        let at_q = |l: Lin| Lin {
                            c: l.c + l.slope * shift + to_k,
                            slope: l.slope,
                        };
                        let tr = Trap {
                            q0,
                            q1,
                            lo: [at_q(lr.start), Lin::c(t0 as i64)],
                            hi: [at_q(lr.end), Lin::c(t0 as i64 + (c1 - c0) as i64)],
                            kvreg: ri,
                            full: Default::default(),
                        };
                        // The whole sum at once (its leaves need it; the count is part of it).
                        let off = self.cx.seq_off[seq as usize];
                        let full = trap_sum(h, q0 as i64, q1 as i64, &tr.lo, &tr.hi, off, false);
                        tr.full.set(Some(full));
                        let n = full.count;
                        if n == 0 {
                            continue;
                        }
                        let inside = count_inside_mask(h, mask, &tr);
                        if inside != n {
                            return Err(self.err(
                                dev,
                                idx,
                                PlanErrorKind::KeyOutsideMask {
                                    work: wi,
                                    seq,
                                    tokens: (q0, q1),
                                    outside: n - inside,
                                },
                            ));
                        }
                        traps.push(tr);
                    }
                }
            }
        }
        let qheads = head_runs(&ops.q_head)
            .into_iter()
            .map(|(c0, c1, h)| (h, h + (c1 - c0)))
            .collect();
        Ok(WorkPairs {
            off: self.cx.seq_off[seq as usize],
            qheads,
            traps,
        })
    }

    /// Checks one work and applies it: a forward work writes fresh partial (O, LSE); a backward
    /// work reads the final O, LSE and dO of its rows and accumulates into dQ and dKV.
    #[allow(clippy::too_many_arguments)]
    fn work(
        &mut self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        rows: &RowRanges,
        bwd: Option<&BwdWork>,
        outs: Option<(&Region, &Region)>,
    ) -> Result<(), PlanError> {
        let model = self.plan.batch.model;
        let (g, d) = (model.group(), model.head_dim);
        let qi = Item::Work(wi, "query", None);
        if self.check_region(dev, idx, q, qi)? != d {
            return Err(self.shape_err(dev, idx, qi, format!("width {d} (the head dim)")));
        }
        self.check_read(dev, idx, q, qi)?;
        if kv.is_empty() {
            return Err(self.shape_err(dev, idx, qi, "at least one KV region"));
        }
        let nk = kv[0].heads;
        if q.heads != nk * g {
            return Err(self.shape_err(
                dev,
                idx,
                qi,
                format!(
                    "{} query heads need {} KV heads (group {g}), the KV regions have {nk}",
                    q.heads,
                    q.heads / g
                ),
            ));
        }
        for (ri, r) in kv.iter().enumerate() {
            let item = Item::Work(wi, "KV", Some(ri));
            if self.check_region(dev, idx, r, item)? != 2 * d || r.heads != nk {
                return Err(self.shape_err(dev, idx, item, format!("width 2·{d} and {nk} heads")));
            }
            self.check_read(dev, idx, r, item)?;
        }
        if rows.n_rows() > q.len {
            return Err(self.shape_err(
                dev,
                idx,
                qi,
                format!("at least the {} rows of the row ranges", rows.n_rows()),
            ));
        }
        let Some(ops) = self.operands(dev, idx, wi, q, kv)? else {
            return Ok(());
        };
        self.check_rows(dev, idx, wi, rows, ops.keys)?;
        let pairs = Rc::new(self.pairs(dev, idx, wi, &ops, rows)?);
        let q_cols = head_runs(&ops.q_head);
        let seq = ops.seq;
        match bwd {
            None => {
                let (o, lse) = outs.expect("forward outputs");
                // One leaf per query run: each output block reads whole leaves.
                let covs = q_leaves(&self.cx.hasher, &pairs, &ops.q_runs);
                for (r, w, what) in [(o, d, "O"), (lse, 1, "LSE")] {
                    let item = Item::Work(wi, what, None);
                    if self.check_region(dev, idx, r, item)? != w
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.shape_err(
                            dev,
                            idx,
                            item,
                            format!("the query region's shape with width {w}"),
                        ));
                    }
                    self.check_write(dev, idx, r, item)?;
                }
                for (r, p) in [(o, Part::O), (lse, Part::Lse)] {
                    let rows: Vec<Rows> = ops
                        .q_runs
                        .iter()
                        .zip(&covs)
                        .map(|(&(r0, r1, tok), cov)| Rows {
                            r0,
                            r1,
                            cols: q_cols
                                .iter()
                                .map(|&(c0, c1, head)| {
                                    let v = Val::Part {
                                        p,
                                        seq,
                                        tok,
                                        head,
                                        cov: cov.clone(),
                                    };
                                    (c0, c1, v)
                                })
                                .collect(),
                        })
                        .collect();
                    // Rows no query run covers (none when the query region is all written).
                    self.write(dev, r, &rows);
                }
            }
            Some(w) => {
                for (r, t_in, width, what) in [
                    (&w.o, IoTensor::O, d, "O"),
                    (&w.lse, IoTensor::Lse, 1, "LSE"),
                    (&w.do_, IoTensor::DO, d, "dO"),
                ] {
                    let item = Item::Work(wi, what, None);
                    if self.check_region(dev, idx, r, item)? != width
                        || r.len != q.len
                        || r.heads != q.heads
                    {
                        return Err(self.shape_err(dev, idx, item, "the query region's shape"));
                    }
                    self.check_read(dev, idx, r, item)?;
                    let have = self.read_set(dev, idx, r, item)?;
                    if holds_input(&have, t_in, seq, &ops.q_runs, &q_cols) {
                        continue;
                    }
                    let want = ident_rows(t_in, seq, &ops.q_runs, &q_cols);
                    for cell in refine(&[&have, &want]).iter() {
                        let ok = matches!(cell.vals[0], Val::In { t, .. } if t == t_in)
                            && cell.vals[0].ident() == cell.vals[1].ident();
                        if !ok {
                            return Err(self.err(
                                dev,
                                idx,
                                PlanErrorKind::WrongContent {
                                    item: format!(
                                        "{item} rows {}..{} heads {}..{}",
                                        cell.r0, cell.r1, cell.c0, cell.c1
                                    ),
                                    found: cell.vals[0].describe(),
                                    expected: cell.vals[1].describe(),
                                },
                            ));
                        }
                    }
                }
                let item = Item::Work(wi, "dQ", None);
                if self.check_region(dev, idx, &w.dq, item)? != d
                    || w.dq.len != q.len
                    || w.dq.heads != q.heads
                {
                    return Err(self.shape_err(dev, idx, item, "the query region's shape"));
                }
                self.check_write(dev, idx, &w.dq, item)?;
                let want = ident_rows(IoTensor::DQ, seq, &ops.q_runs, &q_cols);
                let covs = q_leaves(&self.cx.hasher, &pairs, &ops.q_runs);
                self.accumulate(dev, idx, item, &w.dq, &want, Part::DQ, &covs)?;
                if w.dkv.len() != kv.len() {
                    return Err(self.shape_err(
                        dev,
                        idx,
                        Item::Work(wi, "dKV", None),
                        format!("one dKV region per KV region ({})", kv.len()),
                    ));
                }
                let kv_cols = head_runs(&ops.kv_head);
                for (ri, (kr, dr)) in kv.iter().zip(&w.dkv).enumerate() {
                    let item = Item::Work(wi, "dKV", Some(ri));
                    if self.check_region(dev, idx, dr, item)? != 2 * d
                        || dr.len != kr.len
                        || dr.heads != kr.heads
                    {
                        return Err(self.shape_err(dev, idx, item, "its KV region's shape"));
                    }
                    self.check_write(dev, idx, dr, item)?;
                    let start: u32 = kv[..ri].iter().map(|r| r.len).sum();
                    let runs: TokRuns = ops.kv_runs[ri]
                        .iter()
                        .map(|&(c0, c1, t)| (c0 - start, c1 - start, t))
                        .collect();
                    let want = ident_rows(IoTensor::DKv, seq, &runs, &kv_cols);
                    // One leaf per KV run: each dKV block reads whole leaves.
                    let covs: Vec<Cov> = runs
                        .iter()
                        .map(|&(c0, c1, t)| {
                            let clip = Cells {
                                k: (t, t + (c1 - c0)),
                                ..Cells::ALL
                            };
                            leaf(&self.cx.hasher, pairs.clone(), Some(ri as u32), clip)
                        })
                        .collect();
                    self.accumulate(dev, idx, item, dr, &want, Part::DKv, &covs)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod head_run_tests {
    use super::head_runs;

    #[test]
    fn unread_columns_never_merge_with_head_zero() {
        assert_eq!(head_runs(&[2, 3, 4]), vec![(0, 3, 2)]);
        assert_eq!(
            head_runs(&[u32::MAX, 0, 1]),
            vec![(0, 1, u32::MAX), (1, 3, 0)]
        );
        assert_eq!(
            head_runs(&[u32::MAX, u32::MAX]),
            vec![(0, 1, u32::MAX), (1, 2, u32::MAX)]
        );
    }
}
