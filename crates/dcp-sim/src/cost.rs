//! Kernel time of compute instructions under a [`Profile`].
//!
//! * Attention (`Attn`, `AttnBwd`): one launch per instruction. Each work's rows are cut into
//!   tiles of `tile_q` rows; a tile is charged for every `tile_k`-key column tile its rows' key
//!   ranges touch (tiles the mask never reaches cost nothing, partially masked tiles cost in
//!   full). Time = `launch_us + per_work_us·works + max(total / rate, longest tile row / (rate /
//!   sms))`: the second term is the critical path when a launch has too few tiles to fill the
//!   GPU. The rate is the profile's attended-FLOP rate divided by the tile overhead of the
//!   calibration shape, so a 32K causal sequence costs exactly what was measured.
//! * Fill / Copy / Merge / Sum: bytes read + written at `mem_gbps`, plus one launch per run of
//!   consecutive instructions of the same kind (an executor batches them into one launch).

use dcp_core::plan::{Instr, Program, Region, RowRanges};

use crate::profile::{Profile, BWD_FLOP_FACTOR};

/// Attended pairs, charged tile elements and the costliest row of tiles of a work (per head).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TileStats {
    pub attended: u64,
    pub tile_elems: u64,
    pub max_row_elems: u64,
}

/// Tile statistics of a work's row ranges.
pub fn tile_stats(rows: &RowRanges, tq: u32, tk: u32) -> TileStats {
    let n = rows.n_rows();
    let mut st = TileStats {
        attended: rows.attended(),
        ..Default::default()
    };
    if n == 0 || st.attended == 0 {
        return st;
    }
    let (tq64, tk64) = (tq as i64, tk as i64);
    let mut seg_i = 0usize;
    let mut iv: Vec<(i64, i64)> = Vec::new();
    let mut r0 = 0u32;
    while r0 < n {
        let r1 = (r0 + tq).min(n);
        iv.clear();
        while seg_i < rows.segs.len() && rows.segs[seg_i].row0 + rows.segs[seg_i].rows <= r0 {
            seg_i += 1;
        }
        let mut j = seg_i;
        while j < rows.segs.len() && rows.segs[j].row0 < r1 {
            let seg = &rows.segs[j];
            let a = r0.max(seg.row0) as i64;
            let b = (r1.min(seg.row0 + seg.rows) - 1) as i64;
            for lr in &seg.ranges {
                let (sa, sb) = (lr.start.at(a), lr.start.at(b));
                let (ea, eb) = (lr.end.at(a), lr.end.at(b));
                let s = sa.min(sb).max(0);
                let e = ea.max(eb);
                if e > s && (ea > sa || eb > sb) {
                    iv.push((s.div_euclid(tk64), (e + tk64 - 1).div_euclid(tk64)));
                }
            }
            j += 1;
        }
        iv.sort_unstable();
        let mut tiles = 0i64;
        let mut cur: Option<(i64, i64)> = None;
        for &(s, e) in &iv {
            match cur {
                Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
                Some((cs, ce)) => {
                    tiles += ce - cs;
                    cur = Some((s, e));
                }
                None => cur = Some((s, e)),
            }
        }
        if let Some((cs, ce)) = cur {
            tiles += ce - cs;
        }
        let elems = (tiles * tq64 * tk64) as u64;
        st.tile_elems += elems;
        st.max_row_elems = st.max_row_elems.max(elems);
        r0 = r1;
    }
    st
}

/// What a compute instruction is, for breakdowns and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    Attn,
    Elementwise,
}

/// Per-instruction cost of one program: duration (µs) for compute instructions, 0 otherwise.
#[derive(Debug, Clone)]
pub struct ProgramCost {
    pub dur_us: Vec<f64>,
    /// Forward-equivalent attended FLOPs per instruction (backward ×2.5 included).
    pub flops: Vec<f64>,
}

fn region_bytes(p: &Program, r: &Region) -> u64 {
    let b = &p.buffers[r.buf as usize];
    r.len as u64 * r.heads as u64 * b.width as u64 * b.dtype.size()
}

