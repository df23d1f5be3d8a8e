//! One function per instruction kind (attention works are in [`super::work`]), plus the
//! communication bookkeeping: transfers move rectangles between devices, groups stay in flight
//! until waited for.

use super::pairs::{Arena, Cov};
use super::state::{push_cell, refine, Few, Few1, Part, RowList, Rows, Val};
use super::{buf_bit, show, DevState, InFlight, Item, Local, Validator};
use crate::error::{PlanError, PlanErrorKind};
use crate::interp::Machine;
use crate::plan::{FillValue, Instr, Program, Region};

/// The partial result of one cell so far: identity (global row, head) and coverage.
type Acc = Option<(u64, u32, Cov)>;

/// Folds a partial result of identity `id` into `acc`; on an identity clash returns the one held.
fn fold(covs: &mut Arena, acc: &mut Acc, id: (u64, u32), cov: Cov) -> Result<(), (u64, u32)> {
    *acc = Some(match acc.take() {
        None => (id.0, id.1, cov),
        Some((g, h, c)) if (g, h) == id => (g, h, covs.join(c, cov)),
        Some((g, h, _)) => return Err((g, h)),
    });
    Ok(())
}

/// An input pair (O, LSE) of a merge: `Some(None)` for zero and −∞ (nothing to merge),
/// `Some(Some((g, head, cov)))` for a partial O and LSE of one identity and coverage, `None` for
/// anything else.
#[inline(always)]
fn merge_input(covs: &Arena, o: &Val, lse: &Val) -> Option<Acc> {
    match (o, lse) {
        (Val::Fill(FillValue::Zero), Val::Fill(FillValue::NegInf)) => Some(None),
        (
            Val::Part {
                p: Part::O,
                g,
                head,
                cov,
            },
            Val::Part {
                p: Part::Lse,
                g: g2,
                head: h2,
                cov: c2,
            },
        ) if (g, head) == (g2, h2) && covs.same(*cov, *c2) => Some(Some((*g, *head, *cov))),
        _ => None,
    }
}

/// The merged (O, LSE) of a cell whose partials folded into `acc`: zero and −∞ where it holds
/// none.
#[inline(always)]
fn merged(acc: Acc) -> (Val, Val) {
    match acc {
        None => (Val::Fill(FillValue::Zero), Val::Fill(FillValue::NegInf)),
        Some((g, head, cov)) => {
            let part = |p| Val::Part { p, g, head, cov };
            (part(Part::O), part(Part::Lse))
        }
    }
}

/// [`merged`] of partials of identity `(g, head)` with coverages `parts`, joined in order.
#[inline(always)]
fn merged_parts(covs: &mut Arena, (g, head): (u64, u32), parts: &[Cov]) -> (Val, Val) {
    let Some((&first, rest)) = parts.split_first() else {
        return merged(None);
    };
    let mut cov = first;
    for &c in rest {
        cov = covs.join(cov, c);
    }
    merged(Some((g, head, cov)))
}

impl Local<'_, '_> {
    pub(super) fn fill(
        &mut self,
        dev: u32,
        idx: usize,
        dst: &Region,
        value: FillValue,
    ) -> Result<(), PlanError> {
        self.check_region(dev, idx, dst, Item::Fill)?;
        self.check_write(dev, idx, dst, Item::Fill)?;
        self.st.bufs[dst.buf as usize].write_one(dst, Val::Fill(value));
        Ok(())
    }

    pub(super) fn copy(
        &mut self,
        dev: u32,
        idx: usize,
        src: &Region,
        dst: &Region,
    ) -> Result<(), PlanError> {
        let ws = self.check_region(dev, idx, src, Item::CopySrc)?;
        let wd = self.check_region(dev, idx, dst, Item::CopyDst)?;
        if ws != wd || src.len != dst.len || src.heads != dst.heads {
            return Err(self.shape_err(
                dev,
                idx,
                Item::CopyDst,
                format!(
                    "copy between regions of different shapes ({} and {})",
                    show(src),
                    show(dst)
                ),
            ));
        }
        self.check_read(dev, idx, src, Item::CopySrc)?;
        self.check_write(dev, idx, dst, Item::CopyDst)?;
        let rows = self.read_set(dev, idx, src, Item::CopySrc)?;
        self.write(dev, dst, rows);
        Ok(())
    }

