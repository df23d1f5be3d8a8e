//! The order and size of a backward launch's tasks (`DCP_CUDA_BWD_ORDER`).
//!
//! A backward task is one kv tile's q-tile list (or a piece of it) for one KV head; the persistent
//! grid's CTAs claim tasks in launch order as they finish theirs. Lists longer than the launch's
//! `chunk` are cut into pieces (their dK/dV added atomically) so that long lists (attention sinks,
//! the first kv tiles of a causal sequence) do not serialise on one SM.
//!
//! * [`TaskOrder::List`]: pieces of `chunk`, lists in the order they were built (per work, kv
//!   tiles ascending).
//! * [`TaskOrder::Whole`]: no cut, one task per list (an ablation, session 36: +3-4 % where
//!   every list costs the same, but a list of masked steps then sets the makespan alone:
//!   one 8 096-token full-mask document -26 % / -37 % at D 128 / 64, causal 32K -4 %).
//! * [`TaskOrder::Even`] (default): the same order, but the lists that are split anyway are cut
//!   into pieces of the size `p` in `chunk / 2 ..= chunk` whose schedule on the grid ends first
//!   ([`even_piece`]: list scheduling of the tasks' step counts plus a per-task cost, one CTA per
//!   SM, in the order the launch claims them: longest first, as `WorkLists::finish` sorts a
//!   launch without L2 windows; `chunk` itself unless a smaller size ends at least 1 % earlier,
//!   since session 33: `even:G` sets that threshold, `DCP_CUDA_BWD_PIECE_LOG=1` prints each
//!   launch's model).
//!   Until session 32 the model scheduled the pieces in list order, which is the launch's only
//!   where the lists already fall in length: for Ulysses's head-split buffers of one causal
//!   sequence in the zigzag layout (chunks 0, 3, 1, 2) it modelled a tail the launch does not
//!   have and cut 282-tile pieces where the launch's own 498 were right (2x H200, 64K:
//!   backward kernel 21.6-22.6 ms against 19.4-20.2 with `list`;
//!   bench/results/gpu-x2-2026-11-30s32/). The grid's last
//!   round is what a launch of a few tasks per CTA loses: one 32K causal-blockwise sequence has
//!   4.7 tasks of ~125 us per CTA, its sink lists in pieces of 18 q tiles; in pieces of 14 its
//!   656 tasks fill five rounds (modelled makespan -5 %).
//!
//! Measured (bench/results/kernels-2026-11-29-kbw11b, call 2, 1x H200, alternated against
//! `list`): causal-blockwise backward +2.1 % at D 128 (kernel 746 -> 724 us) and +2.0 % at D 64,
//! one 8K full work +0.5 % / +4.4 %, shared-question (132 -> 117) and packed within ±0.7 %;
//! causal 32K, lambda and works1000 keep `chunk` (the same tasks as `list`).
//!
//! Measured and dropped (bench/results/kernels-2026-11-29-kbw11b, call 1): all pieces longest
//! first, split lists cut to a quarter of `chunk` (`lpt:4`): causal 32K backward -19 %,
//! causal-blockwise -6 %, lambda -4 % (the concurrent tasks no longer sweep neighbouring q tiles
//! together, so Q/dO and the dQ reductions leave L2; and each task costs ~4 steps of its own);
//! longest first with pieces of `chunk` (`lpt`): +-0 (packed -2 %).

/// How a backward launch orders and cuts its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrder {
    /// Pieces of `chunk` in list order (sessions up to 11).
    List,
    /// No list cut: every kv tile's q-tile list is one task (its dK/dV stored, not added in
    /// fp32, where the launch owns them). An ablation of the cuts (session 36).
    Whole,
    /// List order; split lists in pieces of the model-chosen size ([`even_piece`]), but only
    /// where that size's modelled makespan is at least `min_gain_bp` basis points (0.01 %)
    /// shorter than `chunk`'s.
    Even { min_gain_bp: u32 },
}

/// Unset `DCP_CUDA_BWD_ORDER` (bench/results/kernels-2026-11-29-kbw11b, call 2): cuts below
/// `chunk` only for a modelled gain of at least 1 % (session 33, bench/results/gpu-x2-2026-11-30s33:
/// gains under 1 % measured -2.3..+2.2 % with no relation to the modelled number; Ulysses's
/// 114 710-token backward, modelled +0.06 %, ran 2.0-2.3 % slower cut; causal-blockwise's 5 %
/// cut stays, +2.2 %).
pub const DEFAULT_ORDER: TaskOrder = TaskOrder::Even { min_gain_bp: 100 };

