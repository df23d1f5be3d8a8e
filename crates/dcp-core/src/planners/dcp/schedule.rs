//! Phase 2, schedule: stage 0 runs the tiles whose inputs are local, the remote tiles are split
//! into S−1 stages of equal compute (inputs of stage s fetched during stage s−1), and S is chosen
//! by a cheap pipeline estimate under the cost model.

use std::collections::BTreeMap;

use super::place::Placement;
use crate::blocks::{BlockTable, DataKind};
use crate::cost::CostModel;
use crate::spec::Topology;

/// Stage of every tile; stage 0 holds the tiles with local inputs.
pub(super) fn split_stages(
    table: &BlockTable,
    pl: &Placement,
    n_dev: u32,
    stages: u32,
) -> Vec<u32> {
    let mut stage = vec![0u32; table.tiles.len()];
    let mut remote: Vec<Vec<usize>> = vec![Vec::new(); n_dev as usize];
    for (ti, t) in table.tiles.iter().enumerate() {
        let d = pl.tile_dev[ti];
        if pl.block_home[t.q_block as usize] != d || pl.block_home[t.kv_block as usize] != d {
            remote[d as usize].push(ti);
        }
    }
    for list in &remote {
        // Tiles are already ordered by (q block, kv block, head block): consecutive tiles share
        // their query block, so a stage fetches few distinct blocks.
        let total: u64 = list.iter().map(|&t| table.tiles[t].attended).sum();
        let chunks = (stages.max(2) - 1) as u64;
        let mut acc = 0u64;
        for &t in list {
            let s = 1 + ((acc * chunks) / total.max(1)).min(chunks - 1);
            stage[t] = s as u32;
            acc += table.tiles[t].attended;
        }
    }
    stage
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
