//! The end of a program: no group is left in flight, and every output cell on its owner holds
//! exactly the mask's pairs. Output blocks are compared as rectangles: the pairs folded into a
//! block (its coverage, read for the block's cells) against the mask's pairs of those cells, by
//! count and polynomial hash. A block's rows are global layout rows ([`super::gspace`]) and may
//! hold several layout spans (sequences). Since blocks hold disjoint parts of one pair multiset,
//! the blocks' sums are compared with the mask's once per tensor ([`Validator::finish`]); only
//! a mismatch compares block by block, and names the first layout span whose pairs differ.

use super::pairs::{mask_sum, times_heads, Cells, Cov, Hasher, PairSum};
use super::state::{refine, Part, Rows, Val};
use super::{Local, Validator};
use crate::error::{PairCount, PlanError, PlanErrorKind};
use crate::plan::{IoTensor, Region};

impl Validator<'_> {
    /// Every output cell must hold the mask's pairs of its tokens and heads. The cells of one
    /// output tensor over all devices tile the batch's (token, head) cells once (the layout), and
    /// a cell's coverage is read for its own tokens only, so the cells' pairs are disjoint parts
    /// of one multiset: equal totals (count and hash) over all cells mean equal pairs in every
    /// cell. One comparison per tensor, against the whole sequences' mask sums; cells are
    /// compared one by one only to name a mismatch.
    pub(super) fn finish(&mut self) -> Result<(), PlanError> {
        let outs: &[IoTensor] = if self.backward {
            &[IoTensor::DQ, IoTensor::DKv]
        } else {
            &[IoTensor::O, IoTensor::Lse]
        };
        let mut units = vec![(); self.plan.devices.len()];
        let per_dev = self.for_devices(&mut units, |l, _| {
            let dev = l.dev;
            if let Some(&tag) = l.st.pending.first() {
                return Err(l.err_end(dev, PlanErrorKind::NeverWaited { tag }));
            }
            let mut got = [PairSum::default(); 2];
            for (k, &t) in outs.iter().enumerate() {
                got[k] = l.check_output(dev, t, false)?;
            }
            Ok(got)
        })?;
        let mut got = [PairSum::default(); 2];
        for g in per_dev {
            for k in 0..2 {
                got[k] = got[k].add(g[k]);
            }
        }
        let h = Hasher::shared();
        let mut want = PairSum::default();
        for (si, s) in self.plan.batch.seqs.iter().enumerate() {
            let off = self.cx.seq_off[si];
            want = want.add(mask_sum(h, &self.cx.masks[si], off, (0, s.len), (0, s.len)));
        }
        let want = times_heads(want, h.heads(0, self.plan.batch.model.heads));
        if got.iter().all(|g| *g == want) {
            return Ok(());
        }
        for di in 0..self.plan.devices.len() {
            for (k, &t) in outs.iter().enumerate() {
                if got[k] != want {
                    self.at(di as u32).check_output(di as u32, t, true)?;
                }
            }
        }
        unreachable!("cell sums add up to the totals, so some cell differs")
    }
}

impl Local<'_, '_> {
    /// The mask's pairs (one head) of global rows `[g, g + n)` as queries against all keys, or
    /// as keys (`keys`) against all queries (only to name a mismatching cell).
    fn mask_pairs(&self, g: u64, n: u32, keys: bool) -> PairSum {
        let h = Hasher::shared();
        let spans = self.cx.gmap.spans();
        let mut sum = PairSum::default();
        let end = g + n as u64;
        let mut k = self.cx.gmap.span_at(g);
        while let Some(s) = spans.get(k).filter(|s| s.g0 < end) {
            let (a, b) = (g.max(s.g0), end.min(s.g0 + s.len as u64));
            let v = {
                let len = self.plan.batch.seqs[s.seq as usize].len;
                let toks = (s.tok + (a - s.g0) as u32, s.tok + (b - s.g0) as u32);
                let (q, kk) = if keys {
                    ((0, len), toks)
                } else {
                    (toks, (0, len))
                };
                let mask = &self.cx.masks[s.seq as usize];
                mask_sum(h, mask, self.cx.seq_off[s.seq as usize], q, kk)
            };
            sum = sum.add(v);
            k += 1;
        }
        sum
    }

    /// The cells of output rows `[g, g + n)` and heads `[head, head + nh)` of tensor `t`: per
    /// query row and head, or per key row and KV head (its group's query heads).
    fn out_cells(&self, t: IoTensor, g: u64, n: u32, head: u32, nh: u32) -> Cells {
        let rows = (g as i64, (g + n as u64) as i64);
        if t == IoTensor::DKv {
            let grp = self.plan.batch.model.group();
            Cells {
                k: rows,
                heads: (head * grp, (head + nh) * grp),
                ..Cells::ALL
            }
        } else {
            Cells {
                q: rows,
                heads: (head, head + nh),
                ..Cells::ALL
            }
        }
    }

