//! Phase 2, schedule: stage 0 runs the tiles whose inputs are local, the remote tiles are split
//! into S−1 stages of equal compute (inputs of stage s fetched during stage s−1), and S is chosen
//! by a cheap pipeline estimate under the cost model. [`StageSplitter::split_row_atomic`] is the
//! same split with whole rows per stage, which the planner also emits and keeps where predicted
//! faster (no row's fp32 partials to merge).

use std::collections::BTreeMap;

use super::place::Placement;
use crate::blocks::{BlockTable, DataKind};
use crate::cost::CostModel;
use crate::spec::{ModelShape, Topology};

/// A device's remote tiles with their cumulative compute, and where each remote block is first
/// and last used among them: what a stage split and its memory estimate need, computed once
/// for every stage count. Tiles are in table order (query block, KV block, head block), so
/// consecutive tiles share their query block and a stage fetches few distinct blocks.
/// (Measured: cutting KV-major instead where the estimate favoured it gave a worse resident
/// memory imbalance after the memory refinement, 1.17–1.19 against 1.14–1.17.)
struct DevTiles {
    order: Vec<usize>,
    /// Attended pairs before each tile of `order`.
    acc: Vec<u64>,
    total: u64,
    blocks: Vec<RemoteBlock>,
}

/// A remote block of a device: the bytes per token of its slot, which lives from the fetch
/// until the partial is sent, and of its fp32 partial, live from the first to the last use.
struct RemoteBlock {
    /// A KV block (else a query block).
    kv: bool,
    slot_bpt: u64,
    part_bpt: u64,
    len: u64,
    /// First and last position in `order` of the tiles using it.
    first: usize,
    last: usize,
}

/// Splits the remote tiles of every device into stages, for any stage count, and estimates
/// the resident bytes the emitted programs will hold.
pub(super) struct StageSplitter {
    devs: Vec<DevTiles>,
    /// Bytes per device that do not depend on the split: home rows, accumulators, receive
    /// slots for partials.
    fixed: Vec<u64>,
}

