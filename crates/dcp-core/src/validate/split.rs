//! Works over several sequences: a ring planner's step is one work of all local query rows
//! against all held KV rows, with block-diagonal row ranges (the KV rows may hold several
//! sequences even where the query rows hold one). Such a work is checked as its
//! per-sequence parts: the query rows holding one sequence (from the symbolic contents, not from
//! the plan's word), the keys those rows attend (the KV rows outside them are not read), and the
//! row ranges moved into the part's coordinates. Each part then goes through the one-sequence
//! checks of [`super::work`], so every rule (sequence match, mask, coverage) holds per part.
//! The whole work's segments are checked first (in row order, inside the query rows, every range
//! end inside the keys), so nothing of them can fall between parts; the order of a row's ranges
//! is checked per part (moving keys into a part keeps it).

use super::state::Val;
use super::{Item, Validator};
use crate::error::{PlanError, PlanErrorKind};
use crate::mask::{Lin, LinRange};
use crate::plan::{Region, RowRanges, SegRanges};

/// One sequence's part of a work: query rows `r0 .. r1` of the work, the KV sub-regions holding
/// the keys they attend (with the index of the KV region each comes from), and the row ranges
/// in the part's coordinates (rows from `r0`, keys in the concatenation of the sub-regions).
pub(super) struct SeqPart {
    pub r0: u32,
    pub r1: u32,
    pub kv: Vec<(usize, Region)>,
    pub rows: RowRanges,
}

/// A segment's rows inside a part `[a, b)`, its ranges live there and their key extents.
type SegPiece = (i64, i64, SegRanges, Vec<(i64, i64)>);

/// Rows `r0 .. r1` of `r`.
pub(super) fn sub_rows(r: &Region, r0: u32, r1: u32) -> Region {
    Region {
        tok: r.tok + r0,
        len: r1 - r0,
        ..*r
    }
}

/// Rows of `[a, b)` on which range `lr` is non-empty (`start < end`), if any.
fn live_rows(lr: &LinRange, a: i64, b: i64) -> Option<(i64, i64)> {
    let d = |r: i64| lr.end.at(r) - lr.start.at(r);
    let ds = lr.end.slope - lr.start.slope;
    let (d0, d1) = (d(a), d(b - 1));
    if d0 <= 0 && d1 <= 0 {
        return None;
    }
    if d0 > 0 && d1 > 0 {
        return Some((a, b));
    }
    if d0 > 0 {
        // Decreasing: d(a + x) = d0 + ds·x > 0 ⇔ x ≤ (d0 − 1) / (−ds).
        Some((a, (a + (d0 - 1) / (-ds) + 1).min(b)))
    } else {
        // Increasing: d0 + ds·x > 0 ⇔ x ≥ ⌊−d0 / ds⌋ + 1.
        Some((a + (-d0) / ds + 1, b))
    }
}

