//! A geometric initial placement: recursive bisection of the tiles over the devices. Every
//! bisection splits the devices in two halves and gives each half its share of the compute:
//! whole sequences (and head blocks) where they fit, and otherwise one cut through a sequence's
//! tiles in query-row-major or KV-column-major order (each optionally head-block-major), the one
//! of the fewest bytes. A cut's bytes: the nets with tiles on both sides, plus per token block
//! the lighter of the nets found on only one side (its home can be on one side only).
//!
//! On causal sequences this tiles the triangle into near-rectangles of about `sqrt(Wkv/Wq)`
//! times as many rows as columns, the shape of the fewest bytes per compute; hierarchical
//! topologies get their node boundaries at the first cuts.

use crate::blocks::{BlockTable, DataKind};

/// One piece of the batch in the recursion: tiles of one sequence (table indices).
struct Item {
    tiles: Vec<u32>,
    compute: u64,
}

struct Ctx<'a> {
    table: &'a BlockTable,
    nh: usize,
    /// Net weights per (block, head block): Q side, KV side.
    wq: Vec<u64>,
    wkv: Vec<u64>,
    /// Scratch: per net, which sides have tiles (bit 0 side 1, bit 1 side 2); Q nets first.
    side: Vec<u8>,
    touched: Vec<u32>,
    parts: Vec<u32>,
    /// Devices per node: bisections of more devices separate nodes.
    per_node: u32,
}

