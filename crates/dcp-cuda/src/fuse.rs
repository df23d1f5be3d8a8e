//! Work fusion, done on a launch's works before they become task lists: the same attention in
//! fewer, larger works.
//!
//! * **KV coalescing**: a work's KV regions that continue each other row-wise (same buffer and
//!   heads, one's rows starting where the previous one's end; in the backward their dKV regions
//!   too) become one region. The keys and their order are unchanged, so the work's row ranges
//!   hold as they are. A dcp plan at block 1024 reads ~7 KV regions per work on average, most of
//!   them neighbours in its receive buffer; the kernels find a key's region by binary search
//!   per key row of every tile.
//! * **Work fusion**: consecutive works over the same (coalesced) KV regions whose query-side
//!   regions (Q, O, LSE; in the backward also dO and dQ) continue each other become one work
//!   over the union of their rows. A backward task is one kv tile and the q tiles that attend
//!   it: with the works apart, each work's q tiles of a kv tile form their own task, which loads
//!   K and V and adds dK and dV atomically once per work (32 works of 256 rows over the same
//!   8192 keys: 32 times as many tasks of 1/32 the length).
//!
//! Both are exact: every row attends the same keys in the same key coordinates.

use dcp_core::plan::{BwdWork, FwdWork, Region, RowRanges};

/// `b` continues `a` row-wise: same buffer and head range, `b`'s rows start where `a`'s end.
fn continues(a: &Region, b: &Region) -> bool {
    a.buf == b.buf && a.head == b.head && a.heads == b.heads && a.tok + a.len == b.tok
}

/// `a` grown by `b`'s rows (`b` continues `a`).
fn grow(a: &mut Region, b: &Region) {
    debug_assert!(continues(a, b));
    a.len += b.len;
}

/// KV regions with runs of row-wise neighbours merged. In the backward `dkv` (parallel to `kv`)
/// must continue alongside.
fn coalesce(kv: &[Region], dkv: Option<&[Region]>) -> (Vec<Region>, Vec<Region>) {
    let (mut k, mut d): (Vec<Region>, Vec<Region>) = (Vec::new(), Vec::new());
    for (i, r) in kv.iter().enumerate() {
        let g = dkv.map(|g| g[i]);
        let joins = match (k.last(), g) {
            (Some(pk), None) => continues(pk, r),
            (Some(pk), Some(g)) => continues(pk, r) && continues(d.last().expect("parallel"), &g),
            (None, _) => false,
        };
        if joins {
            grow(k.last_mut().expect("joins"), r);
            if let Some(g) = g {
                grow(d.last_mut().expect("parallel"), &g);
            }
        } else {
            k.push(*r);
            d.extend(g);
        }
    }
    (k, d)
}

/// Rows of `next` appended to `rows` (whose work has `at` rows so far).
fn append_rows(rows: &mut RowRanges, next: &RowRanges, at: u32) {
    // Keys unchanged (offset 0): each range function is re-expressed in the fused row index, so
    // it evaluates to the same value on every row, clamping included.
    rows.push_shifted(next, at, 0);
}

/// The fused forward works of a launch, and for each the index of its first original work
/// (for error messages).
pub fn fuse_fwd(works: &[FwdWork]) -> (Vec<FwdWork>, Vec<usize>) {
    let mut out: Vec<FwdWork> = Vec::with_capacity(works.len());
    let mut first = Vec::with_capacity(works.len());
    for (i, w) in works.iter().enumerate() {
        let (kv, _) = coalesce(&w.kv, None);
        if let Some(cur) = out.last_mut() {
            if cur.kv == kv
                && continues(&cur.q, &w.q)
                && continues(&cur.o, &w.o)
                && continues(&cur.lse, &w.lse)
            {
                append_rows(&mut cur.rows, &w.rows, cur.q.len);
                grow(&mut cur.q, &w.q);
                grow(&mut cur.o, &w.o);
                grow(&mut cur.lse, &w.lse);
                continue;
            }
        }
        out.push(FwdWork {
            q: w.q,
            kv,
            o: w.o,
            lse: w.lse,
            rows: w.rows.clone(),
        });
        first.push(i);
    }
    (out, first)
}

