//! The order and size of a backward launch's tasks (`DCP_CUDA_BWD_ORDER`).
//!
//! A backward task is one kv tile's q-tile list (or a piece of it) for one KV head; the persistent
//! grid's CTAs claim tasks in launch order as they finish theirs. Lists longer than the launch's
//! `chunk` are cut into pieces (their dK/dV added atomically) so that long lists (attention sinks,
//! the first kv tiles of a causal sequence) do not serialise on one SM.
//!
//! * [`TaskOrder::List`]: pieces of `chunk`, lists in the order they were built (per work, kv
//!   tiles ascending).
//! * [`TaskOrder::Lpt`] `{ div }`: the pieces of the lists that are split anyway are cut to
//!   `ceil(chunk / div)` q tiles, and, when the launch has a split list, all pieces go longest
//!   first (stable: equal lengths keep their list order, so neighbouring kv tiles still run side
//!   by side). The short pieces then fill the launch's last round instead of a few long tasks
//!   ending it alone. A launch without a split list (many small works) keeps its list order:
//!   its kv tiles of one document share Q/dO and dQ lines in L2 only while they run together.
//!
//! Model (`bench/results/kernels-2026-11-29-kbw11b/tiles.py`, list scheduling of step counts on
//! 132 CTAs): one 32K causal-blockwise sequence ends ~47 us after the CTAs' mean busy time in list
//! order (624 tasks of ~56 steps, 2.2 us each), ~20 us with the sink lists' pieces at a quarter of
//! `chunk` and last; causal 32K's list order leaves its remainders of the split lists interleaved
//! (tail ~118 us), longest-first ~28 us.

/// How a backward launch orders and cuts its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOrder {
    /// Pieces of `chunk` in list order (sessions up to 11).
    List,
    /// Split lists cut into pieces of `ceil(chunk / div)`; longest first where a list is split.
    Lpt { div: u32 },
}

/// Unset `DCP_CUDA_BWD_ORDER`.
pub const DEFAULT_ORDER: TaskOrder = TaskOrder::List;

impl TaskOrder {
    /// Parses `DCP_CUDA_BWD_ORDER`: `list`, `lpt` (= `lpt:1`) or `lpt:DIV` (DIV 1..=64).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        let bad =
            |o: &str| format!("DCP_CUDA_BWD_ORDER={o}: expected list, lpt or lpt:DIV (DIV 1..=64)");
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_ORDER),
            Some("list") => Ok(TaskOrder::List),
            Some("lpt") => Ok(TaskOrder::Lpt { div: 1 }),
            Some(o) => {
                let div = o
                    .strip_prefix("lpt:")
                    .and_then(|d| d.parse::<u32>().ok())
                    .filter(|d| (1..=64).contains(d))
                    .ok_or_else(|| bad(o))?;
                Ok(TaskOrder::Lpt { div })
            }
        }
    }

    /// The order of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_ORDER").ok().as_deref())
    }
}

/// A piece of list `list`: q tiles `start .. start + len` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub list: usize,
    pub start: usize,
    pub len: usize,
}

/// The pieces of lists of lengths `lens` in launch order. `fine`: whether split lists may be
/// cut finer than `chunk` (callers that count a q tile's visits by `chunk`, the dQ conversion,
/// pass false).
pub fn pieces(lens: &[usize], chunk: usize, order: TaskOrder, fine: bool) -> Vec<Piece> {
    let chunk = chunk.max(1);
    let piece_of = |n: usize| match order {
        TaskOrder::Lpt { div } if fine && n > chunk => chunk.div_ceil(div as usize).max(1),
        _ => chunk,
    };
    let mut out = Vec::new();
    for (list, &n) in lens.iter().enumerate() {
        let p = piece_of(n);
        let mut start = 0;
        while start < n {
            let len = p.min(n - start);
            out.push(Piece { list, start, len });
            start += len;
        }
    }
    if matches!(order, TaskOrder::Lpt { .. }) && lens.iter().any(|&n| n > chunk) {
        out.sort_by_key(|p| std::cmp::Reverse(p.len));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(lens: &[usize], ps: &[Piece]) {
        for (l, &n) in lens.iter().enumerate() {
            let mut mine: Vec<_> = ps.iter().filter(|p| p.list == l).collect();
            mine.sort_by_key(|p| p.start);
            let mut at = 0;
            for p in mine {
                assert_eq!(p.start, at, "list {l}: pieces must tile it");
                assert!(p.len > 0);
                at += p.len;
            }
            assert_eq!(at, n, "list {l}");
        }
    }

    #[test]
    fn list_order_is_chunks_in_order() {
        let lens = [20, 5, 9];
        let ps = pieces(&lens, 8, TaskOrder::List, true);
        let got: Vec<_> = ps.iter().map(|p| (p.list, p.start, p.len)).collect();
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
    }

    #[test]
    fn lpt_cuts_split_lists_finer_and_sorts_longest_first() {
        let lens = [20, 7, 7, 3];
        let ps = pieces(&lens, 8, TaskOrder::Lpt { div: 4 }, true);
        covers(&lens, &ps);
        let got: Vec<_> = ps.iter().map(|p| (p.list, p.len)).collect();
        // list 0 (split) in pieces of 2; unsplit lists whole; stable for equal lengths.
        assert_eq!(
            got,
            vec![
                (1, 7),
                (2, 7),
                (3, 3),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2),
                (0, 2)
            ]
        );
        assert!(ps.windows(2).all(|w| w[0].len >= w[1].len));
    }

    #[test]
    fn lpt_without_split_lists_keeps_list_order() {
        let lens = [2, 4, 2, 4];
        let ps = pieces(&lens, 8, TaskOrder::Lpt { div: 4 }, true);
        let got: Vec<_> = ps.iter().map(|p| (p.list, p.start, p.len)).collect();
        assert_eq!(got, vec![(0, 0, 2), (1, 0, 4), (2, 0, 2), (3, 0, 4)]);
    }

    #[test]
    fn lpt_not_fine_keeps_chunk_pieces() {
        let lens = [20, 5];
        let ps = pieces(&lens, 8, TaskOrder::Lpt { div: 4 }, false);
        covers(&lens, &ps);
        let got: Vec<_> = ps.iter().map(|p| (p.list, p.len)).collect();
        assert_eq!(got, vec![(0, 8), (0, 8), (1, 5), (0, 4)]);
    }

    #[test]
    fn parse_order() {
        assert_eq!(TaskOrder::parse(None), Ok(DEFAULT_ORDER));
        assert_eq!(TaskOrder::parse(Some("list")), Ok(TaskOrder::List));
        assert_eq!(TaskOrder::parse(Some("lpt")), Ok(TaskOrder::Lpt { div: 1 }));
        assert_eq!(
            TaskOrder::parse(Some("lpt:4")),
            Ok(TaskOrder::Lpt { div: 4 })
        );
        for bad in ["lpt:0", "lpt:65", "lpt:x", "fifo"] {
            assert!(TaskOrder::parse(Some(bad))
                .unwrap_err()
                .contains("DCP_CUDA_BWD_ORDER"));
        }
    }
}