impl Ctx<'_> {
    fn w(&self, ti: u32) -> u64 {
        self.table.tiles[ti as usize].attended.max(1) * self.table.q_heads_per_block as u64
    }

    fn nets(&self, ti: u32) -> (usize, usize) {
        let t = &self.table.tiles[ti as usize];
        let nb = self.table.blocks.len();
        (
            t.q_block as usize * self.nh + t.head_block as usize,
            nb * self.nh + t.kv_block as usize * self.nh + t.head_block as usize,
        )
    }

    fn net_w(&self, net: usize) -> u64 {
        let half = self.table.blocks.len() * self.nh;
        if net < half {
            self.wq[net]
        } else {
            self.wkv[net - half]
        }
    }

    /// Block of a net.
    fn net_block(&self, net: usize) -> usize {
        let half = self.table.blocks.len() * self.nh;
        (if net < half { net } else { net - half }) / self.nh
    }

    /// Bytes of cutting `tiles` (in this order) after position `at`.
    fn cut_cost(&mut self, tiles: &[u32], at: usize) -> u64 {
        for (i, &ti) in tiles.iter().enumerate() {
            let bit = if i < at { 1u8 } else { 2u8 };
            let (q, kv) = self.nets(ti);
            for n in [q, kv] {
                if self.side[n] == 0 {
                    self.touched.push(n as u32);
                }
                self.side[n] |= bit;
            }
        }
        let mut cost = 0u64;
        // Per block: weight of nets only on side 1, only on side 2.
        let mut only: Vec<(usize, u64, u64, bool)> = Vec::with_capacity(self.touched.len());
        let half = self.table.blocks.len() * self.nh;
        for &n in &self.touched {
            let n = n as usize;
            let w = self.net_w(n);
            let q = n < half;
            match self.side[n] {
                3 => {
                    cost += w;
                    only.push((self.net_block(n), 0, 0, q));
                }
                1 => only.push((self.net_block(n), w, 0, q)),
                _ => only.push((self.net_block(n), 0, w, q)),
            }
        }
        only.sort_unstable_by_key(|x| x.0);
        let mut i = 0;
        while i < only.len() {
            let (b, mut a, mut c, mut q) = (only[i].0, 0u64, 0u64, false);
            while i < only.len() && only[i].0 == b {
                a += only[i].1;
                c += only[i].2;
                q |= only[i].3;
                i += 1;
            }
            if q {
                cost += a.min(c);
            }
        }
        for &n in &self.touched {
            self.side[n as usize] = 0;
        }
        self.touched.clear();
        cost
    }

    /// Splits `item` so that the first part holds about `x` compute: the cheapest of the
    /// orders tried. Returns (first, second).
    fn cut(&mut self, item: Item, x: u64) -> (Item, Item) {
        let t = self.table;
        type Key = fn(&crate::blocks::WorkTile) -> (u32, u32, u32);
        let orders: [Key; 4] = [
            |w| (w.q_block, w.kv_block, w.head_block),
            |w| (w.kv_block, w.q_block, w.head_block),
            |w| (w.head_block, w.q_block, w.kv_block),
            |w| (w.head_block, w.kv_block, w.q_block),
        ];
        let mut best: Option<(u64, Vec<u32>, usize)> = None;
        for (oi, key) in orders.iter().enumerate() {
            if oi >= 2 && self.nh == 1 {
                break;
            }
            let mut v = item.tiles.clone();
            v.sort_unstable_by_key(|&ti| key(&t.tiles[ti as usize]));
            // Side 1 takes a prefix, or a suffix (the order reversed).
            for rev in [false, true] {
                if rev {
                    v.reverse();
                }
                let mut acc = 0u64;
                let mut at = v.len();
                for (i, &ti) in v.iter().enumerate() {
                    let w = self.w(ti);
                    if acc + w / 2 >= x {
                        at = i;
                        break;
                    }
                    acc += w;
                }
                let at = at.clamp(1, v.len() - 1);
                let c = self.cut_cost(&v, at);
                if best.as_ref().is_none_or(|b| c < b.0) {
                    best = Some((c, v.clone(), at));
                }
            }
        }
        let (_, v, at) = best.expect("an order");
        let second = v[at..].to_vec();
        let mut first = v;
        first.truncate(at);
        let c1: u64 = first.iter().map(|&ti| self.w(ti)).sum();
        (
            Item {
                compute: c1,
                tiles: first,
            },
            Item {
                compute: item.compute - c1,
                tiles: second,
            },
        )
    }

    /// Places `items` on devices `d0..d0 + p`.
    fn bisect(&mut self, mut items: Vec<Item>, d0: u32, p: u32) {
        if p == 1 {
            for it in items {
                for ti in it.tiles {
                    self.parts[ti as usize] = d0;
                }
            }
            return;
        }
        let p1 = p / 2;
        let total: u64 = items.iter().map(|i| i.compute).sum();
        let need1 = (total as u128 * p1 as u128 / p as u128) as u64;
        let mut rem = [need1 as i64, (total - need1) as i64];
        items.sort_by_key(|i| std::cmp::Reverse(i.compute));
        let per_dev = total / p as u64;
        // Whole items, largest first, each to the side of the larger remaining need; kept when
        // the sides then miss their shares by at most WHOLE_TOL (WHOLE_TOL_NODES between nodes)
        // of a device's share per device.
        let wt = if p > self.per_node {
            WHOLE_TOL_NODES
        } else {
            WHOLE_TOL
        };
        let tol = (per_dev as f64 * wt * p1.min(p - p1) as f64) as i64;
        let mut r = rem;
        let side: Vec<usize> = items
            .iter()
            .map(|it| {
                let s = if r[0] * ((p - p1) as i64) >= r[1] * (p1 as i64) {
                    0
                } else {
                    1
                };
                r[s] -= it.compute as i64;
                s
            })
            .collect();
        let (mut s1, mut s2) = (Vec::new(), Vec::new());
        if r[0].abs() <= tol || items.len() < 2 && items.first().is_none_or(|i| i.tiles.len() < 2) {
            for (it, s) in items.into_iter().zip(side) {
                if s == 0 {
                    s1.push(it)
                } else {
                    s2.push(it)
                }
            }
            self.bisect(s1, d0, p1);
            self.bisect(s2, d0 + p1, p - p1);
            return;
        }
        // The largest item is placed last: it absorbs the remainder by a cut when it is larger
        // than one device's share (it is cut further down anyway); otherwise whole items fill
        // the sides and the first that fits neither is cut.
        let big = if items.first().is_some_and(|i| i.compute > per_dev) {
            Some(items.remove(0))
        } else {
            None
        };
        let mut pending = big;
        for it in items {
            let s = if rem[0] >= rem[1] { 0 } else { 1 };
            if it.compute as i64 <= rem[s] {
                rem[s] -= it.compute as i64;
                if s == 0 {
                    s1.push(it)
                } else {
                    s2.push(it)
                }
            } else if pending.is_none() {
                pending = Some(it);
            } else {
                // Both sides are nearly full: the item goes where it overflows least.
                rem[s] -= it.compute as i64;
                if s == 0 {
                    s1.push(it)
                } else {
                    s2.push(it)
                }
            }
        }
        if let Some(it) = pending {
            let x = rem[0].max(0) as u64;
            if x == 0 || it.tiles.len() < 2 {
                if rem[0] >= rem[1] {
                    s1.push(it)
                } else {
                    s2.push(it)
                }
            } else if x >= it.compute {
                s1.push(it);
            } else {
                let (a, b) = self.cut(it, x);
                s1.push(a);
                s2.push(b);
            }
        }
        self.bisect(s1, d0, p1);
        self.bisect(s2, d0 + p1, p - p1);
    }
}