    pub(super) fn wait(&mut self, dev: u32, idx: usize, tag: u32) -> Result<(), PlanError> {
        let st = &mut *self.st;
        // The oldest group, the only one in flight (a ring step's wait): no search, no bits to
        // recompute.
        if st.pending.len() == 1 && st.pending[0] == tag {
            st.pending.clear();
            st.inflight.clear();
            (st.recv_bufs, st.send_bufs) = (0, 0);
            return Ok(());
        }
        let Some(pos) = st.pending.iter().position(|&t| t == tag) else {
            return Err(self.err(dev, idx, PlanErrorKind::WaitNotInFlight { tag }));
        };
        st.pending.remove(pos);
        // Tags rise along a device's list: only this group's regions have its tag. The oldest
        // group's are the first ones.
        if pos == 0 {
            let n = st.inflight.iter().take_while(|e| e.tag == tag).count();
            st.inflight.drain(..n);
            debug_assert!(
                st.inflight.iter().all(|e| e.tag != tag),
                "one group per tag"
            );
        } else {
            st.inflight.retain(|e| e.tag != tag);
        }
        st.update_busy();
        Ok(())
    }

    /// Merge: `(o, lse)` = log-sum-exp merge of partial pairs of the same cells.
    pub(super) fn merge(
        &mut self,
        dev: u32,
        idx: usize,
        o: &Region,
        lse: &Region,
        inputs: &[(Region, Region)],
    ) -> Result<(), PlanError> {
        if self.cx.fast {
            #[cfg(debug_assertions)]
            let before = (
                self.st.bufs.get(o.buf as usize).cloned(),
                self.st.bufs.get(lse.buf as usize).cloned(),
            );
            if self.merge_one(o, lse, inputs) {
                // Debug builds (every test run): the general merge, from the same state, accepts
                // the merge and writes the same values.
                #[cfg(debug_assertions)]
                {
                    let (Some(bo), Some(bl)) = before else {
                        unreachable!("merge_one checked the regions")
                    };
                    let fast = (
                        self.st.bufs[o.buf as usize].clone(),
                        self.st.bufs[lse.buf as usize].clone(),
                    );
                    self.st.bufs[o.buf as usize] = bo;
                    self.st.bufs[lse.buf as usize] = bl;
                    self.merge_general(dev, idx, o, lse, inputs)
                        .expect("the general merge refuses a merge merge_one accepted");
                    let covs = &self.covs;
                    let same = |a, b| covs.same(a, b);
                    assert!(
                        self.st.bufs[o.buf as usize].same_as(&fast.0, same)
                            && self.st.bufs[lse.buf as usize].same_as(&fast.1, same),
                        "merge_one's results differ from the general merge's"
                    );
                    self.st.bufs[o.buf as usize] = fast.0;
                    self.st.bufs[lse.buf as usize] = fast.1;
                }
                return Ok(());
            }
        }
        self.merge_general(dev, idx, o, lse, inputs)
    }

