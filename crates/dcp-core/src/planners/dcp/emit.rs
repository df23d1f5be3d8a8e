//! Phase 3, emission: forward and backward programs of every device from the placement and the
//! stage of every tile. One work per (stage, query block, head block) with all its KV blocks;
//! remote inputs are fetched one stage ahead; partial outputs (O/LSE forward, dQ/dKV backward,
//! accumulated in fp32 and staged to the model dtype) leave for their home in the first group
//! after they are final, and homes merge or sum them at the end.
//!
//! The pipeline: [`usage`] (works, first and last use of every block) → [`alloc_slots`]
//! (scratch rows) → [`declare_fwd`]/[`declare_bwd`] (buffers) → [`transfers`] → [`group`] →
//! [`emit_device`] per device (prologue, stages, epilogue, output copies).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::place::Placement;
use super::slots::{alloc_live, layouts, DevLayout, Slots};
use crate::blocks::BlockTable;
use crate::builder::{work_rows, ProgramBuilder, ScratchKind};
use crate::plan::{
    BufferRole, BwdWork, DevicePlan, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Plan, Region,
    RowRanges, PLAN_FORMAT_VERSION,
};
use crate::spec::{BatchSpec, DType, ModelShape, Topology};

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

/// Buffer ids of a device's forward program.
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
    o_recv: u32,
    l_recv: u32,
    o_tmp: u32,
    l_tmp: u32,
}

/// Buffer ids of a device's backward program.
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
    /// Remote KV blocks' slots: their input in the forward and, once dead, the staging of their
    /// dKV partials for the send.
    kv_rem: u32,
    /// Where the backward's works read remote KV blocks: the forward's `kv_remote` itself
    /// (a saved buffer) when every block kept its own slot rows there ([`kv_slots_unshared`]),
    /// else `kv_rem`, into which the backward fetches them again.
    kv_in: u32,
    dq_acc: u32,
    dkv_acc: u32,
    dq_part: u32,
    dkv_part: u32,
    dq_recv: u32,
    dkv_recv: u32,
}

type StageMap = Vec<BTreeMap<(u32, u32), u32>>;
/// Per home: (block, source, head block) → (rows, head lane) of a receive slot.
type RecvMap = Vec<BTreeMap<(u32, u32, u32), (u32, u32)>>;
/// Per home: (block, source, head block) → (rows, head lane, wave) of a backward receive slot.
type WaveMap = Vec<BTreeMap<(u32, u32, u32), (u32, u32, u32)>>;

/// What every phase of one emission shares.
struct Ctx<'a> {
    table: &'a BlockTable,
    pl: &'a Placement,
    model: ModelShape,
    n: u32,
    stages: u32,
    lay: Vec<DevLayout>,
    /// Per device and stage, its works.
    works: Vec<Vec<Vec<WorkSpec>>>,
    /// Last stage each (q, hb) / (kv, hb) is used on each device, and first stage of each
    /// remote need.
    q_last: StageMap,
    kv_last: StageMap,
    q_need: StageMap,
    kv_need: StageMap,
    /// Slots of remote blocks per device: the block's input (and the forward LSE partial) and,
    /// once the input is dead, the send staging of its partial output share the rows.
    q_slots: Vec<Slots>,
    kv_slots: Vec<Slots>,
    /// Slots of the fp32 partial outputs (O, dQ, dKV) of remote blocks: live only from the
    /// block's first use through its staging copy, so they share rows across stages.
    q_pslots: Vec<Slots>,
    kv_pslots: Vec<Slots>,
    /// Receive slots at the home for partials, one head block each, packed into head lanes
    /// (see [`lane_pack`]); and their rows.
    oq_recv: RecvMap,
    okv_recv: RecvMap,
    oq_tokens: Vec<u32>,
    okv_tokens: Vec<u32>,
    /// Backward receive slots at the homes, (block, source, head block) → (rows, lane, wave),
    /// and their rows.
    /// Wave 0: the slot is the pair's own and summed at the end; wave w ≥ 1: the pair's
    /// partial arrives in the final group's w-th round (tag `stages + w − 1`) and is summed
    /// right after it, so the rounds of one home share rows.
    bq_recv: WaveMap,
    bkv_recv: WaveMap,
    bq_tokens: Vec<u32>,
    bkv_tokens: Vec<u32>,
    /// Rounds of the backward's final group (≥ 1).
    waves: u32,
}

impl Ctx<'_> {
    fn blen(&self, b: u32) -> u32 {
        self.table.blocks[b as usize].len
    }
    fn home(&self, b: u32) -> u32 {
        self.pl.block_home[b as usize]
    }
    fn qh(&self, hb: u32) -> (u32, u32) {
        let q = self.table.q_heads_per_block;
        (hb * q, q)
    }
    fn kh(&self, hb: u32) -> (u32, u32) {
        let k = self.table.kv_heads_per_block;
        (hb * k, k)
    }
    /// Tag of the group that carries a partial finalized at stage `f`.
    fn out_tag(&self, f: u32) -> u32 {
        if f + 2 < self.stages {
            f + 2
        } else {
            self.stages
        }
    }
}

