//! The CTA / wave model of the project's attention kernels (`crates/dcp-cuda`), shared by the
//! planner's cost model ([`super::CostModel::kernels`]) and the simulator (`dcp-sim`, which
//! fits its constants on a `dcp calibrate` profile).
//!
//! A launch's time is the makespan of its CTAs on the GPU's CTA slots, longest first; a CTA
//! costs a fixed part plus a cost per full and per partially masked tile it visits. The
//! fitted constants travel as plain data ([`KernelFit`]).

use serde::{Deserialize, Serialize};

use crate::plan::{Instr, Program, Region, RowRanges};

/// Merged key-tile intervals `[a, b)` touched by rows `[r0, r1)` of `rows` (key tiles of `tk`),
/// and the intervals of *full* tiles (every row of the row tile attends every key of the tile).
/// `seg_i` is a cursor into `rows.segs` (row tiles must be visited in ascending order).
#[allow(clippy::too_many_arguments)]
fn classify_row_tile(
    rows: &RowRanges,
    seg_i: &mut usize,
    r0: u32,
    r1: u32,
    tk: i64,
    touched: &mut Vec<(i64, i64)>,
    full: &mut Vec<(i64, i64)>,
    seg_full: &mut Vec<(i64, i64)>,
    tmp: &mut Vec<(i64, i64)>,
) {
    touched.clear();
    full.clear();
    while *seg_i < rows.segs.len() && rows.segs[*seg_i].row0 + rows.segs[*seg_i].rows <= r0 {
        *seg_i += 1;
    }
    let mut covered = 0u32;
    let mut first = true;
    let mut j = *seg_i;
    while j < rows.segs.len() && rows.segs[j].row0 < r1 {
        let seg = &rows.segs[j];
        let (ra, rb) = (r0.max(seg.row0), r1.min(seg.row0 + seg.rows));
        covered += rb - ra;
        let (a, b) = (ra as i64, (rb - 1) as i64);
        seg_full.clear();
        for lr in &seg.ranges {
            let (sa, sb) = (lr.start.at(a), lr.start.at(b));
            let (ea, eb) = (lr.end.at(a), lr.end.at(b));
            if !(ea > sa || eb > sb) {
                continue;
            }
            let s = sa.min(sb).max(0);
            let e = ea.max(eb);
            if e > s {
                touched.push((s.div_euclid(tk), (e + tk - 1).div_euclid(tk)));
            }
            if ea > sa && eb > sb {
                // Every row of the segment attends [max start, min end).
                let (fs, fe) = (
                    (sa.max(sb).max(0) + tk - 1).div_euclid(tk),
                    ea.min(eb).div_euclid(tk),
                );
                if fe > fs {
                    seg_full.push((fs, fe));
                }
            }
        }
        merge_intervals(seg_full);
        if first {
            std::mem::swap(full, seg_full);
            first = false;
        } else {
            intersect_intervals(full, seg_full, tmp);
            std::mem::swap(full, tmp);
        }
        j += 1;
    }
    if covered < r1 - r0 {
        // Rows without keys: no tile is full.
        full.clear();
    }
    merge_intervals(touched);
}

fn merge_intervals(v: &mut Vec<(i64, i64)>) {
    if v.len() < 2 {
        return;
    }
    v.sort_unstable();
    let mut w = 0;
    for i in 1..v.len() {
        if v[i].0 <= v[w].1 {
            v[w].1 = v[w].1.max(v[i].1);
        } else {
            w += 1;
            v[w] = v[i];
        }
    }
    v.truncate(w + 1);
}

fn intersect_intervals(a: &[(i64, i64)], b: &[(i64, i64)], out: &mut Vec<(i64, i64)>) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
        if e > s {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
}

fn interval_len(v: &[(i64, i64)]) -> i64 {
    v.iter().map(|&(a, b)| b - a).sum()
}

