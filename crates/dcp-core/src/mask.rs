//! Attention masks as compact row-range descriptions.
//!
//! Every mask kind compiles to a list of [`RowSegment`]s: a run of query rows in which each row
//! attends a few key ranges whose ends move linearly with the row (`c + slope·i`, slope 0 or 1).
//! Causal is one segment with one range; lambda is two segments; user-given ranges compress runs of
//! identical rows. From this form we get, without per-token work, the exact number of attended
//! elements of any (query range × key range) tile ([`CompiledMask::count_tile`]), and the per-row
//! ranges that executors consume ([`CompiledMask::row_ranges`]).
//!
//! Within a row, ranges are sorted, disjoint and non-empty; keys lie in `[0, len)`. Attention never
//! crosses sequences, so coordinates are positions inside the sequence.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;

/// A mask kind with its parameters, as the user gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskSpec {
    /// Row i attends `[0, i+1)`.
    Causal,
    /// Bidirectional: every row attends the whole sequence.
    Full,
    /// Row i attends the last `window` tokens up to itself: `[max(0, i-window+1), i+1)`.
    SlidingWindow { window: u32 },
    /// `sink` attention-sink tokens plus a causal window of `window` tokens.
    Lambda { sink: u32, window: u32 },
    /// A question (the first ⌊frac·L⌋ tokens, causal) and `answers` answers of ⌊(L−nq)/answers⌋
    /// tokens (the last absorbs the remainder); each answer sees the question and itself, causally.
    SharedQuestion { question_frac: f64, answers: u32 },
    /// The reference's causal-blockwise mask with `block`-token blocks and `local` local blocks:
    /// the first and the last block are causal over everything before them; a middle row i sees the
    /// first block and `[max(block, i − local·block), i+1)`.
    CausalBlockwise { block: u32, local: u32 },
    /// Bidirectional prefix of `prefix` tokens, causal after it.
    PrefixLm { prefix: u32 },
    /// User-given key ranges per row (`rows[i]` = list of `[start, end)`), any number per row.
    Ranges { rows: Vec<Vec<(u32, u32)>> },
}

impl MaskSpec {
    /// Paper parameters: lambda = 64 sink + 4096 window.
    pub fn lambda() -> Self {
        MaskSpec::Lambda {
            sink: 64,
            window: 4096,
        }
    }
    /// Paper parameters: question = 20 % of the sequence, 4 answers.
    pub fn shared_question() -> Self {
        MaskSpec::SharedQuestion {
            question_frac: 0.2,
            answers: 4,
        }
    }
    /// Paper parameters: 256-token blocks, 2 local blocks.
    pub fn causal_blockwise() -> Self {
        MaskSpec::CausalBlockwise {
            block: 256,
            local: 2,
        }
    }