    /// [`Local::merge`] by the general path: regions checked one by one, inputs read and
    /// refined into cells.
    fn merge_general(
        &mut self,
        dev: u32,
        idx: usize,
        o: &Region,
        lse: &Region,
        inputs: &[(Region, Region)],
    ) -> Result<(), PlanError> {
        let d = self.plan.batch.model.head_dim;
        if self.check_region(dev, idx, o, Item::MergeOut)? != d
            || self.check_region(dev, idx, lse, Item::MergeOut)? != 1
            || o.len != lse.len
            || o.heads != lse.heads
        {
            return Err(self.shape_err(
                dev,
                idx,
                Item::MergeOut,
                format!("O (width {d}) and LSE (width 1) regions of one shape"),
            ));
        }
        self.check_write(dev, idx, o, Item::MergeOut)?;
        self.check_write(dev, idx, lse, Item::MergeOut)?;
        // While every input is one rectangle (a ring step's merge of whole accumulators), its
        // values are kept on the stack and the merge is one cell, the whole region, with no
        // refinement; the first input that is not (or holds a cell never written, which
        // `read_set` reports) switches to the general path, in the same order of checks.
        let mut vals = [Val::Unset; 8];
        let mut fast = (1..=4).contains(&inputs.len()) && o.len > 0 && o.heads > 0;
        let mut ins = Vec::new();
        for (k, (io, il)) in inputs.iter().enumerate() {
            let item = Item::MergeIn(k);
            if self.check_region(dev, idx, io, item)? != d
                || self.check_region(dev, idx, il, item)? != 1
                || io.len != o.len
                || io.heads != o.heads
                || il.len != o.len
                || il.heads != o.heads
            {
                return Err(self.shape_err(dev, idx, item, "the output's shape"));
            }
            self.check_read(dev, idx, io, item)?;
            self.check_read(dev, idx, il, item)?;
            if fast {
                let bufs = &self.st.bufs;
                let one = |r: &Region| bufs[r.buf as usize].read_one(r);
                if let (Some(a), Some(b)) = (one(io), one(il)) {
                    vals[2 * k] = a;
                    vals[2 * k + 1] = b;
                    continue;
                }
                fast = false;
                // The inputs before, as the general path reads them.
                for (j, (jo, jl)) in inputs[..k].iter().enumerate() {
                    ins.push(self.read_set(dev, idx, jo, Item::MergeIn(j))?);
                    ins.push(self.read_set(dev, idx, jl, Item::MergeIn(j))?);
                }
            }
            ins.push(self.read_set(dev, idx, io, item)?);
            ins.push(self.read_set(dev, idx, il, item)?);
        }
        if fast {
            let vals = &vals[..2 * inputs.len()];
            let cell = [0, o.len, 0, o.heads];
            let (vo, vl) = self.merge_cell(dev, idx, cell, |i| &vals[i], inputs.len())?;
            self.st.bufs[o.buf as usize].write_one(o, vo);
            self.st.bufs[lse.buf as usize].write_one(lse, vl);
            return Ok(());
        }
        let refs: Vec<&[Rows]> = ins.iter().map(|v| &v[..]).collect();
        let (mut ro, mut rl) = (RowList::Zero, RowList::Zero);
        for cell in refine(&refs).iter() {
            let at = [cell.r0, cell.r1, cell.c0, cell.c1];
            let (vo, vl) = self.merge_cell(dev, idx, at, |i| cell.val(i), inputs.len())?;
            push_cell(&mut ro, cell.r0, cell.r1, cell.c0, cell.c1, vo);
            push_cell(&mut rl, cell.r0, cell.r1, cell.c0, cell.c1, vl);
        }
        self.write(dev, o, ro);
        self.write(dev, lse, rl);
        Ok(())
    }

    /// [`Local::merge`] of inputs that each hold one rectangle (a ring step's merge of whole
    /// accumulators), when it passes every check: all regions in bounds with their widths and
    /// the output's shape, none in flight, every input pair zero and −∞ or a matching partial O
    /// and LSE of one identity. Checks first, then the coverage joins and writes, which are
    /// [`Local::merge`]'s (the same nodes in the same order). `false` (nothing changed) for
    /// anything else: the general path decides and names the error.
    fn merge_one(&mut self, o: &Region, lse: &Region, inputs: &[(Region, Region)]) -> bool {
        let d = self.plan.batch.model.head_dim;
        let st = &*self.st;
        let (n, h) = (o.len, o.heads);
        if !(1..=4).contains(&inputs.len()) || n == 0 || h == 0 {
            return false;
        }
        let busy_w = st.recv_bufs | st.send_bufs;
        let shape = |r: &Region, w: u32, busy: u64| {
            r.len == n
                && r.heads == h
                && busy & buf_bit(r.buf) == 0
                && st
                    .bufs
                    .get(r.buf as usize)
                    .is_some_and(|b| b.width == w && b.fits(r))
        };
        if !shape(o, d, busy_w) || !shape(lse, 1, busy_w) {
            return false;
        }
        if inputs
            .iter()
            .any(|(io, il)| !shape(io, d, st.recv_bufs) || !shape(il, 1, st.recv_bufs))
        {
            return false;
        }
        // Inputs of one rectangle each (a ring step's merge of whole accumulators): one cell,
        // each input's values read and classified in turn. An input of several bands goes to
        // `merge_bands` (which reads them all again); one that does not classify makes the
        // merge `false` either way (`merge_bands` would refuse its cells too).
        let mut parts = [0 as Cov; 4];
        let (mut id, mut np) = ((0u64, 0u32), 0);
        for (io, il) in inputs {
            let pair = match (
                st.bufs[io.buf as usize].read_one(io),
                st.bufs[il.buf as usize].read_one(il),
            ) {
                (Some(a), Some(b)) => (a, b),
                _ => return self.merge_bands(o, lse, inputs),
            };
            match merge_input(&self.covs, &pair.0, &pair.1) {
                Some(None) => {}
                Some(Some((g, head, cov))) if np == 0 || id == (g, head) => {
                    id = (g, head);
                    parts[np] = cov;
                    np += 1;
                }
                _ => return false,
            }
        }
        let (vo, vl) = merged_parts(&mut self.covs, id, &parts[..np]);
        self.st.bufs[o.buf as usize].write_one(o, vo);
        self.st.bufs[lse.buf as usize].write_one(lse, vl);
        true
    }

