//! Buffer layout of the emitted programs: each device's home blocks in its IO buffers, and
//! liveness-shared slots of remote blocks and partial outputs in its scratch buffers.

use std::collections::{BTreeMap, HashMap};

use super::place::Placement;
use crate::blocks::BlockTable;
use crate::plan::TokenSpan;

/// Per device: which blocks it holds and where they sit in its buffers.
pub(super) struct DevLayout {
    /// Row of each home block in the IO buffers.
    pub(super) row: HashMap<u32, u32>,
    pub(super) layout: Vec<TokenSpan>,
    pub(super) tokens: u32,
}

pub(super) fn layouts(table: &BlockTable, pl: &Placement, n: u32) -> Vec<DevLayout> {
    let mut out: Vec<DevLayout> = (0..n)
        .map(|_| DevLayout {
            row: HashMap::new(),
            layout: Vec::new(),
            tokens: 0,
        })
        .collect();
    for (b, blk) in table.blocks.iter().enumerate() {
        let d = &mut out[pl.block_home[b] as usize];
        d.row.insert(b as u32, d.tokens);
        d.tokens += blk.len;
        match d.layout.last_mut() {
            Some(s) if s.seq == blk.seq && s.start + s.len == blk.start => s.len += blk.len,
            _ => d.layout.push(TokenSpan {
                seq: blk.seq,
                start: blk.start,
                len: blk.len,
            }),
        }
    }
    out
}

/// Slots of remote (block, head block)s in a device's scratch buffers: row offset and head
/// lane (a head block's worth of heads: lane `l` holds heads `l·H .. (l+1)·H` of the buffer,
/// whichever head block's data it holds), in key order.
#[derive(Default)]
pub(super) struct Slots {
    pub(super) at: BTreeMap<(u32, u32), (u32, u32)>,
    pub(super) tokens: u32,
}

/// First-fit placement of live intervals `((block, head block), len, first, last)` (stages,
/// inclusive) in `lanes` head lanes: two items share rows of a lane only when their intervals
/// are disjoint; each item takes the lane where it fits lowest, so the lanes fill evenly and
/// the buffers need about 1/`lanes` of the rows of all-head slots.
pub(super) fn alloc_live(
    items: impl Iterator<Item = ((u32, u32), u32, u32, u32)>,
    lanes: u32,
) -> Slots {
    let mut items: Vec<((u32, u32), u32, u32, u32)> = items.collect();
    items.sort_by_key(|&(key, _, a, _)| (a, key));
    // Per lane: (offset, len, last stage).
    let mut busy: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); lanes.max(1) as usize];
    let mut out = Slots::default();
    for (key, len, a, b) in items {
        let (lane, at) = busy
            .iter()
            .enumerate()
            .map(|(l, bl)| {
                let mut live: Vec<(u32, u32)> =
                    bl.iter().filter(|x| x.2 >= a).map(|x| (x.0, x.1)).collect();
                live.sort_unstable();
                let mut at = 0u32;
                for (o, ln) in live {
                    if o >= at + len {
                        break;
                    }
                    at = at.max(o + ln);
                }
                (l, at)
            })
            .min_by_key(|&(l, at)| (at, l))
            .expect("at least one lane");
        busy[lane].push((at, len, b));
        out.at.insert(key, (at, lane as u32));
        out.tokens = out.tokens.max(at + len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Head lanes: slots live at once share rows when they sit in different lanes; the lanes
    /// fill evenly and no two overlapping lifetimes share rows of one lane.
    #[test]
    fn lanes_pack_overlapping_slots_side_by_side() {
        let items = [
            ((0, 0), 4, 0, 3),
            ((1, 1), 4, 0, 3),
            ((2, 0), 4, 1, 2),
            ((3, 1), 4, 4, 5),
        ];
        let one = alloc_live(items.iter().copied(), 1);
        let two = alloc_live(items.iter().copied(), 2);
        assert_eq!(one.tokens, 12);
        assert_eq!(two.tokens, 8);
        for (i, a) in items.iter().enumerate() {
            for b in &items[i + 1..] {
                let (ra, la) = two.at[&a.0];
                let (rb, lb) = two.at[&b.0];
                let live = a.2 <= b.3 && b.2 <= a.3;
                let rows = ra < rb + b.1 && rb < ra + a.1;
                assert!(!(live && rows && la == lb), "{a:?} and {b:?} collide");
            }
        }
    }
}