/// Full and partial (masked) key tiles of every `tq`-row tile of a work, key tiles of `tk`.
pub fn row_tile_classes(rows: &RowRanges, tq: u32, tk: u32, mut f: impl FnMut(u32, i64, i64)) {
    row_tile_intervals(rows, tq, tk, |r0, t, fl| {
        let (nt, nf) = (interval_len(t), interval_len(fl));
        f(r0, nf, nt - nf)
    });
}

fn row_tile_intervals(
    rows: &RowRanges,
    tq: u32,
    tk: u32,
    mut f: impl FnMut(u32, &[(i64, i64)], &[(i64, i64)]),
) {
    let n = rows.n_rows();
    let (mut t, mut fl, mut sf, mut tmp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut seg_i = 0;
    let mut r0 = 0;
    while r0 < n {
        let r1 = (r0 + tq).min(n);
        classify_row_tile(
            rows, &mut seg_i, r0, r1, tk as i64, &mut t, &mut fl, &mut sf, &mut tmp,
        );
        f(r0, &t, &fl);
        r0 = r1;
    }
}

/// Makespan of CTAs `(duration, count)` on `slots` identical slots when the hardware hands each
/// CTA, longest first (the executor sorts its task list so), to the first slot that frees up.
pub fn lpt_makespan(tasks: &mut [(f64, u64)], slots: usize) -> f64 {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let slots = slots.max(1);
    tasks.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    // Slot free times (non-negative, so the bit patterns order like the values).
    let mut heap: BinaryHeap<Reverse<u64>> = BinaryHeap::with_capacity(slots);
    let mut used = 0usize;
    let mut offset = 0.0f64; // added to every slot in the heap
    let mut max_t = 0.0f64;
    for &(d, mut k) in tasks.iter() {
        if k == 0 || d <= 0.0 {
            continue;
        }
        // Fill idle slots first.
        while k > 0 && used < slots {
            heap.push(Reverse((d - offset).max(0.0).to_bits()));
            used += 1;
            k -= 1;
            max_t = max_t.max(d);
        }
        while k > 0 {
            let min_t = f64::from_bits(heap.peek().expect("slots").0) + offset;
            if k >= slots as u64 && max_t - min_t <= d {
                // Every slot takes one task per round, in the same order: shift them all.
                let rounds = k / slots as u64;
                offset += rounds as f64 * d;
                max_t += rounds as f64 * d;
                k -= rounds * slots as u64;
                continue;
            }
            let Reverse(bits) = heap.pop().expect("slots");
            let t = f64::from_bits(bits) + offset + d;
            max_t = max_t.max(t);
            heap.push(Reverse((t - offset).max(0.0).to_bits()));
            k -= 1;
        }
    }
    max_t
}

/// CTAs of one attention launch that cost the same: `full` and `partial` tile units each
/// (one unit = one tile of one head), `count` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtaClass {
    pub full: f64,
    pub partial: f64,
    pub count: u64,
}

/// Forward CTAs: one per (work, `tq`-row tile, query head), looping over the key tiles of `tk`
/// keys its rows touch (`crates/dcp-cuda`: `dcp_attn_fwd`).
pub fn fwd_ctas<'a>(
    works: impl Iterator<Item = (&'a RowRanges, u32)>,
    tq: u32,
    tk: u32,
    out: &mut Vec<CtaClass>,
) {
    for (rows, heads) in works {
        row_tile_classes(rows, tq, tk, |_, f, p| {
            out.push(CtaClass {
                full: f as f64,
                partial: p as f64,
                count: heads as u64,
            })
        });
    }
}

/// Forward split-K's fewest keys per piece and most pieces per task, as the CUDA executor's
/// (`crates/dcp-cuda/src/exec.rs`: `FWD_SPLIT_MIN_TILES` of 128 keys, `FWD_SPLIT_MAX`).
pub const FWD_SPLIT_MIN_KEYS: u32 = 2048;
pub const FWD_SPLIT_MAX_PIECES: u64 = 16;

