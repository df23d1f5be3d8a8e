//! Phase 1, placement: token blocks (weight: resident memory) and tiles (weight: attended pairs)
//! partitioned over the devices with two balance constraints; nets per data block weighted by
//! the bytes the plan moves when they are cut, so km1 is the plan's traffic.

use hypergraph::{HypergraphBuilder, PartitionConfig};

use super::DcpOptions;
use crate::blocks::{BlockTable, DataKind};
use crate::error::PlanningError;
use crate::planners::local::bytes_per_token;
use crate::spec::{BatchSpec, Topology};

/// Device of every token block (its home) and of every tile.
#[derive(Debug, Clone)]
pub struct Placement {
    pub block_home: Vec<u32>,
    pub tile_dev: Vec<u32>,
}

/// Places blocks and tiles by two-constraint hypergraph partitioning.
pub fn place(
    table: &BlockTable,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &DcpOptions,
) -> Result<Placement, PlanningError> {
    let k = topo.n_devices();
    let nb = table.blocks.len();
    if k == 1 {
        return Ok(Placement {
            block_home: vec![0; nb],
            tile_dev: vec![0; table.tiles.len()],
        });
    }
    let (hg, mut cfg) = placement_problem(table, batch, topo, opts)?;
    let part = match hypergraph::partition(&hg, &cfg) {
        Ok(p) => p,
        Err(hypergraph::Error::Infeasible { .. }) => {
            // The tight capacities may defeat the rebalancer; average + heaviest vertex always
            // admits a greedy assignment.
            let relaxed: Vec<u64> = (0..hg.dims())
                .map(|dim| {
                    let avg = hg.total_weight()[dim].div_ceil(k as u64);
                    let heaviest = (0..hg.num_vertices() as u32)
                        .map(|v| hg.vertex_weight(v)[dim])
                        .max()
                        .unwrap_or(0);
                    cfg.capacities
                        .as_ref()
                        .map(|c| c[0][dim])
                        .unwrap_or(0)
                        .max(avg + heaviest)
                })
                .collect();
            cfg.capacities = Some(vec![relaxed; k as usize]);
            hypergraph::partition(&hg, &cfg)?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Placement {
        block_home: part.parts[..nb].to_vec(),
        tile_dev: part.parts[nb..].to_vec(),
    })
}

/// The placement hypergraph (vertices: token blocks first, then tiles in table order) and the
/// partitioner configuration (capacities, topology, seed) the planner uses.
pub fn placement_problem(
    table: &BlockTable,
    batch: &BatchSpec,
    topo: &Topology,
    opts: &DcpOptions,
) -> Result<(hypergraph::Hypergraph, PartitionConfig), PlanningError> {
    let k = topo.n_devices();
    let nb = table.blocks.len();
    let bpt = bytes_per_token(batch);
    let mut hb = HypergraphBuilder::new(2);
    for b in &table.blocks {
        hb.add_vertex(&[0, b.len as u64 * bpt]);
    }
    for t in &table.tiles {
        hb.add_vertex(&[t.attended.max(1) * table.q_heads_per_block as u64, 0]);
    }
    // Nets: per (token block, head block) a Q-side and a KV-side net.
    let nh = table.n_head_blocks as usize;
    let mut q_pins: Vec<Vec<u32>> = vec![Vec::new(); nb * nh];
    let mut kv_pins: Vec<Vec<u32>> = vec![Vec::new(); nb * nh];
    for (ti, t) in table.tiles.iter().enumerate() {
        q_pins[t.q_block as usize * nh + t.head_block as usize].push((nb + ti) as u32);
        kv_pins[t.kv_block as usize * nh + t.head_block as usize].push((nb + ti) as u32);
    }
    for b in 0..nb {
        let qb = table.data_bytes(DataKind::Q, b as u32);
        let lb = table.data_bytes(DataKind::Lse, b as u32);
        let kb = table.data_bytes(DataKind::Kv, b as u32);
        for h in 0..nh {
            for (pins, w) in [
                (&mut q_pins[b * nh + h], 6 * qb + 2 * lb),
                (&mut kv_pins[b * nh + h], 3 * kb),
            ] {
                if !pins.is_empty() {
                    pins.push(b as u32);
                    hb.add_net(w.max(1), pins);
                }
            }
        }
    }
    let hg = hb.build()?;
    let mut cfg = PartitionConfig::new(k, 0.0)
        .with_seed(opts.seed)
        .with_preset(opts.preset);
    // Capacity per dimension: (1+ε)·average, but never below what a longest-first packing of
    // the indivisible vertices achieves, so a feasible assignment exists.
    let caps: Vec<u64> = [opts.comp_epsilon, opts.mem_epsilon]
        .iter()
        .enumerate()
        .map(|(dim, eps)| {
            let avg = hg.total_weight()[dim].div_ceil(k as u64);
            let w: Vec<u64> = (0..hg.num_vertices() as u32)
                .map(|v| hg.vertex_weight(v)[dim])
                .collect();
            (((1.0 + eps) * avg as f64).floor() as u64).max(lpt_max(&w, k))
        })
        .collect();
    cfg.capacities = Some(vec![caps; k as usize]);
    if topo.nodes > 1 {
        cfg.topology = Some(hypergraph::config::Topology::uniform(
            k,
            topo.gpus_per_node,
            opts.inter_node_factor
                .unwrap_or_else(|| topo.inter_cost_ratio()),
        ));
    }
    Ok((hg, cfg))
}

/// Largest bin of a longest-processing-time-first packing of `w` into `k` bins.
fn lpt_max(w: &[u64], k: u32) -> u64 {
    let mut v: Vec<u64> = w.iter().copied().filter(|&x| x > 0).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    let mut bins = std::collections::BinaryHeap::new();
    for _ in 0..k {
        bins.push(std::cmp::Reverse(0u64));
    }
    for x in v {
        let std::cmp::Reverse(l) = bins.pop().expect("k ≥ 1");
        bins.push(std::cmp::Reverse(l + x));
    }
    bins.into_iter()
        .map(|std::cmp::Reverse(l)| l)
        .max()
        .unwrap_or(0)
}