/// Share of a device's compute (per device of the smaller side) by which whole-item sides may
/// miss their targets before an item is cut instead.
const WHOLE_TOL: f64 = 0.01;
/// The same for a bisection that separates nodes (inter-node bytes are dearer): measured on
/// the reference 4x8 batches, 0.02 / 0.03 / 0.04 / 0.06 gave longalign causal bytes 1.017 /
/// 1.003 / 1.008 / 1.017 × the reference's (0.01: 1.020), ldc causal 0.92 throughout.
const WHOLE_TOL_NODES: f64 = 0.03;

/// Device of every tile by recursive geometric bisection over `k` devices, `per_node` per node.
pub(super) fn bisect_tiles(table: &BlockTable, k: u32, per_node: u32) -> Vec<u32> {
    let nb = table.blocks.len();
    let nh = table.n_head_blocks as usize;
    let mut wq = vec![0u64; nb * nh];
    let mut wkv = vec![0u64; nb * nh];
    for b in 0..nb {
        let (q, kv) = net_weights(table, b as u32);
        for h in 0..nh {
            wq[b * nh + h] = q;
            wkv[b * nh + h] = kv;
        }
    }
    let mut cx = Ctx {
        table,
        nh,
        wq,
        wkv,
        side: vec![0; 2 * nb * nh],
        touched: Vec::new(),
        parts: vec![0; table.tiles.len()],
        per_node,
    };
    let n_seq = table.seq_first_block.len() - 1;
    let mut items: Vec<Item> = (0..n_seq)
        .map(|_| Item {
            tiles: Vec::new(),
            compute: 0,
        })
        .collect();
    for (ti, t) in table.tiles.iter().enumerate() {
        let s = table.blocks[t.q_block as usize].seq as usize;
        items[s].tiles.push(ti as u32);
        items[s].compute += cx.w(ti as u32);
    }
    items.retain(|i| !i.tiles.is_empty());
    cx.bisect(items, 0, k);
    cx.parts
}

/// Homes: every block on the device of the most net weight of the block (per head block, Q
/// side and KV side) that has room within `cap_tok` home tokens, heaviest savings first.
pub(super) fn assign_homes(
    table: &BlockTable,
    tile_parts: &[u32],
    k: u32,
    cap_tok: u64,
) -> Vec<u32> {
    let nb = table.blocks.len();
    let mut parts = vec![0u32; nb];
    // Homes: the device of the most net weight of the block (per head block, Q side and KV
    // side), within the home capacity.
    let mut member: Vec<Vec<(u32, u8, u32)>> = vec![Vec::new(); nb];
    for (ti, t) in table.tiles.iter().enumerate() {
        let d = tile_parts[ti];
        member[t.q_block as usize].push((d, 0, t.head_block));
        member[t.kv_block as usize].push((d, 1, t.head_block));
    }
    let best: Vec<Vec<(u64, u32)>> = member
        .iter_mut()
        .enumerate()
        .map(|(b, v)| {
            let (wq, wkv) = net_weights(table, b as u32);
            v.sort_unstable();
            v.dedup();
            let mut per: Vec<(u64, u32)> = Vec::new();
            for &(d, side, _) in v.iter() {
                let s = if side == 0 { wq } else { wkv };
                match per.last_mut() {
                    Some(last) if last.1 == d => last.0 += s,
                    _ => per.push((s, d)),
                }
            }
            per.sort_unstable_by(|x, y| y.cmp(x));
            per
        })
        .collect();
    // Largest regret first (saving at the best device with room minus at the second best),
    // re-evaluated lazily as devices fill.
    let mut home_tok = vec![0u64; k as usize];
    let regret = |b: usize, home_tok: &[u64]| -> u64 {
        let len = table.blocks[b].len as u64;
        let mut room = best[b]
            .iter()
            .filter(|x| home_tok[x.1 as usize] + len <= cap_tok);
        let first = room.next().map_or(0, |x| x.0);
        let second = room.next().map_or(0, |x| x.0);
        first - second
    };
    let mut heap: std::collections::BinaryHeap<(u64, std::cmp::Reverse<usize>)> = (0..nb)
        .map(|b| (regret(b, &home_tok), std::cmp::Reverse(b)))
        .collect();
    while let Some((r, std::cmp::Reverse(b))) = heap.pop() {
        let now = regret(b, &home_tok);
        if now != r {
            heap.push((now, std::cmp::Reverse(b)));
            continue;
        }
        let len = table.blocks[b].len as u64;
        let d = best[b]
            .iter()
            .map(|x| x.1)
            .find(|&d| home_tok[d as usize] + len <= cap_tok)
            .unwrap_or_else(|| {
                (0..k)
                    .min_by_key(|&d| (home_tok[d as usize], d))
                    .expect("k ≥ 1")
            });
        home_tok[d as usize] += len;
        parts[b] = d;
    }
    parts
}