/// Costs every instruction of `prog` (`backward` selects the backward kernel rate).
pub fn program_cost(prog: &Program, head_dim: u32, prof: &Profile, backward: bool) -> ProgramCost {
    let n = prog.instrs.len();
    let mut dur_us = vec![0.0; n];
    let mut flops = vec![0.0; n];
    let overhead = prof.tile_overhead_at_calibration();
    let (rate_attended, factor) = if backward {
        (prof.attn_bwd_tflops, BWD_FLOP_FACTOR)
    } else {
        (prof.attn_fwd_tflops, 1.0)
    };
    // FLOPs per µs on charged tile elements.
    let tile_rate = rate_attended * 1e6 / overhead;
    let mem = prof.mem_gbps * 1e3; // bytes per µs
    let per_elem = 4.0 * head_dim as f64 * factor;
    let mut prev_kind: Option<&'static str> = None;
    for (i, ins) in prog.instrs.iter().enumerate() {
        let attn = |works: &mut dyn Iterator<Item = (&RowRanges, u32)>| {
            let mut total = 0.0;
            let mut attended = 0.0;
            let mut max_cta = 0.0f64;
            let mut nw = 0usize;
            for (rows, heads) in works {
                nw += 1;
                let st = tile_stats(rows, prof.tile_q, prof.tile_k);
                total += st.tile_elems as f64 * heads as f64 * per_elem;
                attended += st.attended as f64 * heads as f64 * per_elem;
                max_cta = max_cta.max(st.max_row_elems as f64 * per_elem);
            }
            let body = (total / tile_rate).max(max_cta * prof.sms as f64 / tile_rate);
            (
                prof.launch_us + prof.per_work_us * nw as f64 + body,
                attended,
            )
        };
        let kind = ins.name();
        let (d, f) = match ins {
            Instr::Attn { works, .. } => attn(&mut works.iter().map(|w| (&w.rows, w.q.heads))),
            Instr::AttnBwd { works, .. } => attn(&mut works.iter().map(|w| (&w.rows, w.q.heads))),
            Instr::Fill { dst, .. } => (region_bytes(prog, dst) as f64 / mem, 0.0),
            Instr::Copy { src, dst } => (
                (region_bytes(prog, src) + region_bytes(prog, dst)) as f64 / mem,
                0.0,
            ),
            Instr::Merge { o, lse, inputs } => {
                let b: u64 = inputs
                    .iter()
                    .map(|(a, l)| region_bytes(prog, a) + region_bytes(prog, l))
                    .sum::<u64>()
                    + region_bytes(prog, o)
                    + region_bytes(prog, lse);
                (b as f64 / mem, 0.0)
            }
            Instr::Sum { dst, inputs } => {
                let b: u64 = inputs.iter().map(|r| region_bytes(prog, r)).sum::<u64>()
                    + region_bytes(prog, dst);
                (b as f64 / mem, 0.0)
            }
            Instr::Comm { .. } | Instr::Wait { .. } => {
                prev_kind = None;
                continue;
            }
        };
        let elementwise = !matches!(ins, Instr::Attn { .. } | Instr::AttnBwd { .. });
        let launch = if elementwise && prev_kind != Some(kind) {
            prof.launch_us
        } else {
            0.0
        };
        prev_kind = Some(kind);
        dur_us[i] = d + launch;
        flops[i] = f;
    }
    ProgramCost { dur_us, flops }
}

pub fn op_kind(ins: &Instr) -> Option<OpKind> {
    match ins {
        Instr::Attn { .. } | Instr::AttnBwd { .. } => Some(OpKind::Attn),
        Instr::Comm { .. } | Instr::Wait { .. } => None,
        _ => Some(OpKind::Elementwise),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causal_rows(n: u32) -> RowRanges {
        let rows: Vec<Vec<(u32, u32)>> = (0..n).map(|r| vec![(0, r + 1)]).collect();
        RowRanges::from_rows(&rows)
    }

    #[test]
    fn tiles_of_causal_and_band() {
        let st = tile_stats(&causal_rows(256), 128, 64);
        // Row tile 0 touches key tiles 0..2, row tile 1 touches 0..4.
        assert_eq!(st.tile_elems, (2 + 4) * 128 * 64);
        assert_eq!(st.attended, 256 * 257 / 2);
        assert_eq!(st.max_row_elems, 4 * 128 * 64);
        // Two disjoint ranges per row: a sink [0, 4) and a band far away.
        let rows: Vec<Vec<(u32, u32)>> = (0..128)
            .map(|r| vec![(0, 4), (1000 + r, 1001 + r)])
            .collect();
        let st = tile_stats(&RowRanges::from_rows(&rows), 128, 64);
        // Sink: tile 0; band 1000..1128 spans tiles 15..18 (3 tiles).
        assert_eq!(st.tile_elems, (1 + 3) * 128 * 64);
        assert_eq!(st.attended, 128 * 5);
    }
}