fn reg(buf: u32, tok: u32, len: u32, (head, heads): (u32, u32)) -> Region {
    Region {
        buf,
        tok,
        len,
        head,
        heads,
    }
}

/// Groups tiles into works per device and stage, and records the first and last use of every
/// block on every device.
fn usage(cx: &mut Ctx, stage: &[u32]) {
    let (n, stages, table, pl) = (cx.n, cx.stages, cx.table, cx.pl);
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
    cx.works = works;
    cx.q_last = q_last;
    cx.kv_last = kv_last;
    cx.q_need = q_need;
    cx.kv_need = kv_need;
}

/// Scratch rows: one slot per remote block (its input, its partial output and the partial's
/// send staging), shared with other blocks whose lifetimes (fetch stage − 1 ..= the wait of the
/// group sending the partial) do not overlap; receive slots for partials at their homes.
fn alloc_slots(cx: &mut Ctx) {
    let n = cx.n;
    let (q_need, kv_need, q_last, kv_last) = (&cx.q_need, &cx.kv_need, &cx.q_last, &cx.kv_last);
    let blen = |b: u32| cx.blen(b);
    let home = |b: u32| cx.home(b);
    let out_tag = |f: u32| cx.out_tag(f);
    // One slot per remote block serves its input (Q, or KV), its fp32 partial and, once the
    // input is dead, the staging of that partial for its send: it lives from the stage whose
    // group fetches it (first use − 1) through the stage that waits for the group sending the
    // partial (`out_tag`), so a later fetch into the same rows is posted only after that wait.
    // The fp32 partial itself is zeroed (or first written) at its first use and read for the
    // last time by the staging copy after its last use: a separate slot live over those stages.
    let mut q_slots: Vec<Slots> = Vec::with_capacity(n as usize);
    let mut kv_slots: Vec<Slots> = Vec::with_capacity(n as usize);
    let mut q_pslots: Vec<Slots> = Vec::with_capacity(n as usize);
    let mut kv_pslots: Vec<Slots> = Vec::with_capacity(n as usize);
    for d in 0..n as usize {
        for (need, last, out, pout) in [
            (&q_need[d], &q_last[d], &mut q_slots, &mut q_pslots),
            (&kv_need[d], &kv_last[d], &mut kv_slots, &mut kv_pslots),
        ] {
            let lanes = cx.table.n_head_blocks;
            let life: Vec<((u32, u32), u32, u32)> = need
                .iter()
                .map(|(&key, &s0)| (key, s0, last[&key]))
                .collect();
            out.push(alloc_live(
                life.iter().map(|&((blk, hb), s0, s1)| {
                    ((blk, hb), blen(blk), s0.saturating_sub(1), out_tag(s1))
                }),
                lanes,
            ));
            pout.push(alloc_live(
                life.iter()
                    .map(|&((blk, hb), s0, s1)| ((blk, hb), blen(blk), s0, s1)),
                lanes,
            ));
        }
    }
    // Receive slots at the home for partials: (block, source, head block) → rows, lane.
    let lanes = cx.table.n_head_blocks;
    let mut q_items: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); n as usize];
    let mut kv_items: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); n as usize];
    for d in 0..n as usize {
        for (last, items) in [(&q_last[d], &mut q_items), (&kv_last[d], &mut kv_items)] {
            for &(b, hb) in last.keys() {
                let h = home(b) as usize;
                if h != d {
                    items[h].push((b, d as u32, hb));
                }
            }
        }
    }
    let pack = |items: Vec<Vec<(u32, u32, u32)>>| -> (RecvMap, Vec<u32>) {
        items
            .into_iter()
            .map(|mut v| {
                v.sort_unstable();
                let mut fill = vec![0u32; lanes as usize];
                let map = lane_pack(v.iter().map(|&key| (key, blen(key.0))), &mut fill, 0);
                (map, fill.into_iter().max().unwrap_or(0))
            })
            .unzip()
    };
    let (oq_recv, oq_tokens) = pack(q_items);
    let (okv_recv, okv_tokens) = pack(kv_items);
    (cx.q_slots, cx.kv_slots) = (q_slots, kv_slots);
    (cx.q_pslots, cx.kv_pslots) = (q_pslots, kv_pslots);
    let (bq, bq_tokens, wq) = recv_waves(cx, &oq_recv, &oq_tokens, q_last);
    let (bkv, bkv_tokens, wkv) = recv_waves(cx, &okv_recv, &okv_tokens, kv_last);
    (cx.bq_recv, cx.bkv_recv, cx.bq_tokens, cx.bkv_tokens) = (bq, bkv, bq_tokens, bkv_tokens);
    cx.waves = wq.max(wkv);
    (cx.oq_recv, cx.okv_recv, cx.oq_tokens, cx.okv_tokens) =
        (oq_recv, okv_recv, oq_tokens, okv_tokens);
}