impl Validator<'_> {
    /// The per-sequence parts of a work whose query or KV rows hold more than one sequence;
    /// `None` when both hold one (or when its operands are malformed: the one-sequence checks
    /// then report what is wrong).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn seq_parts(
        &self,
        dev: u32,
        idx: usize,
        wi: usize,
        q: &Region,
        kv: &[Region],
        outs: &[&Region],
        rows: &RowRanges,
    ) -> Result<Option<Vec<SeqPart>>, PlanError> {
        // In bounds of a declared buffer (the one-sequence checks name what is not).
        let fits = |r: &Region| {
            self.check_region(dev, idx, r, Item::Work(wi, "", None))
                .is_ok()
        };
        if kv.is_empty()
            || !fits(q)
            || !kv.iter().all(fits)
            || !outs
                .iter()
                .all(|r| fits(r) && r.len == q.len && r.heads == q.heads)
            || rows.n_rows() > q.len
        {
            return Ok(None);
        }
        // Query rows by sequence, from what the rows hold; rows holding no input join the part
        // before them (its checks then name them).
        // A band's sequence is its first column run's (a band mixing sequences across heads
        // is then reported by its part's checks).
        let mut cuts: Vec<(u32, u32, u32)> = Vec::new();
        let mut band_r0 = None;
        self.devs[dev as usize].bufs[q.buf as usize].visit(q, |r0, r1, v| {
            if band_r0.replace(r0) == Some(r0) {
                return;
            }
            let seq = match v {
                Val::In { seq, .. } => Some(*seq),
                _ => None,
            };
            match (cuts.last_mut(), seq) {
                (Some(last), Some(s)) if last.2 == s => last.1 = r1,
                (Some(last), None) => last.1 = r1,
                (_, Some(s)) => cuts.push((r0, r1, s)),
                (None, None) => cuts.push((r0, r1, u32::MAX)),
            }
        });
        if cuts.len() <= 1 && !self.mixed_keys(dev, kv) {
            return Ok(None);
        }
        // The whole work's segments in row order without overlap (each part then checks its
        // own ranges: inside its keys, in order; moving keys into a part keeps both).
        let keys: u32 = kv.iter().map(|r| r.len).sum();
        let bad_rows = |rows: (u32, u32)| {
            self.err(
                dev,
                idx,
                PlanErrorKind::RowRanges {
                    work: wi,
                    rows,
                    keys,
                },
            )
        };
        let mut next = 0u64;
        for seg in &rows.segs {
            if (seg.row0 as u64) < next {
                return Err(bad_rows((seg.row0, seg.row0.saturating_add(seg.rows))));
            }
            next = seg.row0 as u64 + seg.rows as u64;
        }
        // Rows past the last part's end were checked to attend nothing beyond q.len; parts
        // tile [first band, last band) = [0, q.len) since reads tile the region.
        let mut parts = Vec::with_capacity(cuts.len());
        let mut seg_i = 0usize;
        for &(r0, r1, _) in &cuts {
            while seg_i < rows.segs.len() && rows.segs[seg_i].row0 + rows.segs[seg_i].rows <= r0 {
                seg_i += 1;
            }
            // Segment pieces inside the part: (first row, end row, live ranges, their keys).
            let mut pieces: Vec<SegPiece> = Vec::new();
            let mut spans: Vec<(i64, i64)> = Vec::new();
            let mut j = seg_i;
            while j < rows.segs.len() && rows.segs[j].row0 < r1 {
                let seg = &rows.segs[j];
                let a = seg.row0.max(r0) as i64;
                let b = (seg.row0 + seg.rows).min(r1) as i64;
                let mut live = SegRanges::new();
                let mut ext = Vec::new();
                for lr in &seg.ranges {
                    // A range empty on every row of the piece attends nothing: dropped.
                    let Some((la, lb)) = live_rows(lr, a, b) else {
                        continue;
                    };
                    let s = lr.start.at(la).min(lr.start.at(lb - 1));
                    if s < 0 {
                        // Executors clamp a negative start to key 0: such a range cannot move
                        // with its keys; the parts keep all keys (and name any other sequence).
                        return Ok(Some(unsplit_parts(&cuts, kv, rows)));
                    }
                    let e = lr.end.at(la).max(lr.end.at(lb - 1));
                    if e > keys as i64 {
                        return Err(bad_rows((la as u32, lb as u32)));
                    }
                    live.push(*lr);
                    ext.push((s, e));
                    spans.push((s, e));
                }
                if !live.is_empty() {
                    pieces.push((a, b, live, ext));
                }
                j += 1;
            }
            // Attended key intervals, merged; each becomes KV sub-regions in order.
            spans.sort_unstable();
            let mut merged: Vec<(i64, i64)> = Vec::new();
            for (s, e) in spans {
                match merged.last_mut() {
                    Some(m) if s <= m.1 => m.1 = m.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            let mut sub_kv: Vec<(usize, Region)> = Vec::new();
            let mut at = Vec::with_capacity(merged.len());
            let mut pos = 0i64;
            for &(s, e) in &merged {
                at.push(pos);
                pos += e - s;
                let mut c0 = 0i64;
                for (ri, r) in kv.iter().enumerate() {
                    let c1 = c0 + r.len as i64;
                    let (a, b) = (s.max(c0), e.min(c1));
                    if a < b {
                        let tok = (a - c0) as u32;
                        sub_kv.push((ri, sub_rows(r, tok, tok + (b - a) as u32)));
                    }
                    c0 = c1;
                }
            }
            if sub_kv.is_empty() {
                sub_kv.push((0, sub_rows(&kv[0], 0, 0)));
            }
            // Row ranges in the part: rows from r0, keys moved into the sub-regions'
            // concatenation (each range lies inside one merged interval, and the move keeps
            // a row's ranges in order).
            let mut part_rows = RowRanges::default();
            for (a, b, live, ext) in pieces {
                let ranges = live
                    .iter()
                    .zip(&ext)
                    .map(|(lr, &(s, _))| {
                        let m = merged.partition_point(|x| x.1 <= s);
                        let dk = at[m] - merged[m].0;
                        let mv = |l: Lin| Lin {
                            c: l.c + l.slope * r0 as i64 + dk,
                            slope: l.slope,
                        };
                        LinRange::new(mv(lr.start), mv(lr.end))
                    })
                    .collect();
                part_rows.push_seg((a - r0 as i64) as u32, (b - a) as u32, ranges);
            }
            parts.push(SeqPart {
                r0,
                r1,
                kv: sub_kv,
                rows: part_rows,
            });
        }
        Ok(Some(parts))
    }
}

impl Validator<'_> {
    /// Whether the KV regions hold inputs of several sequences (one other than the query's is
    /// left to the one-sequence checks, which name it).
    fn mixed_keys(&self, dev: u32, kv: &[Region]) -> bool {
        let mut seq = None;
        let mut mixed = false;
        for r in kv {
            self.devs[dev as usize].bufs[r.buf as usize].visit(r, |_, _, v| {
                if let Val::In { seq: s, .. } = v {
                    mixed |= *seq.get_or_insert(*s) != *s;
                }
            });
        }
        mixed
    }
}