/// Forward split-K as the CUDA executor applies it to one launch (`exec.rs` `fwd_split`): a
/// CTA whose tiles exceed `max(total / (4 · slots), FWD_SPLIT_MIN_KEYS / tk)` is long, and every
/// long CTA is cut into `ceil(longest / that)` (at most [`FWD_SPLIT_MAX_PIECES`]) pieces over
/// its key tiles, unless that shortens the launch's list schedule (in tiles, plus two per CTA
/// for its epilogue) by less than 10 %. The pieces write fp32 partial outputs that one merge
/// launch combines. Rewrites `ctas` and returns the rows (× heads) of that merge, `(partial rows
/// read, merged rows written)`: (0, 0) when nothing is cut. (The executor cuts every task in the
/// row span of a work's long tasks and caps the partials at 128 MiB; the model cuts the long
/// CTAs only.)
pub fn fwd_split_ctas(
    ctas: &mut [CtaClass],
    tq: u32,
    tk: u32,
    slots: usize,
    buf: &mut Vec<(f64, u64)>,
) -> (f64, f64) {
    let units = |c: &CtaClass| c.full + c.partial;
    let total: f64 = ctas.iter().map(|c| units(c) * c.count as f64).sum();
    let chunk = (total / (4.0 * slots.max(1) as f64)).max((FWD_SPLIT_MIN_KEYS / tk.max(1)) as f64);
    let longest = ctas.iter().map(units).fold(0.0, f64::max);
    let pieces = ((longest / chunk).ceil() as u64).min(FWD_SPLIT_MAX_PIECES);
    if longest <= chunk || pieces < 2 {
        return (0.0, 0.0);
    }
    let np = pieces as f64;
    let cut = |c: &CtaClass| {
        if units(c) > chunk {
            CtaClass {
                full: c.full / np,
                partial: c.partial / np,
                count: c.count * pieces,
            }
        } else {
            *c
        }
    };
    let span = |it: &mut dyn Iterator<Item = CtaClass>, buf: &mut Vec<(f64, u64)>| {
        buf.clear();
        buf.extend(it.map(|c| (units(&c) + 2.0, c.count)));
        lpt_makespan(buf, slots)
    };
    let whole = span(&mut ctas.iter().copied(), buf);
    let split = span(&mut ctas.iter().map(cut), buf);
    if 10.0 * split >= 9.0 * whole {
        return (0.0, 0.0);
    }
    let mut out = 0.0;
    for c in ctas.iter_mut() {
        if units(c) > chunk {
            out += c.count as f64 * tq as f64;
            *c = cut(c);
        }
    }
    (out * np, out)
}

/// Bytes the forward split-K merge moves for the rows [`fwd_split_ctas`] returns, at head dim
/// `d`: every partial's fp32 O and LSE read, the merged 16-bit O and fp32 LSE written.
pub fn fwd_merge_bytes((read, written): (f64, f64), d: u32) -> f64 {
    read * (4.0 * d as f64 + 4.0) + written * (2.0 * d as f64 + 4.0)
}