/// Places receive items `(key, len)` (in the given order) in head lanes, each in the lane of
/// the least `fill`, at row `base + fill`; `fill` is updated.
fn lane_pack(
    items: impl Iterator<Item = ((u32, u32, u32), u32)>,
    fill: &mut [u32],
    base: u32,
) -> BTreeMap<(u32, u32, u32), (u32, u32)> {
    let mut map = BTreeMap::new();
    for (key, len) in items {
        let lane = (0..fill.len())
            .min_by_key(|&l| (fill[l], l))
            .expect("at least one lane");
        map.insert(key, (base + fill[lane], lane as u32));
        fill[lane] += len;
    }
    map
}

/// Backward receive slots of one side (query or KV partials). A home whose receive rows
/// exceed [`RECV_WAVE_FACTOR`] times the mean over devices (e.g. the home of an attention-sink
/// block that every device reads) takes the partials that arrive in the final group in
/// rounds of at most that many rows, summing each round before the next arrives; the others
/// keep one slot per (block, source, head block). Returns the slots, the rows per device and
/// the rounds.
fn recv_waves(
    cx: &Ctx,
    recv: &RecvMap,
    tokens: &[u32],
    last: &StageMap,
) -> (WaveMap, Vec<u32>, u32) {
    let n = recv.len();
    let lanes = cx.table.n_head_blocks as usize;
    let longest = cx.table.blocks.iter().map(|b| b.len).max().unwrap_or(0);
    let mean = tokens.iter().map(|&t| t as u64).sum::<u64>() as f64 / n.max(1) as f64;
    let cap = ((RECV_WAVE_FACTOR * mean) as u32).max(longest);
    let mut out = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n);
    let mut waves = 1u32;
    for h in 0..n {
        if tokens[h] <= cap {
            out.push(
                recv[h]
                    .iter()
                    .map(|(&key, &(row, lane))| (key, (row, lane, 0)))
                    .collect(),
            );
            rows.push(tokens[h]);
            continue;
        }
        // Slots whose partial arrives in the final group go into rounds; the others keep
        // their own rows first.
        let is_final = |&(blk, src, hb): &(u32, u32, u32)| {
            cx.out_tag(last[src as usize][&(blk, hb)]) == cx.stages
        };
        let mut fill = vec![0u32; lanes];
        let own_map = lane_pack(
            recv[h]
                .keys()
                .filter(|k| !is_final(k))
                .map(|&k| (k, cx.blen(k.0))),
            &mut fill,
            0,
        );
        let own = fill.iter().copied().max().unwrap_or(0);
        let mut map: BTreeMap<(u32, u32, u32), (u32, u32, u32)> = own_map
            .into_iter()
            .map(|(k, (row, lane))| (k, (row, lane, 0)))
            .collect();
        let room = cap.saturating_sub(own).max(longest);
        let (mut wave, mut peak) = (1u32, 0u32);
        let mut fill = vec![0u32; lanes];
        for &key in recv[h].keys().filter(|k| is_final(k)) {
            let len = cx.blen(key.0);
            let lane = (0..lanes).min_by_key(|&l| (fill[l], l)).expect("lanes");
            let lane = if fill[lane] + len > room {
                wave += 1;
                fill.iter_mut().for_each(|f| *f = 0);
                0
            } else {
                lane
            };
            map.insert(key, (own + fill[lane], lane as u32, wave));
            fill[lane] += len;
            peak = peak.max(fill[lane]);
        }
        waves = waves.max(wave);
        out.push(map);
        rows.push(own + peak);
    }
    (out, rows, waves)
}

/// A home's backward receive rows may exceed the mean over devices by this factor before its
/// final partials arrive in rounds.
const RECV_WAVE_FACTOR: f64 = 2.0;

/// The forward program's buffers on device `d`.
fn declare_fwd(cx: &Ctx, d: usize) -> (ProgramBuilder, FwdBufs) {
    let (model, lay, works) = (cx.model, &cx.lay, &cx.works);
    let (q_slots, kv_slots, oq_tokens) = (&cx.q_slots, &cx.kv_slots, &cx.oq_tokens);
    let q_pslots = &cx.q_pslots;
    let blen = |b: u32| cx.blen(b);
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
            q_slots[d].tokens,
            model.dtype,
        ),
        kv_rem: f.scratch(
            "kv_remote",
            &model,
            ScratchKind::Kv,
            kv_slots[d].tokens,
            model.dtype,
        ),
        o_acc: f.scratch("o_acc", &model, ScratchKind::Q, t, DType::F32),
        l_acc: f.scratch("lse_acc", &model, ScratchKind::Lse, t, DType::F32),
        o_part: f.scratch(
            "o_part",
            &model,
            ScratchKind::Q,
            q_pslots[d].tokens,
            DType::F32,
        ),
        l_part: f.scratch(
            "lse_part",
            &model,
            ScratchKind::Lse,
            q_slots[d].tokens,
            DType::F32,
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
    (f, bufs)
}