    /// [`Local::merge_one`] of inputs that hold a few row bands each (a usp head group's
    /// accumulators: one band per device), every region's shape checked: the cells are the bands'
    /// common refinement, each merged as [`Local::merge`] merges a cell, every cell checked
    /// before anything changes.
    fn merge_bands(&mut self, o: &Region, lse: &Region, inputs: &[(Region, Region)]) -> bool {
        /// Row bands per input region, and cells of the merge, handled here.
        const MAXB: usize = 8;
        let st = &*self.st;
        let n = o.len;
        // Each input region's bands (first row, value there), O and LSE of each input in turn.
        let ni = 2 * inputs.len();
        let mut bands = [[(0u32, Val::Unset); MAXB]; 8];
        let mut nb = [0usize; 8];
        for (k, (io, il)) in inputs.iter().enumerate() {
            for (j, r) in [(2 * k, io), (2 * k + 1, il)] {
                match st.bufs[r.buf as usize].read_bands(r, &mut bands[j]) {
                    Some(c) => nb[j] = c,
                    None => return false,
                }
            }
        }
        // The cells: every input's band starts, merged (each list starts at row 0).
        let mut cuts = [0u32; MAXB + 1];
        let mut nc = 1;
        for j in 0..ni {
            for &(c, _) in &bands[j][1..nb[j]] {
                if !cuts[..nc].contains(&c) {
                    if nc == MAXB {
                        return false;
                    }
                    cuts[nc] = c;
                    nc += 1;
                }
            }
        }
        cuts[..nc].sort_unstable();
        cuts[nc] = n;
        // Per cell: the identity of its partial results and their coverages (none: zero and
        // −∞ throughout), checked for every cell before anything changes.
        let mut cells = [(0u64, 0u32, [0 as Cov; 4], 0usize); MAXB];
        let mut at = [0usize; 8];
        for (c, cell) in cells[..nc].iter_mut().enumerate() {
            let r0 = cuts[c];
            let val = |j: usize, at: &mut [usize; 8]| {
                while at[j] + 1 < nb[j] && bands[j][at[j] + 1].0 <= r0 {
                    at[j] += 1;
                }
                let (b0, v) = bands[j][at[j]];
                v.shift(r0 - b0, 0)
            };
            let mut np = 0;
            for k in 0..inputs.len() {
                let (po, pl) = (val(2 * k, &mut at), val(2 * k + 1, &mut at));
                match merge_input(&self.covs, &po, &pl) {
                    Some(None) => {}
                    Some(Some((g, head, cov))) if np == 0 || (cell.0, cell.1) == (g, head) => {
                        (cell.0, cell.1) = (g, head);
                        cell.2[np] = cov;
                        np += 1;
                    }
                    _ => return false,
                }
            }
            cell.3 = np;
        }
        for c in 0..nc {
            let (g, head, covs, np) = cells[c];
            let (vo, vl) = merged_parts(&mut self.covs, (g, head), &covs[..np]);
            let (r0, r1) = (cuts[c], cuts[c + 1]);
            let sub = |r: &Region| Region {
                tok: r.tok + r0,
                len: r1 - r0,
                ..*r
            };
            self.st.bufs[o.buf as usize].write_one(&sub(o), vo);
            self.st.bufs[lse.buf as usize].write_one(&sub(lse), vl);
        }
        true
    }