/// Bytes of a block's Q-side and KV-side net (per head block) when cut: Q, O and LSE out and
/// back, dO, dQ; KV twice and dKV (as in [`super::place::placement_problem`]).
pub(super) fn net_weights(table: &BlockTable, b: u32) -> (u64, u64) {
    let (q, l, kv) = (
        table.data_bytes(DataKind::Q, b),
        table.data_bytes(DataKind::Lse, b),
        table.data_bytes(DataKind::Kv, b),
    );
    (6 * q + 2 * l, 3 * kv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskSpec;
    use crate::spec::{BatchSpec, ModelShape};

    fn table(lens: &[u32], head_block: u32) -> BlockTable {
        let mut b = BatchSpec::uniform(lens, MaskSpec::Causal, ModelShape::default(), 64);
        b.head_block = head_block;
        BlockTable::build(&b).unwrap()
    }

    fn loads(t: &BlockTable, parts: &[u32], k: u32) -> Vec<u64> {
        let mut l = vec![0u64; k as usize];
        for (ti, tile) in t.tiles.iter().enumerate() {
            l[parts[ti] as usize] += tile.attended.max(1) * t.q_heads_per_block as u64;
        }
        l
    }

    /// One long causal sequence over 16 devices: every device computes, within a few percent
    /// of the mean (cuts are exact to a tile), and split by KV head group where that helps.
    #[test]
    fn long_causal_sequence_is_cut_evenly() {
        for hb in [2, 1] {
            let t = table(&[64 * 80], hb);
            let parts = bisect_tiles(&t, 16, 16);
            let l = loads(&t, &parts, 16);
            let mean = l.iter().sum::<u64>() as f64 / 16.0;
            let (lo, hi) = (*l.iter().min().unwrap(), *l.iter().max().unwrap());
            assert!(
                hi as f64 <= 1.03 * mean && lo as f64 >= 0.97 * mean,
                "head block {hb}: loads {l:?}"
            );
        }
    }

    /// Whole short sequences stay on one device when they balance, and their homes with them.
    #[test]
    fn short_sequences_stay_whole_and_homes_follow_tiles() {
        let t = table(&[256; 8], 2);
        let parts = bisect_tiles(&t, 4, 4);
        for s in 0..8u32 {
            let devs: std::collections::BTreeSet<u32> = t
                .tiles
                .iter()
                .enumerate()
                .filter(|(_, x)| t.blocks[x.q_block as usize].seq == s)
                .map(|(ti, _)| parts[ti])
                .collect();
            assert_eq!(devs.len(), 1, "sequence {s} on {devs:?}");
        }
        let homes = assign_homes(&t, &parts, 4, 2 * 256);
        for (ti, x) in t.tiles.iter().enumerate() {
            assert_eq!(homes[x.q_block as usize], parts[ti]);
        }
    }
}
