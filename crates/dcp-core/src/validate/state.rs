//! Symbolic buffer contents as rectangles: a buffer is a list of row bands (token ranges), each
//! split into column runs (head ranges) of one symbolic value that moves affinely inside the
//! rectangle (token +1 per row, head +1 per column). Reads, writes and the common refinement of
//! several reads cost per rectangle, not per (token, head) cell.

use std::collections::BTreeMap;

use super::pairs::Cov;
use crate::plan::{FillValue, IoTensor, Region};

/// A partial result kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    O,
    Lse,
    DQ,
    DKv,
}

impl Part {
    pub fn of(t: IoTensor) -> Option<Part> {
        match t {
            IoTensor::O => Some(Part::O),
            IoTensor::Lse => Some(Part::Lse),
            IoTensor::DQ => Some(Part::DQ),
            IoTensor::DKv => Some(Part::DKv),
            _ => None,
        }
    }
}

/// What the top-left cell of a rectangle holds; `tok`/`head` grow by one per row/column.
#[derive(Debug, Clone)]
pub(super) enum Val {
    Unset,
    Fill(FillValue),
    /// A caller input: tensor `t` of sequence `seq`.
    In {
        t: IoTensor,
        seq: u32,
        tok: u32,
        head: u32,
    },
    /// A partial result for (seq, tok, head) holding the pairs of `cov`.
    Part {
        p: Part,
        seq: u32,
        tok: u32,
        head: u32,
        cov: Cov,
    },
}

impl Val {
    /// The value `dt` rows and `dh` columns further.
    pub fn shift(&self, dt: u32, dh: u32) -> Val {
        match self {
            Val::In { t, seq, tok, head } => Val::In {
                t: *t,
                seq: *seq,
                tok: tok + dt,
                head: head + dh,
            },
            Val::Part {
                p,
                seq,
                tok,
                head,
                cov,
            } => Val::Part {
                p: *p,
                seq: *seq,
                tok: tok + dt,
                head: head + dh,
                cov: cov.clone(),
            },
            other => other.clone(),
        }
    }

    pub fn is_unset(&self) -> bool {
        matches!(self, Val::Unset)
    }

    /// (seq, tok, head) of an input or partial result.
    pub fn ident(&self) -> Option<(u32, u32, u32)> {
        match *self {
            Val::In { seq, tok, head, .. } | Val::Part { seq, tok, head, .. } => {
                Some((seq, tok, head))
            }
            _ => None,
        }
    }

    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            Val::Unset => "nothing (never written)".into(),
            Val::Fill(v) => format!("fill {v:?}"),
            Val::In { t, seq, tok, head } => {
                format!("input {t:?} of sequence {seq} token {tok} head {head}")
            }
            Val::Part {
                p, seq, tok, head, ..
            } => format!("partial {p:?} of sequence {seq} token {tok} head {head}"),
        }
    }
}

/// Rows `[r0, r1)` of a region (relative to its first row), split into columns `(c0, c1, value)`
/// that tile the region's heads.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    pub r0: u32,
    pub r1: u32,
    pub cols: Vec<(u32, u32, Val)>,
}

impl Rows {
    pub fn one(r0: u32, r1: u32, c1: u32, v: Val) -> Rows {
        Rows {
            r0,
            r1,
            cols: vec![(0, c1, v)],
        }
    }
}

#[derive(Debug, Clone)]
struct Band {
    t1: u32,
    /// Column runs tiling `[0, heads)`, values at the band's first row.
    cols: Vec<(u32, u32, Val)>,
}

/// One buffer's contents.
#[derive(Debug, Clone)]
pub(super) struct Buf {
    bands: BTreeMap<u32, Band>,
    heads: u32,
}

impl Buf {
    pub fn new(tokens: u32, heads: u32) -> Self {
        let mut bands = BTreeMap::new();
        if tokens > 0 && heads > 0 {
            bands.insert(
                0,
                Band {
                    t1: tokens,
                    cols: vec![(0, heads, Val::Unset)],
                },
            );
        }
        Buf { bands, heads }
    }

    /// Makes `t` a band boundary.
    fn split_at(&mut self, t: u32) {
        let Some((&t0, band)) = self.bands.range_mut(..=t).next_back() else {
            return;
        };
        if t0 == t || band.t1 <= t {
            return;
        }
        let dt = t - t0;
        let upper = Band {
            t1: band.t1,
            cols: band
                .cols
                .iter()
                .map(|(a, b, v)| (*a, *b, v.shift(dt, 0)))
                .collect(),
        };
        band.t1 = t;
        self.bands.insert(t, upper);
    }