impl StageSplitter {
    pub(super) fn new(table: &BlockTable, pl: &Placement, n_dev: u32, model: &ModelShape) -> Self {
        let n = n_dev as usize;
        let (hd, dt) = (model.head_dim as u64, model.dtype.size());
        let q_bpt = model.heads as u64 * hd * dt;
        let kv_bpt = 2 * model.kv_heads as u64 * hd * dt;
        // Remote slots hold one head block (a lane of the scratch buffers, see `alloc_live`).
        let nh = table.n_head_blocks.max(1) as u64;
        let (qs_bpt, kvs_bpt) = (q_bpt / nh, kv_bpt / nh);
        let lse_bpt = model.heads as u64 * 4 / nh;
        let mut remote: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (ti, t) in table.tiles.iter().enumerate() {
            let d = pl.tile_dev[ti];
            if pl.block_home[t.q_block as usize] != d || pl.block_home[t.kv_block as usize] != d {
                remote[d as usize].push(ti);
            }
        }
        let home_bpt = Self::home_bytes_per_token(model);
        let mut fixed = vec![0u64; n];
        for (b, blk) in table.blocks.iter().enumerate() {
            fixed[pl.block_home[b] as usize] += home_bpt * blk.len as u64;
        }
        // Receive slots at the homes: one head block per (block, computing device, head
        // block) and side, packed into head lanes.
        let mut users: Vec<(u32, u8, u32, u32)> = table
            .tiles
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| {
                let d = pl.tile_dev[ti];
                [
                    (t.q_block, 0u8, d, t.head_block),
                    (t.kv_block, 1u8, d, t.head_block),
                ]
            })
            .filter(|&(b, _, d, _)| pl.block_home[b as usize] != d)
            .collect();
        users.sort_unstable();
        users.dedup();
        for (b, side, _, _) in users {
            let len = table.blocks[b as usize].len as u64;
            fixed[pl.block_home[b as usize] as usize] +=
                len * if side == 0 { qs_bpt } else { kvs_bpt };
        }
        let devs = remote
            .into_iter()
            .enumerate()
            .map(|(d, order)| {
                let d = d as u32;
                let mut a = 0u64;
                let acc: Vec<u64> = order
                    .iter()
                    .map(|&t| {
                        let x = a;
                        a += table.tiles[t].attended;
                        x
                    })
                    .collect();
                // First and last position of every remote block.
                let mut span: std::collections::BTreeMap<(u8, u32, u32), (usize, usize)> =
                    std::collections::BTreeMap::new();
                for (pos, &ti) in order.iter().enumerate() {
                    let t = &table.tiles[ti];
                    for (side, b) in [(0u8, t.q_block), (1u8, t.kv_block)] {
                        if pl.block_home[b as usize] != d {
                            let e = span.entry((side, b, t.head_block)).or_insert((pos, pos));
                            e.1 = pos;
                        }
                    }
                }
                let blocks = span
                    .into_iter()
                    .map(|((side, b, _), (first, last))| {
                        let (slot_bpt, part_bpt) = if side == 0 {
                            // Q, O, dO inputs and LSE; the fp32 dQ partial.
                            (3 * qs_bpt + lse_bpt, 2 * qs_bpt)
                        } else {
                            (kvs_bpt, 2 * kvs_bpt)
                        };
                        RemoteBlock {
                            kv: side == 1,
                            slot_bpt,
                            part_bpt,
                            len: table.blocks[b as usize].len as u64,
                            first,
                            last,
                        }
                    })
                    .collect();
                DevTiles {
                    order,
                    acc,
                    total: a,
                    blocks,
                }
            })
            .collect();
        StageSplitter { devs, fixed }
    }

    /// Bytes per token of a home block in the backward program: Q, KV, O, LSE, dO, dQ, dKV
    /// and the fp32 dQ/dKV accumulators.
    pub(super) fn home_bytes_per_token(model: &ModelShape) -> u64 {
        let (hd, dt) = (model.head_dim as u64, model.dtype.size());
        let q_bpt = model.heads as u64 * hd * dt;
        let kv_bpt = 2 * model.kv_heads as u64 * hd * dt;
        6 * q_bpt + 4 * kv_bpt + model.heads as u64 * 4
    }

    /// Stage of the tile at position `pos` on a device: the remote tiles are cut into S−1
    /// stages of equal compute.
    fn stage_at(dev: &DevTiles, pos: usize, stages: u32) -> u32 {
        let chunks = (stages.max(2) - 1) as u64;
        (1 + ((dev.acc[pos] * chunks) / dev.total.max(1)).min(chunks - 1)) as u32
    }

    /// Estimated resident bytes of a device's remote slots for a stage count, with the
    /// liveness `emit` gives them (slot: fetch stage − 1 through the send of the partial;
    /// fp32 partial: first through last use). Each of the four slot tables (query and KV
    /// inputs, query and KV partials) is sized by its own peak.
    fn slot_peak(dev: &DevTiles, stages: u32) -> u64 {
        let w = stages as usize + 3;
        let mut live = vec![0i64; 4 * w];
        for b in &dev.blocks {
            let s0 = Self::stage_at(dev, b.first, stages) as usize;
            let s1 = Self::stage_at(dev, b.last, stages) as usize;
            let tag = if s1 + 2 < stages as usize {
                s1 + 2
            } else {
                stages as usize
            };
            let c = if b.kv { 2 * w } else { 0 };
            let x = (b.slot_bpt * b.len) as i64;
            live[c + s0 - 1] += x;
            live[c + tag + 1] -= x;
            let x = (b.part_bpt * b.len) as i64;
            live[c + w + s0] += x;
            live[c + w + s1 + 1] -= x;
        }
        live.chunks(w)
            .map(|cl| {
                let mut run = 0i64;
                cl.iter()
                    .map(|&x| {
                        run += x;
                        run
                    })
                    .max()
                    .unwrap_or(0)
                    .max(0) as u64
            })
            .sum()
    }

    /// Estimated resident bytes of every device's backward program (the larger one) for a
    /// stage count.
    pub(super) fn resident(&self, stages: u32) -> Vec<u64> {
        self.devs
            .iter()
            .zip(&self.fixed)
            .map(|(dev, &fixed)| fixed + Self::slot_peak(dev, stages))
            .collect()
    }

    /// [`Self::split`], then each device's tiles of one query row group (query block, head
    /// block) all go to the latest stage any of them has. A row then never spans two stages
    /// on one device, so it needs no fp32 partial per stage and no merge of them; stage 0
    /// keeps only the rows whose tiles on the device all have local inputs. The price is less
    /// compute under the first fetch. `None` when the split has no row over two stages (the
    /// same stages).
    pub(super) fn split_row_atomic(
        &self,
        table: &BlockTable,
        pl: &Placement,
        stages: u32,
    ) -> Option<Vec<u32>> {
        let mut stage = self.split(table.tiles.len(), stages);
        let row = |ti: usize| {
            let t = &table.tiles[ti];
            (pl.tile_dev[ti], t.q_block, t.head_block)
        };
        let mut latest: std::collections::HashMap<(u32, u32, u32), u32> =
            std::collections::HashMap::new();
        for (ti, &s) in stage.iter().enumerate() {
            let e = latest.entry(row(ti)).or_insert(0);
            *e = (*e).max(s);
        }
        let mut moved = false;
        for (ti, s) in stage.iter_mut().enumerate() {
            let l = latest[&row(ti)];
            moved |= l != *s;
            *s = l;
        }
        moved.then_some(stage)
    }

    /// Stage of every tile; stage 0 holds the tiles with local inputs.
    pub(super) fn split(&self, n_tiles: usize, stages: u32) -> Vec<u32> {
        let mut stage = vec![0u32; n_tiles];
        for dev in &self.devs {
            for (pos, &t) in dev.order.iter().enumerate() {
                stage[t] = Self::stage_at(dev, pos, stages);
            }
        }
        stage
    }
}

