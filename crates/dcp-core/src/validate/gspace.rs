//! The validator's token coordinates: *layout rows*. Device `d`'s layout row `r` (the row of
//! its caller tensors holding that token) is the global row `G = base(d) + r`. The checked
//! layout holds every token once, so `G` names a token as well as `(sequence, token)` does; but
//! where a device holds many short spans (a ring plan's pieces of every sequence), its rows are
//! one run of `G` and not many runs of tokens. Buffer contents are therefore kept in `G`
//! ([`super::state`]): a device's whole input, a whole ring buffer or a whole partial output is
//! one rectangle. Tokens are looked up only where the mask and the pairs' hash need them:
//! splitting a work's operands into [`Piece`]s, and the final output check.

use crate::plan::{Plan, TokenSpan};

/// A layout span in `G`: rows `[g0, g0 + len)` hold tokens `[tok, tok + len)` of `seq`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GSpan {
    pub g0: u64,
    pub len: u32,
    pub seq: u32,
    pub tok: u32,
}

/// Layout rows of all devices, in `G` order.
pub(super) struct GMap {
    base: Vec<u64>,
    spans: Vec<GSpan>,
    /// Per bucket of `2^shift` global rows, the device holding its first row ([`GMap::device_at`]
    /// steps on from there: a bucket is at most a quarter of an average device's rows). A search
    /// over the bases cost ≈ 4 % of validating a zigzag plan (a KV block's device is rarely the
    /// hint's), mostly in mispredicted branches.
    first: Vec<u32>,
    shift: u32,
}

/// Rows `[r0, r1)` of an operand (work rows or concatenated key positions) holding tokens of one
/// sequence from `tok` on, at global rows from `g0` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Piece {
    pub r0: u32,
    pub r1: u32,
    pub seq: u32,
    pub tok: u32,
    pub g0: u64,
    /// Index of the span in [`GMap::spans`].
    pub span: u32,
    /// Whether the piece is its whole span.
    pub whole: bool,
}

impl GMap {
    /// From a plan whose layout passed [`super::layout::check_layout`].
    pub fn new(plan: &Plan) -> Self {
        Self::of_layouts(plan.devices.iter().map(|d| &d.layout[..]))
    }

