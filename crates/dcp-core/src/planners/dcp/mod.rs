//! The DCP planner: blockwise placement by hypergraph partitioning, an overlapped stage
//! schedule, and forward/backward programs in the Plan IR.
//!
//! 1. **Placement.** One vertex per token block (weight: resident memory) and one per
//!    computation tile (weight: attended pairs) — two separate balance constraints. One net per
//!    data block joins its token block to every tile that reads it; its weight is the bytes the
//!    plan moves when the net is cut, forward *and* backward (Q-side: Q, O, LSE out and back, dO,
//!    dQ; KV-side: KV twice and dKV). Connectivity−1 is then exactly the bytes moved, and with
//!    several nodes an inter-node span costs `inter_node_factor` times more.
//! 2. **Schedule.** Stage 0 runs the tiles whose inputs are local; the remote tiles are split
//!    into S−1 stages of equal compute, and the blocks a stage needs are fetched during the
//!    previous stage. S comes from the cost model. Partial outputs (O/LSE forward, dQ/dKV
//!    backward) leave for their owner in the first group launched after they are final.
//! 3. **Candidates.** The plan of the best stage count is compared by the cost model with the
//!    `local` plan (whole sequences per device, when they fit) and the zigzag plan; the cheapest
//!    is returned, so a `dcp` plan is never predicted slower than static CP.

use std::collections::{BTreeMap, HashMap};

use hypergraph::{HypergraphBuilder, PartitionConfig, Preset};

use crate::baselines::{bytes_per_token, plan_local, plan_ring};
use crate::blocks::{BlockTable, DataKind};
use crate::builder::{work_rows, ProgramBuilder, ScratchKind};
use crate::cost::{predict, CostModel};
use crate::error::PlanningError;
use crate::plan::{
    BwdWork, DevicePlan, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Plan, Region, RowRanges,
    TokenSpan, PLAN_FORMAT_VERSION,
};
use crate::planners::candidates::{predict_local, predict_ring, ring_lower_bound_ms};
use crate::planners::PlannerKind;
use crate::spec::{BatchSpec, DType, Topology};

#[derive(Debug, Clone)]
pub struct DcpOptions {
    /// Allowed compute imbalance (max/mean − 1) of the placement.
    pub comp_epsilon: f64,
    /// Allowed memory imbalance of the home data.
    pub mem_epsilon: f64,
    /// Cost of an inter-node byte relative to an intra-node byte (default: from the topology's
    /// bandwidths, [`Topology::inter_cost_ratio`]).
    pub inter_node_factor: Option<u64>,
    pub seed: u64,
    /// Fixed number of stages (default: chosen by the cost model).
    pub stages: Option<u32>,
    pub cost: CostModel,
    pub preset: Preset,
    /// Return the zigzag plan when the cost model predicts it faster.
    pub fallback_static: bool,
}

impl Default for DcpOptions {
    fn default() -> Self {
        DcpOptions {
            comp_epsilon: 0.08,
            mem_epsilon: 0.15,
            inter_node_factor: None,
            seed: 0,
            stages: None,
            cost: CostModel::default(),
            preset: Preset::Fast,
            fallback_static: true,
        }
    }
}

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
            hypergraph::partition(&hg, &cfg).map_err(|e| PlanningError::Partition(e.to_string()))?
        }
        Err(e) => return Err(PlanningError::Partition(e.to_string())),
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
    let hg = hb
        .build()
        .map_err(|e| PlanningError::Partition(e.to_string()))?;
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