/// Cheap estimate of the forward pipeline time for a stage split (seconds).
pub(super) fn estimate(
    table: &BlockTable,
    pl: &Placement,
    topo: &Topology,
    cost: &CostModel,
    stage: &[u32],
    stages: u32,
) -> f64 {
    let n = topo.n_devices() as usize;
    let s = stages as usize;
    let mut comp = vec![vec![0.0f64; s]; n];
    let mut works = vec![vec![0usize; s]; n];
    let mut fetch = vec![vec![0.0f64; s + 1]; n];
    let mut first: BTreeMap<(u32, u8, u32, u32), u32> = BTreeMap::new();
    for (ti, t) in table.tiles.iter().enumerate() {
        let d = pl.tile_dev[ti];
        comp[d as usize][stage[ti] as usize] += table.tile_flops(t);
        works[d as usize][stage[ti] as usize] += 1;
        for (kind, b) in [(0u8, t.q_block), (1u8, t.kv_block)] {
            if pl.block_home[b as usize] != d {
                let e = first.entry((d, kind, b, t.head_block)).or_insert(stage[ti]);
                *e = (*e).min(stage[ti]);
            }
        }
    }
    for (&(d, kind, b, _), &st) in &first {
        let bytes = if kind == 0 {
            table.data_bytes(DataKind::Q, b)
        } else {
            table.data_bytes(DataKind::Kv, b)
        } as f64;
        let inter = !topo.same_node(d, pl.block_home[b as usize]);
        let bw = if inter {
            topo.inter_gbps
        } else {
            topo.intra_gbps
        } * 1e9;
        fetch[d as usize][st as usize] += bytes / bw;
    }
    (0..n)
        .map(|d| {
            let mut t = 0.0;
            for st in 0..s {
                let c = if works[d][st] > 0 {
                    cost.attn_fwd_s(comp[d][st], works[d][st])
                } else {
                    0.0
                };
                let f = if st + 1 < s {
                    fetch[d][st + 1] + topo.intra_latency_us * 1e-6
                } else {
                    0.0
                };
                t += c.max(f) + 3.0 * cost.launch_us * 1e-6;
            }
            t
        })
        .fold(0.0, f64::max)
}