/// Whether every remote KV block of device `d` has slot rows of its own (no two blocks share
/// rows of a lane): then the forward's `kv_remote` ends holding every block the backward reads,
/// and the backward reads them there instead of fetching them again.
fn kv_slots_unshared(cx: &Ctx, d: usize) -> bool {
    let slots = &cx.kv_slots[d];
    let mut items: Vec<(u32, u32, u32)> = slots
        .at
        .iter()
        .map(|(&(k, _), &(row, lane))| (lane, row, row + cx.blen(k)))
        .collect();
    items.sort_unstable();
    items
        .windows(2)
        .all(|w| w[0].0 != w[1].0 || w[0].2 <= w[1].1)
}

/// The backward program's buffers on device `d`; `saved_kv`: the forward's `kv_remote` buffer
/// when the backward reads remote KV blocks from it ([`kv_slots_unshared`]).
fn declare_bwd(cx: &Ctx, d: usize, saved_kv: Option<u32>) -> (ProgramBuilder, BwdBufs) {
    let (model, t) = (cx.model, cx.lay[d].tokens);
    let (q_slots, kv_slots) = (&cx.q_slots, &cx.kv_slots);
    let (q_pslots, kv_pslots) = (&cx.q_pslots, &cx.kv_pslots);
    let (oq_tokens, okv_tokens) = (&cx.bq_tokens, &cx.bkv_tokens);
    let mut b = ProgramBuilder::new();
    let mut bufs = BwdBufs {
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
            q_slots[d].tokens,
            model.dtype,
        ),
        o_rem: b.scratch(
            "o_remote",
            &model,
            ScratchKind::Q,
            q_slots[d].tokens,
            model.dtype,
        ),
        do_rem: b.scratch(
            "do_remote",
            &model,
            ScratchKind::Q,
            q_slots[d].tokens,
            model.dtype,
        ),
        l_rem: b.scratch(
            "lse_remote",
            &model,
            ScratchKind::Lse,
            q_slots[d].tokens,
            DType::F32,
        ),
        kv_rem: b.scratch(
            "kv_remote",
            &model,
            ScratchKind::Kv,
            kv_slots[d].tokens,
            model.dtype,
        ),
        kv_in: 0,
        dq_acc: b.scratch("dq_acc", &model, ScratchKind::Q, t, DType::F32),
        dkv_acc: b.scratch("dkv_acc", &model, ScratchKind::Kv, t, DType::F32),
        dq_part: b.scratch(
            "dq_part",
            &model,
            ScratchKind::Q,
            q_pslots[d].tokens,
            DType::F32,
        ),
        dkv_part: b.scratch(
            "dkv_part",
            &model,
            ScratchKind::Kv,
            kv_pslots[d].tokens,
            DType::F32,
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
    bufs.kv_in = match saved_kv {
        Some(forward) => b.buffer(
            "kv_saved",
            BufferRole::Saved { forward },
            model.dtype,
            kv_slots[d].tokens,
            model.kv_heads,
            2 * model.head_dim,
        ),
        None => bufs.kv_rem,
    };
    (b, bufs)
}

/// Every transfer of both programs: remote inputs in the group of their first use, partials
/// toward their homes.
fn transfers(cx: &Ctx, fb: &[FwdBufs], bb: &[BwdBufs]) -> (Vec<Xfer>, Vec<Xfer>) {
    let (n, lay) = (cx.n, &cx.lay);
    let (q_need, kv_need, q_last, kv_last) = (&cx.q_need, &cx.kv_need, &cx.q_last, &cx.kv_last);
    let (q_slots, kv_slots) = (&cx.q_slots, &cx.kv_slots);
    let oq_recv = &cx.oq_recv;
    let (blen, home, qh, kh) = (
        |b: u32| cx.blen(b),
        |b: u32| cx.home(b),
        |h: u32| cx.qh(h),
        |h: u32| cx.kh(h),
    );
    let out_tag = |f: u32| cx.out_tag(f);
    let mut fwd_x: Vec<Xfer> = Vec::new();
    let mut bwd_x: Vec<Xfer> = Vec::new();
    // Transfers.
    for d in 0..n {
        let du = d as usize;
        for (&(q, hb), &s) in &q_need[du] {
            let h = home(q);
            let (dst_row, lane) = q_slots[du].at[&(q, hb)];
            let (src_row, len) = (lay[h as usize].row[&q], blen(q));
            let ord = (0u8, q, hb, d);
            fwd_x.push(Xfer {
                tag: s,
                order: ord,
                src: h,
                dst: d,
                src_region: reg(fb[h as usize].q, src_row, len, qh(hb)),
                dst_region: reg(fb[du].q_rem, dst_row, len, qh(lane)),
            });
            let (hs, ds) = (&bb[h as usize], &bb[du]);
            for (i, (sb, db)) in [
                (hs.q, ds.q_rem),
                (hs.o, ds.o_rem),
                (hs.d_o, ds.do_rem),
                (hs.lse, ds.l_rem),
            ]
            .into_iter()
            .enumerate()
            {
                bwd_x.push(Xfer {
                    tag: s,
                    order: (i as u8, q, hb, d),
                    src: h,
                    dst: d,
                    src_region: reg(sb, src_row, len, qh(hb)),
                    dst_region: reg(db, dst_row, len, qh(lane)),
                });
            }
        }
        for (&(k, hb), &s) in &kv_need[du] {
            let h = home(k);
            let (dst_row, lane) = kv_slots[du].at[&(k, hb)];
            let (src_row, len) = (lay[h as usize].row[&k], blen(k));
            fwd_x.push(Xfer {
                tag: s,
                order: (1, k, hb, d),
                src: h,
                dst: d,
                src_region: reg(fb[h as usize].kv, src_row, len, kh(hb)),
                dst_region: reg(fb[du].kv_rem, dst_row, len, kh(lane)),
            });
            if bb[du].kv_in != bb[du].kv_rem {
                // The backward reads this block from the forward's saved slot.
                continue;
            }
            bwd_x.push(Xfer {
                tag: s,
                order: (4, k, hb, d),
                src: h,
                dst: d,
                src_region: reg(bb[h as usize].kv, src_row, len, kh(hb)),
                dst_region: reg(bb[du].kv_rem, dst_row, len, kh(lane)),
            });
        }
        // Partials toward their homes.
        for (&(q, hb), &f) in &q_last[du] {
            let h = home(q);
            if h == d {
                continue;
            }
            let (slot, lane) = q_slots[du].at[&(q, hb)];
            let ((rrow, rlane), len) = (oq_recv[h as usize][&(q, d, hb)], blen(q));
            let tag = out_tag(f);
            fwd_x.push(Xfer {
                tag,
                order: (5, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(fb[du].q_rem, slot, len, qh(lane)),
                dst_region: reg(fb[h as usize].o_recv, rrow, len, qh(rlane)),
            });
            fwd_x.push(Xfer {
                tag,
                order: (6, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(fb[du].l_part, slot, len, qh(lane)),
                dst_region: reg(fb[h as usize].l_recv, rrow, len, qh(rlane)),
            });
            let (brow, blane, wave) = cx.bq_recv[h as usize][&(q, d, hb)];
            bwd_x.push(Xfer {
                tag: if wave > 0 { cx.stages + wave - 1 } else { tag },
                order: (5, q, hb, d),
                src: d,
                dst: h,
                src_region: reg(bb[du].q_rem, slot, len, qh(lane)),
                dst_region: reg(bb[h as usize].dq_recv, brow, len, qh(blane)),
            });
        }
        for (&(k, hb), &f) in &kv_last[du] {
            let h = home(k);
            if h == d {
                continue;
            }
            let ((slot, lane), len) = (kv_slots[du].at[&(k, hb)], blen(k));
            let (rrow, rlane, wave) = cx.bkv_recv[h as usize][&(k, d, hb)];
            bwd_x.push(Xfer {
                tag: if wave > 0 {
                    cx.stages + wave - 1
                } else {
                    out_tag(f)
                },
                order: (6, k, hb, d),
                src: d,
                dst: h,
                src_region: reg(bb[du].kv_rem, slot, len, kh(lane)),
                dst_region: reg(bb[h as usize].dkv_recv, rrow, len, kh(rlane)),
            });
        }
    }
    (fwd_x, bwd_x)
}

/// Per device, its send/receive ops by tag, in one global order so pairs match.
fn group(xs: &mut [Xfer], n: u32) -> Vec<BTreeMap<u32, Vec<P2p>>> {
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
}

/// One device's emission.
struct Dev<'a> {
    cx: &'a Ctx<'a>,
    d: usize,
    fbuf: &'a FwdBufs,
    bbuf: &'a BwdBufs,
    /// Home (q, hb) computed by exactly one local work and nowhere else: their work writes the
    /// final O/LSE straight into the outputs (no accumulator, no copy).
    direct: BTreeSet<(u32, u32)>,
}

impl Dev<'_> {
    /// Where a block's rows live on this device: its home rows in an IO-shaped buffer, or its
    /// slot in a scratch buffer.
    /// `heads` maps a head block (or a slot's lane) to its head range.
    fn at(
        &self,
        blk: u32,
        hb: u32,
        heads: impl Fn(u32) -> (u32, u32),
        buf_io: u32,
        buf_rem: u32,
        slots: &Slots,
    ) -> Region {
        let cx = self.cx;
        if cx.home(blk) == self.d as u32 {
            reg(buf_io, cx.lay[self.d].row[&blk], cx.blen(blk), heads(hb))
        } else {
            let (row, lane) = slots.at[&(blk, hb)];
            reg(buf_rem, row, cx.blen(blk), heads(lane))
        }
    }
    /// A query block's partial-output rows (O, dQ).
    fn q_at(&self, q: u32, hb: u32, io: u32, rem: u32) -> Region {
        let cx = self.cx;
        self.at(q, hb, |h| cx.qh(h), io, rem, &cx.q_pslots[self.d])
    }
    /// A KV block's partial-gradient rows.
    fn kv_at(&self, k: u32, hb: u32, io: u32, rem: u32) -> Region {
        let cx = self.cx;
        self.at(k, hb, |h| cx.kh(h), io, rem, &cx.kv_pslots[self.d])
    }
    /// A query block's input rows.
    fn qi_at(&self, q: u32, hb: u32, io: u32, rem: u32) -> Region {
        let cx = self.cx;
        self.at(q, hb, |h| cx.qh(h), io, rem, &cx.q_slots[self.d])
    }
    /// A KV block's input rows.
    fn kvi_at(&self, k: u32, hb: u32, io: u32, rem: u32) -> Region {
        let cx = self.cx;
        self.at(k, hb, |h| cx.kh(h), io, rem, &cx.kv_slots[self.d])
    }

    /// Forward: home (q, hb) without local work start from the merge identity; backward: zero
    /// every accumulator.
    fn prologue(&self, f: &mut ProgramBuilder, b: &mut ProgramBuilder) {
        let (cx, d, du, fbuf, bbuf) = (self.cx, self.d, self.d as u32, self.fbuf, self.bbuf);
        let (table, lay, q_last) = (cx.table, &cx.lay, &cx.q_last);
        let home = |b: u32| cx.home(b);
        let q_at = |q: u32, hb: u32, io: u32, rem: u32| self.q_at(q, hb, io, rem);
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
    }

    /// Zeroes the partial-gradient slots of blocks first used in stage `s`.
    fn zero_partials(&self, s: u32, b: &mut ProgramBuilder) {
        let (cx, d, bbuf) = (self.cx, self.d, self.bbuf);
        let (q_need, kv_need, q_slots, kv_slots) =
            (&cx.q_need, &cx.kv_need, &cx.q_pslots, &cx.kv_pslots);
        let blen = |b: u32| cx.blen(b);
        for (need, slots, buf, kv) in [
            (&q_need[d], &q_slots[d], bbuf.dq_part, false),
            (&kv_need[d], &kv_slots[d], bbuf.dkv_part, true),
        ] {
            for (&key, _) in need.iter().filter(|(_, &s0)| s0 == s) {
                let (row, lane) = slots.at[&key];
                let heads = if kv { cx.kh(lane) } else { cx.qh(lane) };
                b.push(Instr::Fill {
                    dst: reg(buf, row, blen(key.0), heads),
                    value: FillValue::Zero,
                });
            }
        }
    }

    /// The works of stage `s` (forward and backward) and the merges of their partial outputs.
    fn stage_works(&self, s: u32, f: &mut ProgramBuilder, b: &mut ProgramBuilder) {
        let (cx, d, du, fbuf, bbuf) = (self.cx, self.d, self.d as u32, self.fbuf, self.bbuf);
        let (works, direct) = (&cx.works, &self.direct);
        let (blen, home, qh) = (|b: u32| cx.blen(b), |b: u32| cx.home(b), |h: u32| cx.qh(h));
        let q_at = |q: u32, hb: u32, io: u32, rem: u32| self.q_at(q, hb, io, rem);
        let kv_at = |k: u32, hb: u32, io: u32, rem: u32| self.kv_at(k, hb, io, rem);
        let qi_at = |q: u32, hb: u32, io: u32, rem: u32| self.qi_at(q, hb, io, rem);
        let kvi_at = |k: u32, hb: u32, io: u32, rem: u32| self.kvi_at(k, hb, io, rem);
        let ws = &works[d][s as usize];
        let mut fw = Vec::new();
        let mut merges = Vec::new();
        let mut bw = Vec::new();
        let mut tmp_row = 0u32;
        for w in ws {
            let qlen = blen(w.q);
            let acc_o = q_at(w.q, w.hb, fbuf.o_acc, fbuf.o_part);
            // The LSE partial is sent as is, so it sits in the input slot's rows.
            let acc_l = if home(w.q) == du {
                Region {
                    buf: fbuf.l_acc,
                    ..acc_o
                }
            } else {
                qi_at(w.q, w.hb, fbuf.l_part, fbuf.l_part)
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
                    .map(|&k| kvi_at(k, w.hb, bbuf.kv, bbuf.kv_in))
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
    }

    /// Stages the partials that are final after stage `s` into their send buffers.
    fn stage_partials(&self, s: u32, f: &mut ProgramBuilder, b: &mut ProgramBuilder) {
        let (cx, d, du, fbuf, bbuf) = (self.cx, self.d, self.d as u32, self.fbuf, self.bbuf);
        let (q_last, kv_last, q_slots, kv_slots) =
            (&cx.q_last, &cx.kv_last, &cx.q_slots, &cx.kv_slots);
        let (blen, home, qh, kh) = (
            |b: u32| cx.blen(b),
            |b: u32| cx.home(b),
            |h: u32| cx.qh(h),
            |h: u32| cx.kh(h),
        );
        for (&(q, hb), &last) in &q_last[d] {
            if last == s && home(q) != du {
                let ((slot, lane), (pslot, plane)) =
                    (q_slots[d].at[&(q, hb)], cx.q_pslots[d].at[&(q, hb)]);
                f.push(Instr::Copy {
                    src: reg(fbuf.o_part, pslot, blen(q), qh(plane)),
                    dst: reg(fbuf.q_rem, slot, blen(q), qh(lane)),
                });
                b.push(Instr::Copy {
                    src: reg(bbuf.dq_part, pslot, blen(q), qh(plane)),
                    dst: reg(bbuf.q_rem, slot, blen(q), qh(lane)),
                });
            }
        }
        for (&(k, hb), &last) in &kv_last[d] {
            if last == s && home(k) != du {
                let ((slot, lane), (pslot, plane)) =
                    (kv_slots[d].at[&(k, hb)], cx.kv_pslots[d].at[&(k, hb)]);
                b.push(Instr::Copy {
                    src: reg(bbuf.dkv_part, pslot, blen(k), kh(plane)),
                    dst: reg(bbuf.kv_rem, slot, blen(k), kh(lane)),
                });
            }
        }
    }

    /// Merges received partial outputs (forward) and sums the partial gradients of wave 0
    /// (backward) at the home.
    fn epilogue(&self, f: &mut ProgramBuilder, b: &mut ProgramBuilder) {
        let (cx, d, fbuf) = (self.cx, self.d, self.fbuf);
        let oq_recv = &cx.oq_recv;
        let (blen, qh) = (|b: u32| cx.blen(b), |h: u32| cx.qh(h));
        let q_at = |q: u32, hb: u32, io: u32, rem: u32| self.q_at(q, hb, io, rem);
        // Received partials per (query block, head block), in source order.
        let mut recv_by_q: BTreeMap<(u32, u32), Vec<(u32, u32)>> = BTreeMap::new();
        for (&(q, _, hb), &at) in &oq_recv[d] {
            recv_by_q.entry((q, hb)).or_default().push(at);
        }
        for (&(q, hb), srcs) in &recv_by_q {
            let acc = q_at(q, hb, fbuf.o_acc, fbuf.o_part);
            let mut inputs = vec![(
                acc,
                Region {
                    buf: fbuf.l_acc,
                    ..acc
                },
            )];
            for &(row, lane) in srcs {
                let r = reg(fbuf.o_recv, row, blen(q), qh(lane));
                inputs.push((
                    r,
                    Region {
                        buf: fbuf.l_recv,
                        ..r
                    },
                ));
            }
            f.push(Instr::Merge {
                o: acc,
                lse: Region {
                    buf: fbuf.l_acc,
                    ..acc
                },
                inputs,
            });
        }
        self.bwd_sums(0, b);
    }

    /// Sums the received partial gradients of `wave` into the home's accumulators.
    fn bwd_sums(&self, wave: u32, b: &mut ProgramBuilder) {
        let (cx, d, bbuf) = (self.cx, self.d, self.bbuf);
        let blen = |b: u32| cx.blen(b);
        for (recv, acc_buf, part_buf, rbuf, kv) in [
            (
                &cx.bq_recv[d],
                bbuf.dq_acc,
                bbuf.dq_part,
                bbuf.dq_recv,
                false,
            ),
            (
                &cx.bkv_recv[d],
                bbuf.dkv_acc,
                bbuf.dkv_part,
                bbuf.dkv_recv,
                true,
            ),
        ] {
            // Received partials of this wave per (block, head block), in source order.
            let mut by_blk: BTreeMap<(u32, u32), Vec<(u32, u32)>> = BTreeMap::new();
            for (&(blk, _, hb), &(row, lane, w)) in recv {
                if w == wave {
                    by_blk.entry((blk, hb)).or_default().push((row, lane));
                }
            }
            for (&(blk, hb), srcs) in &by_blk {
                let (acc, heads): (Region, &dyn Fn(u32) -> (u32, u32)) = if kv {
                    (self.kv_at(blk, hb, acc_buf, part_buf), &|h| cx.kh(h))
                } else {
                    (self.q_at(blk, hb, acc_buf, part_buf), &|h| cx.qh(h))
                };
                let mut sums = vec![acc];
                for &(row, lane) in srcs {
                    sums.push(reg(rbuf, row, blen(blk), heads(lane)));
                }
                b.push(Instr::Sum {
                    dst: acc,
                    inputs: sums,
                });
            }
        }
    }

    /// Accumulated outputs to their buffers (runs of whole blocks with all head blocks
    /// accumulated, single head blocks otherwise) and the gradients, converted to the caller's
    /// dtype.
    fn output_copies(&self, f: &mut ProgramBuilder, b: &mut ProgramBuilder) {
        let (cx, d, du, fbuf, bbuf) = (self.cx, self.d, self.d as u32, self.fbuf, self.bbuf);
        let (table, lay, direct) = (cx.table, &cx.lay, &self.direct);
        let (blen, home, qh) = (|b: u32| cx.blen(b), |b: u32| cx.home(b), |h: u32| cx.qh(h));
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
    }
}

/// Device `d`'s forward and backward programs.
#[allow(clippy::too_many_arguments)]
fn emit_device(
    cx: &Ctx,
    d: usize,
    mut f: ProgramBuilder,
    mut b: ProgramBuilder,
    fbuf: &FwdBufs,
    bbuf: &BwdBufs,
    [fwd_groups, bwd_groups]: [&[BTreeMap<u32, Vec<P2p>>]; 2],
    q_owners: &BTreeMap<(u32, u32), u32>,
) -> (ProgramBuilder, ProgramBuilder) {
    let (du, stages, works) = (d as u32, cx.stages, &cx.works);
    let home = |b: u32| cx.home(b);
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
    let dev = Dev {
        cx,
        d,
        fbuf,
        bbuf,
        direct,
    };
    dev.prologue(&mut f, &mut b);
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
        dev.zero_partials(s, &mut b);
        dev.stage_works(s, &mut f, &mut b);
        dev.stage_partials(s, &mut f, &mut b);
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
    // Further rounds of the backward's final group: each round's partials are summed before
    // the next round reuses their rows.
    dev.bwd_sums(1, &mut b);
    for w in 2..=cx.waves {
        let tag = stages + w - 1;
        if let Some(ops) = bwd_groups[d].get(&tag) {
            b.push(Instr::Comm {
                tag,
                ops: ops.clone(),
            });
            b.push(Instr::Wait { tag });
        }
        dev.bwd_sums(w, &mut b);
    }
    dev.epilogue(&mut f, &mut b);
    dev.output_copies(&mut f, &mut b);
    (f, b)
}

/// The DCP plan of `batch` for a placement and the stage of every tile.
pub(super) fn emit(
    batch: &BatchSpec,
    topo: &Topology,
    table: &BlockTable,
    pl: &Placement,
    stage: &[u32],
    stages: u32,
    save_kv: bool,
) -> Plan {
    let n = topo.n_devices();
    let mut cx = Ctx {
        table,
        pl,
        model: batch.model,
        n,
        stages,
        lay: layouts(table, pl, n),
        works: Vec::new(),
        q_last: Vec::new(),
        kv_last: Vec::new(),
        q_need: Vec::new(),
        kv_need: Vec::new(),
        q_slots: Vec::new(),
        kv_slots: Vec::new(),
        q_pslots: Vec::new(),
        kv_pslots: Vec::new(),
        oq_recv: Vec::new(),
        okv_recv: Vec::new(),
        oq_tokens: Vec::new(),
        okv_tokens: Vec::new(),
        bq_recv: Vec::new(),
        bkv_recv: Vec::new(),
        bq_tokens: Vec::new(),
        bkv_tokens: Vec::new(),
        waves: 1,
    };
    usage(&mut cx, stage);
    alloc_slots(&mut cx);
    // Buffer ids of every device, declared first so transfers can name them.
    let (mut fwd_builders, fb): (Vec<ProgramBuilder>, Vec<FwdBufs>) =
        (0..n as usize).map(|d| declare_fwd(&cx, d)).unzip();
    let (mut bwd_builders, bb): (Vec<ProgramBuilder>, Vec<BwdBufs>) = (0..n as usize)
        .map(|d| {
            let saved = save_kv && kv_slots_unshared(&cx, d);
            declare_bwd(&cx, d, saved.then_some(fb[d].kv_rem))
        })
        .unzip();
    let (mut fwd_x, mut bwd_x) = transfers(&cx, &fb, &bb);
    let fwd_groups = group(&mut fwd_x, n);
    let bwd_groups = group(&mut bwd_x, n);
    // How many devices compute each (query block, head block).
    let mut q_owners: BTreeMap<(u32, u32), u32> = BTreeMap::new();
    for ql in &cx.q_last {
        for &k in ql.keys() {
            *q_owners.entry(k).or_default() += 1;
        }
    }
    let mut devices: Vec<DevicePlan> = Vec::new();
    for d in 0..n as usize {
        let f = std::mem::take(&mut fwd_builders[d]);
        let b = std::mem::take(&mut bwd_builders[d]);
        let groups = [&fwd_groups[..], &bwd_groups[..]];
        let (f, b) = emit_device(&cx, d, f, b, &fb[d], &bb[d], groups, &q_owners);
        devices.push(DevicePlan {
            device: d as u32,
            node: topo.node_of(d as u32),
            layout: cx.lay[d].layout.clone(),
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