    /// The merged (O, LSE) of one cell block `[r0, r1, c0, c1]` whose `n` input pairs hold
    /// `val(2k)`, `val(2k + 1)` at its top-left.
    fn merge_cell<'v>(
        &mut self,
        dev: u32,
        idx: usize,
        [r0, r1, c0, c1]: [u32; 4],
        val: impl Fn(usize) -> &'v Val,
        n: usize,
    ) -> Result<(Val, Val), PlanError> {
        let mut acc: Acc = None;
        for k in 0..n {
            let (a, b) = (val(2 * k), val(2 * k + 1));
            match merge_input(&self.covs, a, b) {
                Some(None) => {}
                Some(Some((g, head, cov))) => {
                    if let Err((ag, ah)) = fold(&mut self.covs, &mut acc, (g, head), cov) {
                        let map = &self.cx.gmap;
                        let kind = PlanErrorKind::Combine {
                            item: Item::MergeIn(k).to_string(),
                            a: format!("partial O of {}", map.name(ag, ah)),
                            b: val(2 * k).describe(map),
                        };
                        return Err(self.err(dev, idx, kind));
                    }
                }
                None => {
                    return Err(self.err(
                        dev,
                        idx,
                        PlanErrorKind::WrongContent {
                            item: format!(
                                "{} at rows {r0}..{r1} heads {c0}..{c1}",
                                Item::MergeIn(k),
                            ),
                            found: format!(
                                "({}, {})",
                                a.describe(&self.cx.gmap),
                                b.describe(&self.cx.gmap)
                            ),
                            expected: "a matching partial O and LSE, or zero and −∞".into(),
                        },
                    ))
                }
            }
        }
        Ok(merged(acc))
    }

    /// Sum: `dst` = Σ inputs of partial dQ (width D) or dKV (width 2D) of the same cells.
    pub(super) fn sum(
        &mut self,
        dev: u32,
        idx: usize,
        dst: &Region,
        inputs: &[Region],
    ) -> Result<(), PlanError> {
        let w = self.check_region(dev, idx, dst, Item::SumOut)?;
        self.check_write(dev, idx, dst, Item::SumOut)?;
        let mut ins = Vec::with_capacity(inputs.len());
        for (k, r) in inputs.iter().enumerate() {
            let item = Item::SumIn(k);
            if self.check_region(dev, idx, r, item)? != w
                || r.len != dst.len
                || r.heads != dst.heads
            {
                return Err(self.shape_err(dev, idx, item, "the output's shape and width"));
            }
            self.check_read(dev, idx, r, item)?;
            ins.push(self.read_set(dev, idx, r, item)?);
        }
        let part = if w == 2 * self.plan.batch.model.head_dim {
            Part::DKv
        } else {
            Part::DQ
        };
        let refs: Vec<&[Rows]> = ins.iter().map(|v| &v[..]).collect();
        let mut rows = RowList::Zero;
        for cell in refine(&refs).iter() {
            let mut acc: Acc = None;
            for k in 0..cell.n() {
                let v = cell.val(k);
                match v {
                    Val::Fill(FillValue::Zero) => {}
                    Val::Part { p, g, head, cov } if *p == part => {
                        if let Err((ag, ah)) = fold(&mut self.covs, &mut acc, (*g, *head), *cov) {
                            let map = &self.cx.gmap;
                            let kind = PlanErrorKind::Combine {
                                item: Item::SumIn(k).to_string(),
                                a: format!("partial {part:?} of {}", map.name(ag, ah)),
                                b: v.describe(map),
                            };
                            return Err(self.err(dev, idx, kind));
                        }
                    }
                    other => {
                        return Err(self.err(
                            dev,
                            idx,
                            PlanErrorKind::WrongContent {
                                item: Item::SumIn(k).to_string(),
                                found: other.describe(&self.cx.gmap),
                                expected: format!("partial {part:?} or zero"),
                            },
                        ))
                    }
                }
            }
            let v = match acc {
                None => Val::Fill(FillValue::Zero),
                Some((g, head, cov)) => Val::Part {
                    p: part,
                    g,
                    head,
                    cov,
                },
            };
            push_cell(&mut rows, cell.r0, cell.r1, cell.c0, cell.c1, v);
        }
        self.write(dev, dst, rows);
        Ok(())
    }

    /// `dst += pairs of covs[i]` for the cells of `want[i]`, whose identity it gives (values `In`):
    /// each cell must be zero-filled or hold a partial `part` of the same identity.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accumulate(
        &mut self,
        dev: u32,
        idx: usize,
        item: Item,
        dst: &Region,
        want: &[Rows],
        part: Part,
        covs: &[Cov],
    ) -> Result<(), PlanError> {
        // One cell (the destination holds one rectangle, the identity is one): no refinement.
        if let ([w], [cov]) = (want, covs) {
            if let (0, true, Few1::One((0, c1, id))) = (w.r0, w.r1 == dst.len, &w.cols) {
                let bufs = &self.st.bufs;
                if let Some(hv) = bufs[dst.buf as usize].read_one(dst) {
                    let at = [0, dst.len, 0, *c1];
                    let v = self.acc_cell(dev, idx, item, at, &hv, id, part, *cov)?;
                    if *c1 == dst.heads {
                        self.st.bufs[dst.buf as usize].write_one(dst, v);
                    } else {
                        self.write(dev, dst, RowList::One(Rows::one(0, dst.len, *c1, v)));
                    }
                    return Ok(());
                }
            }
        }
        // The destination cut into exactly `want`'s bands and column runs (a usp accumulator of
        // two runs after its first work): the same cells as the refinement below, summed in
        // place, without reading, refining or writing row lists (no allocation).
        const MAX: usize = 8;
        let buf = &self.st.bufs[dst.buf as usize];
        let same = |k: usize, cols: &[(u32, u32, Val)]| {
            let w = &want[k].cols;
            w.len() == cols.len() && w.iter().zip(cols).all(|(a, b)| (a.0, a.1) == (b.0, b.1))
        };
        let start = if want.len() > 1 && want.iter().map(|w| w.cols.len()).sum::<usize>() <= MAX {
            buf.bands_of(dst, want.len(), |k| (want[k].r0, want[k].r1), same)
        } else {
            None
        };
        if let Some(i) = start {
            let mut vals = [Val::Unset; MAX];
            let mut n = 0;
            for k in 0..want.len() {
                for c in buf.band_cols(i + k) {
                    vals[n] = c.2;
                    n += 1;
                }
            }
            n = 0;
            for (w, cov) in want.iter().zip(covs) {
                for &(c0, c1, ref wv) in &w.cols {
                    let at = [w.r0, w.r1, c0, c1];
                    vals[n] = self.acc_cell(dev, idx, item, at, &vals[n], wv, part, *cov)?;
                    n += 1;
                }
            }
            let mut it = vals.into_iter();
            self.st.bufs[dst.buf as usize].set_bands(dst, i, want.len(), |_, _| {
                it.next().expect("one value per cell")
            });
            return Ok(());
        }
        let have = self.st.bufs[dst.buf as usize].read(dst);
        let mut rows = RowList::Zero;
        for cell in refine(&[&have, want]).iter() {
            let cov = covs[want.partition_point(|w| w.r1 <= cell.r0)];
            let at = [cell.r0, cell.r1, cell.c0, cell.c1];
            let v = self.acc_cell(dev, idx, item, at, cell.val(0), cell.val(1), part, cov)?;
            push_cell(&mut rows, cell.r0, cell.r1, cell.c0, cell.c1, v);
        }
        self.write(dev, dst, rows);
        Ok(())
    }

    /// The value of cell block `[r0, r1, c0, c1]` of an accumulation: it holds `have` and
    /// receives the pairs of `cov` for the identity `want`.
    #[allow(clippy::too_many_arguments)]
    fn acc_cell(
        &mut self,
        dev: u32,
        idx: usize,
        item: Item,
        [r0, r1, c0, c1]: [u32; 4],
        have: &Val,
        want: &Val,
        part: Part,
        cov: Cov,
    ) -> Result<Val, PlanError> {
        let (g, head) = want.ident().expect("identity");
        Ok(match have {
            Val::Fill(FillValue::Zero) => Val::Part {
                p: part,
                g,
                head,
                cov,
            },
            Val::Part {
                p,
                g: g2,
                head: h2,
                cov: c,
            } if *p == part && (*g2, *h2) == (g, head) => Val::Part {
                p: part,
                g,
                head,
                cov: self.covs.join(*c, cov),
            },
            other => {
                let map = &self.cx.gmap;
                return Err(self.err(
                    dev,
                    idx,
                    PlanErrorKind::WrongContent {
                        item: format!("{item} at rows {r0}..{r1} heads {c0}..{c1}"),
                        found: other.describe(map),
                        expected: format!(
                            "zero (fill accumulators first) or partial {part:?} of {}",
                            map.name(g, head)
                        ),
                    },
                ));
            }
        })
    }
}