    /// Parses the CLI form: `causal`, `full`, `sliding-window:W`, `lambda[:S:W]`,
    /// `shared-question[:FRAC:N]`, `causal-blockwise[:B:K]`, `prefix-lm:P`. A known kind with the
    /// wrong number of parameters or a parameter that is not a number is a
    /// [`SpecError::BadMaskSpec`] saying which; an unknown kind is [`SpecError::UnknownMask`].
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("").trim().replace('_', "-");
        let args: Vec<&str> = parts.map(str::trim).collect();
        let bad = |msg: String| SpecError::BadMaskSpec {
            spec: s.to_string(),
            msg,
        };
        // Checks the parameter count against the kind's forms.
        let arity = |counts: &[usize], forms: &str| -> Result<(), SpecError> {
            if counts.contains(&args.len()) {
                Ok(())
            } else {
                Err(bad(format!(
                    "{kind} takes {forms}, got {} parameter(s)",
                    args.len()
                )))
            }
        };
        let num = |i: usize, name: &str| -> Result<u32, SpecError> {
            args[i].parse().map_err(|_| {
                bad(format!(
                    "{name} `{}` is not a whole number (0 to {})",
                    args[i],
                    u32::MAX
                ))
            })
        };
        let m = match kind.as_str() {
            "causal" => {
                arity(&[0], "no parameters")?;
                MaskSpec::Causal
            }
            "full" | "bidirectional" => {
                arity(&[0], "no parameters")?;
                MaskSpec::Full
            }
            "sliding-window" | "window" => {
                arity(
                    &[1],
                    "one parameter (sliding-window:W, the window in tokens)",
                )?;
                MaskSpec::SlidingWindow {
                    window: num(0, "window")?,
                }
            }
            "lambda" => {
                arity(
                    &[0, 2],
                    "no parameters (64 sink + 4096 window) or two (lambda:SINK:WINDOW)",
                )?;
                if args.is_empty() {
                    MaskSpec::lambda()
                } else {
                    MaskSpec::Lambda {
                        sink: num(0, "sink")?,
                        window: num(1, "window")?,
                    }
                }
            }
            "shared-question" => {
                arity(
                    &[0, 2],
                    "no parameters (0.2, 4) or two (shared-question:FRAC:ANSWERS)",
                )?;
                if args.is_empty() {
                    MaskSpec::shared_question()
                } else {
                    MaskSpec::SharedQuestion {
                        question_frac: args[0].parse().map_err(|_| {
                            bad(format!(
                                "question fraction `{}` is not a number (0 to 1)",
                                args[0]
                            ))
                        })?,
                        answers: num(1, "answers")?,
                    }
                }
            }
            "causal-blockwise" => {
                arity(
                    &[0, 2],
                    "no parameters (256, 2) or two (causal-blockwise:BLOCK:LOCAL)",
                )?;
                if args.is_empty() {
                    MaskSpec::causal_blockwise()
                } else {
                    MaskSpec::CausalBlockwise {
                        block: num(0, "block")?,
                        local: num(1, "local")?,
                    }
                }
            }
            "prefix-lm" => {
                arity(
                    &[1],
                    "one parameter (prefix-lm:P, the bidirectional prefix in tokens)",
                )?;
                MaskSpec::PrefixLm {
                    prefix: num(0, "prefix")?,
                }
            }
            _ => return Err(SpecError::UnknownMask(s.to_string())),
        };
        Ok(m)
    }

    /// Short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            MaskSpec::Causal => "causal",
            MaskSpec::Full => "full",
            MaskSpec::SlidingWindow { .. } => "sliding-window",
            MaskSpec::Lambda { .. } => "lambda",
            MaskSpec::SharedQuestion { .. } => "shared-question",
            MaskSpec::CausalBlockwise { .. } => "causal-blockwise",
            MaskSpec::PrefixLm { .. } => "prefix-lm",
            MaskSpec::Ranges { .. } => "ranges",
        }
    }

    /// Checks parameters for a sequence of `len` tokens (`seq` is its index, for messages).
    pub fn validate(&self, seq: usize, len: u32) -> Result<(), SpecError> {
        let bad = |kind: &'static str, msg: &str| {
            Err(SpecError::BadMaskParam {
                seq,
                kind,
                msg: msg.into(),
            })
        };
        match *self {
            MaskSpec::SlidingWindow { window: 0 } => bad("sliding-window", "window must be ≥ 1"),
            MaskSpec::Lambda { window: 0, .. } => bad("lambda", "window must be ≥ 1"),
            MaskSpec::SharedQuestion {
                question_frac,
                answers,
            } => {
                if !(0.0..=1.0).contains(&question_frac) {
                    bad("shared-question", "question fraction must be in [0, 1]")
                } else if answers == 0 {
                    bad("shared-question", "at least one answer")
                } else {
                    Ok(())
                }
            }
            MaskSpec::CausalBlockwise { block: 0, .. } => {
                bad("causal-blockwise", "block must be ≥ 1")
            }
            MaskSpec::Ranges { ref rows } => {
                if rows.len() != len as usize {
                    return Err(SpecError::RangeRowCount {
                        seq,
                        rows: rows.len(),
                        len,
                    });
                }
                for (row, rs) in rows.iter().enumerate() {
                    for &(start, end) in rs {
                        if start > end {
                            return Err(SpecError::RangeStartAfterEnd {
                                seq,
                                row,
                                start,
                                end,
                            });
                        }
                        if end > len {
                            return Err(SpecError::RangeOutOfBounds {
                                seq,
                                row,
                                start,
                                end,
                                len,
                            });
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Compiles the mask for a sequence of `len` tokens. Call [`MaskSpec::validate`] first.
    pub fn compile(&self, len: u32) -> CompiledMask {
        let l = len as i64;
        let causal =
            |r0: i64, r1: i64| RowSegment::new(r0, r1, vec![LinRange::new(Lin::c(0), Lin::row(1))]);
        let mut segs = Vec::new();
        match *self {
            MaskSpec::Causal => segs.push(causal(0, l)),
            MaskSpec::Full => segs.push(RowSegment::new(
                0,
                l,
                vec![LinRange::new(Lin::c(0), Lin::c(l))],
            )),
            MaskSpec::SlidingWindow { window } => {
                let w = window as i64;
                segs.push(causal(0, w.min(l)));
                segs.push(RowSegment::new(
                    w,
                    l,
                    vec![LinRange::new(Lin::row(1 - w), Lin::row(1))],
                ));
            }
            MaskSpec::Lambda { sink, window } => {
                let (s, w) = (sink as i64, window as i64);
                // Sink and window touch or overlap while i − w + 1 ≤ s.
                segs.push(causal(0, (s + w).min(l)));
                segs.push(RowSegment::new(
                    s + w,
                    l,
                    vec![
                        LinRange::new(Lin::c(0), Lin::c(s)),
                        LinRange::new(Lin::row(1 - w), Lin::row(1)),
                    ],
                ));
            }
            MaskSpec::SharedQuestion {
                question_frac,
                answers,
            } => {
                let nq = ((question_frac * len as f64).floor() as i64).clamp(0, l);
                let n = answers as i64;
                let pa = (l - nq) / n;
                // Question and first answer: plain causal.
                let first_end = if n == 1 || pa == 0 { l } else { nq + pa };
                segs.push(causal(0, first_end));
                if pa > 0 {
                    for a in 1..n {
                        let start = nq + a * pa;
                        let end = if a == n - 1 { l } else { start + pa };
                        segs.push(RowSegment::new(
                            start,
                            end,
                            vec![
                                LinRange::new(Lin::c(0), Lin::c(nq)),
                                LinRange::new(Lin::c(start), Lin::row(1)),
                            ],
                        ));
                    }
                }
            }
            MaskSpec::CausalBlockwise { block, local } => {
                let (b, k) = (block as i64, local as i64);
                let nb = (l + b - 1) / b;
                if nb <= 2 {
                    segs.push(causal(0, l));
                } else {
                    let last_start = (nb - 1) * b;
                    // Rows whose local window reaches back into the first block are plain causal.
                    let split = ((k + 1) * b + 1).clamp(b, last_start);
                    segs.push(causal(0, split));
                    segs.push(RowSegment::new(
                        split,
                        last_start,
                        vec![
                            LinRange::new(Lin::c(0), Lin::c(b)),
                            LinRange::new(Lin::row(-k * b), Lin::row(1)),
                        ],
                    ));
                    segs.push(causal(last_start, l));
                }
            }
            MaskSpec::PrefixLm { prefix } => {
                let p = (prefix as i64).min(l);
                segs.push(RowSegment::new(
                    0,
                    p,
                    vec![LinRange::new(Lin::c(0), Lin::c(p))],
                ));
                segs.push(causal(p, l));
            }
            MaskSpec::Ranges { ref rows } => {
                let norm: Vec<Vec<(u32, u32)>> = rows.iter().map(|r| normalize_ranges(r)).collect();
                let mut i = 0usize;
                while i < norm.len() {
                    let mut j = i + 1;
                    while j < norm.len() && norm[j] == norm[i] {
                        j += 1;
                    }
                    let ranges = norm[i]
                        .iter()
                        .map(|&(s, e)| LinRange::new(Lin::c(s as i64), Lin::c(e as i64)))
                        .collect();
                    segs.push(RowSegment::new(i as i64, j as i64, ranges));
                    i = j;
                }
            }
        }
        segs.retain(|s| s.rows.0 < s.rows.1);
        CompiledMask { len, segs }
    }
}

/// Sorts, drops empty ranges and merges overlapping or touching ones.
pub fn normalize_ranges(r: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = r.iter().copied().filter(|(s, e)| s < e).collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `c + slope·i` where `i` is the row index (slope 0 or 1 in built-in masks; any in general).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lin {
    pub c: i64,
    pub slope: i64,
}

impl Lin {
    pub const fn c(c: i64) -> Self {
        Lin { c, slope: 0 }
    }
    /// `i + c`.
    pub const fn row(c: i64) -> Self {
        Lin { c, slope: 1 }
    }
    #[inline]
    pub fn at(&self, i: i64) -> i64 {
        self.c + self.slope * i
    }
}

/// A key range `[start(i), end(i))` whose ends move with the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinRange {
    pub start: Lin,
    pub end: Lin,
}

impl LinRange {
    pub const fn new(start: Lin, end: Lin) -> Self {
        LinRange { start, end }
    }
}

/// Rows `[rows.0, rows.1)` all attend `ranges` (evaluated per row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSegment {
    pub rows: (i64, i64),
    pub ranges: Vec<LinRange>,
}

impl RowSegment {
    fn new(r0: i64, r1: i64, ranges: Vec<LinRange>) -> Self {
        RowSegment {
            rows: (r0, r1),
            ranges,
        }
    }
}

/// A mask compiled for one sequence length.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledMask {
    pub len: u32,
    pub segs: Vec<RowSegment>,
}

impl CompiledMask {
    /// The key ranges of row `i` (sorted, disjoint, non-empty).
    pub fn row_ranges(&self, i: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(2);
        self.row_ranges_into(i, &mut out);
        out
    }

    /// Like [`CompiledMask::row_ranges`], appending to `out` (cleared first).
    pub fn row_ranges_into(&self, i: u32, out: &mut Vec<(u32, u32)>) {
        out.clear();
        let i = i as i64;
        let idx = self.segs.partition_point(|s| s.rows.1 <= i);
        if let Some(seg) = self.segs.get(idx) {
            if seg.rows.0 <= i {
                for r in &seg.ranges {
                    let s = r.start.at(i).max(0);
                    let e = r.end.at(i).min(self.len as i64);
                    if s < e {
                        out.push((s as u32, e as u32));
                    }
                }
            }
        }
    }

    /// Number of attended (row, key) pairs with row in `[q0, q1)` and key in `[k0, k1)`,
    /// computed in closed form per segment.
    pub fn count_tile(&self, q0: u32, q1: u32, k0: u32, k1: u32) -> u64 {
        let (q0, q1, k0, k1) = (
            q0 as i64,
            q1 as i64,
            k0 as i64,
            (k1 as i64).min(self.len as i64),
        );
        let mut total = 0u64;
        let first = self.segs.partition_point(|s| s.rows.1 <= q0);
        for seg in &self.segs[first..] {
            if seg.rows.0 >= q1 {
                break;
            }
            let a = seg.rows.0.max(q0);
            let b = seg.rows.1.min(q1);
            for r in &seg.ranges {
                total += sum_clamped_overlap(r, a, b, k0.max(0), k1);
            }
        }
        total
    }

    /// Attended pairs of the whole sequence.
    pub fn count_all(&self) -> u64 {
        self.count_tile(0, self.len, 0, self.len)
    }

    /// Key intervals that every row of `[q0, q1)` attends in full, into `out` (cleared first):
    /// per range of the one mask segment holding all those rows, its intersection over the rows.
    /// Conservative: nothing when the rows span several segments.
    pub fn common_keys_into(&self, q0: u32, q1: u32, out: &mut Vec<(u32, u32)>) {
        out.clear();
        if q0 >= q1 {
            return;
        }
        let (a, b) = (q0 as i64, q1 as i64 - 1);
        let idx = self.segs.partition_point(|s| s.rows.1 <= a);
        let Some(seg) = self.segs.get(idx) else {
            return;
        };
        if seg.rows.0 > a || seg.rows.1 <= b {
            return;
        }
        for r in &seg.ranges {
            // Linear ends: the latest start and the earliest end are at the first or last row.
            let s = r.start.at(a).max(r.start.at(b)).max(0);
            let e = r.end.at(a).min(r.end.at(b)).min(self.len as i64);
            if s < e {
                out.push((s as u32, e as u32));
            }
        }
    }

    /// Per range of every segment meeting rows `[q0, q1)`, the smallest key interval holding
    /// what those rows attend through it, into `out` (cleared first; unsorted, may overlap):
    /// keys outside all of them are attended by none of the rows.
    pub fn key_extents_into(&self, q0: u32, q1: u32, out: &mut Vec<(u32, u32)>) {
        out.clear();
        self.for_each_key_extent(q0, q1, |s, e| out.push((s as u32, e as u32)));
    }

    /// The smallest key interval `[lo, hi)` holding every key attended by rows `[q0, q1)`,
    /// or `None` when those rows attend nothing.
    pub fn key_span(&self, q0: u32, q1: u32) -> Option<(u32, u32)> {
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        self.for_each_key_extent(q0, q1, |s, e| {
            lo = lo.min(s);
            hi = hi.max(e);
        });
        (lo < hi).then_some((lo as u32, hi as u32))
    }

    /// Calls `f(s, e)` with the non-empty key extent of each range of every segment meeting
    /// rows `[q0, q1)` (clamped to the sequence).
    fn for_each_key_extent(&self, q0: u32, q1: u32, mut f: impl FnMut(i64, i64)) {
        let (q0, q1) = (q0 as i64, q1 as i64);
        let first = self.segs.partition_point(|s| s.rows.1 <= q0);
        for seg in &self.segs[first..] {
            if seg.rows.0 >= q1 {
                break;
            }
            let a = seg.rows.0.max(q0);
            let b = seg.rows.1.min(q1) - 1;
            for r in &seg.ranges {
                // Linear ends: extremes are at the segment's first or last row.
                let s = r.start.at(a).min(r.start.at(b)).max(0);
                let e = r.end.at(a).max(r.end.at(b)).min(self.len as i64);
                if s < e {
                    f(s, e);
                }
            }
        }
    }
}

/// Σ_{i∈[a,b)} max(0, min(end(i), k1) − max(start(i), k0)), exactly, in O(1).
fn sum_clamped_overlap(r: &LinRange, a: i64, b: i64, k0: i64, k1: i64) -> u64 {
    if a >= b || k0 >= k1 {
        return 0;
    }
    // Breakpoints where the clamps switch: start(i) = k0 and end(i) = k1.
    let mut cuts = vec![a, b];
    for (lin, k) in [(r.start, k0), (r.end, k1)] {
        if lin.slope != 0 {
            // lin.at(i) = k  ⇔  i = (k − c) / slope; cut on both sides of it.
            let x = (k - lin.c).div_euclid(lin.slope);
            for p in [x, x + 1] {
                if p > a && p < b {
                    cuts.push(p);
                }
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut total: i128 = 0;
    for w in cuts.windows(2) {
        let (p, q) = (w[0], w[1]);
        // On [p, q) both clamps are fixed, so g(i) = min(end,k1) − max(start,k0) is linear.
        let g = |i: i64| r.end.at(i).min(k1) - r.start.at(i).max(k0);
        let (g0, g1) = (g(p), g(q - 1));
        total += sum_pos_linear(p, q, g0, g1);
    }
    total as u64
}

/// Σ_{i∈[p,q)} max(0, g(i)) for linear g with g(p)=g0, g(q−1)=g1 (integer slope).
fn sum_pos_linear(p: i64, q: i64, g0: i64, g1: i64) -> i128 {
    let n = q - p;
    if n <= 0 {
        return 0;
    }
    if n == 1 {
        return g0.max(0) as i128;
    }
    let slope = (g1 - g0) / (n - 1);
    debug_assert_eq!(g0 + slope * (n - 1), g1);
    let series = |first: i64, count: i64, d: i64| -> i128 {
        if count <= 0 {
            return 0;
        }
        let last = first + d * (count - 1);
        (first as i128 + last as i128) * count as i128 / 2
    };
    if slope == 0 {
        return g0.max(0) as i128 * n as i128;
    }
    if slope > 0 {
        // Positive from the first i with g(i) > 0.
        let skip = if g0 > 0 { 0 } else { (-g0) / slope + 1 };
        let skip = skip.min(n);
        series(g0 + slope * skip, n - skip, slope)
    } else {
        // Positive while g(i) > 0.
        if g0 <= 0 {
            return 0;
        }
        let cnt = ((g0 - 1) / (-slope) + 1).min(n);
        series(g0, cnt, slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(m: &CompiledMask, q0: u32, q1: u32, k0: u32, k1: u32) -> u64 {
        (q0..q1)
            .map(|i| {
                m.row_ranges(i)
                    .iter()
                    .map(|&(s, e)| (e.min(k1) as i64 - s.max(k0) as i64).max(0) as u64)
                    .sum::<u64>()
            })
            .sum()
    }

    fn kinds() -> Vec<MaskSpec> {
        vec![
            MaskSpec::Causal,
            MaskSpec::Full,
            MaskSpec::SlidingWindow { window: 7 },
            MaskSpec::Lambda { sink: 3, window: 5 },
            MaskSpec::SharedQuestion {
                question_frac: 0.2,
                answers: 4,
            },
            MaskSpec::SharedQuestion {
                question_frac: 0.5,
                answers: 1,
            },
            MaskSpec::CausalBlockwise { block: 4, local: 2 },
            MaskSpec::PrefixLm { prefix: 9 },
        ]
    }

    /// Reference definitions, row by row, straight from the mask descriptions.
    fn naive_row(kind: &MaskSpec, len: u32, i: u32) -> Vec<(u32, u32)> {
        let i64_ = i as i64;
        let r: Vec<(i64, i64)> = match *kind {
            MaskSpec::Causal => vec![(0, i64_ + 1)],
            MaskSpec::Full => vec![(0, len as i64)],
            MaskSpec::SlidingWindow { window } => {
                vec![((i64_ - window as i64 + 1).max(0), i64_ + 1)]
            }
            MaskSpec::Lambda { sink, window } => {
                vec![
                    (0, (sink as i64).min(i64_ + 1)),
                    ((i64_ - window as i64 + 1).max(0), i64_ + 1),
                ]
            }
            MaskSpec::SharedQuestion {
                question_frac,
                answers,
            } => {
                let nq = (question_frac * len as f64).floor() as i64;
                let pa = (len as i64 - nq) / answers as i64;
                if i64_ < nq {
                    vec![(0, i64_ + 1)]
                } else {
                    let a = if pa == 0 {
                        answers as i64 - 1
                    } else {
                        ((i64_ - nq) / pa).min(answers as i64 - 1)
                    };
                    vec![(0, nq), (nq + a * pa, i64_ + 1)]
                }
            }
            MaskSpec::CausalBlockwise { block, local } => {
                let b = block as i64;
                let nb = (len as i64 + b - 1) / b;
                let bid = i64_ / b;
                if bid == 0 || bid == nb - 1 {
                    vec![(0, i64_ + 1)]
                } else {
                    vec![(0, b), ((i64_ - local as i64 * b).max(b), i64_ + 1)]
                }
            }
            MaskSpec::PrefixLm { prefix } => {
                if i < prefix {
                    vec![(0, (prefix.min(len)) as i64)]
                } else {
                    vec![(0, i64_ + 1)]
                }
            }
            MaskSpec::Ranges { ref rows } => rows[i as usize]
                .iter()
                .map(|&(s, e)| (s as i64, e as i64))
                .collect(),
        };
        let r: Vec<(u32, u32)> = r
            .into_iter()
            .map(|(s, e)| (s.max(0) as u32, e.max(0) as u32))
            .collect();
        normalize_ranges(&r)
    }

    #[test]
    fn compiled_rows_match_definitions() {
        for kind in kinds() {
            for len in [1u32, 2, 3, 5, 8, 13, 17, 31, 40] {
                let m = kind.compile(len);
                for i in 0..len {
                    assert_eq!(
                        m.row_ranges(i),
                        naive_row(&kind, len, i),
                        "{kind:?} len {len} row {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn tile_counts_match_brute_force() {
        let mut user_rows = vec![];
        for i in 0..23u32 {
            user_rows.push(vec![
                (i / 3, i / 2 + 1),
                (i.min(20), (i + 3).min(23)),
                (0, 0),
            ]);
        }
        let mut all = kinds();
        all.push(MaskSpec::Ranges { rows: user_rows });
        for kind in all {
            for len in [1u32, 7, 23, 40] {
                if let MaskSpec::Ranges { rows } = &kind {
                    if rows.len() != len as usize {
                        continue;
                    }
                }
                let m = kind.compile(len);
                for bs in [1u32, 3, 4, 8] {
                    let nb = len.div_ceil(bs);
                    for qb in 0..nb {
                        for kb in 0..nb {
                            let (q0, q1) = (qb * bs, ((qb + 1) * bs).min(len));
                            let (k0, k1) = (kb * bs, ((kb + 1) * bs).min(len));
                            assert_eq!(
                                m.count_tile(q0, q1, k0, k1),
                                brute(&m, q0, q1, k0, k1),
                                "{kind:?} {len} {bs} {qb} {kb}"
                            );
                        }
                    }
                    // key span covers every attended key
                    if let Some((lo, hi)) = m.key_span(0, len) {
                        assert_eq!(m.count_tile(0, len, lo, hi), m.count_all());
                    }
                }
            }
        }
    }

    #[test]
    fn parse_and_validate() {
        assert_eq!(
            MaskSpec::parse("lambda").unwrap(),
            MaskSpec::Lambda {
                sink: 64,
                window: 4096
            }
        );
        assert_eq!(
            MaskSpec::parse("sliding-window:128").unwrap(),
            MaskSpec::SlidingWindow { window: 128 }
        );
        assert!(matches!(
            MaskSpec::parse("nope"),
            Err(SpecError::UnknownMask(_))
        ));
        // Known kinds with bad parameters say what is wrong, not "unknown kind".
        for (spec, says) in [
            ("sliding-window:abc", "window `abc` is not a whole number"),
            ("lambda:64", "lambda takes no parameters"),
            ("prefix-lm", "prefix-lm takes one parameter"),
            ("causal:3", "causal takes no parameters"),
            ("shared-question:x:4", "question fraction `x`"),
        ] {
            let e = MaskSpec::parse(spec).unwrap_err();
            assert!(matches!(e, SpecError::BadMaskSpec { .. }), "{spec}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(says) && msg.contains("accepted forms"),
                "{msg}"
            );
            assert!(msg.contains(&format!("`{spec}`")), "{msg}");
        }
        assert_eq!(
            MaskSpec::parse("causal-blockwise:128:3").unwrap(),
            MaskSpec::CausalBlockwise {
                block: 128,
                local: 3
            }
        );
        let bad = MaskSpec::Ranges {
            rows: vec![vec![(2, 1)], vec![]],
        };
        assert_eq!(
            bad.validate(3, 2),
            Err(SpecError::RangeStartAfterEnd {
                seq: 3,
                row: 0,
                start: 2,
                end: 1
            })
        );
        let oob = MaskSpec::Ranges {
            rows: vec![vec![(0, 1)], vec![(0, 5)]],
        };
        assert!(matches!(
            oob.validate(0, 2),
            Err(SpecError::RangeOutOfBounds { row: 1, .. })
        ));
    }
}