    /// Output `t` of `dev` holds, per cell, the partial result of its layout token and head;
    /// returns the pairs its cells hold. With `each`, every cell's pairs are compared with the
    /// mask's (the first that differs is the error).
    fn check_output(&mut self, dev: u32, t: IoTensor, each: bool) -> Result<PairSum, PlanError> {
        let mut total = PairSum::default();
        let prog = self.prog(dev);
        let Some(b) = prog.io(t) else {
            return Ok(total);
        };
        let decl = &prog.buffers[b as usize];
        if decl.tokens == 0 || decl.heads == 0 {
            return Ok(total);
        }
        let all = Region {
            buf: b,
            tok: 0,
            len: decl.tokens,
            head: 0,
            heads: decl.heads,
        };
        let base = self.cx.gmap.base(dev);
        let part = Part::of(t).expect("an output tensor");
        // One partial result over the whole buffer, of its own rows (a ring plan's outputs):
        // one cell, read without a refinement.
        if let (false, Some(Val::Part { p, g, head, cov })) =
            (each, self.st.bufs[b as usize].read_one(&all))
        {
            if (p, g, head) == (part, base, 0) {
                let cells = self.out_cells(t, base, decl.tokens, 0, decl.heads);
                return Ok(self.cov_pairs(Some(cov), &cells));
            }
        }
        let have = self.st.bufs[b as usize].read(&all);
        let want = [Rows::one(
            0,
            decl.tokens,
            decl.heads,
            Val::In {
                t,
                g: base,
                head: 0,
            },
        )];
        let h = Hasher::shared();
        for cell in refine(&[&have, &want]).iter() {
            let (g, head) = cell.val(1).ident().expect("identity");
            let (n, nh) = (cell.r1 - cell.r0, cell.c1 - cell.c0);
            let cells = self.out_cells(t, g, n, head, nh);
            let cov = match cell.val(0) {
                Val::Part {
                    p,
                    g: g2,
                    head: h2,
                    cov,
                } if *p == part && (*g2, *h2) == (g, head) => Some(*cov),
                Val::Fill(_) => None,
                other => {
                    let (seq, token) = self.cx.gmap.locate(g).expect("a layout row");
                    return Err(self.err_end(
                        dev,
                        PlanErrorKind::WrongOutput {
                            tensor: t,
                            rows: (cell.r0, cell.r1),
                            heads: (cell.c0, cell.c1),
                            found: other.describe(&self.cx.gmap),
                            seq,
                            token,
                        },
                    ));
                }
            };
            let got = self.cov_pairs(cov, &cells);
            total = total.add(got);
            if each {
                let want = times_heads(
                    self.mask_pairs(g, n, t == IoTensor::DKv),
                    h.heads(cells.heads.0, cells.heads.1),
                );
                if got != want {
                    return Err(self.pairs_error(dev, t, cov, g, n, head, nh));
                }
            }
        }
        Ok(total)
    }

    fn cov_pairs(&mut self, cov: Option<Cov>, cells: &Cells) -> PairSum {
        cov.map_or_else(PairSum::default, |c| {
            self.covs
                .sum(Hasher::shared(), c, cells, &mut self.cache.memo)
        })
    }

    /// The error for output rows `[g, g + n)` × heads whose pairs differ from the mask's: for
    /// the first layout span among them whose pairs differ.
    #[allow(clippy::too_many_arguments)]
    fn pairs_error(
        &mut self,
        dev: u32,
        t: IoTensor,
        cov: Option<Cov>,
        g: u64,
        n: u32,
        head: u32,
        nh: u32,
    ) -> PlanError {
        let h = Hasher::shared();
        let end = g + n as u64;
        let mut k = self.cx.gmap.span_at(g);
        let mut last = None;
        while let Some(s) = self.cx.gmap.spans().get(k).copied().filter(|s| s.g0 < end) {
            let (a, b) = (g.max(s.g0), end.min(s.g0 + s.len as u64));
            let m = (b - a) as u32;
            let cells = self.out_cells(t, a, m, head, nh);
            let got = self.cov_pairs(cov, &cells);
            let want = times_heads(
                self.mask_pairs(a, m, t == IoTensor::DKv),
                h.heads(cells.heads.0, cells.heads.1),
            );
            let tok = s.tok + (a - s.g0) as u32;
            last = Some((s.seq, (tok, tok + m), got, want));
            if got != want {
                break;
            }
            k += 1;
        }
        let (seq, tokens, got, want) = last.expect("the rows hold a layout span");
        let count = PairCount {
            got: got.count,
            want: want.count,
        };
        let heads = (head, head + nh);
        let kind = if got.count < want.count {
            PlanErrorKind::PairsMissing {
                tensor: t,
                seq,
                tokens,
                heads,
                count,
            }
        } else {
            PlanErrorKind::PairsDuplicated {
                tensor: t,
                seq,
                tokens,
                heads,
                count,
            }
        };
        self.err_end(dev, kind)
    }
}