impl Validator<'_> {
    /// Index of the comm instruction `dev` is at.
    fn comm_idx(&self, dev: u32) -> usize {
        self.devs[dev as usize].comm_at
    }
}

impl Local<'_, '_> {
    pub(super) fn local(&mut self, dev: u32, idx: usize, instr: &Instr) -> Result<(), PlanError> {
        match instr {
            Instr::Fill { dst, value } => self.fill(dev, idx, dst, *value),
            Instr::Copy { src, dst } => self.copy(dev, idx, src, dst),
            Instr::Wait { tag } => self.wait(dev, idx, *tag),
            Instr::Attn { .. } => self.attn(dev, idx),
            Instr::AttnBwd { .. } => self.attn_bwd(dev, idx),
            Instr::Merge { o, lse, inputs } => self.merge(dev, idx, o, lse, inputs),
            Instr::Sum { dst, inputs } => self.sum(dev, idx, dst, inputs),
            Instr::Comm { .. } => unreachable!("the driver handles comm"),
        }
    }
}

impl Machine for Validator<'_> {
    fn local(&mut self, dev: u32, idx: usize, instr: &Instr) -> Result<(), PlanError> {
        self.at(dev).local(dev, idx, instr)
    }

    fn locals(&mut self, progs: &[&Program], pc: &mut [usize]) -> Result<(), PlanError> {
        self.run_locals(progs, pc)
    }

    fn prefetch_comm(&self) -> bool {
        self.cx.prefetch && !self.parallel
    }

    /// One matched send/receive pair of a group: the receiver's region takes the sender's
    /// contents now and stays in flight until the receiver waits.
    fn transfer(
        &mut self,
        from: u32,
        src: &Region,
        to: u32,
        dst: &Region,
    ) -> Result<(), PlanError> {
        // In bounds (a buffer's state has its declaration's shape), of one length, the
        // sender's region one set rectangle (a ring step's buffer): moved without a device
        // view; anything else takes the checks below, which name the error.
        if src.len == dst.len && src.len > 0 && src.heads > 0 {
            let v = match self.devs[from as usize].bufs.get(src.buf as usize) {
                Some(b) if b.fits(src) => b.read_one(src),
                _ => None,
            };
            let to_buf = self.devs[to as usize].bufs.get_mut(dst.buf as usize);
            if let (Some(v), Some(b)) = (v, to_buf) {
                if b.fits(dst) {
                    b.write_one(dst, v);
                    self.devs[from as usize].exchange(true, *src);
                    self.devs[to as usize].exchange(false, *dst);
                    return Ok(());
                }
            }
        }
        let (fi, ti) = (self.comm_idx(from), self.comm_idx(to));
        self.at(from)
            .check_region(from, fi, src, Item::Send { to })?;
        self.at(to).check_region(to, ti, dst, Item::Recv { from })?;
        if src.len != dst.len {
            return Err(self.at(from).shape_err(
                from,
                fi,
                Item::Send { to },
                format!("as many tokens as the receive {}", show(dst)),
            ));
        }
        if self.transfer_bands(from, src, to, dst) {
            self.devs[from as usize].exchange(true, *src);
            self.devs[to as usize].exchange(false, *dst);
            return Ok(());
        }
        let rows = self.at(from).send_rows(fi, src, to)?;
        self.at(to).recv_rows(dst, rows);
        self.devs[from as usize].exchange(true, *src);
        self.devs[to as usize].exchange(false, *dst);
        Ok(())
    }

    fn group_done(
        &mut self,
        dev: u32,
        idx: usize,
        tag: u32,
        _instr: &Instr,
    ) -> Result<(), PlanError> {
        // Without a device view unless the group is refused (which the view names).
        if !self.devs[dev as usize].start_group(tag) {
            return Err(self
                .at(dev)
                .err(dev, idx, PlanErrorKind::CommOverlap { tag }));
        }
        Ok(())
    }
}

