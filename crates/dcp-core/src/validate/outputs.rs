//! The end of a program: no group is left in flight, and every output cell on its owner holds
//! exactly the mask's pairs. Output blocks are compared as rectangles: the pairs folded into a
//! block (its coverage, read for the block's cells) against the mask's pairs of those cells, by
//! count and polynomial hash.

use super::pairs::{cov_sum, mask_sum, times_heads, Cells, PairSum};
use super::state::{refine, Part, Rows, Val};
use super::Validator;
use crate::error::{PairCount, PlanError, PlanErrorKind};
use crate::plan::{IoTensor, Region};

impl Validator<'_> {
    pub(super) fn finish(&mut self) -> Result<(), PlanError> {
        for di in 0..self.plan.devices.len() {
            let dev = di as u32;
            if let Some(p) = self.devs[di].pending.first() {
                return Err(self.err_end(dev, PlanErrorKind::NeverWaited { tag: p.tag }));
            }
            let outs: &[IoTensor] = if self.backward {
                &[IoTensor::DQ, IoTensor::DKv]
            } else {
                &[IoTensor::O, IoTensor::Lse]
            };
            for &t in outs {
                self.check_output(dev, t)?;
            }
        }
        Ok(())
    }

    /// Output `t` of `dev` holds, per cell, the partial result of its layout token and head
    /// with exactly the mask's pairs.
    fn check_output(&mut self, dev: u32, t: IoTensor) -> Result<(), PlanError> {
        let prog = self.prog(dev);
        let Some(b) = prog.io(t) else { return Ok(()) };
        let decl = &prog.buffers[b as usize];
        let all = Region {
            buf: b,
            tok: 0,
            len: decl.tokens,
            head: 0,
            heads: decl.heads,
        };
        let have = self.devs[dev as usize].bufs[b as usize].read(&all);
        let mut row = 0;
        let want: Vec<Rows> = self.plan.devices[dev as usize]
            .layout
            .iter()
            .map(|s| {
                row += s.len;
                let v = Val::In {
                    t,
                    seq: s.seq,
                    tok: s.start,
                    head: 0,
                };
                Rows::one(row - s.len, row, decl.heads, v)
            })
            .collect();
        let part = Part::of(t).expect("an output tensor");
        let g = self.plan.batch.model.group();
        let h = &self.cx.hasher;
        for cell in refine(&[&have, &want]).iter() {
            let (seq, tok, head) = cell.vals[1].ident().expect("identity");
            let n = cell.r1 - cell.r0;
            let nh = cell.c1 - cell.c0;
            let len = self.plan.batch.seqs[seq as usize].len;
            // The cells' pairs: per query token and head, or per key token and KV head.
            let cells = if t == IoTensor::DKv {
                Cells {
                    q: (0, len),
                    k: (tok, tok + n),
                    heads: (head * g, (head + nh) * g),
                }
            } else {
                Cells {
                    q: (tok, tok + n),
                    k: (0, len),
                    heads: (head, head + nh),
                }
            };
            let got = match &cell.vals[0] {
                Val::Part {
                    p,
                    seq: s,
                    tok: tt,
                    head: hh,
                    cov,
                } if *p == part && (*s, *tt, *hh) == (seq, tok, head) => {
                    cov_sum(h, cov, &cells, &mut self.memo)
                }
                Val::Fill(_) => PairSum::default(),
                other => {
                    return Err(self.err_end(
                        dev,
                        PlanErrorKind::WrongOutput {
                            tensor: t,
                            rows: (cell.r0, cell.r1),
                            heads: (cell.c0, cell.c1),
                            found: other.describe(),
                            seq,
                            token: tok,
                        },
                    ))
                }
            };
            let mask = &self.cx.masks[seq as usize];
            let off = self.cx.seq_off[seq as usize];
            let want = times_heads(
                mask_sum(h, mask, off, cells.q, cells.k),
                h.heads(cells.heads.0, cells.heads.1),
            );
            if got != want {
                let count = PairCount {
                    got: got.count,
                    want: want.count,
                };
                let (tokens, heads) = ((tok, tok + n), (head, head + nh));
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
                return Err(self.err_end(dev, kind));
            }
        }
        Ok(())
    }
}