/// Backward CTAs: one per (work, `tk`-key tile, KV head, chunk of its list of `tq`-row tiles);
/// each loops over the tiles of its chunk for each of the `group` query heads of its KV head.
/// Lists are cut into chunks of max(8, ⌈Σ list lengths × KV heads / (4·sms)⌉) entries, as the
/// executor does so that long lists do not serialise on one SM.
pub fn bwd_ctas<'a>(
    works: impl Iterator<Item = (&'a RowRanges, u32, u32)>,
    tq: u32,
    tk: u32,
    sms: u32,
    out: &mut Vec<CtaClass>,
) {
    // (list length, full entries, kv heads, group) per kv tile.
    let mut pending: Vec<(u32, u32, u32, u32)> = Vec::new();
    let (mut cnt, mut full): (Vec<i32>, Vec<i32>) = (Vec::new(), Vec::new());
    for (rows, heads, kv_heads) in works {
        let kvh = kv_heads.max(1);
        let group = (heads / kvh).max(1);
        cnt.clear();
        full.clear();
        row_tile_intervals(rows, tq, tk, |_, t, fl| {
            for (v, iv) in [(&mut cnt, t), (&mut full, fl)] {
                for &(a, b) in iv {
                    if v.len() <= b as usize {
                        v.resize(b as usize + 1, 0);
                    }
                    v[a as usize] += 1;
                    v[b as usize] -= 1;
                }
            }
        });
        full.resize(cnt.len(), 0);
        let (mut c, mut f) = (0i32, 0i32);
        for k in 0..cnt.len() {
            c += cnt[k];
            f += full[k];
            if c > 0 {
                pending.push((c as u32, f.max(0) as u32, kvh, group));
            }
        }
    }
    let total: u64 = pending.iter().map(|p| p.0 as u64 * p.2 as u64).sum();
    let chunk = total.div_ceil(4 * sms.max(1) as u64).max(8) as u32;
    for &(len, f, kvh, group) in &pending {
        let pfrac = 1.0 - f as f64 / len as f64;
        let g = group as f64;
        let mut push = |n: u32, count: u64| {
            out.push(CtaClass {
                full: g * n as f64 * (1.0 - pfrac),
                partial: g * n as f64 * pfrac,
                count,
            })
        };
        if len / chunk > 0 {
            push(chunk, (len / chunk) as u64 * kvh as u64);
        }
        if len % chunk > 0 {
            push(len % chunk, kvh as u64);
        }
    }
}

/// Kernel constants of the CTA model for one pass (see `docs/SIMULATOR.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CtaModel {
    /// µs per full tile per head at head dim 128.
    pub tile_us: f64,
    /// Cost of a partial (masked) tile relative to a full one.
    pub partial: f64,
    /// Fixed µs per CTA (load Q or K/V, write O/LSE or dK/dV, pipeline fill).
    pub cta_us: f64,
    /// CTAs resident at once (SMs × CTAs per SM).
    pub slots: usize,
    /// Fixed µs per launch of this kernel beyond the profile's bare `launch_us`: the grid's
    /// ramp-up and its last CTAs' drain, which a persistent kernel pays once per launch rather
    /// than per CTA. Fitted on the calibration curve; 0 in models from before it (absent in
    /// their JSON).
    #[serde(default)]
    pub launch_us: f64,
}

impl CtaModel {
    /// Makespan (µs) of the CTAs of one launch, head dim `d`.
    pub fn makespan(&self, ctas: &[CtaClass], head_dim: u32, buf: &mut Vec<(f64, u64)>) -> f64 {
        let ds = head_dim as f64 / 128.0;
        buf.clear();
        buf.extend(ctas.iter().map(|c| {
            (
                self.cta_us + self.tile_us * ds * (c.full + self.partial * c.partial),
                c.count,
            )
        }));
        lpt_makespan(buf, self.slots)
    }
}

/// The fitted kernel model of one GPU type as plain data: the CTA models of the forward and
/// backward kernels and the tile shapes they were fitted with (what `dcp-sim` derives from a
/// calibrated profile, `Hardware::planner_cost`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KernelFit {
    pub fwd: CtaModel,
    pub bwd: CtaModel,
    /// Query rows per forward CTA and keys per forward key tile.
    pub tile_q: u32,
    pub tile_k: u32,
    /// Query rows per backward q tile and keys per backward CTA.
    pub bwd_tile_q: u32,
    pub bwd_tile_k: u32,
    /// Streaming multiprocessors (the backward kernel's list chunking).
    pub sms: u32,
}

/// Per-launch constants around the CTA makespan of an attention instruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaunchCost {
    /// Fixed cost of one kernel launch, µs.
    pub launch_us: f64,
    /// Extra cost per work of a launch, µs.
    pub per_work_us: f64,
    /// Memory bandwidth of the backward pre-pass (D = rowsum(dO ∘ O)), GB/s.
    pub mem_gbps: f64,
}