impl Validator<'_> {
    /// A checked transfer of as many rows (`src` on `from`, `dst` on `to`, in bounds, two
    /// devices) by [`super::state::Buf::take_bands`]: whole bands sent into whole bands (a usp buffer of two
    /// runs). `false` (nothing done) otherwise.
    fn transfer_bands(&mut self, from: u32, src: &Region, to: u32, dst: &Region) -> bool {
        let (f, t) = (from as usize, to as usize);
        let (sd, dd) = match f.cmp(&t) {
            std::cmp::Ordering::Less => {
                let (l, r) = self.devs.split_at_mut(t);
                (&l[f], &mut r[0])
            }
            std::cmp::Ordering::Greater => {
                let (l, r) = self.devs.split_at_mut(f);
                (&r[0], &mut l[t])
            }
            std::cmp::Ordering::Equal => return false,
        };
        dd.bufs[dst.buf as usize].take_bands(dst, &sd.bufs[src.buf as usize], src)
    }
}

impl Local<'_, '_> {
    /// What a send of `src` (to `to`, in the comm instruction at `idx`) carries: its contents
    /// when it leaves. One set rectangle (a ring step's buffer) moves as one; anything else as
    /// read.
    pub(super) fn send_rows(
        &self,
        idx: usize,
        src: &Region,
        to: u32,
    ) -> Result<RowList, PlanError> {
        let one = self.st.bufs[src.buf as usize].read_one(src);
        Ok(match one {
            Some(v) if src.len > 0 && src.heads > 0 => {
                RowList::One(Rows::one(0, src.len, src.heads, v))
            }
            _ => self.read_set(self.dev, idx, src, Item::Send { to })?,
        })
    }

