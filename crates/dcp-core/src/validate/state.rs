//! Symbolic buffer contents as rectangles: a buffer is a list of row bands (token ranges), each
//! split into column runs (head ranges) of one symbolic value that moves affinely inside the
//! rectangle (token +1 per row, head +1 per column). Reads, writes and the common refinement of
//! several reads cost per rectangle, not per (token, head) cell.

use super::gspace::GMap;
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

/// What the top-left cell of a rectangle holds; `g`/`head` grow by one per row/column. Tokens
/// are named by global layout rows `g` ([`super::gspace`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Val {
    Unset,
    Fill(FillValue),
    /// A caller input: tensor `t` of the token at global row `g`.
    In {
        t: IoTensor,
        g: u64,
        head: u32,
    },
    /// A partial result for (g, head) holding the pairs of `cov`.
    Part {
        p: Part,
        g: u64,
        head: u32,
        cov: Cov,
    },
    /// A partial result of the forward, kept by a backward saved buffer, that never became the
    /// forward's output ([`super::saved`]): its coverage names the forward's nodes, gone when
    /// the backward runs, so no backward instruction may take it (it is refused as wrong
    /// content where a partial or an input is needed).
    Stale {
        p: Part,
        g: u64,
        head: u32,
    },
}

impl Val {
    /// The value `dt` rows and `dh` columns further.
    pub fn shift(&self, dt: u32, dh: u32) -> Val {
        match self {
            Val::In { t, g, head } => Val::In {
                t: *t,
                g: g + dt as u64,
                head: head + dh,
            },
            Val::Part { p, g, head, cov } => Val::Part {
                p: *p,
                g: g + dt as u64,
                head: head + dh,
                cov: *cov,
            },
            Val::Stale { p, g, head } => Val::Stale {
                p: *p,
                g: g + dt as u64,
                head: head + dh,
            },
            other => *other,
        }
    }

    pub fn is_unset(&self) -> bool {
        matches!(self, Val::Unset)
    }

    /// (g, head) of an input or partial result.
    pub fn ident(&self) -> Option<(u64, u32)> {
        match *self {
            Val::In { g, head, .. } | Val::Part { g, head, .. } => Some((g, head)),
            _ => None,
        }
    }

    /// For messages (`map` names the token of a global row).
    pub fn describe(&self, map: &GMap) -> String {
        match self {
            Val::Unset => "nothing (never written)".into(),
            Val::Fill(v) => format!("fill {v:?}"),
            Val::In { t, g, head } => format!("input {t:?} of {}", map.name(*g, *head)),
            Val::Part { p, g, head, .. } => format!("partial {p:?} of {}", map.name(*g, *head)),
            Val::Stale { p, g, head } => format!(
                "partial {p:?} of {} left by the forward (not its output)",
                map.name(*g, *head)
            ),
        }
    }
}

/// A column run `(c0, c1, value at c0)`.
pub(super) type Col = (u32, u32, Val);

/// What [`Few`] and [`Few1`] share: the items as a slice (`Deref`, `DerefMut`; `$two`, where
/// given, is the variant holding an inline pair), equality by items, iteration by reference. A
/// macro, not a generic: they are two enums (their layouts differ on purpose), and each keeps
/// its own `push` and `FromIterator`, which differ in the inline pair.
macro_rules! few_as_slice {
    ($few:ident $(, $two:ident)?) => {
        impl<T: PartialEq> PartialEq for $few<T> {
            fn eq(&self, o: &Self) -> bool {
                **self == **o
            }
        }

        impl<T> std::ops::Deref for $few<T> {
            type Target = [T];
            fn deref(&self) -> &[T] {
                match self {
                    $few::Zero => &[],
                    $few::One(c) => std::slice::from_ref(c),
                    $($few::$two(a) => a,)?
                    $few::Many(v) => v,
                }
            }
        }

        impl<T> std::ops::DerefMut for $few<T> {
            fn deref_mut(&mut self) -> &mut [T] {
                match self {
                    $few::Zero => &mut [],
                    $few::One(c) => std::slice::from_mut(c),
                    $($few::$two(a) => a,)?
                    $few::Many(v) => v,
                }
            }
        }

        impl<'a, T> IntoIterator for &'a $few<T> {
            type Item = &'a T;
            type IntoIter = std::slice::Iter<'a, T>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }
    };
}

few_as_slice!(Few, Two);
few_as_slice!(Few1);

/// A short list: nearly always one item (a work's one run, one coverage leaf), kept inline
/// then; two inline too; more on the heap. A usp work's operands are two runs each (its head
/// group's two devices, at the default head degree), and their run, coverage and sum lists were
/// heap vectors, ~14 allocations per work with the row lists (a tenth of its validation).
/// Band column runs and row lists are [`Few1`] (no inline pair): bands are moved often, and
/// row lists returned by every read (two inline made `dcp` validation 2 % more instructions).
#[derive(Debug, Clone, Default)]
pub(super) enum Few<T> {
    #[default]
    Zero,
    One(T),
    Two([T; 2]),
    Many(Vec<T>),
}

impl<T> Few<T> {
    pub fn push(&mut self, c: T) {
        match self {
            Few::Zero => *self = Few::One(c),
            Few::One(_) => {
                let Few::One(a) = std::mem::take(self) else {
                    unreachable!()
                };
                *self = Few::Two([a, c]);
            }
            Few::Two(_) => {
                let Few::Two([a, b]) = std::mem::take(self) else {
                    unreachable!()
                };
                // Room for a few more: a list that grows past two mostly grows on (a usp
                // work's runs, one per device), and doubling from four reallocates by 8.
                let mut v = Vec::with_capacity(8);
                v.push(a);
                v.push(b);
                v.push(c);
                *self = Few::Many(v);
            }
            Few::Many(v) => v.push(c),
        }
    }
}

impl<T> FromIterator<T> for Few<T> {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> Self {
        let mut it = it.into_iter();
        let Some(a) = it.next() else {
            return Few::Zero;
        };
        let Some(b) = it.next() else {
            return Few::One(a);
        };
        let Some(c) = it.next() else {
            return Few::Two([a, b]);
        };
        // Sized once from the iterator's hint (at least the three items held).
        let mut v = Vec::with_capacity(3 + it.size_hint().0);
        v.push(a);
        v.push(b);
        v.push(c);
        v.extend(it);
        Few::Many(v)
    }
}

/// [`Few`] without its inline pair: a band's column runs ([`Cols`]) and a region's bands
/// ([`RowList`]), nearly always one. Reads and writes make one per band and per region, and an
/// allocation each was a large part of validating a ring plan. Bands are moved as buffers are
/// cut and spliced, and room for two column runs inline made every band 80 bytes instead of 48
/// (usp validation 4 % slower by the clock, ring 2 %).
#[derive(Debug, Clone, Default)]
pub(super) enum Few1<T> {
    #[default]
    Zero,
    One(T),
    Many(Vec<T>),
}

impl<T> Few1<T> {
    pub fn push(&mut self, c: T) {
        match self {
            Few1::Zero => *self = Few1::One(c),
            Few1::One(_) => {
                let Few1::One(a) = std::mem::take(self) else {
                    unreachable!()
                };
                let mut v = Vec::with_capacity(8);
                v.push(a);
                v.push(c);
                *self = Few1::Many(v);
            }
            Few1::Many(v) => v.push(c),
        }
    }

    fn remove(&mut self, i: usize) {
        match self {
            Few1::Many(v) => {
                v.remove(i);
            }
            _ => {
                assert_eq!(i, 0, "item {i} of one");
                *self = Few1::Zero;
            }
        }
    }

    /// The items by value.
    pub fn into_items(self) -> impl Iterator<Item = T> {
        let (one, many) = match self {
            Few1::Zero => (None, Vec::new()),
            Few1::One(c) => (Some(c), Vec::new()),
            Few1::Many(v) => (None, v),
        };
        one.into_iter().chain(many)
    }
}

impl<T> FromIterator<T> for Few1<T> {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> Self {
        let mut it = it.into_iter();
        let Some(a) = it.next() else {
            return Few1::Zero;
        };
        let Some(b) = it.next() else {
            return Few1::One(a);
        };
        // Sized once from the iterator's hint (at least the two items held).
        let mut v = Vec::with_capacity(2 + it.size_hint().0);
        v.push(a);
        v.push(b);
        v.extend(it);
        Few1::Many(v)
    }
}

/// Per-column values of a region (a work's heads), inline up to [`Slots::INLINE`] columns.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Slots {
    Inline(u8, [u32; Slots::INLINE]),
    Heap(Vec<u32>),
}