/// A task's cost beyond its steps, in steps (its K/V wait, the pipeline's ramp, the last dQ and
/// the dK/dV epilogue: ~20 K cycles against ~5.4 K per step in kbw11b's cycle counters).
pub const TASK_COST_STEPS: u64 = 4;

impl TaskOrder {
    /// Parses `DCP_CUDA_BWD_ORDER`: `list`, `even` (the default's gain threshold) or `even:G`
    /// (cut below `chunk` only for a modelled gain of at least G percent, 0 to 100).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        let bad = |o: &str, why: &str| format!("DCP_CUDA_BWD_ORDER={o}: {why}");
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_ORDER),
            Some("list") => Ok(TaskOrder::List),
            Some("whole") => Ok(TaskOrder::Whole),
            Some("even") => Ok(DEFAULT_ORDER),
            Some(o) => match o.strip_prefix("even:") {
                Some(g) => match g.trim().parse::<f64>() {
                    Ok(g) if (0.0..=100.0).contains(&g) => Ok(TaskOrder::Even {
                        min_gain_bp: (g * 100.0).round() as u32,
                    }),
                    _ => Err(bad(
                        o,
                        "the gain after even: must be a percentage in 0..=100",
                    )),
                },
                None => Err(bad(
                    o,
                    "expected list, whole, even or even:G (G a percentage)",
                )),
            },
        }
    }

    /// The order of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_ORDER").ok().as_deref())
    }
}

/// When the last of `ctas` CTAs finishes tasks of `durs` claimed in order (each by the CTA that
/// is free first).
pub fn makespan(durs: impl IntoIterator<Item = u64>, ctas: usize) -> u64 {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut h: BinaryHeap<Reverse<u64>> = (0..ctas.max(1)).map(|_| Reverse(0)).collect();
    for d in durs {
        let Reverse(t) = h.pop().unwrap_or(Reverse(0));
        h.push(Reverse(t + d));
    }
    h.into_iter().map(|Reverse(t)| t).max().unwrap_or(0)
}

/// What [`even_piece_model`] found for a launch: the best piece size and the modelled makespans
/// (in steps) of pieces of `chunk` and of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceModel {
    pub chunk: usize,
    pub piece: usize,
    pub span_chunk: u64,
    pub span_piece: u64,
}

impl PieceModel {
    /// The modelled gain of `piece` over `chunk`, in basis points (0.01 %) of `chunk`'s span.
    pub fn gain_bp(&self) -> u64 {
        if self.span_chunk == 0 {
            return 0;
        }
        (self.span_chunk.saturating_sub(self.span_piece) * 10_000) / self.span_chunk
    }

    /// The piece size to launch: `piece` where its gain is at least `min_gain_bp`, else `chunk`.
    pub fn choose(&self, min_gain_bp: u32) -> usize {
        if self.piece < self.chunk && self.gain_bp() >= u64::from(min_gain_bp) {
            self.piece
        } else {
            self.chunk
        }
    }
}

/// The piece size for the split lists (longer than `chunk`) of a launch whose list `i` has
/// `lens[i]` q tiles and `tasks[i]` tasks per piece (its KV heads), each q tile `steps` steps:
/// of at most 32 sizes from `chunk` down to `chunk / 2`, the one whose schedule on `ctas` CTAs,
/// the pieces claimed longest first (the launch's order), ends first (ties: the larger), and
/// the makespans of it and of `chunk`. `chunk` itself where no list is split.
pub fn even_piece_model(
    lens: &[usize],
    tasks: &[u32],
    steps: u64,
    chunk: usize,
    ctas: usize,
) -> PieceModel {
    let chunk = chunk.max(1);
    let span = |p: usize| {
        let mut durs: Vec<u64> = lens
            .iter()
            .zip(tasks)
            .flat_map(|(&n, &k)| {
                let q = if n > chunk { p } else { chunk };
                (0..n.div_ceil(q)).flat_map(move |i| {
                    let len = q.min(n - i * q) as u64;
                    std::iter::repeat_n(len * steps + TASK_COST_STEPS, k as usize)
                })
            })
            .collect();
        durs.sort_unstable_by(|a, b| b.cmp(a));
        makespan(durs, ctas)
    };
    if !lens.iter().any(|&n| n > chunk) {
        return PieceModel {
            chunk,
            piece: chunk,
            span_chunk: 0,
            span_piece: 0,
        };
    }
    let lo = chunk.div_ceil(2);
    let stride = (chunk - lo).div_ceil(32).max(1);
    let span_chunk = span(chunk);
    let mut best = (span_chunk, chunk);
    for p in (lo..=chunk).rev().step_by(stride).skip(1) {
        let m = span(p);
        if m < best.0 {
            best = (m, p);
        }
    }
    PieceModel {
        chunk,
        piece: best.1,
        span_chunk,
        span_piece: best.0,
    }
}