/// Parts by query rows only: every part keeps all KV regions and unmoved keys (for row ranges
/// that cannot be moved exactly; a part whose keys hold another sequence is then reported as
/// mixing sequences).
fn unsplit_parts(cuts: &[(u32, u32, u32)], kv: &[Region], rows: &RowRanges) -> Vec<SeqPart> {
    cuts.iter()
        .map(|&(r0, r1, _)| {
            let mut part_rows = RowRanges::default();
            let mv = |l: Lin| Lin {
                c: l.c + l.slope * r0 as i64,
                slope: l.slope,
            };
            for seg in &rows.segs {
                let (a, b) = (seg.row0.max(r0), (seg.row0 + seg.rows).min(r1));
                if a < b {
                    let ranges = seg
                        .ranges
                        .iter()
                        .map(|lr| LinRange::new(mv(lr.start), mv(lr.end)))
                        .collect();
                    part_rows.push_seg(a - r0, b - a, ranges);
                }
            }
            SeqPart {
                r0,
                r1,
                kv: kv.iter().copied().enumerate().collect(),
                rows: part_rows,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_rows_match_a_row_by_row_scan() {
        for (sc, ss, ec, es) in [
            (0, 0, 5, 1),
            (10, 1, 4, 0),
            (3, -1, 9, 0),
            (0, 2, 0, 1),
            (7, 0, 7, 0),
        ] {
            let lr = LinRange::new(Lin { c: sc, slope: ss }, Lin { c: ec, slope: es });
            for a in 0..12i64 {
                for b in a + 1..14 {
                    let live: Vec<i64> =
                        (a..b).filter(|&r| lr.start.at(r) < lr.end.at(r)).collect();
                    let want = live.first().map(|&f| (f, live.last().unwrap() + 1));
                    assert_eq!(live_rows(&lr, a, b), want, "{lr:?} rows {a}..{b}");
                }
            }
        }
    }
}