    /// A receive into `dst` (checked) takes what its send carried.
    pub(super) fn recv_rows(&mut self, dst: &Region, rows: RowList) {
        self.st.bufs[dst.buf as usize].write(dst, rows);
    }

    /// The end of a group on this device (its comm instruction `idx`): its receives must not
    /// overlap each other or its sends; the group stays in flight until waited for.
    pub(super) fn group_end(
        &mut self,
        idx: usize,
        tag: u32,
        sends: Few<Region>,
        recvs: Few<Region>,
    ) -> Result<(), PlanError> {
        for r in sends.iter() {
            self.st.exchange(true, *r);
        }
        for r in recvs.iter() {
            self.st.exchange(false, *r);
        }
        if !self.st.start_group(tag) {
            return Err(self.err(self.dev, idx, PlanErrorKind::CommOverlap { tag }));
        }
        Ok(())
    }
}

impl Local<'_, '_> {
    /// [`Local::group_end`] for a group of exactly one send (region `s`) and one receive
    /// (region `r`), a ring or zigzag step's: with nothing else being exchanged, in two
    /// different buffers (which never overlap) it goes in flight at once, without the lists
    /// and the pairwise overlap test; otherwise the general end decides.
    #[inline]
    pub(super) fn group_end_pair(
        &mut self,
        idx: usize,
        tag: u32,
        s: Region,
        r: Region,
    ) -> Result<(), PlanError> {
        let st = &mut *self.st;
        if s.buf == r.buf || st.open != 0 {
            return self.group_end(idx, tag, Few::One(s), Few::One(r));
        }
        st.inflight.push(InFlight {
            tag,
            send: true,
            r: s,
        });
        st.inflight.push(InFlight {
            tag,
            send: false,
            r,
        });
        st.send_bufs |= buf_bit(s.buf);
        st.recv_bufs |= buf_bit(r.buf);
        st.group_pending(tag);
        Ok(())
    }
}

impl DevState {
    /// The group being exchanged ends: unless its receives overlap each other or its sends
    /// (`false`), it goes in flight with tag `tag`.
    fn start_group(&mut self, tag: u32) -> bool {
        let k = self.inflight.len() - self.open;
        let open = &mut self.inflight[k..];
        let overlap = match open {
            // One send and one receive (a ring step's): regions of two buffers never overlap.
            [a, b] if a.r.buf != b.r.buf => false,
            _ => (0..open.len()).any(|i| {
                let a = open[i];
                open[i + 1..]
                    .iter()
                    .any(|b| (!a.send || !b.send) && a.r.overlaps(&b.r))
            }),
        };
        if overlap {
            return false;
        }
        // Groups run in list order on one stream, so regions of earlier groups are no hazard
        // here. The busy bits of all pending groups: the earlier ones' and this one's.
        for e in open.iter_mut() {
            e.tag = tag;
            if e.send {
                self.send_bufs |= buf_bit(e.r.buf);
            } else {
                self.recv_bufs |= buf_bit(e.r.buf);
            }
        }
        self.open = 0;
        self.group_pending(tag);
        true
    }

    /// A group whose busy bits are set goes on the pending list (debug builds recompute the
    /// bits of all pending groups and compare).
    #[inline]
    fn group_pending(&mut self, tag: u32) {
        self.pending.push(tag);
        #[cfg(debug_assertions)]
        {
            let bits = (self.recv_bufs, self.send_bufs);
            self.update_busy();
            assert_eq!(
                bits,
                (self.recv_bufs, self.send_bufs),
                "busy bits of pending groups"
            );
        }
    }
}
