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

/// Slots of remote blocks in a device's scratch buffers (row offsets), in block order.
#[derive(Default)]
pub(super) struct Slots {
    pub(super) at: BTreeMap<u32, u32>,
    pub(super) tokens: u32,
}

/// First-fit placement of live intervals: `(block, len, first, last)` stage intervals
/// (inclusive); two blocks share rows only when their intervals are disjoint.
pub(super) fn alloc_live(items: impl Iterator<Item = (u32, u32, u32, u32)>) -> Slots {
    let mut items: Vec<(u32, u32, u32, u32)> = items.collect();
    items.sort_by_key(|&(b, _, a, _)| (a, b));
    let mut busy: Vec<(u32, u32, u32)> = Vec::new(); // (offset, len, last stage)
    let mut out = Slots::default();
    for (blk, len, a, b) in items {
        let mut live: Vec<(u32, u32)> = busy
            .iter()
            .filter(|x| x.2 >= a)
            .map(|x| (x.0, x.1))
            .collect();
        live.sort_unstable();
        let mut at = 0u32;
        for (o, l) in live {
            if o >= at + len {
                break;
            }
            at = at.max(o + l);
        }
        busy.push((at, len, b));
        out.at.insert(blk, at);
        out.tokens = out.tokens.max(at + len);
    }
    out
}