impl Slots {
    pub const INLINE: usize = 16;

    /// `n` columns holding `v`.
    pub fn new(n: usize, v: u32) -> Self {
        if n <= Self::INLINE {
            Slots::Inline(n as u8, [v; Self::INLINE])
        } else {
            Slots::Heap(vec![v; n])
        }
    }
}

impl std::ops::Deref for Slots {
    type Target = [u32];
    fn deref(&self) -> &[u32] {
        match self {
            Slots::Inline(n, a) => &a[..*n as usize],
            Slots::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for Slots {
    fn deref_mut(&mut self) -> &mut [u32] {
        match self {
            Slots::Inline(n, a) => &mut a[..*n as usize],
            Slots::Heap(v) => v,
        }
    }
}

/// The column runs of a band.
pub(super) type Cols = Few1<Col>;

/// The row bands of a region's contents.
pub(super) type RowList = Few1<Rows>;

/// Rows `[r0, r1)` of a region (relative to its first row), split into columns `(c0, c1, value)`
/// that tile the region's heads.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    pub r0: u32,
    pub r1: u32,
    pub cols: Cols,
}

impl Rows {
    pub fn one(r0: u32, r1: u32, c1: u32, v: Val) -> Rows {
        Rows {
            r0,
            r1,
            cols: Few1::One((0, c1, v)),
        }
    }
}

#[derive(Debug, Clone)]
struct Band {
    t0: u32,
    t1: u32,
    /// Column runs tiling `[0, heads)`, values at the band's first row.
    cols: Cols,
}

/// One buffer's contents: bands sorted by first token, not overlapping. A sorted vector, not a
/// tree: buffers hold tens of bands, so a binary search and a short move beat tree nodes.
#[derive(Debug, Clone)]
pub(super) struct Buf {
    bands: Vec<Band>,
    tokens: u32,
    heads: u32,
    /// Elements per (token, head), as declared.
    pub width: u32,
}

impl Buf {
    pub fn new(tokens: u32, heads: u32, width: u32) -> Self {
        // Room for a ring buffer's few bands (one allocation, no growth from empty).
        let mut bands = Vec::with_capacity(4);
        if tokens > 0 && heads > 0 {
            bands.push(Band {
                t0: 0,
                t1: tokens,
                cols: Few1::One((0, heads, Val::Unset)),
            });
        }
        Buf {
            bands,
            tokens,
            heads,
            width,
        }
    }

    /// Whether `o` holds the same bands and values, coverages compared by `same_cov` (debug
    /// cross-checks of fast paths against the general ones, whose coverage nodes are others).
    #[cfg(debug_assertions)]
    pub fn same_as(&self, o: &Buf, same_cov: impl Fn(Cov, Cov) -> bool) -> bool {
        let same_val = |a: &Val, b: &Val| match (a, b) {
            (
                Val::Part { p, g, head, cov },
                Val::Part {
                    p: p2,
                    g: g2,
                    head: h2,
                    cov: c2,
                },
            ) => (p, g, head) == (p2, g2, h2) && same_cov(*cov, *c2),
            _ => continues(a, 0, 0, b),
        };
        self.bands.len() == o.bands.len()
            && self.bands.iter().zip(&o.bands).all(|(x, y)| {
                (x.t0, x.t1, x.cols.len()) == (y.t0, y.t1, y.cols.len())
                    && x.cols
                        .iter()
                        .zip(&y.cols)
                        .all(|(p, q)| (p.0, p.1) == (q.0, q.1) && same_val(&p.2, &q.2))
            })
    }

    /// Whether `r` lies inside the buffer (its declaration's tokens and heads).
    #[inline]
    pub fn fits(&self, r: &Region) -> bool {
        r.tok as u64 + r.len as u64 <= self.tokens as u64
            && r.head as u64 + r.heads as u64 <= self.heads as u64
    }

    /// Index of the first band starting after `t`.
    fn after(&self, t: u32) -> usize {
        // A ring buffer or an accumulator holds a few bands: a scan beats the search there.
        if self.bands.len() <= 4 {
            return self.bands.iter().take_while(|b| b.t0 <= t).count();
        }
        self.bands.partition_point(|b| b.t0 <= t)
    }

    /// Index of the first band starting at or after `t`.
    fn from(&self, t: u32) -> usize {
        self.bands.partition_point(|b| b.t0 < t)
    }

    /// Makes `t` a band boundary.
    fn split_at(&mut self, t: u32) {
        let i = self.after(t);
        let Some(band) = i.checked_sub(1).map(|k| &mut self.bands[k]) else {
            return;
        };
        if band.t0 == t || band.t1 <= t {
            return;
        }
        let dt = t - band.t0;
        let upper = Band {
            t0: t,
            t1: band.t1,
            cols: band
                .cols
                .iter()
                .map(|(a, b, v)| (*a, *b, v.shift(dt, 0)))
                .collect(),
        };
        band.t1 = t;
        self.bands.insert(i, upper);
    }

    /// The contents of `r` (in bounds), as row bands relative to `r`.
    pub fn read(&self, r: &Region) -> RowList {
        let (t0, t1) = (r.tok, r.tok + r.len);
        let (h0, h1) = (r.head, r.head + r.heads);
        if r.len == 0 || r.heads == 0 {
            return Few1::Zero;
        }
        let start = self.after(t0).saturating_sub(1);
        // Inside one band holding one value across its heads (most reads of a ring plan).
        if let Some(Band {
            t0: b0,
            t1: b1,
            cols: Few1::One((_, _, v)),
        }) = self.bands.get(start)
        {
            if *b0 <= t0 && t1 <= *b1 {
                let v = v.shift(t0 - b0, h0);
                return Few1::One(Rows::one(0, r.len, r.heads, v));
            }
        }
        let end = self.from(t1);
        let mut out = Few1::Zero;
        for band in &self.bands[start..end] {
            if band.t1 <= t0 {
                continue;
            }
            let a = band.t0.max(t0);
            let b = band.t1.min(t1);
            let dt = a - band.t0;
            let mut cols = Cols::Zero;
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

    /// The value at `r`'s top-left when `r` (in bounds, not empty) lies inside one band holding
    /// one value across all heads and that value is set: `r` then holds one rectangle, as
    /// [`Buf::read`] would return it. `None` otherwise.
    #[inline]
    pub fn read_one(&self, r: &Region) -> Option<Val> {
        let band = if r.tok == 0 {
            self.bands.first()?
        } else {
            self.bands.get(self.after(r.tok).checked_sub(1)?)?
        };
        match band.cols {
            Few1::One((_, _, v))
                if !v.is_unset() && band.t0 <= r.tok && r.tok + r.len <= band.t1 =>
            {
                Some(v.shift(r.tok - band.t0, r.head))
            }
            _ => None,
        }
    }

    /// The contents of `r` (in bounds, not empty) as bands holding one set value across all
    /// heads each: per band its first row (relative to `r`) and its value there (at `r`'s first
    /// head), into `out`; their number. `None` when a band holds several column runs or unset
    /// cells, or `r` meets more bands than `out` holds.
    pub fn read_bands(&self, r: &Region, out: &mut [(u32, Val)]) -> Option<usize> {
        let (t0, t1) = (r.tok, r.tok + r.len);
        let mut i = if t0 == 0 {
            0
        } else {
            self.after(t0).checked_sub(1)?
        };
        let mut n = 0;
        while let Some(b) = self.bands.get(i) {
            if b.t0 >= t1 {
                break;
            }
            let Few1::One((_, _, v)) = b.cols else {
                return None;
            };
            if v.is_unset() {
                return None;
            }
            let a = b.t0.max(t0);
            *out.get_mut(n)? = (a - t0, v.shift(a - b.t0, r.head));
            n += 1;
            i += 1;
        }
        Some(n)
    }

    /// [`Buf::write`] of one value over all of `r` (`v` at its top-left; in bounds): the same
    /// bands, without a row list to build and take apart (a ring buffer's receive, an
    /// accumulator or output rewritten whole).
    #[inline]
    pub fn write_one(&mut self, r: &Region, v: Val) {
        // Debug builds (every test run): the general write makes the same bands.
        #[cfg(debug_assertions)]
        let general = {
            let mut b = self.clone();
            b.write(r, RowList::One(Rows::one(0, r.len, r.heads, v)));
            b
        };
        self.write_one_unchecked(r, v);
        #[cfg(debug_assertions)]
        assert!(
            self.bands.len() == general.bands.len()
                && self.bands.iter().zip(&general.bands).all(|(x, y)| {
                    (x.t0, x.t1, x.cols.len()) == (y.t0, y.t1, y.cols.len())
                        && x.cols
                            .iter()
                            .zip(&y.cols)
                            .all(|(p, q)| (p.0, p.1) == (q.0, q.1) && continues(&p.2, 0, 0, &q.2))
                }),
            "write_one's bands differ from write's: {:?} vs {:?}",
            self.bands,
            general.bands
        );
    }

    #[inline]
    fn write_one_unchecked(&mut self, r: &Region, v: Val) {
        // The whole buffer of one band (an accumulator, a partial output rewritten): in place,
        // inlined where the writes are.
        if let [only] = &mut self.bands[..] {
            if r.tok == 0 && r.len == only.t1 && r.len > 0 && r.head == 0 && r.heads == self.heads {
                only.cols = Few1::One((0, self.heads, v));
                return;
            }
        }
        self.write_one_banded(r, v);
    }

    /// [`Buf::write_one_unchecked`] over several bands or a part of the buffer.
    #[inline(never)]
    fn write_one_banded(&mut self, r: &Region, v: Val) {
        if r.len > 0 && r.heads > 0 && r.head == 0 && r.heads == self.heads {
            let (a, b) = (r.tok, r.tok + r.len);
            if a == 0 {
                self.write_prefix(b, v);
                return;
            }
            let cols = Few1::One((0, r.heads, v));
            if a == 0 && b == self.bands.last().map_or(0, |x| x.t1) {
                self.bands.clear();
                self.bands.push(Band { t0: 0, t1: b, cols });
                return;
            }
            let i = self.after(a).checked_sub(1);
            let j = self.after(b - 1).checked_sub(1);
            if let (Some(i), Some(j)) = (i, j) {
                if self.bands[j].t1 >= b && self.bands[i].t1 > a {
                    self.put_band(i, j, a, b, cols);
                    return;
                }
            }
        }
        self.write(r, RowList::One(Rows::one(0, r.len, r.heads, v)));
    }

    /// Rows `[0, b)` (`0 < b` ≤ the buffer's rows), all heads, take `v` (a ring buffer's
    /// receive, an accumulator or output rewritten whole): the bands ending by `b` give way to
    /// one band, the band holding `b` keeps its rows from `b` on, and the new band joins the
    /// next when it continues it; the bands [`Buf::write`] makes.
    fn write_prefix(&mut self, b: u32, v: Val) {
        let heads = self.heads;
        let bands = &mut self.bands;
        let n = bands.len();
        if let [only] = &mut bands[..] {
            if only.t1 == b {
                // The whole buffer of one band (an accumulator, a partial output rewritten).
                only.cols = Few1::One((0, heads, v));
                return;
            }
        }
        let mut j = 0;
        while j < n && bands[j].t1 <= b {
            j += 1;
        }
        if j < n && bands[j].t0 < b {
            // The band holding row `b` keeps its rows from `b` on.
            let bj = &mut bands[j];
            let dt = b - bj.t0;
            match &mut bj.cols {
                Few1::One((_, _, x)) => *x = x.shift(dt, 0),
                cols => cols.iter_mut().for_each(|(_, _, x)| *x = x.shift(dt, 0)),
            }
            bj.t0 = b;
        }
        let new = Band {
            t0: 0,
            t1: b,
            cols: Few1::One((0, heads, v)),
        };
        if j == 0 {
            bands.insert(0, new);
        } else {
            bands[0] = new;
            if j > 1 {
                bands.drain(1..j);
            }
        }
        if let Some(next) = bands.get(1) {
            let joins = match &next.cols {
                Few1::One((c0, c1, x)) => (*c0, *c1) == (0, heads) && continues(&v, b, 0, x),
                _ => false,
            };
            if joins {
                bands[0].t1 = bands[1].t1;
                bands.remove(1);
            }
        }
    }

    /// Overwrites `r` (in bounds) with `rows`, which tile it.
    pub fn write(&mut self, r: &Region, rows: RowList) {
        if r.len == 0 || r.heads == 0 {
            return;
        }
        let (h0, h1) = (r.head, r.head + r.heads);
        if h0 == 0 && h1 == self.heads {
            // Whole rows: replace the bands outright.
            let (a, b) = (r.tok, r.tok + r.len);
            let end = self.bands.last().map_or(0, |x| x.t1);
            if let (0, true, Few1::One(rw)) = (a, b == end, &rows) {
                // The whole buffer, one band: nothing of the old bands stays.
                if (rw.r0, rw.r1) == (0, r.len) && rw.cols.len() == 1 {
                    let Few1::One(rw) = rows else { unreachable!() };
                    self.bands.clear();
                    self.bands.push(Band {
                        t0: 0,
                        t1: end,
                        cols: rw.cols,
                    });
                    return;
                }
            }
            // One band of one column run (a ring buffer receiving its next step's rows, an
            // accumulator rewritten): the bands it covers are replaced in place, the one it
            // starts in keeps its rows before it and the one it ends in its rows after it, and
            // only its two neighbours can continue it. The same bands as cutting, splicing and
            // coalescing below.
            if let Few1::One(rw) = &rows {
                let i = self.after(a).checked_sub(1);
                let j = self.after(b - 1).checked_sub(1);
                if let (0, true, 1, Some(i), Some(j)) = (rw.r0, rw.r1 == r.len, rw.cols.len(), i, j)
                {
                    if self.bands[j].t1 >= b && self.bands[i].t1 > a {
                        let Few1::One(rw) = rows else { unreachable!() };
                        self.put_band(i, j, a, b, rw.cols);
                        return;
                    }
                }
            }
            self.split_at(a);
            self.split_at(b);
            let (i, j) = (self.from(a), self.from(b));
            let same = j - i == rows.len()
                && rows
                    .iter()
                    .zip(&self.bands[i..j])
                    .all(|(rw, band)| (band.t0, band.t1) == (r.tok + rw.r0, r.tok + rw.r1));
            if same {
                // The new bands have the old ones' bounds (a buffer rewritten as it was cut):
                // new columns in place.
                let put = |rw: Rows, band: &mut Band| {
                    band.cols = rw.cols;
                    merge_cols(&mut band.cols);
                };
                match rows {
                    Few1::One(rw) => put(rw, &mut self.bands[i]),
                    rows => {
                        for (rw, band) in rows.into_items().zip(&mut self.bands[i..j]) {
                            put(rw, band);
                        }
                    }
                }
            } else {
                let new = rows.into_items().map(|rw| {
                    let mut cols = rw.cols;
                    merge_cols(&mut cols);
                    Band {
                        t0: r.tok + rw.r0,
                        t1: r.tok + rw.r1,
                        cols,
                    }
                });
                self.bands.splice(i..j, new);
            }
            self.coalesce(a, b);
            return;
        }
        for rw in rows.iter() {
            let (a, b) = (r.tok + rw.r0, r.tok + rw.r1);
            self.split_at(a);
            self.split_at(b);
            let (i, j) = (self.from(a), self.from(b));
            for band in &mut self.bands[i..j] {
                let dt = band.t0 - a;
                let mut cols = Cols::Zero;
                let mut inserted = false;
                for (c0, c1, v) in std::mem::take(&mut band.cols).into_items() {
                    if c1 <= h0 || c0 >= h1 {
                        if c0 >= h1 && !inserted {
                            put(&mut cols, rw, h0, dt);
                            inserted = true;
                        }
                        cols.push((c0, c1, v));
                        continue;
                    }
                    if c0 < h0 {
                        cols.push((c0, h0, v));
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

    /// Rows `[a, b)`, which start in band `i` and end in band `j`, become one band of `cols`
    /// (one column run); then joined with a neighbour that continues it.
    fn put_band(&mut self, i: usize, j: usize, a: u32, b: u32, cols: Cols) {
        // Exactly one band's rows (a ring buffer receiving as many rows as the step before, an
        // accumulator rewritten): new columns in place; its neighbours, unchanged, did not
        // continue the old value's band and are tested against the new one below.
        let start = if i == j && (self.bands[i].t0, self.bands[i].t1) == (a, b) {
            self.bands[i].cols = cols;
            i
        } else {
            self.replace_bands(i, j, a, b, cols)
        };
        // Join with the next band, then with the one before (coalescing would join the same).
        let joins = |x: &Band, y: &Band| {
            let dt = y.t0 - x.t0;
            if let (Few1::One(p), Few1::One(q)) = (&x.cols, &y.cols) {
                return x.t1 == y.t0 && p.0 == q.0 && p.1 == q.1 && continues(&p.2, dt, 0, &q.2);
            }
            x.t1 == y.t0
                && x.cols.len() == y.cols.len()
                && x.cols
                    .iter()
                    .zip(&y.cols)
                    .all(|(p, q)| p.0 == q.0 && p.1 == q.1 && continues(&p.2, dt, 0, &q.2))
        };
        if start + 1 < self.bands.len() && joins(&self.bands[start], &self.bands[start + 1]) {
            self.bands[start].t1 = self.bands[start + 1].t1;
            self.bands.remove(start + 1);
        }
        if start > 0 && joins(&self.bands[start - 1], &self.bands[start]) {
            self.bands[start - 1].t1 = self.bands[start].t1;
            self.bands.remove(start);
        }
    }

    /// [`Buf::put_band`]'s general case: bands `i..=j` around `[a, b)` keep their rows outside
    /// it and one new band holds `[a, b)`; returns its index.
    fn replace_bands(&mut self, i: usize, j: usize, a: u32, b: u32, cols: Cols) -> usize {
        let last = &self.bands[j];
        let tail = (last.t1 > b).then(|| Band {
            t0: b,
            t1: last.t1,
            cols: match &last.cols {
                Few1::One((c0, c1, v)) => Few1::One((*c0, *c1, v.shift(b - last.t0, 0))),
                cols => cols
                    .iter()
                    .map(|(c0, c1, v)| (*c0, *c1, v.shift(b - last.t0, 0)))
                    .collect(),
            },
        });
        let start = if self.bands[i].t0 < a {
            self.bands[i].t1 = a;
            i + 1
        } else {
            i
        };
        let new = Band { t0: a, t1: b, cols };
        // Bands `start..=j` (none when `start > j`) become `new` and `tail`: covered slots are
        // reused, the rest dropped or inserted (no splice: it costs more than these moves).
        let covered = (j + 1).saturating_sub(start);
        let end = start + covered;
        if start < end {
            self.bands[start] = new;
        } else {
            self.bands.insert(start, new);
        }
        let mut at = start + 1;
        if let Some(tail) = tail {
            if at < end {
                self.bands[at] = tail;
            } else {
                self.bands.insert(at, tail);
            }
            at += 1;
        }
        if at < end {
            self.bands.drain(at..end);
        }
        start
    }

    /// Merges neighbouring bands starting in `[from, to]` (and the band before) whose values
    /// continue each other, so that rewriting a range does not leave its old boundaries behind.
    fn coalesce(&mut self, from: u32, to: u32) {
        let i0 = self.from(from).saturating_sub(1);
        let end = self.after(to);
        if end <= i0 + 1 {
            return;
        }
        // Compaction in place: `w` is the band being grown, kept bands move down to `w + 1`.
        let mut w = i0;
        for k in i0 + 1..end {
            let joins = {
                let (a, b) = (&self.bands[w], &self.bands[k]);
                let dt = b.t0 - a.t0;
                a.t1 == b.t0
                    && a.cols.len() == b.cols.len()
                    && a.cols
                        .iter()
                        .zip(&b.cols)
                        .all(|(x, y)| x.0 == y.0 && x.1 == y.1 && continues(&x.2, dt, 0, &y.2))
            };
            if joins {
                self.bands[w].t1 = self.bands[k].t1;
            } else {
                w += 1;
                self.bands.swap(w, k);
            }
        }
        self.bands.drain(w + 1..end);
    }

    /// Index of the first of `n` bands that are exactly `r`'s row bands `rows(k) = [r0, r1)`
    /// (relative to `r`, tiling it) with column runs of the bounds `cols(k)` gives, when `r`
    /// spans all heads: a usp accumulator or output rewritten with the bands it was cut into.
    /// The bands' values then sit at the cells' top-left, unshifted, and [`Buf::set_bands`]
    /// rewrites them in place. `None` otherwise.
    pub fn bands_of(
        &self,
        r: &Region,
        n: usize,
        rows: impl Fn(usize) -> (u32, u32),
        same_cols: impl Fn(usize, &[Col]) -> bool,
    ) -> Option<usize> {
        if r.head != 0 || r.heads != self.heads || r.len == 0 || n == 0 {
            return None;
        }
        let i = self.from(r.tok);
        let bands = self.bands.get(i..i + n)?;
        let mut at = 0;
        for (k, band) in bands.iter().enumerate() {
            let (r0, r1) = rows(k);
            if r0 != at || r1 <= r0 || (band.t0, band.t1) != (r.tok + r0, r.tok + r1) {
                return None;
            }
            if !same_cols(k, &band.cols) {
                return None;
            }
            at = r1;
        }
        (at == r.len).then_some(i)
    }

    /// `dst` (in bounds) takes the contents of `src` (as many rows and heads, in bounds, of
    /// `from`) when both span all heads of their buffers and no value of `src` is unset: `src`'s
    /// bands, cut to it, replace `dst`'s, then neighbours that continue each other are joined.
    /// The bands [`Buf::write`] makes from [`Buf::read`]'s rows, without the row list (a usp
    /// buffer of two runs received). `false` (nothing changed) otherwise: an unset value is
    /// left to the general path, which names it.
    pub fn take_bands(&mut self, dst: &Region, from: &Buf, src: &Region) -> bool {
        let whole = |r: &Region, b: &Buf| r.head == 0 && r.heads == b.heads && r.len > 0;
        if !whole(src, from) || !whole(dst, self) || (src.len, src.heads) != (dst.len, dst.heads) {
            return false;
        }
        let (t0, t1) = (src.tok, src.tok + src.len);
        let start = from.after(t0).saturating_sub(1);
        let sb = &from.bands[start..from.from(t1)];
        if sb.iter().any(|b| b.cols.iter().any(|c| c.2.is_unset())) {
            return false;
        }
        let (a, b) = (dst.tok, dst.tok + dst.len);
        self.split_at(a);
        self.split_at(b);
        let (i, j) = (self.from(a), self.from(b));
        let new = sb.iter().filter(|band| band.t1 > t0).map(|band| {
            let (x, y) = (band.t0.max(t0), band.t1.min(t1));
            let dt = x - band.t0;
            let mut cols = match &band.cols {
                Few1::One((c0, c1, v)) => Few1::One((*c0, *c1, v.shift(dt, 0))),
                cols => cols
                    .iter()
                    .map(|(c0, c1, v)| (*c0, *c1, v.shift(dt, 0)))
                    .collect(),
            };
            merge_cols(&mut cols);
            Band {
                t0: x - t0 + a,
                t1: y - t0 + a,
                cols,
            }
        });
        self.bands.splice(i..j, new);
        self.coalesce(a, b);
        true
    }

    /// The column runs of band `i` (from [`Buf::bands_of`]).
    pub fn band_cols(&self, i: usize) -> &[Col] {
        &self.bands[i].cols
    }

    /// Bands `i..i + n` (from [`Buf::bands_of`] for `r`) take new values: `val(k, j)` for column
    /// run `j` of the `k`-th; then neighbouring columns and bands that continue each other are
    /// joined. The bands [`Buf::write`] makes from the same rows (its in-place case).
    pub fn set_bands(
        &mut self,
        r: &Region,
        i: usize,
        n: usize,
        mut val: impl FnMut(usize, usize) -> Val,
    ) {
        for (k, band) in self.bands[i..i + n].iter_mut().enumerate() {
            for (j, c) in band.cols.iter_mut().enumerate() {
                c.2 = val(k, j);
            }
            merge_cols(&mut band.cols);
        }
        self.coalesce(r.tok, r.tok + r.len);
    }
}

/// Whether `b` is `a` moved `dt` rows and `dh` columns on (one rectangle could hold both).
pub(super) fn continues(a: &Val, dt: u32, dh: u32, b: &Val) -> bool {
    match (a, b) {
        (Val::Unset, Val::Unset) => true,
        (Val::Fill(x), Val::Fill(y)) => x == y,
        (
            Val::In { t, g, head },
            Val::In {
                t: t2,
                g: g2,
                head: h2,
            },
        ) => t == t2 && g + dt as u64 == *g2 && head + dh == *h2,
        (
            Val::Part { p, g, head, cov },
            Val::Part {
                p: p2,
                g: g2,
                head: h2,
                cov: c2,
            },
        ) => p == p2 && g + dt as u64 == *g2 && head + dh == *h2 && cov == c2,
        (
            Val::Stale { p, g, head },
            Val::Stale {
                p: p2,
                g: g2,
                head: h2,
            },
        ) => p == p2 && g + dt as u64 == *g2 && head + dh == *h2,
        _ => false,
    }
}

/// Merges neighbouring columns whose values continue each other.
fn merge_cols(cols: &mut Cols) {
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

fn put(cols: &mut Cols, rw: &Rows, h0: u32, dt: u32) {
    for (c0, c1, v) in &rw.cols {
        cols.push((h0 + c0, h0 + c1, v.shift(dt, 0)));
    }
}

/// One cell block of a common refinement: rows `[r0, r1)`, columns `[c0, c1)` and every input's
/// value at its top-left cell ([`Cell::val`]).
pub(super) struct Cell<'a> {
    pub r0: u32,
    pub r1: u32,
    pub c0: u32,
    pub c1: u32,
    vals: CellVals<'a>,
}

enum CellVals<'a> {
    /// The values, moved to the cell's corner.
    Owned(&'a [Val]),
    /// Column run `j` of band `k` of every input (aligned inputs: no values made).
    Aligned(&'a [&'a [Rows]], usize, usize),
}

impl Cell<'_> {
    /// Input `i`'s value at the cell's top-left.
    #[inline]
    pub fn val(&self, i: usize) -> &Val {
        match self.vals {
            CellVals::Owned(v) => &v[i],
            CellVals::Aligned(inputs, k, j) => &inputs[i][k].cols[j].2,
        }
    }

    /// The number of inputs.
    pub fn n(&self) -> usize {
        match self.vals {
            CellVals::Owned(v) => v.len(),
            CellVals::Aligned(inputs, ..) => inputs.len(),
        }
    }
}

/// A common refinement: cell blocks in row-major order.
pub(super) enum Refined<'a> {
    /// Inputs with the same row bands (contiguous) and the same column runs in each: their
    /// cells are the runs themselves (the common case: an accumulator, an output or a copy laid
    /// out like the query rows it came from), with no cut lists to sort and no values to make.
    Aligned(&'a [&'a [Rows]]),
    /// The values of all cells in one vector (one allocation, not one per cell).
    General {
        n: usize,
        blocks: Vec<[u32; 4]>,
        vals: Vec<Val>,
    },
}

impl<'a> Refined<'a> {
    pub fn iter(&'a self) -> Cells<'a> {
        Cells {
            r: self,
            k: 0,
            j: 0,
        }
    }
}

/// The cells of a [`Refined`], in order: band `k`, column run `j` (aligned), or block `k`.
pub(super) struct Cells<'a> {
    r: &'a Refined<'a>,
    k: usize,
    j: usize,
}

impl<'a> Iterator for Cells<'a> {
    type Item = Cell<'a>;

    fn next(&mut self) -> Option<Cell<'a>> {
        match self.r {
            Refined::Aligned(inputs) => {
                let first = inputs.first()?;
                loop {
                    let rw = first.get(self.k)?;
                    if let Some(&(c0, c1, _)) = rw.cols.get(self.j) {
                        let cell = Cell {
                            r0: rw.r0,
                            r1: rw.r1,
                            c0,
                            c1,
                            vals: CellVals::Aligned(inputs, self.k, self.j),
                        };
                        self.j += 1;
                        return Some(cell);
                    }
                    self.k += 1;
                    self.j = 0;
                }
            }
            Refined::General { n, blocks, vals } => {
                let &[r0, r1, c0, c1] = blocks.get(self.k)?;
                let n = (*n).max(1);
                let cell = Cell {
                    r0,
                    r1,
                    c0,
                    c1,
                    vals: CellVals::Owned(&vals[self.k * n..(self.k + 1) * n]),
                };
                self.k += 1;
                Some(cell)
            }
        }
    }
}

/// The common refinement of several contents of the same region shape.
pub(super) fn refine<'a>(inputs: &'a [&'a [Rows]]) -> Refined<'a> {
    if aligned(inputs) {
        return Refined::Aligned(inputs);
    }
    let n = inputs.len();
    if n == 0 || inputs.iter().any(|rs| rs.is_empty()) {
        return general_refine(inputs);
    }
    // Row cuts by merging the inputs' band ends (they tile the same rows); no cut list to sort.
    // Per row interval, when every input's band has the same column runs, those are the cells'
    // columns; otherwise the column cuts are merged as before.
    let mut at = vec![0usize; n];
    let mut blocks = Vec::new();
    let mut vals = Vec::new();
    let mut ccuts: Vec<u32> = Vec::new();
    let mut cat = vec![0usize; n];
    let mut bands: Vec<&Rows> = Vec::with_capacity(n);
    let mut a = inputs.iter().map(|rs| rs[0].r0).min().unwrap_or(0);
    loop {
        for (i, rs) in inputs.iter().enumerate() {
            while at[i] < rs.len() && rs[at[i]].r1 <= a {
                at[i] += 1;
            }
        }
        // Every input must hold row `a` (contents of one region tile it); else the general
        // path decides.
        if inputs
            .iter()
            .zip(&at)
            .any(|(rs, &k)| k >= rs.len() || rs[k].r0 > a)
        {
            if inputs.iter().zip(&at).all(|(rs, &k)| k >= rs.len()) {
                break;
            }
            return general_refine(inputs);
        }
        let b = inputs
            .iter()
            .zip(&at)
            .map(|(rs, &k)| rs[k].r1)
            .min()
            .expect("inputs");
        let first = &inputs[0][at[0]];
        let same_cols = inputs.iter().zip(&at).all(|(rs, &k)| {
            let c = &rs[k].cols;
            c.len() == first.cols.len()
                && c.iter()
                    .zip(first.cols.iter())
                    .all(|(x, y)| (x.0, x.1) == (y.0, y.1))
        });
        if same_cols {
            for (j, &(c0, c1, _)) in first.cols.iter().enumerate() {
                for (rs, &k) in inputs.iter().zip(&at) {
                    let band = &rs[k];
                    vals.push(band.cols[j].2.shift(a - band.r0, 0));
                }
                blocks.push([a, b, c0, c1]);
            }
        } else {
            bands.clear();
            bands.extend(inputs.iter().zip(&at).map(|(rs, &k)| &rs[k]));
            refine_columns(&bands, a, b, &mut ccuts, &mut cat, &mut blocks, &mut vals);
        }
        a = b;
    }
    Refined::General { n, blocks, vals }
}

/// The common refinement by sorted cut lists (any inputs: also rows some input lacks).
fn general_refine<'a>(inputs: &'a [&'a [Rows]]) -> Refined<'a> {
    let mut rcuts: Vec<u32> = inputs
        .iter()
        .flat_map(|rs| rs.iter().flat_map(|r| [r.r0, r.r1]))
        .collect();
    rcuts.sort_unstable();
    rcuts.dedup();
    let n = inputs.len();
    let mut at = vec![0usize; n];
    // At least one block per row band; more where columns split.
    let rows = rcuts.len().saturating_sub(1);
    let mut blocks = Vec::with_capacity(rows);
    let mut vals = Vec::with_capacity(rows * n);
    let mut ccuts: Vec<u32> = Vec::new();
    let mut bands: Vec<&Rows> = Vec::with_capacity(n);
    let mut cat = vec![0usize; n];
    for w in rcuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        // The band of every input holding row a.
        bands.clear();
        for (i, rs) in inputs.iter().enumerate() {
            while at[i] < rs.len() && rs[at[i]].r1 <= a {
                at[i] += 1;
            }
            bands.push(&rs[at[i]]);
        }
        refine_columns(&bands, a, b, &mut ccuts, &mut cat, &mut blocks, &mut vals);
    }
    Refined::General { n, blocks, vals }
}

/// The cells of rows `[a, b)` where each input's content is `bands[i]` (a band holding those
/// rows): one block per interval between the bands' merged column cuts, with every input's
/// value there. `ccuts` and `cat` are scratch (`cat` has one entry per band).
fn refine_columns(
    bands: &[&Rows],
    a: u32,
    b: u32,
    ccuts: &mut Vec<u32>,
    cat: &mut [usize],
    blocks: &mut Vec<[u32; 4]>,
    vals: &mut Vec<Val>,
) {
    ccuts.clear();
    for band in bands {
        for (c0, c1, _) in &band.cols {
            ccuts.push(*c0);
            ccuts.push(*c1);
        }
    }
    ccuts.sort_unstable();
    ccuts.dedup();
    cat.iter_mut().for_each(|k| *k = 0);
    for cw in ccuts.windows(2) {
        let (c, d) = (cw[0], cw[1]);
        for (band, k) in bands.iter().zip(cat.iter_mut()) {
            while band.cols[*k].1 <= c {
                *k += 1;
            }
            let (c0, _, v) = &band.cols[*k];
            vals.push(v.shift(a - band.r0, c - c0));
        }
        blocks.push([a, b, c, d]);
    }
}

/// Whether `inputs` have the same row bands (contiguous) and the same column runs in each.
fn aligned(inputs: &[&[Rows]]) -> bool {
    let Some((first, rest)) = inputs.split_first() else {
        return false;
    };
    let contiguous = first.windows(2).all(|w| w[0].r1 == w[1].r0);
    let same = |rs: &&[Rows]| {
        rs.len() == first.len()
            && rs.iter().zip(first.iter()).all(|(a, b)| {
                a.r0 == b.r0
                    && a.r1 == b.r1
                    && a.cols.len() == b.cols.len()
                    && a.cols
                        .iter()
                        .zip(b.cols.iter())
                        .all(|(x, y)| x.0 == y.0 && x.1 == y.1)
            })
    };
    contiguous && rest.iter().all(same)
}

/// Appends cell `[r0, r1) × [c0, c1)` holding `v` to row bands being gathered (cells in
/// refinement order).
pub(super) fn push_cell(out: &mut RowList, r0: u32, r1: u32, c0: u32, c1: u32, v: Val) {
    match out.last_mut() {
        Some(last) if last.r0 == r0 => last.cols.push((c0, c1, v)),
        _ => out.push(Rows {
            r0,
            r1,
            cols: Few1::One((c0, c1, v)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list holds the same items in the same order whether made by pushes or collected; up
    /// to two items without a heap vector (a column run list: one).
    #[test]
    fn few_lists_hold_their_items_in_order() {
        for n in 0..6u32 {
            let mut pushed = Few::Zero;
            for i in 0..n {
                pushed.push(i * 10);
            }
            let collected: Few<u32> = (0..n).map(|i| i * 10).collect();
            let want: Vec<u32> = (0..n).map(|i| i * 10).collect();
            assert_eq!(&pushed[..], &want[..]);
            assert_eq!(&collected[..], &want[..]);
            assert_eq!(pushed, collected);
            assert_eq!(n <= 2, !matches!(pushed, Few::Many(_)), "{n} items");
            assert_eq!(n <= 2, !matches!(collected, Few::Many(_)), "{n} items");
            let mut c1: Cols = Few1::Zero;
            for i in 0..n {
                c1.push((i, i + 1, Val::Unset));
            }
            assert_eq!(c1.len(), n as usize);
            if n > 0 {
                c1.remove(0);
                assert_eq!(c1.first().map(|c| c.0), (n > 1).then_some(1));
            }
        }
    }

    fn input(tok: u32, head: u32) -> Val {
        Val::In {
            t: IoTensor::Q,
            g: tok as u64,
            head,
        }
    }

    #[test]
    fn writes_split_and_reads_shift() {
        let mut b = Buf::new(10, 4, 1);
        let all = Region {
            buf: 0,
            tok: 0,
            len: 10,
            head: 0,
            heads: 4,
        };
        b.write(&all, Few1::One(Rows::one(0, 10, 4, input(100, 0))));
        let mid = Region {
            buf: 0,
            tok: 3,
            len: 4,
            head: 1,
            heads: 2,
        };
        b.write(
            &mid,
            Few1::One(Rows::one(0, 4, 2, Val::Fill(FillValue::Zero))),
        );
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
        assert_eq!(rows[1].cols[0].2.ident(), Some((103, 0)));
        assert!(matches!(rows[1].cols[1].2, Val::Fill(_)));
        assert_eq!(rows[1].cols[2].2.ident(), Some((103, 3)));
        let other = [Rows::one(0, 3, 4, input(0, 0))];
        let inputs: [&[Rows]; 2] = [&rows, &other];
        let refined = refine(&inputs);
        let cells: Vec<Cell> = refined.iter().collect();
        assert_eq!(cells.len(), 1 + 3);
        assert_eq!(cells[3].val(1).ident(), Some((1, 3)));
    }

    /// [`Buf::set_bands`] over the bands [`Buf::bands_of`] finds, and [`Buf::take_bands`],
    /// leave the bands [`Buf::write`] makes from the same rows; each refuses what it does not
    /// handle (bands cut elsewhere, part of the heads, unset values) and then changes nothing.
    #[test]
    fn band_paths_match_write() {
        let reg = |tok, len, head, heads| Region {
            buf: 0,
            tok,
            len,
            head,
            heads,
        };
        let two = |g0: u32, g1: u32| -> RowList {
            Few1::Many(vec![
                Rows::one(0, 3, 2, input(g0, 0)),
                Rows::one(3, 7, 2, input(g1, 0)),
            ])
        };
        let r = reg(2, 7, 0, 2);
        let mut a = Buf::new(12, 2, 1);
        a.write(
            &reg(0, 12, 0, 2),
            Few1::One(Rows::one(0, 12, 2, input(500, 0))),
        );
        // Not yet cut at the rows: refused.
        let (w0, w1) = (
            |k: usize| [(0, 3), (3, 7)][k],
            |_: usize, c: &[Col]| c.len() == 1,
        );
        assert_eq!(a.bands_of(&r, 2, w0, w1), None);
        a.write(&r, two(10, 40));
        assert_eq!(a.bands_of(&r, 2, w0, w1), Some(1));
        assert_eq!(
            a.bands_of(&reg(2, 7, 0, 1), 2, w0, w1),
            None,
            "part of the heads"
        );
        assert_eq!(a.bands_of(&r, 2, |k| [(0, 4), (4, 7)][k], w1), None);
        // In place, as `write` would: the second value continues the first (one band).
        for (g0, g1) in [(20, 60), (20, 23)] {
            let mut general = a.clone();
            general.write(&r, two(g0, g1));
            let mut fast = a.clone();
            fast.set_bands(&r, 1, 2, |k, j| {
                assert_eq!(j, 0);
                input([g0, g1][k], 0)
            });
            assert_eq!(format!("{:?}", fast.bands), format!("{:?}", general.bands));
        }
        // Whole bands into whole bands, shifted to the destination's rows.
        let mut d = Buf::new(9, 2, 1);
        let dr = reg(0, 7, 0, 2);
        d.write(&reg(0, 9, 0, 2), two(0, 5));
        d.write(
            &reg(7, 2, 0, 2),
            Few1::One(Rows::one(0, 2, 2, input(13, 0))),
        );
        let mut general = d.clone();
        general.write(&dr, a.read(&r));
        let mut fast = d.clone();
        assert!(fast.take_bands(&dr, &a, &r));
        assert_eq!(format!("{:?}", fast.bands), format!("{:?}", general.bands));
        // Regions that start and end inside bands (a ring buffer's prefix, shorter than the
        // last step's).
        for (sr, dr) in [
            (reg(3, 5, 0, 2), reg(1, 5, 0, 2)),
            (reg(0, 12, 0, 2), reg(0, 12, 0, 2)),
        ] {
            let mut e = Buf::new(12, 2, 1);
            e.write(&reg(0, 12, 0, 2), two(0, 5));
            e.write(
                &reg(7, 5, 0, 2),
                Few1::One(Rows::one(0, 5, 2, input(900, 0))),
            );
            let mut general = e.clone();
            general.write(&dr, a.read(&sr));
            assert!(e.take_bands(&dr, &a, &sr));
            assert_eq!(format!("{:?}", e.bands), format!("{:?}", general.bands));
        }
        assert!(
            !d.clone().take_bands(&reg(0, 7, 0, 1), &a, &reg(2, 7, 0, 1)),
            "part of the heads"
        );
        // An unset source value is left to the general path (which names it).
        let fresh = Buf::new(12, 2, 1);
        let before = format!("{:?}", d.bands);
        assert!(!d.take_bands(&reg(0, 9, 0, 2), &fresh, &reg(0, 9, 0, 2)));
        assert_eq!(format!("{:?}", d.bands), before);
    }

    /// A cell as plain data: rows, columns, every input's identity.
    type PlainCell = (u32, u32, u32, u32, Vec<Option<(u64, u32)>>);

    /// The cells of a refinement as plain data.
    fn cells_of(r: &Refined) -> Vec<PlainCell> {
        r.iter()
            .map(|c| {
                let v = (0..c.n()).map(|i| c.val(i).ident()).collect();
                (c.r0, c.r1, c.c0, c.c1, v)
            })
            .collect()
    }

    #[test]
    fn the_merged_refinement_matches_the_sorted_one() {
        // Bands cut at different rows, columns alike or not: the same cells as sorting cuts.
        let cols = |tok: u32, cuts: &[u32]| -> Cols {
            cuts.windows(2)
                .map(|w| (w[0], w[1], input(tok, w[0])))
                .collect()
        };
        let band = |r0, r1, tok, cuts: &[u32]| Rows {
            r0,
            r1,
            cols: cols(tok, cuts),
        };
        let a = [band(0, 3, 10, &[0, 4]), band(3, 9, 40, &[0, 4])];
        let b = [
            band(0, 1, 70, &[0, 4]),
            band(1, 7, 80, &[0, 4]),
            band(7, 9, 90, &[0, 4]),
        ];
        let c = [band(0, 5, 5, &[0, 1, 4]), band(5, 9, 50, &[0, 2, 3, 4])];
        for inputs in [
            vec![&a[..], &b[..]],
            vec![&a[..], &c[..]],
            vec![&c[..], &b[..], &a[..]],
            vec![&b[..]],
        ] {
            let merged = refine(&inputs);
            let sorted = general_refine(&inputs);
            assert_eq!(cells_of(&merged), cells_of(&sorted));
            assert!(!cells_of(&merged).is_empty());
        }
    }

    #[test]
    fn a_band_written_at_the_start_of_a_longer_band_keeps_its_tail() {
        // The one-band write path (a ring buffer receiving fewer rows than it holds) against
        // reads of every row.
        let region = |tok, len| Region {
            buf: 0,
            tok,
            len,
            head: 0,
            heads: 2,
        };
        let mut b = Buf::new(10, 2, 1);
        b.write(
            &region(0, 10),
            Few1::One(Rows::one(0, 10, 2, input(100, 0))),
        );
        let zero = Val::Fill(FillValue::Zero);
        b.write(&region(0, 4), Few1::One(Rows::one(0, 4, 2, zero)));
        let rows = b.read(&region(0, 10));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].r0, rows[0].r1), (0, 4));
        assert!(matches!(rows[0].cols[0].2, Val::Fill(FillValue::Zero)));
        assert_eq!((rows[1].r0, rows[1].r1), (4, 10));
        assert_eq!(rows[1].cols[0].2.ident(), Some((104, 0)));
        assert_eq!(
            b.read_one(&region(5, 2)).and_then(|v| v.ident()),
            Some((105, 0))
        );
        assert!(b.read_one(&region(3, 2)).is_none(), "across two bands");
        // Writing back what was there joins the bands again; a band written whole takes its
        // place.
        b.write(&region(0, 4), Few1::One(Rows::one(0, 4, 2, input(100, 0))));
        let rows = b.read(&region(0, 10));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].cols[0].2.ident(), Some((100, 0)));
        b.write(&region(0, 10), Few1::One(Rows::one(0, 10, 2, zero)));
        b.write(&region(0, 10), Few1::One(Rows::one(0, 10, 2, input(7, 0))));
        assert_eq!(
            b.read_one(&region(9, 1)).and_then(|v| v.ident()),
            Some((16, 0))
        );
        // Across bands: the first keeps its rows before, the last its rows after.
        b.write(&region(0, 4), Few1::One(Rows::one(0, 4, 2, zero)));
        b.write(&region(2, 4), Few1::One(Rows::one(0, 4, 2, input(500, 0))));
        let rows = b.read(&region(0, 10));
        let got: Vec<_> = rows
            .iter()
            .map(|rw| (rw.r0, rw.r1, rw.cols.len(), rw.cols[0].2.ident()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 2, 1, None),
                (2, 6, 1, Some((500, 0))),
                (6, 10, 1, Some((13, 0)))
            ]
        );
        // A write continuing its neighbours on both sides joins all three.
        b.write(&region(0, 2), Few1::One(Rows::one(0, 2, 2, input(498, 0))));
        b.write(&region(6, 4), Few1::One(Rows::one(0, 4, 2, input(504, 0))));
        b.write(&region(1, 7), Few1::One(Rows::one(0, 7, 2, input(499, 0))));
        assert_eq!(b.read(&region(0, 10)).len(), 1);
        assert_eq!(
            b.read_one(&region(0, 10)).and_then(|v| v.ident()),
            Some((498, 0))
        );
        // A never-written cell is not one set rectangle.
        assert!(Buf::new(4, 2, 1).read_one(&region(0, 4)).is_none());
    }

    #[test]
    fn aligned_inputs_refine_to_their_runs() {
        let two = |tok: u32| Rows {
            r0: 0,
            r1: 3,
            cols: [(0, 2, input(tok, 0)), (2, 4, input(tok + 50, 2))]
                .into_iter()
                .collect(),
        };
        let a = vec![two(10), Rows::one(3, 5, 4, input(13, 0))];
        let b = vec![two(20), Rows::one(3, 5, 4, input(23, 0))];
        let ab: [&[Rows]; 2] = [&a, &b];
        let refined = refine(&ab);
        assert!(matches!(refined, Refined::Aligned(_)));
        let got: Vec<_> = refined
            .iter()
            .map(|c| {
                (
                    c.r0,
                    c.r1,
                    c.c0,
                    c.c1,
                    (0..c.n()).map(|i| c.val(i).ident()).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 3, 0, 2, vec![Some((10, 0)), Some((20, 0))]),
                (0, 3, 2, 4, vec![Some((60, 2)), Some((70, 2))]),
                (3, 5, 0, 4, vec![Some((13, 0)), Some((23, 0))]),
            ]
        );
        // The same cells as the general path, which a one-row shift forces.
        let c = vec![
            Rows::one(0, 1, 4, input(10, 0)),
            Rows::one(1, 5, 4, input(11, 0)),
        ];
        let d = vec![Rows::one(0, 5, 4, input(30, 0))];
        let cd: [&[Rows]; 2] = [&c, &d];
        let refined = refine(&cd);
        let cells: Vec<_> = refined
            .iter()
            .map(|x| (x.r0, x.r1, x.val(1).ident()))
            .collect();
        assert_eq!(cells, vec![(0, 1, Some((30, 0))), (1, 5, Some((31, 0)))]);
        assert!(!aligned(&cd));
    }
}