/// [`even_piece_model`]'s best piece size, with no gain threshold (any strictly shorter span).
pub fn even_piece(lens: &[usize], tasks: &[u32], steps: u64, chunk: usize, ctas: usize) -> usize {
    even_piece_model(lens, tasks, steps, chunk, ctas).choose(0)
}

/// A piece of list `list`: q tiles `start .. start + len` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub list: usize,
    pub start: usize,
    pub len: usize,
}

/// The pieces of lists of lengths `lens` in launch order: split lists (longer than `chunk`) in
/// pieces of `piece` (at most `chunk`), the others whole.
pub fn pieces(lens: &[usize], chunk: usize, piece: usize) -> Vec<Piece> {
    let chunk = chunk.max(1);
    let piece = piece.clamp(1, chunk);
    let mut out = Vec::new();
    for (list, &n) in lens.iter().enumerate() {
        let p = if n > chunk { piece } else { chunk };
        let mut start = 0;
        while start < n {
            let len = p.min(n - start);
            out.push(Piece { list, start, len });
            start += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_in_list_order() {
        let lens = [20, 5, 9];
        let got: Vec<_> = pieces(&lens, 8, 8)
            .iter()
            .map(|p| (p.list, p.start, p.len))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 8),
                (0, 8, 8),
                (0, 16, 4),
                (1, 0, 5),
                (2, 0, 8),
                (2, 8, 1)
            ]
        );
        // Split lists only are cut to the piece size; pieces tile each list.
        let got: Vec<_> = pieces(&lens, 8, 6)
            .iter()
            .map(|p| (p.list, p.start, p.len))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 6),
                (0, 6, 6),
                (0, 12, 6),
                (0, 18, 2),
                (1, 0, 5),
                (2, 0, 6),
                (2, 6, 3)
            ]
        );
    }

    #[test]
    fn makespan_is_list_scheduling() {
        assert_eq!(makespan([5, 5, 5], 2), 10);
        assert_eq!(makespan([10, 1, 1, 1, 1], 2), 10);
        assert_eq!(makespan([1, 1, 1, 1, 10], 2), 12);
        assert_eq!(makespan(Vec::<u64>::new(), 4), 0);
    }

    #[test]
    fn even_piece_fills_the_last_round() {
        // 4 CTAs; two long lists (split) and six of 4 q tiles, 1 task each, 1 step per tile.
        // chunk 8: pieces 8+8+8+8 then six 4s: 8+4 per CTA after the first round, two CTAs
        // with another 4: makespan 8 + 4 + 4 (+ costs). Pieces of 4: 14 tasks of 4 on 4 CTAs.
        let lens = [16, 16, 4, 4, 4, 4, 4, 4];
        let tasks = [1; 8];
        let p = even_piece(&lens, &tasks, 1, 8, 4);
        let span = |p: usize| {
            makespan(
                pieces(&lens, 8, p)
                    .iter()
                    .map(|x| x.len as u64 + TASK_COST_STEPS),
                4,
            )
        };
        assert!(span(p) <= span(8), "piece {p}");
        assert!((4..=8).contains(&p));
        // No split list: chunk.
        assert_eq!(even_piece(&[4, 4], &[2, 2], 4, 8, 132), 8);
    }

    #[test]
    fn even_piece_blockwise_32k() {
        // One 32K causal-blockwise sequence (256:2), 64-row q tiles, 128-key kv tiles, GQA 8:2:
        // the sink kv tiles see 512 and 510 q tiles, the middle ones 14 (tiles.py): chunk 18,
        // 132 SMs: pieces of 14 fill five rounds of 56-step tasks.
        let mut lens = vec![512, 510];
        lens.extend(std::iter::repeat_n(14, 248));
        lens.extend([12, 10, 8, 6, 4, 2]);
        let tasks = vec![2; lens.len()];
        assert_eq!(even_piece(&lens, &tasks, 4, 18, 132), 14);
    }

    #[test]
    fn even_piece_keeps_chunk_for_causal_32k() {
        // One 32K causal sequence: kv tile kt sees q tiles 2 kt .. 511 (chunk 250): no piece
        // size below chunk ends the modelled schedule earlier, so the tasks are main's.
        let lens: Vec<usize> = (0..256).map(|kt| 512 - 2 * kt).collect();
        let tasks = vec![2; lens.len()];
        assert_eq!(even_piece(&lens, &tasks, 4, 250, 132), 250);
    }

    #[test]
    fn even_piece_keeps_chunk_for_a_zigzag_ordered_causal_64k() {
        // Ulysses's backward on 2 GPUs: one causal 64K sequence, 4 query heads / 1 KV head per
        // GPU, its head-split buffers in the zigzag layout's token order (16K chunks 0, 3, 1, 2):
        // kv tiles of chunk 0 see their own chunk's q tiles causally plus all 768 of the others,
        // chunk 3's only their own, chunk 1's plus 512, chunk 2's plus 256. The launch claims
        // the pieces longest first, so `chunk` (498) already balances; list order would model a
        // tail of chunk 2's lists and cut 282-tile pieces (measured 8 % slower on 2x H200).
        let own = |extra: usize| (0..128).map(move |k| 256 - 2 * k + extra);
        let lens: Vec<usize> = own(768)
            .chain(own(0))
            .chain(own(512))
            .chain(own(256))
            .collect();
        let tasks = vec![1; lens.len()];
        let total: usize = lens.iter().sum();
        let chunk = total.div_ceil(4 * 132);
        assert_eq!(chunk, 498);
        assert_eq!(even_piece(&lens, &tasks, 4, chunk, 132), chunk);
        // The same work in token order (plain causal) gets the same.
        let plain: Vec<usize> = (0..512).map(|k| 1024 - 2 * k).collect();
        assert_eq!(even_piece(&plain, &tasks, 4, chunk, 132), chunk);
    }

    #[test]
    fn default_order_keeps_chunk_for_a_tiny_modelled_gain() {
        // One causal 114 710-token sequence, 4 query heads / 1 KV head (Ulysses's share on 2
        // GPUs in token order): kv tile kt sees q tiles 2 kt .. 1 792. The best piece models a
        // gain far under 1 %, so the default launches `chunk`; causal-blockwise's 5 % cut stays.
        let lens: Vec<usize> = (0..897).map(|kt| 1793 - 2 * kt).collect();
        let tasks = vec![1; lens.len()];
        let total: usize = lens.iter().sum();
        let chunk = total.div_ceil(4 * 132);
        let m = even_piece_model(&lens, &tasks, 4, chunk, 132);
        assert!(m.piece < chunk && m.gain_bp() < 100, "{m:?}");
        let TaskOrder::Even { min_gain_bp } = DEFAULT_ORDER else {
            panic!("default is not even")
        };
        assert_eq!(m.choose(min_gain_bp), chunk);
        assert_eq!(m.choose(0), m.piece);
        let mut bw = vec![512, 510];
        bw.extend(std::iter::repeat_n(14, 248));
        bw.extend([12, 10, 8, 6, 4, 2]);
        let m = even_piece_model(&bw, &vec![2; bw.len()], 4, 18, 132);
        assert!(m.gain_bp() >= 500, "{m:?}");
        assert_eq!(m.choose(min_gain_bp), 14);
    }

    #[test]
    fn parse_order() {
        assert_eq!(TaskOrder::parse(None), Ok(DEFAULT_ORDER));
        assert_eq!(TaskOrder::parse(Some("list")), Ok(TaskOrder::List));
        assert_eq!(TaskOrder::parse(Some("even")), Ok(DEFAULT_ORDER));
        assert_eq!(TaskOrder::parse(Some("whole")), Ok(TaskOrder::Whole));
        assert_eq!(
            TaskOrder::parse(Some("even:1.5")),
            Ok(TaskOrder::Even { min_gain_bp: 150 })
        );
        for bad in [
            "lpt", "lpt:4", "x", "even:", "even:-1", "even:101", "even:x",
        ] {
            assert!(TaskOrder::parse(Some(bad))
                .unwrap_err()
                .contains("DCP_CUDA_BWD_ORDER"));
        }
    }
}