/// Stage of every tile; stage 0 holds the tiles with local inputs.
fn split_stages(table: &BlockTable, pl: &Placement, n_dev: u32, stages: u32) -> Vec<u32> {
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
fn estimate(
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

/// Plans a batch with DCP.
pub fn plan_dcp(
    batch: &BatchSpec,
    topo: &Topology,
    opts: &DcpOptions,
) -> Result<Plan, PlanningError> {
    let table = BlockTable::build(batch)?;
    let pl = place(&table, batch, topo, opts)?;
    let n = topo.n_devices();
    let any_remote = table.tiles.iter().enumerate().any(|(ti, t)| {
        let d = pl.tile_dev[ti];
        pl.block_home[t.q_block as usize] != d || pl.block_home[t.kv_block as usize] != d
    });
    let stages = match opts.stages {
        Some(s) => s.max(if any_remote { 2 } else { 1 }),
        None if !any_remote => 1,
        None => (2..=8u32)
            .map(|s| {
                (
                    s,
                    estimate(
                        &table,
                        &pl,
                        topo,
                        &opts.cost,
                        &split_stages(&table, &pl, n, s),
                        s,
                    ),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|x| x.0)
            .unwrap_or(2),
    };
    let stage = if stages == 1 {
        vec![0; table.tiles.len()]
    } else {
        split_stages(&table, &pl, n, stages)
    };
    let plan = emit(batch, topo, &table, &pl, &stage, stages);
    if !(opts.fallback_static && n > 1) {
        return Ok(plan);
    }
    // The static candidates are predicted without building them; only a winner is emitted.
    let mut best_t = {
        let a = predict(&plan, &opts.cost);
        a.fwd_ms + a.bwd_ms
    };
    let mut winner: Option<PlannerKind> = None;
    // Whole sequences on single devices (no communication at all) when they fit and balance
    // within the compute tolerance: the best plan when few devices share a batch of many
    // sequences. (An unbalanced local plan can only win when the batch is so cheap that
    // latencies dominate; it is not offered then.)
    if let Ok((p, imbalance)) = predict_local(batch, topo, &opts.cost, None) {
        let balanced = imbalance <= 1.0 + opts.comp_epsilon.max(0.10);
        if balanced && p.fwd_ms + p.bwd_ms < best_t {
            best_t = p.fwd_ms + p.bwd_ms;
            winner = Some(PlannerKind::Local);
        }
    }
    // Ring and zigzag: the model costs O(devices² · sequences) tile counts; skip it when even a
    // lower bound (perfect compute balance; serialized KV and dKV hops over each device's link)
    // cannot beat the best so far.
    let flops: f64 = table.tiles.iter().map(|t| table.tile_flops(t)).sum();
    for (kind, zigzag) in [(PlannerKind::Zigzag, true), (PlannerKind::Ring, false)] {
        if best_t > ring_lower_bound_ms(batch, topo, &opts.cost, flops, zigzag) {
            let p = predict_ring(batch, topo, &opts.cost, zigzag);
            if p.fwd_ms + p.bwd_ms < best_t {
                best_t = p.fwd_ms + p.bwd_ms;
                winner = Some(kind);
            }
        }
    }
    // The plan says which candidate won (`candidate`); its planner stays `dcp`.
    let mut best = match winner {
        None => return Ok(plan),
        Some(PlannerKind::Local) => plan_local(batch, topo, None)?,
        Some(z) => plan_ring(batch, topo, z == PlannerKind::Zigzag)?,
    };
    best.planner = PlannerKind::Dcp.name().to_string();
    best.candidate = winner;
    Ok(best)
}

/// Per device: which blocks it holds and where they sit in its buffers.
struct DevLayout {
    /// Row of each home block in the IO buffers.
    row: HashMap<u32, u32>,
    layout: Vec<TokenSpan>,
    tokens: u32,
}

fn layouts(table: &BlockTable, pl: &Placement, n: u32) -> Vec<DevLayout> {
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
struct Slots {
    at: BTreeMap<u32, u32>,
    tokens: u32,
}

/// First-fit placement of live intervals: `(block, len, first, last)` stage intervals
/// (inclusive); two blocks share rows only when their intervals are disjoint.
fn alloc_live(items: impl Iterator<Item = (u32, u32, u32, u32)>) -> Slots {
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

/// A work of one device and stage: query block and head block, and its KV blocks (sorted).
struct WorkSpec {
    q: u32,
    hb: u32,
    kv: Vec<u32>,
    rows: RowRanges,
    first: bool,
}

/// One transfer of a program, before it is split into per-device ops.
struct Xfer {
    tag: u32,
    order: (u8, u32, u32, u32),
    src: u32,
    dst: u32,
    src_region: Region,
    dst_region: Region,
}

fn emit(
    batch: &BatchSpec,
    topo: &Topology,
    table: &BlockTable,
    pl: &Placement,
    stage: &[u32],
    stages: u32,
) -> Plan {
    let n = topo.n_devices();
    let model = batch.model;
    let lay = layouts(table, pl, n);
    let (qpb, kpb) = (table.q_heads_per_block, table.kv_heads_per_block);
    let blen = |b: u32| table.blocks[b as usize].len;
    let home = |b: u32| pl.block_home[b as usize];

    // Works per device: (stage, q, hb) → kv blocks.
    let mut per: Vec<BTreeMap<(u32, u32, u32), Vec<u32>>> = vec![BTreeMap::new(); n as usize];
    for (ti, t) in table.tiles.iter().enumerate() {
        per[pl.tile_dev[ti] as usize]
            .entry((stage[ti], t.q_block, t.head_block))
            .or_default()
            .push(t.kv_block);
    }
    let mut rows_cache: HashMap<(u32, Vec<u32>), RowRanges> = HashMap::new();
    let mut works: Vec<Vec<Vec<WorkSpec>>> = Vec::with_capacity(n as usize);
    // Last stage each (q,hb) / (kv,hb) is used on each device, and first stage of each remote need.
    let mut q_last: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    let mut kv_last: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    let mut q_need: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    let mut kv_need: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    for d in 0..n as usize {
        let mut by_stage: Vec<Vec<WorkSpec>> = (0..stages).map(|_| Vec::new()).collect();
        let mut seen: BTreeMap<(u32, u32), ()> = BTreeMap::new();
        for (&(s, q, hb), kvs) in &per[d] {
            let mut kv = kvs.clone();
            kv.sort_unstable();
            let key = (q, kv.clone());
            let rows = rows_cache
                .entry(key)
                .or_insert_with(|| {
                    let qb = table.blocks[q as usize];
                    let spans: Vec<(u32, u32)> = kv
                        .iter()
                        .map(|&k| (table.blocks[k as usize].start, table.blocks[k as usize].len))
                        .collect();
                    work_rows(&table.masks[qb.seq as usize], &[(qb.start, qb.len)], &spans).0
                })
                .clone();
            let first = seen.insert((q, hb), ()).is_none();
            q_last[d].insert((q, hb), s);
            if home(q) != d as u32 {
                q_need[d].entry((q, hb)).or_insert(s);
            }
            for &k in &kv {
                let e = kv_last[d].entry((k, hb)).or_insert(s);
                *e = (*e).max(s);
                if home(k) != d as u32 {
                    let e = kv_need[d].entry((k, hb)).or_insert(s);
                    *e = (*e).min(s);
                }
            }
            by_stage[s as usize].push(WorkSpec {
                q,
                hb,
                kv,
                rows,
                first,
            });
        }
        works.push(by_stage);
    }
    // Tag of the group that carries a partial finalized at stage f.
    let out_tag = |f: u32| if f + 2 < stages { f + 2 } else { stages };

    let mut devices: Vec<DevicePlan> = Vec::new();
    let mut fwd_builders = Vec::new();
    let mut bwd_builders = Vec::new();
    let mut fwd_x: Vec<Xfer> = Vec::new();
    let mut bwd_x: Vec<Xfer> = Vec::new();

    // Per device buffer ids, declared first so transfers can name them.
    struct FwdBufs {
        q: u32,
        kv: u32,
        o: u32,
        lse: u32,
        q_rem: u32,
        kv_rem: u32,
        o_acc: u32,
        l_acc: u32,
        o_part: u32,
        l_part: u32,
        o_send: u32,
        o_recv: u32,
        l_recv: u32,
        o_tmp: u32,
        l_tmp: u32,
    }
    struct BwdBufs {
        q: u32,
        kv: u32,
        o: u32,
        lse: u32,
        d_o: u32,
        dq: u32,
        dkv: u32,
        q_rem: u32,
        o_rem: u32,
        do_rem: u32,
        l_rem: u32,
        kv_rem: u32,
        dq_acc: u32,
        dkv_acc: u32,
        dq_part: u32,
        dkv_part: u32,
        dq_send: u32,
        dkv_send: u32,
        dq_recv: u32,
        dkv_recv: u32,
    }
    let mut q_slots: Vec<Slots> = (0..n).map(|_| Slots::default()).collect();
    let mut kv_slots: Vec<Slots> = (0..n).map(|_| Slots::default()).collect();
    // Remote inputs share slots when their lifetimes (fetch stage − 1 ..= last use) do not overlap.
    let mut qi_slots: Vec<Slots> = Vec::with_capacity(n as usize);
    let mut kvi_slots: Vec<Slots> = Vec::with_capacity(n as usize);
    for d in 0..n as usize {
        for (need, last, out) in [
            (&q_need[d], &q_last[d], &mut qi_slots),
            (&kv_need[d], &kv_last[d], &mut kvi_slots),
        ] {
            let mut life: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
            for (&(blk, hb), &s0) in need {
                let e = life.entry(blk).or_insert((s0, 0));
                e.0 = e.0.min(s0);
                e.1 = e.1.max(last[&(blk, hb)]);
            }
            out.push(alloc_live(life.iter().map(|(&blk, &(s0, s1))| {
                (blk, blen(blk), s0.saturating_sub(1), s1)
            })));
        }
    }
    // Receive slots at the home for partials: (block, source) → rows.
    let mut oq_recv: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    let mut okv_recv: Vec<BTreeMap<(u32, u32), u32>> = vec![BTreeMap::new(); n as usize];
    let mut oq_tokens = vec![0u32; n as usize];
    let mut okv_tokens = vec![0u32; n as usize];
    for d in 0..n as usize {
        // Partial-output slots (accumulator + send staging) live from the block's first use
        // until the group sending it has been waited for.
        for (need, last, slots) in [
            (&q_need[d], &q_last[d], &mut q_slots[d]),
            (&kv_need[d], &kv_last[d], &mut kv_slots[d]),
        ] {
            let mut life: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
            for (&(blk, hb), &s0) in need {
                let e = life.entry(blk).or_insert((s0, 0));
                e.0 = e.0.min(s0);
                e.1 = e.1.max(last[&(blk, hb)]);
            }
            *slots = alloc_live(
                life.iter()
                    .map(|(&blk, &(s0, s1))| (blk, blen(blk), s0, out_tag(s1) - 1)),
            );
        }
        for &(q, _) in q_last[d].keys() {
            let h = home(q) as usize;
            if h != d && !oq_recv[h].contains_key(&(q, d as u32)) {
                oq_recv[h].insert((q, d as u32), oq_tokens[h]);
                oq_tokens[h] += blen(q);
            }
        }
        for &(k, _) in kv_last[d].keys() {
            let h = home(k) as usize;
            if h != d && !okv_recv[h].contains_key(&(k, d as u32)) {
                okv_recv[h].insert((k, d as u32), okv_tokens[h]);
                okv_tokens[h] += blen(k);
            }
        }
    }
    let mut fb: Vec<FwdBufs> = Vec::new();
    let mut bb: Vec<BwdBufs> = Vec::new();
    for d in 0..n as usize {
        let t = lay[d].tokens;
        let tmp_rows = works[d]
            .iter()
            .map(|st| {
                st.iter()
                    .filter(|w| !w.first)
                    .map(|w| blen(w.q))
                    .sum::<u32>()
            })
            .max()
            .unwrap_or(0);
        let mut f = ProgramBuilder::new();
        let q = f.io(IoTensor::Q, &model, t);
        let kv = f.io(IoTensor::Kv, &model, t);
        let o = f.io(IoTensor::O, &model, t);
        let lse = f.io(IoTensor::Lse, &model, t);
        let bufs = FwdBufs {
            q,
            kv,
            o,
            lse,
            q_rem: f.scratch(
                "q_remote",
                &model,
                ScratchKind::Q,
                qi_slots[d].tokens,
                model.dtype,
            ),
            kv_rem: f.scratch(
                "kv_remote",
                &model,
                ScratchKind::Kv,
                kvi_slots[d].tokens,
                model.dtype,
            ),
            o_acc: f.scratch("o_acc", &model, ScratchKind::Q, t, DType::F32),
            l_acc: f.scratch("lse_acc", &model, ScratchKind::Lse, t, DType::F32),
            o_part: f.scratch(
                "o_part",
                &model,
                ScratchKind::Q,
                q_slots[d].tokens,
                DType::F32,
            ),
            l_part: f.scratch(
                "lse_part",
                &model,
                ScratchKind::Lse,
                q_slots[d].tokens,
                DType::F32,
            ),
            o_send: f.scratch(
                "o_send",
                &model,
                ScratchKind::Q,
                q_slots[d].tokens,
                model.dtype,
            ),
            o_recv: f.scratch("o_recv", &model, ScratchKind::Q, oq_tokens[d], model.dtype),
            l_recv: f.scratch(
                "lse_recv",
                &model,
                ScratchKind::Lse,
                oq_tokens[d],
                DType::F32,
            ),
            o_tmp: f.scratch("o_tmp", &model, ScratchKind::Q, tmp_rows, DType::F32),
            l_tmp: f.scratch("lse_tmp", &model, ScratchKind::Lse, tmp_rows, DType::F32),
        };
        fb.push(bufs);
        fwd_builders.push(f);
        let mut b = ProgramBuilder::new();
        let bufs = BwdBufs {
            q: b.io(IoTensor::Q, &model, t),
            kv: b.io(IoTensor::Kv, &model, t),
            o: b.io(IoTensor::O, &model, t),
            lse: b.io(IoTensor::Lse, &model, t),
            d_o: b.io(IoTensor::DO, &model, t),
            dq: b.io(IoTensor::DQ, &model, t),
            dkv: b.io(IoTensor::DKv, &model, t),
            q_rem: b.scratch(
                "q_remote",
                &model,
                ScratchKind::Q,
                qi_slots[d].tokens,
                model.dtype,
            ),
            o_rem: b.scratch(
                "o_remote",
                &model,
                ScratchKind::Q,
                qi_slots[d].tokens,
                model.dtype,
            ),
            do_rem: b.scratch(
                "do_remote",
                &model,
                ScratchKind::Q,
                qi_slots[d].tokens,
                model.dtype,
            ),
            l_rem: b.scratch(
                "lse_remote",
                &model,
                ScratchKind::Lse,
                qi_slots[d].tokens,
                DType::F32,
            ),
            kv_rem: b.scratch(
                "kv_remote",
                &model,
                ScratchKind::Kv,
                kvi_slots[d].tokens,
                model.dtype,
            ),
            dq_acc: b.scratch("dq_acc", &model, ScratchKind::Q, t, DType::F32),
            dkv_acc: b.scratch("dkv_acc", &model, ScratchKind::Kv, t, DType::F32),
            dq_part: b.scratch(
                "dq_part",
                &model,
                ScratchKind::Q,
                q_slots[d].tokens,
                DType::F32,
            ),
            dkv_part: b.scratch(
                "dkv_part",
                &model,
                ScratchKind::Kv,
                kv_slots[d].tokens,
                DType::F32,
            ),
            dq_send: b.scratch(
                "dq_send",
                &model,
                ScratchKind::Q,
                q_slots[d].tokens,
                model.dtype,
            ),
            dkv_send: b.scratch(
                "dkv_send",
                &model,
                ScratchKind::Kv,
                kv_slots[d].tokens,
                model.dtype,
            ),
            dq_recv: b.scratch("dq_recv", &model, ScratchKind::Q, oq_tokens[d], model.dtype),
            dkv_recv: b.scratch(
                "dkv_recv",
                &model,
                ScratchKind::Kv,
                okv_tokens[d],
                model.dtype,
            ),
        };
        bb.push(bufs);
        bwd_builders.push(b);
    }
    let qh = |hb: u32| (hb * qpb, qpb);
    let kh = |hb: u32| (hb * kpb, kpb);
    let reg = |buf: u32, tok: u32, len: u32, (head, heads): (u32, u32)| Region {
        buf,
        tok,
        len,
        head,
        heads,
    };

    // Transfers.
    for d in 0..n {
        let du = d as usize;
        for (&(q, hb), &s) in &q_need[du] {
            let h = home(q);
            let (src_row, dst_row, len) = (lay[h as usize].row[&q], qi_slots[du].at[&q], blen(q));
            let ord = (0u8, q, hb, d);
            fwd_x.push(Xfer {
                tag: s,
                order: ord,
                src: h,
                dst: d,
                src_region: reg(fb[h as usize].q, src_row, len, qh(hb)),
                dst_region: reg(fb[du].q_rem, dst_row, len, qh(hb)),
            });
            let (hs, ds) = (&bb[h as usize], &bb[du]);
            for (i, (sb, db, heads)) in [
                (hs.q, ds.q_rem, qh(hb)),
                (hs.o, ds.o_rem, qh(hb)),
                (hs.d_o, ds.do_rem, qh(hb)),
                (hs.lse, ds.l_rem, qh(hb)),
            ]
            .into_iter()
            .enumerate()
            {
                bwd_x.push(Xfer {
                    tag: s,
                    order: (i as u8, q, hb, d),
                    src: h,
                    dst: d,
                    src_region: reg(sb, src_row, len, heads),
                    dst_region: reg(db, dst_row, len, heads),
                });
            }
        }
        for (&(k, hb), &s) in &kv_need[du] {
            let h = home(k);
            let (src_row, dst_row, len) = (lay[h as usize].row[&k], kvi_slots[du].at[&k], blen(k));
            fwd_x.push(Xfer {
                tag: s,
                order: (1, k, hb, d),
                src: h,
                dst: d,
                src_region: reg(fb[h as usize].kv, src_row, len, kh(hb)),
                dst_region: reg(fb[du].kv_rem, dst_row, len, kh(hb)),
            });
            bwd_x.push(Xfer {
                tag: s,
                order: (4, k, hb, d),
                src: h,
                dst: d,
                src_region: reg(bb[h as usize].kv, src_row, len, kh(hb)),
                dst_region: reg(bb[du].kv_rem, dst_row, len, kh(hb)),
            });
        }
        // Partials toward their homes.
        for (&(q, hb), &f) in &q_last[du] {
            let h = home(q);
            if h == d {
                continue;
            }
            let (slot, rrow, len) = (q_slots[du].at[&q], oq_recv[h as usize][&(q, d)], blen(q));
            let tag = out_tag(f);
            fwd_x.push(Xfer {
                tag,
                order: (5, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(fb[du].o_send, slot, len, qh(hb)),
                dst_region: reg(fb[h as usize].o_recv, rrow, len, qh(hb)),
            });
            fwd_x.push(Xfer {
                tag,
                order: (6, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(fb[du].l_part, slot, len, qh(hb)),
                dst_region: reg(fb[h as usize].l_recv, rrow, len, qh(hb)),
            });
            bwd_x.push(Xfer {
                tag,
                order: (5, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(bb[du].dq_send, slot, len, qh(hb)),
                dst_region: reg(bb[h as usize].dq_recv, rrow, len, qh(hb)),
            });
        }
        for (&(k, hb), &f) in &kv_last[du] {
            let h = home(k);
            if h == d {
                continue;
            }
            let (slot, rrow, len) = (kv_slots[du].at[&k], okv_recv[h as usize][&(k, d)], blen(k));
            bwd_x.push(Xfer {
                tag: out_tag(f),
                order: (6, k, hb, d),
                src: d,
                dst: h,
                src_region: reg(bb[du].dkv_send, slot, len, kh(hb)),
                dst_region: reg(bb[h as usize].dkv_recv, rrow, len, kh(hb)),
            });
        }
    }
    let group = |xs: &mut Vec<Xfer>| -> Vec<BTreeMap<u32, Vec<P2p>>> {
        xs.sort_by_key(|x| (x.tag, x.order, x.src, x.dst));
        let mut per: Vec<BTreeMap<u32, Vec<P2p>>> = vec![BTreeMap::new(); n as usize];
        for x in xs.iter() {
            per[x.src as usize].entry(x.tag).or_default().push(P2p {
                dir: Dir::Send,
                peer: x.dst,
                region: x.src_region,
            });
            per[x.dst as usize].entry(x.tag).or_default().push(P2p {
                dir: Dir::Recv,
                peer: x.src,
                region: x.dst_region,
            });
        }
        per
    };
    let fwd_groups = group(&mut fwd_x);
    let bwd_groups = group(&mut bwd_x);

    // How many devices compute each (query block, head block).
    let mut q_owners: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for ql in &q_last {
        for &k in ql.keys() {
            *q_owners.entry(k).or_default() += 1;
        }
    }
    for d in 0..n as usize {
        let du = d as u32;
        let mut f = std::mem::take(&mut fwd_builders[d]);
        let mut b = std::mem::take(&mut bwd_builders[d]);
        let (fbuf, bbuf) = (&fb[d], &bb[d]);
        // Home query blocks computed by exactly one local work and nowhere else write their final
        // O/LSE straight into the output buffers (no accumulator, no copy).
        let direct: std::collections::BTreeSet<(u32, u32)> = {
            let mut cnt: BTreeMap<(u32, u32), u32> = BTreeMap::new();
            for w in works[d].iter().flatten() {
                *cnt.entry((w.q, w.hb)).or_default() += 1;
            }
            cnt.into_iter()
                .filter(|&((q, hb), c)| c == 1 && home(q) == du && q_owners[&(q, hb)] == 1)
                .map(|x| x.0)
                .collect()
        };
        // Where a block's rows live on this device: its home rows in an IO-shaped buffer, or its
        // slot in a scratch buffer. Partial outputs use `q_slots`/`kv_slots`; remote inputs the
        // liveness-shared `qi_slots`/`kvi_slots`.
        let at =
            |blk: u32, heads: (u32, u32), buf_io: u32, buf_rem: u32, slots: &Slots| -> Region {
                if home(blk) == du {
                    reg(buf_io, lay[d].row[&blk], blen(blk), heads)
                } else {
                    reg(buf_rem, slots.at[&blk], blen(blk), heads)
                }
            };
        let q_at = |q: u32, hb: u32, io: u32, rem: u32| at(q, qh(hb), io, rem, &q_slots[d]);
        let kv_at = |k: u32, hb: u32, io: u32, rem: u32| at(k, kh(hb), io, rem, &kv_slots[d]);
        let qi_at = |q: u32, hb: u32, io: u32, rem: u32| at(q, qh(hb), io, rem, &qi_slots[d]);
        let kvi_at = |k: u32, hb: u32, io: u32, rem: u32| at(k, kh(hb), io, rem, &kvi_slots[d]);
        // Forward prologue: home (q, hb) without local work start from the merge identity.
        for (bi, _) in table
            .blocks
            .iter()
            .enumerate()
            .filter(|(bi, _)| home(*bi as u32) == du)
        {
            for hb in 0..table.n_head_blocks {
                if !q_last[d].contains_key(&(bi as u32, hb)) {
                    let r = q_at(bi as u32, hb, fbuf.o_acc, fbuf.o_part);
                    f.push(Instr::Fill {
                        dst: r,
                        value: FillValue::Zero,
                    });
                    f.push(Instr::Fill {
                        dst: Region {
                            buf: fbuf.l_acc,
                            ..r
                        },
                        value: FillValue::NegInf,
                    });
                }
            }
        }
        // Backward prologue: zero every accumulator.
        for (buf, tokens) in [(bbuf.dq_acc, lay[d].tokens), (bbuf.dkv_acc, lay[d].tokens)] {
            if tokens > 0 {
                b.push(Instr::Fill {
                    dst: b.rows(buf, 0, tokens),
                    value: FillValue::Zero,
                });
            }
        }
        let mut f_waits: Vec<u32> = Vec::new();
        let mut b_waits: Vec<u32> = Vec::new();
        for s in 0..stages {
            for (groups, pb, waits) in [
                (&fwd_groups, &mut f, &mut f_waits),
                (&bwd_groups, &mut b, &mut b_waits),
            ] {
                if s + 1 < stages {
                    if let Some(ops) = groups[d].get(&(s + 1)) {
                        pb.push(Instr::Comm {
                            tag: s + 1,
                            ops: ops.clone(),
                        });
                        waits.push(s + 1);
                    }
                }
                if waits.contains(&s) {
                    pb.push(Instr::Wait { tag: s });
                    waits.retain(|&t| t != s);
                }
            }
            // Zero the partial-gradient slots of blocks first used in this stage.
            for (need, slots, buf) in [
                (&q_need[d], &q_slots[d], bbuf.dq_part),
                (&kv_need[d], &kv_slots[d], bbuf.dkv_part),
            ] {
                let mut firsts: BTreeMap<u32, u32> = BTreeMap::new();
                for (&(blk, _), &s0) in need {
                    let e = firsts.entry(blk).or_insert(s0);
                    *e = (*e).min(s0);
                }
                for (&blk, _) in firsts.iter().filter(|(_, &s0)| s0 == s) {
                    b.push(Instr::Fill {
                        dst: b.rows(buf, slots.at[&blk], blen(blk)),
                        value: FillValue::Zero,
                    });
                }
            }
            let ws = &works[d][s as usize];
            let mut fw = Vec::new();
            let mut merges = Vec::new();
            let mut bw = Vec::new();
            let mut tmp_row = 0u32;
            for w in ws {
                let qlen = blen(w.q);
                let acc_o = q_at(w.q, w.hb, fbuf.o_acc, fbuf.o_part);
                let acc_l = Region {
                    buf: if home(w.q) == du {
                        fbuf.l_acc
                    } else {
                        fbuf.l_part
                    },
                    ..acc_o
                };
                let (out_o, out_l) = if direct.contains(&(w.q, w.hb)) {
                    let r = q_at(w.q, w.hb, fbuf.o, fbuf.o_part);
                    (r, Region { buf: fbuf.lse, ..r })
                } else if w.first {
                    (acc_o, acc_l)
                } else {
                    let r = reg(fbuf.o_tmp, tmp_row, qlen, qh(w.hb));
                    tmp_row += qlen;
                    merges.push(Instr::Merge {
                        o: acc_o,
                        lse: acc_l,
                        inputs: vec![
                            (acc_o, acc_l),
                            (
                                r,
                                Region {
                                    buf: fbuf.l_tmp,
                                    ..r
                                },
                            ),
                        ],
                    });
                    (
                        r,
                        Region {
                            buf: fbuf.l_tmp,
                            ..r
                        },
                    )
                };
                fw.push(FwdWork {
                    q: qi_at(w.q, w.hb, fbuf.q, fbuf.q_rem),
                    kv: w
                        .kv
                        .iter()
                        .map(|&k| kvi_at(k, w.hb, fbuf.kv, fbuf.kv_rem))
                        .collect(),
                    o: out_o,
                    lse: out_l,
                    rows: w.rows.clone(),
                });
                bw.push(BwdWork {
                    q: qi_at(w.q, w.hb, bbuf.q, bbuf.q_rem),
                    kv: w
                        .kv
                        .iter()
                        .map(|&k| kvi_at(k, w.hb, bbuf.kv, bbuf.kv_rem))
                        .collect(),
                    o: qi_at(w.q, w.hb, bbuf.o, bbuf.o_rem),
                    lse: qi_at(w.q, w.hb, bbuf.lse, bbuf.l_rem),
                    do_: qi_at(w.q, w.hb, bbuf.d_o, bbuf.do_rem),
                    dq: q_at(w.q, w.hb, bbuf.dq_acc, bbuf.dq_part),
                    dkv: w
                        .kv
                        .iter()
                        .map(|&k| kv_at(k, w.hb, bbuf.dkv_acc, bbuf.dkv_part))
                        .collect(),
                    rows: w.rows.clone(),
                });
            }
            if !fw.is_empty() {
                f.push(Instr::Attn {
                    stage: s,
                    works: fw,
                });
                b.push(Instr::AttnBwd {
                    stage: s,
                    works: bw,
                });
            }
            for m in merges {
                f.push(m);
            }
            // Stage partials that are final now.
            for (&(q, hb), &last) in &q_last[d] {
                if last == s && home(q) != du {
                    let slot = q_slots[d].at[&q];
                    f.push(Instr::Copy {
                        src: reg(fbuf.o_part, slot, blen(q), qh(hb)),
                        dst: reg(fbuf.o_send, slot, blen(q), qh(hb)),
                    });
                    b.push(Instr::Copy {
                        src: reg(bbuf.dq_part, slot, blen(q), qh(hb)),
                        dst: reg(bbuf.dq_send, slot, blen(q), qh(hb)),
                    });
                }
            }
            for (&(k, hb), &last) in &kv_last[d] {
                if last == s && home(k) != du {
                    let slot = kv_slots[d].at[&k];
                    b.push(Instr::Copy {
                        src: reg(bbuf.dkv_part, slot, blen(k), kh(hb)),
                        dst: reg(bbuf.dkv_send, slot, blen(k), kh(hb)),
                    });
                }
            }
        }
        for (groups, pb, waits) in [
            (&fwd_groups, &mut f, &mut f_waits),
            (&bwd_groups, &mut b, &mut b_waits),
        ] {
            if let Some(ops) = groups[d].get(&stages) {
                pb.push(Instr::Comm {
                    tag: stages,
                    ops: ops.clone(),
                });
                waits.push(stages);
            }
            for t in std::mem::take(waits) {
                pb.push(Instr::Wait { tag: t });
            }
        }
        // Epilogue: merge received partials at the home, then write the outputs.
        let mut recv_by_q: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
        for (&(q, src), &row) in &oq_recv[d] {
            recv_by_q.entry(q).or_default().push((src, row));
        }
        for (&q, srcs) in &recv_by_q {
            for hb in 0..table.n_head_blocks {
                let acc = q_at(q, hb, fbuf.o_acc, fbuf.o_part);
                let mut inputs = vec![(
                    acc,
                    Region {
                        buf: fbuf.l_acc,
                        ..acc
                    },
                )];
                let mut sums = vec![q_at(q, hb, bbuf.dq_acc, bbuf.dq_part)];
                for &(src, row) in srcs {
                    if q_last[src as usize].contains_key(&(q, hb)) {
                        let r = reg(fbuf.o_recv, row, blen(q), qh(hb));
                        inputs.push((
                            r,
                            Region {
                                buf: fbuf.l_recv,
                                ..r
                            },
                        ));
                        sums.push(reg(bbuf.dq_recv, row, blen(q), qh(hb)));
                    }
                }
                if inputs.len() > 1 {
                    f.push(Instr::Merge {
                        o: acc,
                        lse: Region {
                            buf: fbuf.l_acc,
                            ..acc
                        },
                        inputs,
                    });
                    b.push(Instr::Sum {
                        dst: sums[0],
                        inputs: sums,
                    });
                }
            }
        }
        let mut recv_by_k: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
        for (&(k, src), &row) in &okv_recv[d] {
            recv_by_k.entry(k).or_default().push((src, row));
        }
        for (&k, srcs) in &recv_by_k {
            for hb in 0..table.n_head_blocks {
                let acc = kv_at(k, hb, bbuf.dkv_acc, bbuf.dkv_part);
                let mut sums = vec![acc];
                for &(src, row) in srcs {
                    if kv_last[src as usize].contains_key(&(k, hb)) {
                        sums.push(reg(bbuf.dkv_recv, row, blen(k), kh(hb)));
                    }
                }
                if sums.len() > 1 {
                    b.push(Instr::Sum {
                        dst: acc,
                        inputs: sums,
                    });
                }
            }
        }
        let t = lay[d].tokens;
        // Accumulated outputs to their buffers: runs of whole blocks with all head blocks
        // accumulated, single head blocks otherwise.
        let mut run: Option<(u32, u32)> = None;
        let mut copies: Vec<Region> = Vec::new();
        for (bi, _) in table
            .blocks
            .iter()
            .enumerate()
            .filter(|(bi, _)| home(*bi as u32) == du)
        {
            let (row, len) = (lay[d].row[&(bi as u32)], blen(bi as u32));
            let acc: Vec<u32> = (0..table.n_head_blocks)
                .filter(|&hb| !direct.contains(&(bi as u32, hb)))
                .collect();
            if acc.len() == table.n_head_blocks as usize {
                run = match run {
                    Some((r0, l0)) if r0 + l0 == row => Some((r0, l0 + len)),
                    Some(x) => {
                        copies.push(f.rows(fbuf.o_acc, x.0, x.1));
                        Some((row, len))
                    }
                    None => Some((row, len)),
                };
                continue;
            }
            if let Some(x) = run.take() {
                copies.push(f.rows(fbuf.o_acc, x.0, x.1));
            }
            for hb in acc {
                copies.push(reg(fbuf.o_acc, row, len, qh(hb)));
            }
        }
        if let Some(x) = run {
            copies.push(f.rows(fbuf.o_acc, x.0, x.1));
        }
        for r in copies {
            f.push(Instr::Copy {
                src: r,
                dst: Region { buf: fbuf.o, ..r },
            });
            f.push(Instr::Copy {
                src: Region {
                    buf: fbuf.l_acc,
                    ..r
                },
                dst: Region { buf: fbuf.lse, ..r },
            });
        }
        if t > 0 {
            b.push(Instr::Copy {
                src: b.rows(bbuf.dq_acc, 0, t),
                dst: b.rows(bbuf.dq, 0, t),
            });
            b.push(Instr::Copy {
                src: b.rows(bbuf.dkv_acc, 0, t),
                dst: b.rows(bbuf.dkv, 0, t),
            });
        }
        devices.push(DevicePlan {
            device: du,
            node: topo.node_of(du),
            layout: lay[d].layout.clone(),
            forward: f.finish(),
            backward: b.finish(),
        });
    }
    Plan {
        version: PLAN_FORMAT_VERSION,
        planner: "dcp".into(),
        candidate: None,
        batch: batch.clone(),
        topology: *topo,
        devices,
    }
}