    /// The contents of `r` (in bounds), as row bands relative to `r`.
    pub fn read(&self, r: &Region) -> Vec<Rows> {
        let (t0, t1) = (r.tok, r.tok + r.len);
        let (h0, h1) = (r.head, r.head + r.heads);
        let mut out = Vec::new();
        if r.len == 0 || r.heads == 0 {
            return out;
        }
        let start = self
            .bands
            .range(..=t0)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(0);
        for (&bt0, band) in self.bands.range(start..t1) {
            if band.t1 <= t0 {
                continue;
            }
            let a = bt0.max(t0);
            let b = band.t1.min(t1);
            let dt = a - bt0;
            let mut cols = Vec::new();
            for (c0, c1, v) in &band.cols {
                if *c1 <= h0 || *c0 >= h1 {
                    continue;
                }
                let ca = (*c0).max(h0);
                let cb = (*c1).min(h1);
                cols.push((ca - h0, cb - h0, v.shift(dt, ca - c0)));
            }
            out.push(Rows {
                r0: a - t0,
                r1: b - t0,
                cols,
            });
        }
        out
    }

    /// Overwrites `r` (in bounds) with `rows`, which tile it.
    pub fn write(&mut self, r: &Region, rows: &[Rows]) {
        if r.len == 0 || r.heads == 0 {
            return;
        }
        let (h0, h1) = (r.head, r.head + r.heads);
        if h0 == 0 && h1 == self.heads {
            // Whole rows: replace the bands outright.
            let (a, b) = (r.tok, r.tok + r.len);
            self.split_at(a);
            self.split_at(b);
            let old: Vec<u32> = self.bands.range(a..b).map(|(&k, _)| k).collect();
            for k in old {
                self.bands.remove(&k);
            }
            for rw in rows {
                let mut cols = rw.cols.clone();
                merge_cols(&mut cols);
                self.bands.insert(
                    r.tok + rw.r0,
                    Band {
                        t1: r.tok + rw.r1,
                        cols,
                    },
                );
            }
            self.coalesce(a, b);
            return;
        }
        for rw in rows {
            let (a, b) = (r.tok + rw.r0, r.tok + rw.r1);
            self.split_at(a);
            self.split_at(b);
            for (&bt0, band) in self.bands.range_mut(a..b) {
                let dt = bt0 - a;
                let mut cols = Vec::with_capacity(band.cols.len() + rw.cols.len() + 1);
                let mut inserted = false;
                for (c0, c1, v) in band.cols.drain(..) {
                    if c1 <= h0 || c0 >= h1 {
                        if c0 >= h1 && !inserted {
                            put(&mut cols, rw, h0, dt);
                            inserted = true;
                        }
                        cols.push((c0, c1, v));
                        continue;
                    }
                    if c0 < h0 {
                        cols.push((c0, h0, v.clone()));
                    }
                    if !inserted {
                        put(&mut cols, rw, h0, dt);
                        inserted = true;
                    }
                    if c1 > h1 {
                        cols.push((h1, c1, v.shift(0, h1 - c0)));
                    }
                }
                if !inserted {
                    put(&mut cols, rw, h0, dt);
                }
                merge_cols(&mut cols);
                band.cols = cols;
            }
        }
        self.coalesce(r.tok, r.tok + r.len);
    }

    /// Merges neighbouring bands starting in `[from, to]` whose values continue each other, so
    /// that rewriting a range does not leave its old boundaries behind.
    fn coalesce(&mut self, from: u32, to: u32) {
        let start = self
            .bands
            .range(..from)
            .next_back()
            .map(|(&k, _)| k)
            .unwrap_or(from);
        let keys: Vec<u32> = self.bands.range(start..=to).map(|(&k, _)| k).collect();
        let mut cur = match keys.first() {
            Some(&k) => k,
            None => return,
        };
        for &k in &keys[1..] {
            let (t1, joins) = {
                let a = &self.bands[&cur];
                let b = &self.bands[&k];
                let dt = k - cur;
                let joins = a.t1 == k
                    && a.cols.len() == b.cols.len()
                    && a.cols
                        .iter()
                        .zip(&b.cols)
                        .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && continues(&x.2, dt, 0, &y.2));
                (b.t1, joins)
            };
            if joins {
                self.bands.remove(&k);
                self.bands.get_mut(&cur).expect("band").t1 = t1;
            } else {
                cur = k;
            }
        }
    }
}

/// Whether `b` is `a` moved `dt` rows and `dh` columns on (one rectangle could hold both).
fn continues(a: &Val, dt: u32, dh: u32, b: &Val) -> bool {
    match (a, b) {
        (Val::Unset, Val::Unset) => true,
        (Val::Fill(x), Val::Fill(y)) => x == y,
        (
            Val::In { t, seq, tok, head },
            Val::In {
                t: t2,
                seq: s2,
                tok: k2,
                head: h2,
            },
        ) => t == t2 && seq == s2 && tok + dt == *k2 && head + dh == *h2,
        (
            Val::Part {
                p,
                seq,
                tok,
                head,
                cov,
            },
            Val::Part {
                p: p2,
                seq: s2,
                tok: k2,
                head: h2,
                cov: c2,
            },
        ) => {
            p == p2
                && seq == s2
                && tok + dt == *k2
                && head + dh == *h2
                && std::rc::Rc::ptr_eq(cov, c2)
        }
        _ => false,
    }
}