/// [`fuse_fwd`] for backward works (dO and dQ must continue too, and the dKV regions match).
pub fn fuse_bwd(works: &[BwdWork]) -> (Vec<BwdWork>, Vec<usize>) {
    let mut out: Vec<BwdWork> = Vec::with_capacity(works.len());
    let mut first = Vec::with_capacity(works.len());
    for (i, w) in works.iter().enumerate() {
        if w.dkv.len() != w.kv.len() {
            // Malformed (the lowering reports it): left as it is.
            out.push(w.clone());
            first.push(i);
            continue;
        }
        let (kv, dkv) = coalesce(&w.kv, Some(&w.dkv));
        if let Some(cur) = out.last_mut() {
            if cur.kv == kv
                && cur.dkv == dkv
                && continues(&cur.q, &w.q)
                && continues(&cur.o, &w.o)
                && continues(&cur.lse, &w.lse)
                && continues(&cur.do_, &w.do_)
                && continues(&cur.dq, &w.dq)
            {
                append_rows(&mut cur.rows, &w.rows, cur.q.len);
                grow(&mut cur.q, &w.q);
                grow(&mut cur.o, &w.o);
                grow(&mut cur.lse, &w.lse);
                grow(&mut cur.do_, &w.do_);
                grow(&mut cur.dq, &w.dq);
                continue;
            }
        }
        out.push(BwdWork {
            q: w.q,
            kv,
            o: w.o,
            lse: w.lse,
            do_: w.do_,
            dq: w.dq,
            dkv,
            rows: w.rows.clone(),
        });
        first.push(i);
    }
    (out, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(buf: u32, tok: u32, len: u32) -> Region {
        Region {
            buf,
            tok,
            len,
            head: 0,
            heads: 8,
        }
    }

    /// Every original row's keys, read through the fused works: (region, token) of each key,
    /// so that a fused work's different key coordinates compare equal when they name the same
    /// key rows.
    fn keys_of(q: &Region, kv: &[Region], rows: &RowRanges, r: u32) -> (u32, Vec<(u32, u32)>) {
        let mut ranges = Vec::new();
        rows.row(r, &mut ranges);
        let mut keys = Vec::new();
        for (s, e) in ranges {
            for k in s..e {
                let mut at = k;
                let seg = kv
                    .iter()
                    .find(|g| {
                        if at < g.len {
                            true
                        } else {
                            at -= g.len;
                            false
                        }
                    })
                    .expect("key inside the work's KV");
                keys.push((seg.buf, seg.tok + at));
            }
        }
        (q.tok + r, keys)
    }

    fn all_keys(works: &[FwdWork]) -> Vec<(u32, Vec<(u32, u32)>)> {
        let mut out: Vec<_> = works
            .iter()
            .flat_map(|w| (0..w.q.len).map(move |r| keys_of(&w.q, &w.kv, &w.rows, r)))
            .collect();
        out.sort();
        out
    }

    /// Four works over the same four contiguous 64-key regions (causal over them, the third
    /// work with a window whose start is negative on its first rows), then one over other keys:
    /// the first four fuse into one work of one KV region, the fifth stays; every row reads the
    /// same keys.
    #[test]
    fn works_over_the_same_keys_fuse_and_rows_read_the_same_keys() {
        let kv: Vec<Region> = (0..4).map(|i| reg(1, 64 * i, 64)).collect();
        let mut works = Vec::new();
        for i in 0..4u32 {
            let rows: Vec<Vec<(u32, u32)>> = (0..48u32)
                .map(|r| {
                    let row = 48 * i + r;
                    let end = (row + 1).min(256);
                    if i == 2 {
                        // Window of 70 keys: negative starts clamp to 0.
                        vec![(end.saturating_sub(70), end)]
                    } else {
                        vec![(0, end)]
                    }
                })
                .collect();
            works.push(FwdWork {
                q: reg(0, 48 * i, 48),
                kv: kv.clone(),
                o: reg(2, 48 * i, 48),
                lse: reg(3, 48 * i, 48),
                rows: RowRanges::from_rows(&rows),
            });
        }
        works.push(FwdWork {
            q: reg(0, 192, 10),
            kv: vec![reg(5, 0, 30)],
            o: reg(2, 192, 10),
            lse: reg(3, 192, 10),
            rows: RowRanges::from_rows(&vec![vec![(0, 30)]; 10]),
        });
        let (fused, first) = fuse_fwd(&works);
        assert_eq!(first, [0, 4]);
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].kv, [reg(1, 0, 256)]);
        assert_eq!((fused[0].q, fused[0].o), (reg(0, 0, 192), reg(2, 0, 192)));
        assert_eq!(
            fused[0].rows.attended(),
            works[..4].iter().map(|w| w.rows.attended()).sum::<u64>()
        );
        assert_eq!(all_keys(&fused), all_keys(&works));
    }

    /// Works do not fuse when their query rows do not continue (a gap, another buffer, other
    /// heads), their KV differ, or (backward) their dQ does not continue or dKV differ.
    #[test]
    fn works_fuse_only_when_rows_continue_and_keys_match() {
        let rows = RowRanges::from_rows(&vec![vec![(0, 16)]; 16]);
        let fw = |q: Region, kv: Vec<Region>| FwdWork {
            q,
            kv,
            o: reg(2, q.tok, q.len),
            lse: reg(3, q.tok, q.len),
            rows: rows.clone(),
        };
        let kv = vec![reg(1, 0, 16)];
        let gap = [
            fw(reg(0, 0, 16), kv.clone()),
            fw(reg(0, 17, 16), kv.clone()),
        ];
        assert_eq!(fuse_fwd(&gap).0.len(), 2);
        let other_kv = [
            fw(reg(0, 0, 16), kv.clone()),
            fw(reg(0, 16, 16), vec![reg(1, 16, 16)]),
        ];
        assert_eq!(fuse_fwd(&other_kv).0.len(), 2);
        let mut heads = fw(reg(0, 16, 16), kv.clone());
        heads.q.head = 4;
        heads.q.heads = 4;
        assert_eq!(fuse_fwd(&[fw(reg(0, 0, 16), kv.clone()), heads]).0.len(), 2);
        assert_eq!(
            fuse_fwd(&[
                fw(reg(0, 0, 16), kv.clone()),
                fw(reg(0, 16, 16), kv.clone())
            ])
            .0
            .len(),
            1
        );

        let bw = |tok: u32, dq_tok: u32, dkv: Region| BwdWork {
            q: reg(0, tok, 16),
            kv: kv.clone(),
            o: reg(2, tok, 16),
            lse: reg(3, tok, 16),
            do_: reg(4, tok, 16),
            dq: reg(6, dq_tok, 16),
            dkv: vec![dkv],
            rows: rows.clone(),
        };
        let g = reg(7, 0, 16);
        let (f, first) = fuse_bwd(&[
            bw(0, 0, g),
            bw(16, 16, g),
            bw(32, 40, g),
            bw(48, 56, reg(7, 16, 16)),
        ]);
        assert_eq!(first, [0, 2, 3]);
        assert_eq!(f[0].dq, reg(6, 0, 32));
        assert_eq!(f[0].rows.n_rows(), 32);
    }

    /// KV coalescing: neighbours merge, a gap or another buffer or head range splits; in the
    /// backward a pair merges only when its dKV regions continue too.
    #[test]
    fn kv_regions_coalesce_only_when_both_continue() {
        let kv = [
            reg(1, 0, 8),
            reg(1, 8, 8),
            reg(1, 20, 4),
            reg(2, 24, 4),
            reg(2, 28, 4),
        ];
        let (k, d) = coalesce(&kv, None);
        assert_eq!(k, [reg(1, 0, 16), reg(1, 20, 4), reg(2, 24, 8)]);
        assert!(d.is_empty());
        let dkv = [
            reg(9, 0, 8),
            reg(9, 100, 8),
            reg(9, 108, 4),
            reg(9, 0, 4),
            reg(9, 4, 4),
        ];
        let (k, d) = coalesce(&kv, Some(&dkv));
        assert_eq!(
            k,
            [reg(1, 0, 8), reg(1, 8, 8), reg(1, 20, 4), reg(2, 24, 8)]
        );
        assert_eq!(
            d,
            [reg(9, 0, 8), reg(9, 100, 8), reg(9, 108, 4), reg(9, 0, 8)]
        );
    }
}