    /// The map of devices' layouts, in device order.
    fn of_layouts<'p>(layouts: impl ExactSizeIterator<Item = &'p [TokenSpan]>) -> Self {
        let devices = layouts.len();
        let mut base = Vec::with_capacity(devices + 1);
        let mut spans = Vec::new();
        let mut g = 0u64;
        for layout in layouts {
            base.push(g);
            for s in layout {
                spans.push(GSpan {
                    g0: g,
                    len: s.len,
                    seq: s.seq,
                    tok: s.start,
                });
                g += s.len as u64;
            }
        }
        base.push(g);
        // Buckets of a power of two rows, about four per device.
        let n = devices.max(1) as u64;
        let shift = (g / (4 * n)).max(1).ilog2();
        let buckets = g.div_ceil(1 << shift) as usize;
        let mut first = Vec::with_capacity(buckets);
        let mut d = 0usize;
        for b in 0..buckets as u64 {
            while base[d + 1] <= b << shift {
                d += 1;
            }
            first.push(d as u32);
        }
        GMap {
            base,
            spans,
            first,
            shift,
        }
    }

    /// `G` of device `dev`'s layout row 0.
    pub fn base(&self, dev: u32) -> u64 {
        self.base[dev as usize]
    }

    pub fn spans(&self) -> &[GSpan] {
        &self.spans
    }

    /// `(first base ≤ g, first base after g)`: the bounds of the device rows holding `g` (the
    /// total after the last device's rows; `g` below the total).
    pub fn device_bounds(&self, g: u64) -> (u64, u64) {
        let i = self.base.partition_point(|&b| b <= g);
        (
            self.base[i.saturating_sub(1)],
            self.base.get(i).copied().unwrap_or(u64::MAX),
        )
    }

    /// The device whose rows hold `g` (`g` below the total; devices without rows hold none),
    /// trying `hint` first.
    #[inline]
    pub fn device_at(&self, g: u64, hint: usize) -> usize {
        let d = match self.base.get(hint..hint + 2) {
            Some(&[b0, b1]) if b0 <= g && g < b1 => hint,
            _ => match self.first.get((g >> self.shift) as usize) {
                Some(&d) => {
                    // The bucket's first row is in device `d` or before `g`'s device.
                    let mut d = d as usize;
                    while self.base.get(d + 1).is_some_and(|&b| b <= g) {
                        d += 1;
                    }
                    d
                }
                None => self.base.partition_point(|&b| b <= g) - 1,
            },
        };
        debug_assert!(
            d == hint || d == self.base.partition_point(|&b| b <= g) - 1,
            "device_at({g}) = {d}"
        );
        d
    }

    /// The device whose rows are exactly global rows `[g, g + len)` (`len > 0`), if any.
    pub fn device_run(&self, g: u64, len: u32) -> Option<usize> {
        let i = self.base.partition_point(|&b| b <= g).checked_sub(1)?;
        let end = *self.base.get(i + 1)?;
        (self.base[i] == g && end - g == len as u64).then_some(i)
    }

    /// Index of the span holding `g` (`g` below the total).
    pub fn span_at(&self, g: u64) -> usize {
        self.spans.partition_point(|s| s.g0 + s.len as u64 <= g)
    }

    /// `(sequence, token)` of global row `g`, if any device holds it.
    pub fn locate(&self, g: u64) -> Option<(u32, u32)> {
        let s = self.spans.get(self.span_at(g))?;
        (s.g0 <= g).then(|| (s.seq, s.tok + (g - s.g0) as u32))
    }

    /// For messages: `sequence S token T head H` (or the raw row when no device holds it).
    pub fn name(&self, g: u64, head: u32) -> String {
        match self.locate(g) {
            Some((seq, tok)) => format!("sequence {seq} token {tok} head {head}"),
            None => format!("global row {g} head {head}"),
        }
    }

    /// Calls `out` with the pieces of rows `[r0, r1)` holding global rows from `g0` on (all held:
    /// the rows were read from inputs, whose rows are all in the layout).
    pub fn pieces(&self, r0: u32, r1: u32, g0: u64, out: &mut impl FnMut(Piece)) {
        let mut k = self.span_at(g0);
        let (mut r, mut g) = (r0, g0);
        while r < r1 {
            let s = &self.spans[k];
            let n = ((s.g0 + s.len as u64 - g) as u32).min(r1 - r);
            out(Piece {
                r0: r,
                r1: r + n,
                seq: s.seq,
                tok: s.tok + (g - s.g0) as u32,
                g0: g,
                span: k as u32,
                whole: n == s.len,
            });
            r += n;
            g += n as u64;
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucketed device lookup finds what a search of the bases finds, with devices of no
    /// rows among them, from every hint.
    #[test]
    fn device_at_matches_a_search() {
        let span = |len| TokenSpan {
            seq: 0,
            start: 0,
            len,
        };
        let layouts: Vec<Vec<TokenSpan>> = vec![
            vec![span(5)],
            vec![],
            vec![span(1), span(2)],
            vec![span(700)],
            vec![],
            vec![],
            vec![span(1)],
            vec![span(64), span(64)],
        ];
        let m = GMap::of_layouts(layouts.iter().map(|l| &l[..]));
        let total = m.base(layouts.len() as u32);
        assert_eq!(total, 5 + 3 + 700 + 1 + 128);
        for g in 0..total {
            let want = m.base.partition_point(|&b| b <= g) - 1;
            for hint in 0..=layouts.len() + 1 {
                assert_eq!(m.device_at(g, hint), want, "row {g}, hint {hint}");
            }
            assert!(m.base(want as u32) <= g && g < m.base(want as u32 + 1));
        }
    }
}