/// Merges neighbouring columns whose values continue each other.
fn merge_cols(cols: &mut Vec<(u32, u32, Val)>) {
    let mut i = 1;
    while i < cols.len() {
        let (a, b) = (&cols[i - 1], &cols[i]);
        if a.1 == b.0 && continues(&a.2, 0, a.1 - a.0, &b.2) {
            cols[i - 1].1 = cols[i].1;
            cols.remove(i);
        } else {
            i += 1;
        }
    }
}

fn put(cols: &mut Vec<(u32, u32, Val)>, rw: &Rows, h0: u32, dt: u32) {
    for (c0, c1, v) in &rw.cols {
        cols.push((h0 + c0, h0 + c1, v.shift(dt, 0)));
    }
}

/// One cell block of a common refinement: rows `[r0, r1)`, columns `[c0, c1)` and every input's
/// value at its top-left cell.
pub(super) struct Cell {
    pub r0: u32,
    pub r1: u32,
    pub c0: u32,
    pub c1: u32,
    pub vals: Vec<Val>,
}

/// The common refinement of several contents of the same region shape.
pub(super) fn refine(inputs: &[&[Rows]]) -> Vec<Cell> {
    let mut rcuts: Vec<u32> = inputs
        .iter()
        .flat_map(|rs| rs.iter().flat_map(|r| [r.r0, r.r1]))
        .collect();
    rcuts.sort_unstable();
    rcuts.dedup();
    let mut at = vec![0usize; inputs.len()];
    let mut out = Vec::new();
    let mut ccuts: Vec<u32> = Vec::new();
    for w in rcuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        // The band of every input holding row a.
        let mut bands: Vec<&Rows> = Vec::with_capacity(inputs.len());
        for (i, rs) in inputs.iter().enumerate() {
            while at[i] < rs.len() && rs[at[i]].r1 <= a {
                at[i] += 1;
            }
            bands.push(&rs[at[i]]);
        }
        ccuts.clear();
        for band in &bands {
            for (c0, c1, _) in &band.cols {
                ccuts.push(*c0);
                ccuts.push(*c1);
            }
        }
        ccuts.sort_unstable();
        ccuts.dedup();
        let mut cat = vec![0usize; inputs.len()];
        for cw in ccuts.windows(2) {
            let (c, d) = (cw[0], cw[1]);
            let vals = bands
                .iter()
                .zip(cat.iter_mut())
                .map(|(band, k)| {
                    while band.cols[*k].1 <= c {
                        *k += 1;
                    }
                    let (c0, _, v) = &band.cols[*k];
                    v.shift(a - band.r0, c - c0)
                })
                .collect();
            out.push(Cell {
                r0: a,
                r1: b,
                c0: c,
                c1: d,
                vals,
            });
        }
    }
    out
}

/// Gathers cells back into row bands (cells in refinement order).
pub(super) fn to_rows(cells: impl IntoIterator<Item = (u32, u32, u32, u32, Val)>) -> Vec<Rows> {
    let mut out: Vec<Rows> = Vec::new();
    for (r0, r1, c0, c1, v) in cells {
        match out.last_mut() {
            Some(last) if last.r0 == r0 => last.cols.push((c0, c1, v)),
            _ => out.push(Rows {
                r0,
                r1,
                cols: vec![(c0, c1, v)],
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tok: u32, head: u32) -> Val {
        Val::In {
            t: IoTensor::Q,
            seq: 0,
            tok,
            head,
        }
    }

    #[test]
    fn writes_split_and_reads_shift() {
        let mut b = Buf::new(10, 4);
        let all = Region {
            buf: 0,
            tok: 0,
            len: 10,
            head: 0,
            heads: 4,
        };
        b.write(&all, &[Rows::one(0, 10, 4, input(100, 0))]);
        let mid = Region {
            buf: 0,
            tok: 3,
            len: 4,
            head: 1,
            heads: 2,
        };
        b.write(&mid, &[Rows::one(0, 4, 2, Val::Fill(FillValue::Zero))]);
        let rows = b.read(&Region {
            buf: 0,
            tok: 2,
            len: 3,
            head: 0,
            heads: 4,
        });
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].r0, rows[0].r1), (0, 1));
        assert_eq!(rows[1].cols.len(), 3);
        assert_eq!(rows[1].cols[0].2.ident(), Some((0, 103, 0)));
        assert!(matches!(rows[1].cols[1].2, Val::Fill(_)));
        assert_eq!(rows[1].cols[2].2.ident(), Some((0, 103, 3)));
        let cells = refine(&[&rows, &[Rows::one(0, 3, 4, input(0, 0))]]);
        assert_eq!(cells.len(), 1 + 3);
        assert_eq!(cells[3].vals[1].ident(), Some((0, 1, 3)));
    }
}