fn region_bytes(p: &Program, r: &Region) -> u64 {
    let b = &p.buffers[r.buf as usize];
    r.len as u64 * r.heads as u64 * b.width as u64 * b.dtype.size()
}

/// Reusable buffers of [`KernelFit::attn_us`].
#[derive(Debug, Default)]
pub struct KernelScratch {
    ctas: Vec<CtaClass>,
    buf: Vec<(f64, u64)>,
}

impl KernelFit {
    /// Time (µs) of an attention instruction of `prog` (`Attn`: one launch plus the per-work
    /// cost plus the CTA makespan; `AttnBwd`: also the memory-bound pre-pass launch); `None`
    /// for other instructions.
    pub fn attn_us(
        &self,
        prog: &Program,
        ins: &Instr,
        head_dim: u32,
        lc: &LaunchCost,
        s: &mut KernelScratch,
    ) -> Option<f64> {
        s.ctas.clear();
        match ins {
            Instr::Attn { works, .. } => {
                fwd_ctas(
                    works.iter().map(|w| (&w.rows, w.q.heads)),
                    self.tile_q,
                    self.tile_k,
                    &mut s.ctas,
                );
                let merged = fwd_split_ctas(
                    &mut s.ctas,
                    self.tile_q,
                    self.tile_k,
                    self.fwd.slots,
                    &mut s.buf,
                );
                let merge = if merged.0 > 0.0 {
                    lc.launch_us + fwd_merge_bytes(merged, head_dim) / (lc.mem_gbps * 1e3)
                } else {
                    0.0
                };
                Some(
                    lc.launch_us
                        + self.fwd.launch_us
                        + lc.per_work_us * works.len() as f64
                        + self.fwd.makespan(&s.ctas, head_dim, &mut s.buf)
                        + merge,
                )
            }
            Instr::AttnBwd { works, .. } => {
                bwd_ctas(
                    works.iter().map(|w| {
                        let kvh = w.kv.first().map(|r| r.heads).unwrap_or(w.q.heads);
                        (&w.rows, w.q.heads, kvh)
                    }),
                    self.bwd_tile_q,
                    self.bwd_tile_k,
                    self.sms,
                    &mut s.ctas,
                );
                // D = rowsum(dO ∘ O): one memory-bound launch before the kernel.
                let dd_bytes: u64 = works
                    .iter()
                    .map(|w| {
                        region_bytes(prog, &w.o)
                            + region_bytes(prog, &w.do_)
                            + 4 * w.q.len as u64 * w.q.heads as u64
                    })
                    .sum();
                Some(
                    2.0 * lc.launch_us
                        + self.bwd.launch_us
                        + dd_bytes as f64 / (lc.mem_gbps * 1e3)
                        + lc.per_work_us * works.len() as f64
                        + self.bwd.makespan(&s.ctas, head_dim, &mut s.buf),
                )
            }
            _ => None,
        }
    }

    /// The highest attended-FLOP rate (TFLOP/s, forward and backward) any launch can reach under
    /// this model: full tiles only, no CTA or launch overhead, every slot busy. Lower bounds of
    /// plan times use it.
    pub fn peak_tflops(&self) -> (f64, f64) {
        let rate = |m: &CtaModel, tq: u32, tk: u32, factor: f64| {
            // One full tile of one head: tq × tk pairs at head dim 128 in tile_us.
            let flops = crate::flops::attn_fwd_flops(tq as f64 * tk as f64, 128) * factor;
            flops / (m.tile_us.max(1e-12) * 1e-6) * m.slots as f64 / 1e12
        };
        (
            rate(&self.fwd, self.tile_q, self.tile_k, 1.0),
            rate(
                &self.bwd,
                self.bwd_tile_q,
                self.bwd_tile_k,
                crate::flops::BWD_FLOP_FACTOR,
            ),
        )
    }
}
