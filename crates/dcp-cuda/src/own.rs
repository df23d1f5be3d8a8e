//! Owned dK/dV rows of a backward launch (sm90, head dim 128): where the executor lets the
//! kernel *store* dK/dV instead of adding them into buffers that a `Fill` zeroed, and drops the
//! fill.
//!
//! The plans accumulate gradients in fp32 scratch: `Fill` zero, one or more `AttnBwd` adding into
//! it, a converting `Copy` out. For a launch of many small works (1000 documents of 256 tokens)
//! that scratch traffic is a large part of the backward: the fill writes every byte, and the
//! kernel's first reduction into each line reads the zeros back from memory. A task is the only
//! one adding into its kv tile's dK/dV rows when its work's dKV regions are fp32, zero (a `Fill`
//! zero covers them and no instruction has touched them since: [`ZeroSet`]), overlap no other
//! work's dKV region of the launch, and the kv tile's q-tile list is not split over several
//! tasks. Such a task stores its rows ([`TASK_DKV_STORE`]); a zero fill that such tasks cover in
//! full (every kv tile of the works listed, no list split; [`tiles_exactly`]) is dropped.
//! Measured (bench/results/kernels-2026-11-28o): 1000 documents of 256 tokens 3.11 -> 2.68 ms
//! backward together with the faster D pre-pass (kernel 1.71 -> 1.49 ms, dKV fill 0.13 ms gone);
//! causal-blockwise 32K -3 %; dense shapes unchanged.
//!
//! dQ cannot be stored this way while a q tile's contributions come from several kv tiles'
//! tasks on different CTAs. Chaining a small work's kv tiles on one CTA (first visit stores,
//! later visits add) dropped the dQ fill too but, alone, lost more than it saved: the kv tiles of
//! a document no longer ran side by side, so their shared Q/dO and dQ lines left L2 between the
//! visits (kernel 1.71 -> 1.85 ms, DRAM 4.5 -> 6.1 GB; kernels-2026-11-28o). With the last visit
//! also converting into the copy's destination (no dQ copy) it wins: **chains**
//! ([`chain_launch`], `DCP_CUDA_BWD_CHAIN`, on by default), works1000 backward 2.57 -> 2.25 ms
//! (bench/results/kernels-2026-11-29-kw11).
//!
//! `DCP_CUDA_BWD_OWN=0` turns the stores off (A/B runs).
//!
//! **Split ownership** (session 12, [`OwnMode::DkvSplit`], the default): a work whose dKV rows
//! are its own but whose lists are split for some kv tiles (the attention sink of a
//! causal-blockwise sequence: 2 of its 256 kv tiles) used to keep the whole zero fill and
//! converting copy; now only those tiles' rows do ([`unstored_rows`]), the others are stored
//! converted into the destination. Measured (bench/results/kernels-2026-11-29-kb12, with the
//! kernel's 16-byte 16-bit stores): causal-blockwise 32K backward +5.3 % (dK/dV fill 20 -> 6 us,
//! copy 28 -> 4 us), works1000 +3.3 % (the 16-byte stores), other shapes within ±1 %.
//!
//! **Gradients converted by their last writer** (session 10, `DCP_CUDA_BWD_CONVERT`): a plan
//! ends its backward with converting copies of the fp32 scratch into the caller's 16-bit
//! gradients. Where such a `Copy` is the only reader of the scratch rows a backward launch
//! writes ([`copy_targets`]: the first instruction after the launch touching the scratch
//! buffer, its source tiled exactly by the launch's regions, its destination touched by no
//! other instruction, no communication in flight on either), the launch writes the 16-bit
//! destination itself from finished fp32 sums and the copy is dropped:
//! * dK/dV: tasks that store their rows ([`TASK_DKV_STORE`]) store them converted into the
//!   destination, when every work of the copy stores all its rows;
//! * dQ (opt-in, `DCP_CUDA_BWD_CONVERT=dq` or `1`: measured slower, see [`ConvertMode`]): per
//!   (q tile, query head, 64-column half) of a work a counter counts the tasks whose dQ
//!   reductions into it are complete; the task completing the count converts the fp32 tile
//!   ([`TASK_DQ_CONV`]; every q tile of the copy's works must be listed by some task, the
//!   works' dQ regions disjoint).
//!
//! Measured (bench/results/kernels-2026-11-29-bwd, 1000 documents of 256 tokens): the dK/dV
//! stores into the destination 2.71 -> 2.52 ms (the 0.19 ms dKV copy gone, the kernel as fast).
//!
//! Either way a 16-bit value is written once, from the fp32 sum of every contribution (issue
//! item 3: gradients accumulate in fp32, one conversion at the end).

use crate::desc::{TaskDesc, WorkDesc, DT_BF16, DT_F16};
use dcp_core::plan::{BwdWork, Instr, Program, Region};
use dcp_core::spec::DType;
use std::collections::HashMap;

/// TaskDesc.pad: the task is the only one adding into its kv tile's dK/dV rows, which are zero:
/// it stores them (kernels/attn_bwd_sm90.cu `B90_TASK_DKV_STORE`).
pub const TASK_DKV_STORE: u32 = 0x8000_0000;

/// TaskDesc.pad: the task adds its dK/dV into its work's alternate KV segments
/// (`WorkDesc.kv_alt`: the fp32 scratch) instead of the work's own, which point at the 16-bit
/// destination ([`OwnMode::DkvSplit`]; kernels/attn_bwd_sm90.cu `B90_TASK_DKV_ALT`).
pub const TASK_DKV_ALT: u32 = 0x2000_0000;

/// Most runs of unstored rows ([`unstored_rows`]) a launch takes split ownership for (each is a
/// fill and a copy launch of its own).
pub const SPLIT_MAX_RUNS: usize = 8;

/// The rows of a work's dKV regions `dkv` (its KV segments in key order, keys counted from 0
/// over them) that lie in kv tiles (of `bc` keys) not `stored` by one task, per region: (index
/// in `dkv`, sub-region), runs of consecutive such tiles merged within a region. Keys past the
/// regions' total are not rows; tiles past `stored`'s end count as not stored.
pub fn unstored_rows(dkv: &[Region], bc: u32, stored: &[bool]) -> Vec<(usize, Region)> {
    let bc = bc.max(1);
    let mut out: Vec<(usize, Region)> = Vec::new();
    let mut key0 = 0u32;
    for (k, r) in dkv.iter().enumerate() {
        let (a, b) = (key0, key0 + r.len);
        let mut key = a;
        while key < b {
            let kt = key / bc;
            let end = ((kt + 1) * bc).min(b);
            if !stored.get(kt as usize).copied().unwrap_or(false) {
                let sub = Region {
                    tok: r.tok + (key - a),
                    len: end - key,
                    ..*r
                };
                match out.last_mut() {
                    Some((lk, l)) if *lk == k && l.tok + l.len == sub.tok => l.len += sub.len,
                    _ => out.push((k, sub)),
                }
            }
            key = end;
        }
        key0 = b;
    }
    out
}

/// TaskDesc.pad: the task arrives on its dQ tiles' counters at its end and converts the tiles
/// it completes (kernels/attn_bwd_sm90.cu `B90_TASK_DQ_CONV`).
pub const TASK_DQ_CONV: u32 = 0x4000_0000;

/// WorkDesc.flags: the D pre-pass zeroes the work's fp32 dQ rows (kernels/util.cu
/// `WORK_DQ_ZERO`); the plan's zero fill of them is dropped ([`dq_fills_to_fuse`]).
pub const WORK_DQ_ZERO: u32 = 8;

/// Whether the D pre-pass of a backward launch takes over the zero fills of its works' dQ rows
/// (`DCP_CUDA_BWD_FUSE_FILL`: `1` the default, `0` off).
pub fn fuse_fill_from_env() -> Result<bool, String> {
    parse_fuse_fill(std::env::var("DCP_CUDA_BWD_FUSE_FILL").ok().as_deref())
}

/// Parses `DCP_CUDA_BWD_FUSE_FILL` (unset: on).
pub fn parse_fuse_fill(v: Option<&str>) -> Result<bool, String> {
    crate::switch::parse("DCP_CUDA_BWD_FUSE_FILL", v, true)
}

/// Whether the D pre-pass of a backward launch also zeroes its dK/dV rows in place of their zero
/// fills ([`dkv_fills_to_zero`], the split rows' fills of [`unstored_rows`]; kernels/util.cu
/// `dcp_bwd_dd`'s `zeros`): `DCP_CUDA_BWD_DD_ZERO`, `1` the default, `0` off (separate fill
/// launches, as before session 18).
pub fn dd_zero_from_env() -> Result<bool, String> {
    parse_dd_zero(std::env::var("DCP_CUDA_BWD_DD_ZERO").ok().as_deref())
}

/// Most bytes a backward launch's D pre-pass zeroes for [`dkv_fills_to_zero`] (the rest stay fill
/// launches). Session 18 (bench/results/kernels-2026-11-29-kb18, call 1): a launch's fixed cost is
/// a few microseconds, which the pass saves on small fills (causal-blockwise's 512 KiB of split
/// rows: +0.9 %), but 67 MB of zeros inside the pass (lambda, causal 32K) took ~35 us against the
/// fill launch's ~24 us (the pass's mixed reads and writes move fewer bytes per second).
pub const DD_ZERO_MAX_BYTES: usize = 8 << 20;

/// Parses `DCP_CUDA_BWD_DD_ZERO` (unset: on).
pub fn parse_dd_zero(v: Option<&str>) -> Result<bool, String> {
    crate::switch::parse("DCP_CUDA_BWD_DD_ZERO", v, true)
}

/// The zero fills a backward launch's D pre-pass takes over whole (`DCP_CUDA_BWD_DD_ZERO`): the
/// fill records of `zeros` (regions still zero at the launch: no instruction since the fill
/// touched them) that overlap one of the launch's dK/dV regions `dkv` and whose op is not
/// already dropped (`elided`). Returns (fill op, region). Zeroing the whole region in the pass,
/// right before the kernel, instead of at the fill's place is exact for the same reason as
/// [`dq_fills_to_fuse`]'s.
pub fn dkv_fills_to_zero(
    zeros: &ZeroSet,
    elided: &[usize],
    dkv: &[Region],
) -> Vec<(usize, Region)> {
    zeros
        .fills()
        .iter()
        .filter(|(z, op)| !elided.contains(op) && dkv.iter().any(|r| r.overlaps(z)))
        .map(|(z, op)| (*op, *z))
        .collect()
}

/// The zero fills a backward launch's D pre-pass can take over: per fill record of `zeros`
/// (regions still zero at the launch), the launch's works whose dQ regions lie in it, when
/// those tile it exactly and each is fp32 (`dq_f32`). Returns (fill op, works). The pre-pass
/// runs right before the launch's kernel, after every instruction between the fill and the
/// launch, none of which touched the rows (else they would not be in `zeros`), so zeroing them
/// there instead is exact; a later launch adding into the same rows finds them summed as before.
pub fn dq_fills_to_fuse(
    zeros: &ZeroSet,
    dq: &[Region],
    dq_f32: &[bool],
) -> Vec<(usize, Vec<usize>)> {
    let mut out = Vec::new();
    for (z, op) in zeros.fills() {
        let inside: Vec<usize> = (0..dq.len()).filter(|&i| dq[i].overlaps(z)).collect();
        let parts: Vec<Region> = inside.iter().map(|&i| dq[i]).collect();
        if !inside.is_empty() && inside.iter().all(|&i| dq_f32[i]) && tiles_exactly(z, &parts) {
            out.push((*op, inside));
        }
    }
    out
}

/// Which gradients a backward launch converts into the plan's copy destinations itself
/// (`DCP_CUDA_BWD_CONVERT`: `dkv` the default; `0` neither; `1` both; `dq` dQ alone). dQ by its
/// last writer is correct but slower (bench/results/kernels-2026-11-29-bwd: works1000 kernel
/// 1.53 -> 2.17 ms against 0.385 ms of copy saved; onework +8 %, causal 32K +5 %): each
/// conversion waits on an L2 round trip, one tile after another, and the last arrivals of most
/// q tiles fall on the last tasks of the launch, so the conversions pile up in its tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertMode {
    pub dq: bool,
    pub dkv: bool,
}

/// The default of `DCP_CUDA_BWD_CONVERT`.
pub const DEFAULT_CONVERT: ConvertMode = ConvertMode {
    dq: false,
    dkv: true,
};

impl ConvertMode {
    /// Parses `DCP_CUDA_BWD_CONVERT` (unset: [`DEFAULT_CONVERT`]).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_CONVERT),
            Some("1") => Ok(ConvertMode {
                dq: true,
                dkv: true,
            }),
            Some("0") => Ok(ConvertMode {
                dq: false,
                dkv: false,
            }),
            Some("dq") => Ok(ConvertMode {
                dq: true,
                dkv: false,
            }),
            Some("dkv") => Ok(ConvertMode {
                dq: false,
                dkv: true,
            }),
            Some(o) => Err(format!(
                "DCP_CUDA_BWD_CONVERT={o}: expected 0, 1, dq or dkv"
            )),
        }
    }

    /// The mode of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_CONVERT").ok().as_deref())
    }
}

/// Which gradient a [`CopyTarget`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grad {
    Dq,
    Dkv,
}

/// A converting `Copy` that only reads what one backward launch writes into fp32 scratch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTarget {
    pub grad: Grad,
    /// Index of the `Copy` instruction.
    pub copy: usize,
    pub src: Region,
    pub dst: Region,
    /// The launch's regions that tile `src`: (work, index in the work's dKV list; 0 for dQ).
    pub parts: Vec<(usize, usize)>,
}

impl CopyTarget {
    /// Where region `r` (inside `src`) lands in the destination.
    pub fn map(&self, r: &Region) -> Region {
        Region {
            buf: self.dst.buf,
            tok: self.dst.tok + (r.tok - self.src.tok),
            len: r.len,
            head: self.dst.head + (r.head - self.src.head),
            heads: r.heads,
        }
    }
}

/// The converting copies that only read what backward instruction `ii` of `prog` writes
/// (`works`: its works after fusion, whose dQ / dKV regions the launch adds into). Per fp32
/// buffer that the launch adds one kind of gradient into: the first later instruction touching
/// the buffer must be a `Copy` out of it whose source the launch's regions of that buffer tile
/// exactly (each spanning the source's heads); source and destination of equal shape; no other
/// instruction of the program touching the destination, none after the copy touching the
/// source, and no communication group in flight at `ii` on either buffer. Conservative: a
/// buffer read by a send or a sum, a copy of more or less than the launch wrote, partial head
/// ranges all leave the copy in place. Whether the launch can write every element of a target
/// (lists not split, every q tile listed) is the lowering's call.
pub fn copy_targets(prog: &Program, ii: usize, works: &[BwdWork]) -> Vec<CopyTarget> {
    // The launch's gradient regions by buffer: (grad, work, index, region).
    let mut by_buf: HashMap<u32, Vec<(Grad, usize, usize, Region)>> = HashMap::new();
    for (i, w) in works.iter().enumerate() {
        by_buf
            .entry(w.dq.buf)
            .or_default()
            .push((Grad::Dq, i, 0, w.dq));
        for (k, r) in w.dkv.iter().enumerate() {
            by_buf.entry(r.buf).or_default().push((Grad::Dkv, i, k, *r));
        }
    }
    // Buffers of communication groups issued before `ii` and not waited for yet.
    let mut pending: HashMap<u32, Vec<u32>> = HashMap::new();
    for ins in &prog.instrs[..ii.min(prog.instrs.len())] {
        match ins {
            Instr::Comm { tag, ops } => {
                pending.insert(*tag, ops.iter().map(|o| o.region.buf).collect());
            }
            Instr::Wait { tag } => {
                pending.remove(tag);
            }
            _ => {}
        }
    }
    let in_flight = |b: u32| pending.values().any(|v| v.contains(&b));
    let touches = |ins: &Instr, pred: &dyn Fn(&Region) -> bool| {
        let mut hit = false;
        ins.for_each_region(|r| hit |= pred(r));
        hit
    };
    let mut bufs: Vec<u32> = by_buf.keys().copied().collect();
    bufs.sort_unstable();
    let mut out = Vec::new();
    for b in bufs {
        let regs = &by_buf[&b];
        let grad = regs[0].0;
        let f32_buf = prog
            .buffers
            .get(b as usize)
            .is_some_and(|d| d.dtype == DType::F32);
        if !f32_buf || regs.iter().any(|r| r.0 != grad) || in_flight(b) {
            continue;
        }
        let Some(jj) =
            (ii + 1..prog.instrs.len()).find(|&j| touches(&prog.instrs[j], &|r| r.buf == b))
        else {
            continue;
        };
        let Instr::Copy { src, dst } = prog.instrs[jj] else {
            continue;
        };
        let (sd, dd) = (
            &prog.buffers[src.buf as usize],
            &prog.buffers.get(dst.buf as usize),
        );
        let Some(dd) = dd else { continue };
        if src.buf != b
            || dst.buf == b
            || src.len != dst.len
            || src.heads != dst.heads
            || sd.width != dd.width
            || in_flight(dst.buf)
        {
            continue;
        }
        let inside: Vec<&(Grad, usize, usize, Region)> =
            regs.iter().filter(|r| r.3.overlaps(&src)).collect();
        let parts: Vec<Region> = inside.iter().map(|r| r.3).collect();
        if !tiles_exactly(&src, &parts) {
            continue;
        }
        let dst_elsewhere = prog
            .instrs
            .iter()
            .enumerate()
            .any(|(j, ins)| j != jj && touches(ins, &|r| r.overlaps(&dst)));
        let src_after = prog.instrs[jj + 1..]
            .iter()
            .any(|ins| touches(ins, &|r| r.overlaps(&src)));
        if dst_elsewhere || src_after {
            continue;
        }
        out.push(CopyTarget {
            grad,
            copy: jj,
            src,
            dst,
            parts: inside.iter().map(|r| (r.1, r.2)).collect(),
        });
    }
    out
}

/// Per work of a backward launch and q tile (`n_qtiles[w]` of them): the tasks listing it, where
/// `lists` holds per (work, kv tile) its q-tile words (tile | `PARTIAL`) and each list is split
/// into tasks of at most `chunk` entries (every kv head runs the same tasks, so this is also the
/// number of arrivals on a (q tile, query head, half) counter).
pub fn q_tile_visits(n_qtiles: &[u32], lists: &[(u32, &[u32])], chunk: usize) -> Vec<Vec<u32>> {
    let mut v: Vec<Vec<u32>> = n_qtiles.iter().map(|&n| vec![0; n as usize]).collect();
    for (w, list) in lists {
        for part in list.chunks(chunk.max(1)) {
            for &t in part {
                v[*w as usize][(t & 0x7fff_ffff) as usize] += 1;
            }
        }
    }
    v
}

/// Which of `targets` a launch takes, all or nothing per copy: dQ ones under `mode.dq` where
/// every work of the copy can convert its dQ (`dq_ok`: fp32, its region disjoint from the other
/// works', every q tile listed by some task), dK/dV ones under `mode.dkv` where every work of
/// the copy stores all of its dK/dV rows (`dkv_full`: owned, every kv tile listed, no list
/// split).
pub fn accept(
    targets: &[CopyTarget],
    mode: ConvertMode,
    dq_ok: &[bool],
    dkv_full: &[bool],
) -> Vec<usize> {
    (0..targets.len())
        .filter(|&i| {
            let t = &targets[i];
            match t.grad {
                Grad::Dq => mode.dq && t.parts.iter().all(|&(w, _)| dq_ok[w]),
                Grad::Dkv => mode.dkv && t.parts.iter().all(|&(w, _)| dkv_full[w]),
            }
        })
        .collect()
}

/// Whether backward launches store owned dK/dV rows (`DCP_CUDA_BWD_OWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMode {
    /// Every task adds (the kernels before owned rows).
    Off,
    /// dK/dV stores where a task is the only one adding into zero rows (`1`, sessions 9-11); a work's rows
    /// are converted by the launch only when every one of them is stored.
    DkvStore,
    /// As [`OwnMode::DkvStore`] (the default), and a work whose dKV rows are its own but some of whose kv
    /// tiles are not stored by one task (split q-tile lists, unlisted tiles) keeps fp32 scratch
    /// for those tiles' rows only (`split`): the launch's zero fill shrinks to them
    /// ([`unstored_rows`]), and where the launch converts the work's dK/dV the stored tiles
    /// write the 16-bit destination while the others add into the scratch rows through the
    /// work's alternate KV segments ([`TASK_DKV_ALT`]), converted by copies of those rows alone.
    DkvSplit,
}

/// The default of `DCP_CUDA_BWD_OWN`.
pub const DEFAULT_MODE: OwnMode = OwnMode::DkvSplit;

impl OwnMode {
    /// Parses `DCP_CUDA_BWD_OWN` (unset: [`DEFAULT_MODE`]).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_MODE),
            Some("0") => Ok(OwnMode::Off),
            Some("1") => Ok(OwnMode::DkvStore),
            Some("split") => Ok(OwnMode::DkvSplit),
            Some(o) => Err(format!("DCP_CUDA_BWD_OWN={o}: expected 0, 1 or split")),
        }
    }

    /// The mode of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_OWN").ok().as_deref())
    }
}

/// Work-resident backward tasks ("chains", `DCP_CUDA_BWD_CHAIN`, sm90, head dim 128): for a
/// launch of many short works, every kv tile of a work runs for one kv head on one CTA, one
/// after the other in key order (kernels/attn_bwd_sm90.cu `BWD_CHAIN`). Every dQ element of the
/// work's query heads of that kv head is then written by that CTA alone, in a known order: the
/// first visit of a q tile stores its fp32 partial (no zero fill), the last reads the partial
/// back, adds its own and writes the sum converted into the destination of the plan's
/// converting copy (no conversion pass). Taken all or nothing per launch ([`chain_launch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainMode {
    /// No chains (`DCP_CUDA_BWD_CHAIN=0`).
    Off,
    /// Chains where the conditions hold, every other task of a chain walking its steps last to
    /// first ([`TASK_REV`]; `1`).
    Reverse,
    /// Chains, every task walking its steps first to last (`fwd`, for A/B runs).
    Forward,
}

/// The default of `DCP_CUDA_BWD_CHAIN`.
pub const DEFAULT_CHAIN: ChainMode = ChainMode::Reverse;

impl ChainMode {
    /// Parses `DCP_CUDA_BWD_CHAIN` (unset: [`DEFAULT_CHAIN`]).
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(str::trim) {
            None | Some("") => Ok(DEFAULT_CHAIN),
            Some("0") => Ok(ChainMode::Off),
            Some("1") => Ok(ChainMode::Reverse),
            Some("fwd") => Ok(ChainMode::Forward),
            Some(o) => Err(format!("DCP_CUDA_BWD_CHAIN={o}: expected 0, 1 or fwd")),
        }
    }

    /// The mode of this process's environment.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("DCP_CUDA_BWD_CHAIN").ok().as_deref())
    }
}

/// Most kv tiles per chain: a longer work's tiles run side by side on several CTAs as before
/// (they share their Q/dO loads and dQ lines in L2 that way; kernels-2026-11-28o).
pub const CHAIN_MAX_TILES: usize = 4;

/// Fewest chains per SM for a launch to chain (enough to fill the GPU and balance it).
pub const CHAIN_MIN_PER_SM: u64 = 2;

/// TaskDesc.pad: the task is part of a chain (kernels/attn_bwd_sm90.cu `B90_TASK_CHAIN`).
pub const TASK_CHAIN: u32 = 0x1000_0000;
/// TaskDesc.pad: the task walks its steps last to first (`B90_TASK_REV`).
pub const TASK_REV: u32 = 0x0800_0000;
/// TaskDesc.pad: index of the chain's next task (0: none; `B90_TASK_NEXT`).
pub const TASK_NEXT: u32 = 0x07ff_ffff;
/// Tile word: the q tile's first visit in its chain: dQ stored (`B90_TILE_FIRST`).
pub const TILE_FIRST: u32 = 0x4000_0000;
/// Tile word: the q tile's last visit in its chain: dQ converted (`B90_TILE_LAST`).
pub const TILE_LAST: u32 = 0x2000_0000;
/// Tile word bits of the q tile index under chains.
pub const TILE_INDEX: u32 = 0x1fff_ffff;

/// WorkDesc.flags: the chain kernel computes the work's D = rowsum(dO * O) itself, at each q
/// tile's first visit (kernels/attn_bwd_sm90.cu `BWD_CHAIN_DD`, `B90_WORK_DD`).
pub const WORK_DD: u32 = 32;

/// The default of `DCP_CUDA_BWD_CHAIN_DD`.
pub const DEFAULT_CHAIN_DD: bool = false;

/// Parses `DCP_CUDA_BWD_CHAIN_DD` (unset: [`DEFAULT_CHAIN_DD`]): `1` chained launches compute D
/// in the chain kernel and drop their D pre-pass, `0` they keep it.
pub fn parse_chain_dd(v: Option<&str>) -> Result<bool, String> {
    crate::switch::parse("DCP_CUDA_BWD_CHAIN_DD", v, DEFAULT_CHAIN_DD)
}

/// `DCP_CUDA_BWD_CHAIN_DD` of this process's environment.
pub fn chain_dd_from_env() -> Result<bool, String> {
    parse_chain_dd(std::env::var("DCP_CUDA_BWD_CHAIN_DD").ok().as_deref())
}

/// Whether the chain kernel can compute work `w`'s D itself (`BWD_CHAIN_DD`): its O is of the
/// launch's 16-bit element dtype `elem` (dO is always), and dO and O rows allow the kernel's
/// 16-byte loads (addresses and row strides multiples of 16 bytes). Not: an fp32 O (split-K
/// partials), another dtype, misaligned rows; the launch then keeps its D pre-pass.
pub fn chain_dd_work_ok(w: &WorkDesc, elem: u32) -> bool {
    let a16 = |ptr: u64, stride: u32| {
        ptr != 0 && ptr.is_multiple_of(16) && (stride as u64 * 2).is_multiple_of(16)
    };
    (elem == DT_BF16 || elem == DT_F16)
        && w.o_dtype == elem
        && a16(w.dout, w.do_stride)
        && a16(w.o, w.o_stride)
}

/// Whether a chained launch's kernel computes D for all of its `works` (each flagged
/// [`WORK_DD`] by the host then): chain D asked for (`on`), at least one work, and every work
/// [`chain_dd_work_ok`]. All or nothing per launch, like the chains.
pub fn chain_dd_launch(on: bool, works: &[WorkDesc], elem: u32) -> bool {
    on && !works.is_empty() && works.iter().all(|w| chain_dd_work_ok(w, elem))
}

/// Whether a backward launch still needs its `dcp_bwd_dd` pre-pass: some work's D is not
/// computed by the kernel ([`WORK_DD`]), a work's dQ rows are zeroed by it ([`WORK_DQ_ZERO`]),
/// or it zeroes `n_cnt` dQ arrival counters.
pub fn dd_pass_needed(works: &[WorkDesc], n_cnt: u32) -> bool {
    n_cnt > 0
        || works.is_empty()
        || works
            .iter()
            .any(|w| w.flags & WORK_DD == 0 || w.flags & WORK_DQ_ZERO != 0)
}

/// Where a backward launch's D pre-pass can run as one flat stream (`dcp_bwd_dd_flat`,
/// kernels/util.cu): every work's dO and O rows lie back to back in one run each, in the order
/// of the works' D indices, so that (row, head) pair `i` of the launch (`dd_off` order) is at
/// element `i * d` of both runs. Returns the two runs' device addresses and the launch's pairs,
/// or `None` where the tiled pass (`dcp_bwd_dd`) must run: a head dim that is not a power of two
/// from 8 to 128, a model dtype (`elem`) or an O dtype that is not the same 16-bit type, a dQ
/// the pass zeroes ([`WORK_DQ_ZERO`]), strided rows, works whose D indices or rows leave gaps,
/// addresses not 16-byte aligned.
pub fn dd_flat(works: &[WorkDesc], d: u32, elem: u32) -> Option<(u64, u64, u64)> {
    if !(8..=128).contains(&d) || !d.is_power_of_two() || (elem != DT_BF16 && elem != DT_F16) {
        return None;
    }
    // In D-index order (a launch may order its works for L2 locality).
    let mut order: Vec<&WorkDesc> = works.iter().collect();
    order.sort_by_key(|w| w.dd_off);
    let first = *order.first()?;
    let (dout0, o0, heads) = (first.dout, first.o, first.q_heads);
    if first.dd_off != 0 || heads == 0 || (dout0 | o0) % 16 != 0 {
        return None;
    }
    let row = heads.checked_mul(d)?;
    let mut next = 0u64;
    for w in order {
        let at = next * d as u64 * 2;
        let ok = w.dd_off as u64 == next
            && w.q_heads == heads
            && w.do_stride == row
            && w.o_stride == row
            && w.o_dtype == elem
            && w.flags & WORK_DQ_ZERO == 0
            && w.dout == dout0.checked_add(at)?
            && w.o == o0.checked_add(at)?;
        if !ok {
            return None;
        }
        next += w.n_rows as u64 * heads as u64;
    }
    (next > 0).then_some((dout0, o0, next))
}

/// What [`chain_launch`] needs of one (fused) work of a backward launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainWork {
    /// q tiles of the work (rows / the backward's q tile).
    pub n_qtiles: u32,
    /// dQ can be stored and converted by the chain: fp32 scratch, shaped like Q, zero at the
    /// launch (a fill no instruction has touched since), overlapping no other work's dQ region,
    /// and a converting copy reads it that the launch may take over ([`copy_targets`]).
    pub dq_ok: bool,
}

/// Whether a backward launch runs as chains: `lists` per (work, kv tile) its q-tile words (every
/// kv head runs the same lists), each cut into tasks of at most `chunk` entries; `chains` =
/// works x kv heads. All of: a work at all; every work's dQ can be stored and converted
/// (`dq_ok`); no list split; at most [`CHAIN_MAX_TILES`] listed kv tiles per work; every q tile of
/// every work listed by some kv tile (its dQ is written by a store, there is no fill); q tile
/// indices below the visit flags; at least [`CHAIN_MIN_PER_SM`] chains per SM; every task index
/// fits [`TASK_NEXT`].
pub fn chain_launch(
    works: &[ChainWork],
    lists: &[(u32, &[u32])],
    chunk: usize,
    kv_heads: u32,
    sm_count: u32,
) -> bool {
    if works.is_empty() || works.iter().any(|w| !w.dq_ok) {
        return false;
    }
    let mut kts = vec![0usize; works.len()];
    let mut seen: Vec<Vec<bool>> = works
        .iter()
        .map(|w| vec![false; w.n_qtiles as usize])
        .collect();
    for (w, list) in lists {
        let w = *w as usize;
        if w >= works.len() || list.len() > chunk {
            return false;
        }
        kts[w] += 1;
        for &t in *list {
            let q = (t & 0x7fff_ffff) as usize;
            if q as u32 > TILE_INDEX || q >= seen[w].len() {
                return false;
            }
            seen[w][q] = true;
        }
    }
    let chains = works.len() as u64 * kv_heads as u64;
    let tasks = lists.len() as u64 * kv_heads as u64;
    kts.iter().all(|&k| k <= CHAIN_MAX_TILES)
        && seen.iter().all(|s| s.iter().all(|&v| v))
        && chains >= CHAIN_MIN_PER_SM * sm_count.max(1) as u64
        && tasks <= TASK_NEXT as u64
}

/// Per fused work of backward instruction `ii` of `prog`: whether a chain may store and convert
/// its dQ ([`ChainWork::dq_ok`]): fp32 (`dq_f32`), shaped like Q, zero at the launch (`zeros`),
/// overlapping no other work's dQ, and read by a converting copy the launch may take over
/// ([`copy_targets`], [`accept`]).
pub fn chain_dq_ok(
    prog: &Program,
    ii: usize,
    works: &[BwdWork],
    zeros: &ZeroSet,
    dq_f32: &[bool],
) -> Vec<bool> {
    let n = works.len();
    let targets = copy_targets(prog, ii, works);
    let mode = ConvertMode {
        dq: true,
        dkv: false,
    };
    let mut copied = vec![false; n];
    for ti in accept(&targets, mode, &vec![true; n], &vec![false; n]) {
        for &(i, _) in &targets[ti].parts {
            copied[i] = true;
        }
    }
    let alone = disjoint(&works.iter().map(|w| w.dq).collect::<Vec<_>>());
    (0..n)
        .map(|i| {
            let w = &works[i];
            dq_f32[i]
                && w.dq.len == w.q.len
                && w.dq.heads == w.q.heads
                && alone[i]
                && zeros.is_zero(&w.dq)
                && copied[i]
        })
        .collect()
}

/// Marks the visit flags in one work's q-tile lists, given in chain order (kv tile ascending):
/// per q tile [`TILE_FIRST`] on its entry in the first list that has it, [`TILE_LAST`] on its
/// entry in the last (both on one entry when a single list has it).
pub fn mark_visits(lists: &mut [&mut Vec<u32>]) {
    let mut first: HashMap<u32, (usize, usize)> = HashMap::new();
    let mut last: HashMap<u32, (usize, usize)> = HashMap::new();
    for (l, list) in lists.iter().enumerate() {
        for (e, &t) in list.iter().enumerate() {
            let q = t & TILE_INDEX;
            first.entry(q).or_insert((l, e));
            last.insert(q, (l, e));
        }
    }
    for (l, e) in first.into_values() {
        lists[l][e] |= TILE_FIRST;
    }
    for (l, e) in last.into_values() {
        lists[l][e] |= TILE_LAST;
    }
}

/// Orders chained tasks for the kernel: `chains` per chain its tasks in order. Returns the task
/// list, the chains' first tasks first (longest chains first, by steps: the claim counter hands
/// out chains) and each chain's later tasks after them, every task but a chain's last linked to
/// its successor ([`TASK_NEXT`]), all marked [`TASK_CHAIN`], under `reverse` every other task of
/// a chain (the second, fourth...) [`TASK_REV`]; and the number of chains.
pub fn order_chains(mut chains: Vec<Vec<TaskDesc>>, reverse: bool) -> (Vec<TaskDesc>, u32) {
    chains.retain(|c| !c.is_empty());
    chains.sort_by_key(|c| std::cmp::Reverse(c.iter().map(|t| t.tiles_n as u64).sum::<u64>()));
    let n = chains.len();
    let mut out: Vec<TaskDesc> = chains.iter().map(|c| c[0]).collect();
    for (i, c) in chains.iter().enumerate() {
        let mut prev = i;
        for (k, t) in c.iter().enumerate().skip(1) {
            let idx = out.len();
            out[prev].pad |= idx as u32 & TASK_NEXT;
            let rev = if reverse && k % 2 == 1 { TASK_REV } else { 0 };
            out.push(TaskDesc {
                pad: t.pad | rev,
                ..*t
            });
            prev = idx;
        }
    }
    for t in &mut out {
        t.pad |= TASK_CHAIN;
    }
    (out, n as u32)
}

/// Whether `outer` contains every element of `inner` (same buffer; an empty `inner` is
/// contained anywhere in its buffer).
pub fn contains(outer: &Region, inner: &Region) -> bool {
    outer.buf == inner.buf
        && (inner.len == 0
            || inner.heads == 0
            || (outer.tok <= inner.tok
                && inner.tok + inner.len <= outer.tok + outer.len
                && outer.head <= inner.head
                && inner.head + inner.heads <= outer.head + outer.heads))
}

/// Regions known to be zero at the current point of a program, each with the op index of the
/// fill that zeroed it (while lowering instructions in order).
#[derive(Debug, Default, Clone)]
pub struct ZeroSet {
    fills: Vec<(Region, usize)>,
}

impl ZeroSet {
    /// A zero fill of `r` issued as op `op` (older records it overlaps are dropped: the newer
    /// fill is the one that leaves the zeros).
    pub fn add(&mut self, r: Region, op: usize) {
        self.forget(&r);
        self.fills.push((r, op));
    }

    /// An instruction reads or writes `r`: records it overlaps are no longer known zero (a read
    /// too, since a dropped fill would change what it reads).
    pub fn forget(&mut self, r: &Region) {
        self.fills.retain(|(z, _)| !z.overlaps(r));
    }

    /// Whether every element of `r` is known zero.
    pub fn is_zero(&self, r: &Region) -> bool {
        self.fills.iter().any(|(z, _)| contains(z, r))
    }

    /// The records (region, fill op).
    pub fn fills(&self) -> &[(Region, usize)] {
        &self.fills
    }
}

/// Per region: whether it overlaps no other region of the list (O(n log n) plus the overlapping
/// pairs).
pub fn disjoint(regions: &[Region]) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..regions.len()).collect();
    idx.sort_by_key(|&i| (regions[i].buf, regions[i].tok));
    let mut ok = vec![true; regions.len()];
    for (a, &i) in idx.iter().enumerate() {
        let ri = &regions[i];
        for &j in &idx[a + 1..] {
            let rj = &regions[j];
            if rj.buf != ri.buf || rj.tok >= ri.tok + ri.len {
                break;
            }
            if ri.overlaps(rj) {
                ok[i] = false;
                ok[j] = false;
            }
        }
    }
    ok
}

/// Whether `parts` tile `z` exactly: each spans z's head range, and their token ranges follow
/// each other from z's first token to its last without gap or overlap (any order).
pub fn tiles_exactly(z: &Region, parts: &[Region]) -> bool {
    if parts.is_empty() || z.len == 0 {
        return false;
    }
    let mut p: Vec<&Region> = parts.iter().collect();
    p.sort_by_key(|r| r.tok);
    let mut next = z.tok;
    for r in p {
        if r.buf != z.buf || r.head != z.head || r.heads != z.heads || r.tok != next || r.len == 0 {
            return false;
        }
        next += r.len;
    }
    next == z.tok + z.len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(buf: u32, tok: u32, len: u32, head: u32, heads: u32) -> Region {
        Region {
            buf,
            tok,
            len,
            head,
            heads,
        }
    }

    use dcp_core::mask::MaskSpec;
    use dcp_core::plan::{BufferDecl, BufferRole, Dir, FillValue, P2p, RowRanges};
    use dcp_core::planners::{make_plan, PlannerOptions};
    use dcp_core::spec::{BatchSpec, ModelShape, Topology};

    /// Walks `planner`'s backward programs on `world` GPUs the way `Prepared::new` does (a zero
    /// fill records its region, any other instruction forgets what it touches) and calls `at`
    /// at each backward launch with (program, instruction index, fused works, the zero set
    /// before it, per fused work whether its dQ buffer is fp32); per device the results.
    fn walk_bwd_launches<T>(
        planner: &str,
        lens: &[u32],
        mask: MaskSpec,
        world: u32,
        mut at: impl FnMut(&Program, usize, &[BwdWork], &ZeroSet, &[bool]) -> T,
    ) -> Vec<Vec<T>> {
        let batch = BatchSpec::uniform(lens, mask, ModelShape::default(), 1024);
        let plan = make_plan(
            planner,
            &batch,
            &Topology::new(1, world),
            &PlannerOptions::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        for d in &plan.devices {
            let prog = &d.backward;
            let mut zeros = ZeroSet::default();
            let mut per = Vec::new();
            for (ii, ins) in prog.instrs.iter().enumerate() {
                match ins {
                    Instr::Fill {
                        dst,
                        value: FillValue::Zero,
                    } => {
                        zeros.add(*dst, ii);
                        continue;
                    }
                    Instr::AttnBwd { works, .. } => {
                        let (fused, _) = crate::fuse::fuse_bwd(works);
                        let f32s: Vec<bool> = fused
                            .iter()
                            .map(|w| prog.buffers[w.dq.buf as usize].dtype == DType::F32)
                            .collect();
                        per.push(at(prog, ii, &fused, &zeros, &f32s));
                    }
                    _ => {}
                }
                ins.for_each_region(|r| zeros.forget(r));
            }
            out.push(per);
        }
        out
    }

    /// The fills the D pre-pass takes over in `planner`'s backward programs on `world` GPUs:
    /// per device (fill instruction, AttnBwd instruction), asking [`dq_fills_to_fuse`] at each
    /// launch with its fused works.
    fn fused_fills(
        planner: &str,
        lens: &[u32],
        mask: MaskSpec,
        world: u32,
    ) -> Vec<Vec<(usize, usize)>> {
        walk_bwd_launches(planner, lens, mask, world, |_, ii, fused, zeros, f32s| {
            let dq: Vec<Region> = fused.iter().map(|w| w.dq).collect();
            dq_fills_to_fuse(zeros, &dq, f32s)
                .into_iter()
                .map(|(fill, inside)| {
                    assert!(!inside.is_empty());
                    (fill, ii)
                })
                .collect::<Vec<_>>()
        })
        .into_iter()
        .map(|per| per.into_iter().flatten().collect())
        .collect()
    }

    #[test]
    fn dq_fills_fuse_into_the_first_launch_adding_into_them() {
        // local: the dQ accumulator's fill (instruction 0) by the one launch (instruction 2).
        for world in [1, 2] {
            for dev in fused_fills("local", &[256; 8], MaskSpec::Full, world) {
                assert_eq!(dev, vec![(0, 2)], "local world {world}");
            }
        }
        // ring / zigzag: dQ accumulates over every stage into one buffer filled once: the first
        // launch's pre-pass zeroes it (the kv ring's first transfer does not touch it); later
        // launches find the rows summed, never zero. dK/dV rings (sent) are not dQ.
        for planner in ["ring", "zigzag"] {
            for world in [1, 4] {
                let t = fused_fills(planner, &[8192, 4096], MaskSpec::Causal, world);
                for (d, dev) in t.iter().enumerate() {
                    // One fill (dQ's), by one launch (the first: after it the rows are no
                    // longer known zero, so no later launch can take the fill over again).
                    assert!(
                        dev.len() <= 1,
                        "{planner} world {world} device {d}: {dev:?}"
                    );
                    assert!(dev.iter().all(|&(f, b)| f < b));
                }
                assert!(
                    t.iter().any(|d| d.len() == 1),
                    "{planner} world {world}: {t:?}"
                );
            }
        }
        // dcp: works share dQ rows (a query block against several kv blocks): whatever it
        // finds, each fill at most once and only by a launch after it.
        for world in [1, 4] {
            for dev in fused_fills("dcp", &[8192, 4096, 2048, 1024], MaskSpec::Causal, world) {
                let mut fills: Vec<usize> = dev.iter().map(|x| x.0).collect();
                fills.dedup();
                assert_eq!(fills.len(), dev.len(), "dcp world {world}: {dev:?}");
                assert!(dev.iter().all(|&(f, b)| f < b));
            }
        }
    }

    #[test]
    fn dd_pass_takes_over_the_dkv_fills_still_zero() {
        assert_eq!(parse_dd_zero(None), Ok(true));
        assert_eq!(parse_dd_zero(Some(" 0")), Ok(false));
        assert!(parse_dd_zero(Some("x"))
            .unwrap_err()
            .contains("DCP_CUDA_BWD_DD_ZERO=x: expected 0 or 1"));
        let mut z = ZeroSet::default();
        z.add(r(5, 0, 64, 0, 2), 0); // dQ accumulator
        z.add(r(6, 0, 64, 0, 1), 1); // dKV accumulator, one head
        z.add(r(6, 0, 64, 1, 1), 2); // the other head: already dropped by the launch
        z.add(r(7, 0, 64, 0, 2), 3); // another launch's dKV
        let dkv = [r(6, 0, 32, 0, 2), r(6, 40, 8, 0, 2)];
        // Whole records (the pass zeroes what the fill would have), not the overlaps.
        assert_eq!(
            dkv_fills_to_zero(&z, &[2], &dkv),
            vec![(1, r(6, 0, 64, 0, 1))]
        );
        assert_eq!(dkv_fills_to_zero(&z, &[], &dkv).len(), 2);
        assert!(dkv_fills_to_zero(&z, &[1, 2], &dkv).is_empty());
        // A record an instruction touched since is no longer there.
        z.forget(&r(6, 10, 1, 0, 1));
        assert!(dkv_fills_to_zero(&z, &[2], &dkv).is_empty());
    }

    #[test]
    fn dq_fills_fuse_only_where_the_works_tile_them() {
        assert_eq!(parse_fuse_fill(None), Ok(true));
        assert_eq!(parse_fuse_fill(Some("0")), Ok(false));
        assert!(parse_fuse_fill(Some("2"))
            .unwrap_err()
            .contains("DCP_CUDA_BWD_FUSE_FILL=2: expected 0 or 1"));
        let mut z = ZeroSet::default();
        z.add(r(5, 0, 64, 0, 2), 0); // dQ accumulator
        z.add(r(6, 0, 64, 0, 1), 1); // dKV accumulator: no dQ region in it
        let dq = [r(5, 0, 40, 0, 2), r(5, 40, 24, 0, 2)];
        assert_eq!(
            dq_fills_to_fuse(&z, &dq, &[true, true]),
            vec![(0, vec![0, 1])]
        );
        assert!(
            dq_fills_to_fuse(&z, &dq, &[true, false]).is_empty(),
            "16-bit dQ"
        );
        assert!(
            dq_fills_to_fuse(&z, &dq[..1], &[true]).is_empty(),
            "rows 40.. of the fill not covered"
        );
        let overlapping = [r(5, 0, 40, 0, 2), r(5, 30, 34, 0, 2)];
        assert!(dq_fills_to_fuse(&z, &overlapping, &[true, true]).is_empty());
        // Rows touched since the fill are no longer known zero: nothing to take over.
        z.forget(&r(5, 10, 1, 0, 1));
        assert!(dq_fills_to_fuse(&z, &dq, &[true, true]).is_empty());
    }

    #[test]
    fn convert_mode_parses_and_rejects_unknown() {
        let both = ConvertMode {
            dq: true,
            dkv: true,
        };
        assert_eq!(ConvertMode::parse(None), Ok(DEFAULT_CONVERT));
        assert_eq!(ConvertMode::parse(Some("1")), Ok(both));
        assert_eq!(
            DEFAULT_CONVERT,
            ConvertMode {
                dq: false,
                dkv: true
            }
        );
        assert_eq!(
            ConvertMode::parse(Some(" 0")),
            Ok(ConvertMode {
                dq: false,
                dkv: false
            })
        );
        assert_eq!(
            ConvertMode::parse(Some("dq")),
            Ok(ConvertMode {
                dq: true,
                dkv: false
            })
        );
        assert_eq!(
            ConvertMode::parse(Some("dkv")),
            Ok(ConvertMode {
                dq: false,
                dkv: true
            })
        );
        let e = ConvertMode::parse(Some("yes")).unwrap_err();
        assert!(
            e.contains("DCP_CUDA_BWD_CONVERT=yes") && e.contains("expected 0, 1, dq or dkv"),
            "{e}"
        );
    }

    /// Per backward program of `planner` on `world` GPUs: per AttnBwd instruction, its copy
    /// targets as (grad, copy instruction, number of parts); also checks each target's parts
    /// tile its source and map into its destination.
    fn targets_of(
        planner: &str,
        lens: &[u32],
        mask: MaskSpec,
        world: u32,
    ) -> Vec<Vec<(usize, Grad, usize, usize)>> {
        let batch = BatchSpec::uniform(lens, mask, ModelShape::default(), 1024);
        let topo = Topology::new(1, world);
        let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default()).unwrap();
        let mut out = Vec::new();
        for d in &plan.devices {
            let prog = &d.backward;
            let mut per = Vec::new();
            for (ii, ins) in prog.instrs.iter().enumerate() {
                let Instr::AttnBwd { works, .. } = ins else {
                    continue;
                };
                let (fused, _) = crate::fuse::fuse_bwd(works);
                for t in copy_targets(prog, ii, &fused) {
                    assert!(matches!(prog.instrs[t.copy], Instr::Copy { .. }));
                    let parts: Vec<Region> = t
                        .parts
                        .iter()
                        .map(|&(w, k)| match t.grad {
                            Grad::Dq => fused[w].dq,
                            Grad::Dkv => fused[w].dkv[k],
                        })
                        .collect();
                    assert!(tiles_exactly(&t.src, &parts));
                    let mapped: Vec<Region> = parts.iter().map(|r| t.map(r)).collect();
                    assert!(tiles_exactly(&t.dst, &mapped), "{planner}: mapped parts");
                    assert_eq!(prog.buffers[t.src.buf as usize].dtype, DType::F32);
                    per.push((ii, t.grad, t.copy, t.parts.len()));
                }
            }
            out.push(per);
        }
        out
    }

    #[test]
    fn local_and_single_device_ring_plans_convert_both_gradients() {
        // local: Fill dQ, Fill dKV, AttnBwd (one work per document, fused into none: each
        // document has its own KV), Copy dQ, Copy dKV, on every device.
        for world in [1, 2, 4] {
            let lens = [256u32; 16];
            for dev in targets_of("local", &lens, MaskSpec::Full, world) {
                assert_eq!(
                    dev,
                    vec![
                        (2, Grad::Dq, 3, 16 / world as usize),
                        (2, Grad::Dkv, 4, 16 / world as usize)
                    ],
                    "local world {world}"
                );
            }
        }
        for planner in ["ring", "zigzag"] {
            let t = targets_of(planner, &[4096, 2048], MaskSpec::Causal, 1);
            // Both copies (dKV's scratch ring buffer is declared before dQ's accumulator).
            let mut grads: Vec<bool> = t[0].iter().map(|x| x.1 == Grad::Dq).collect();
            grads.sort_unstable();
            assert_eq!(grads, vec![false, true], "{planner} world 1: {t:?}");
        }
    }

    #[test]
    fn multi_device_plans_keep_the_copies_of_gradients_that_travel() {
        // ring/zigzag on 4 GPUs: dK/dV go round the ring (sent after every stage): never a
        // target. dQ stays home: only the last stage's launch may convert it (the earlier ones
        // are followed by a later launch adding into the same rows).
        for planner in ["ring", "zigzag"] {
            let t = targets_of(planner, &[8192, 4096], MaskSpec::Causal, 4);
            for (d, dev) in t.iter().enumerate() {
                assert!(
                    dev.iter().all(|x| x.1 == Grad::Dq),
                    "{planner} device {d}: {dev:?}"
                );
                assert!(dev.len() <= 1, "{planner} device {d}: {dev:?}");
            }
            assert!(t.iter().any(|d| d.len() == 1), "{planner}: {t:?}");
        }
        // dcp on 4 GPUs: works share dKV rows (several query blocks read one kv block) and
        // partial gradients travel: check nothing violates the conditions (targets_of asserts
        // the tiling), whatever is found.
        for world in [2, 4] {
            let _ = targets_of(
                "dcp",
                &[8192, 4096, 2048, 1024, 512],
                MaskSpec::Causal,
                world,
            );
        }
    }

    fn decl(name: &str, dtype: DType, tokens: u32) -> BufferDecl {
        BufferDecl {
            name: name.into(),
            role: BufferRole::Scratch,
            dtype,
            tokens,
            heads: 2,
            width: 8,
        }
    }

    /// A one-work backward program over 64 tokens: buffers q 0, kv 1, o 2, lse 3, do 4, dq_acc
    /// 5 (fp32), dkv_acc 6 (fp32), dq 7, dkv 8, x 9 (fp32); fills, the launch (instruction 2),
    /// `mid` instructions, the two copies, `tail` instructions.
    fn prog(mid: Vec<Instr>, copies: Vec<Instr>, tail: Vec<Instr>) -> Program {
        let mut buffers = vec![
            decl("q", DType::Bf16, 64),
            decl("kv", DType::Bf16, 64),
            decl("o", DType::Bf16, 64),
            decl("lse", DType::F32, 64),
            decl("do", DType::Bf16, 64),
            decl("dq_acc", DType::F32, 64),
            decl("dkv_acc", DType::F32, 64),
            decl("dq", DType::Bf16, 64),
            decl("dkv", DType::Bf16, 64),
            decl("x", DType::F32, 64),
        ];
        buffers[1].heads = 1;
        buffers[6].heads = 1;
        buffers[8].heads = 1;
        let all = |buf| {
            r(
                buf,
                0,
                64,
                0,
                if buf == 1 || buf == 6 || buf == 8 {
                    1
                } else {
                    2
                },
            )
        };
        let work = BwdWork {
            q: all(0),
            kv: vec![all(1)],
            o: all(2),
            lse: all(3),
            do_: all(4),
            dq: all(5),
            dkv: vec![all(6)],
            rows: RowRanges::default(),
        };
        let mut instrs = vec![
            Instr::Fill {
                dst: all(5),
                value: FillValue::Zero,
            },
            Instr::Fill {
                dst: all(6),
                value: FillValue::Zero,
            },
            Instr::AttnBwd {
                stage: 0,
                works: vec![work],
            },
        ];
        instrs.extend(mid);
        instrs.extend(copies);
        instrs.extend(tail);
        Program { buffers, instrs }
    }

    fn copy(src: Region, dst: Region) -> Instr {
        Instr::Copy { src, dst }
    }

    fn found(p: &Program) -> Vec<(Grad, usize)> {
        let Instr::AttnBwd { works, .. } = &p.instrs[2] else {
            unreachable!()
        };
        copy_targets(p, 2, works)
            .iter()
            .map(|t| (t.grad, t.copy))
            .collect()
    }

    #[test]
    fn copy_targets_only_where_the_copy_alone_reads_the_launch() {
        let dq_copy = copy(r(5, 0, 64, 0, 2), r(7, 0, 64, 0, 2));
        let dkv_copy = copy(r(6, 0, 64, 0, 1), r(8, 0, 64, 0, 1));
        let both = || vec![dq_copy.clone(), dkv_copy.clone()];
        assert_eq!(
            found(&prog(vec![], both(), vec![])),
            vec![(Grad::Dq, 3), (Grad::Dkv, 4)]
        );
        // Scratch read by a send (the gradient travels) or a sum before the copy.
        let send = Instr::Comm {
            tag: 7,
            ops: vec![P2p {
                dir: Dir::Send,
                peer: 1,
                region: r(6, 0, 32, 0, 1),
            }],
        };
        assert_eq!(
            found(&prog(
                vec![send.clone(), Instr::Wait { tag: 7 }],
                both(),
                vec![]
            )),
            vec![(Grad::Dq, 5)]
        );
        let sum = Instr::Sum {
            dst: r(9, 0, 64, 0, 2),
            inputs: vec![r(5, 0, 64, 0, 2)],
        };
        assert_eq!(
            found(&prog(vec![sum], both(), vec![])),
            vec![(Grad::Dkv, 5)]
        );
        // A copy of only part of what the launch wrote, or of more.
        let half = copy(r(5, 0, 32, 0, 2), r(7, 0, 32, 0, 2));
        assert_eq!(
            found(&prog(vec![], vec![half, dkv_copy.clone()], vec![])),
            vec![(Grad::Dkv, 4)]
        );
        let one_head = copy(r(5, 0, 64, 1, 1), r(7, 0, 64, 1, 1));
        assert_eq!(
            found(&prog(vec![], vec![one_head, dkv_copy.clone()], vec![])),
            vec![(Grad::Dkv, 4)]
        );
        // The scratch read again after the copy; the destination written by someone else.
        let reread = copy(r(5, 10, 1, 0, 2), r(9, 0, 1, 0, 2));
        assert_eq!(
            found(&prog(vec![], both(), vec![reread])),
            vec![(Grad::Dkv, 4)]
        );
        let fill_dst = Instr::Fill {
            dst: r(8, 60, 4, 0, 1),
            value: FillValue::Zero,
        };
        assert_eq!(
            found(&prog(vec![], both(), vec![fill_dst])),
            vec![(Grad::Dq, 3)]
        );
        // A receive into the scratch still in flight when the launch runs (issued before it).
        let mut p = prog(vec![Instr::Wait { tag: 9 }], both(), vec![]);
        p.instrs.insert(
            0,
            Instr::Comm {
                tag: 9,
                ops: vec![P2p {
                    dir: Dir::Recv,
                    peer: 1,
                    region: r(5, 0, 8, 0, 2),
                }],
            },
        );
        let Instr::AttnBwd { works, .. } = &p.instrs[3] else {
            unreachable!()
        };
        let t: Vec<(Grad, usize)> = copy_targets(&p, 3, works)
            .iter()
            .map(|t| (t.grad, t.copy))
            .collect();
        assert_eq!(t, vec![(Grad::Dkv, 6)]);
        // A 16-bit scratch (not a gradient accumulator) or a copy into the same buffer.
        let mut p16 = prog(vec![], both(), vec![]);
        p16.buffers[5].dtype = DType::Bf16;
        assert_eq!(found(&p16), vec![(Grad::Dkv, 4)]);
    }

    #[test]
    fn acceptance_is_all_or_nothing_per_copy() {
        let t = |grad, parts: Vec<(usize, usize)>| CopyTarget {
            grad,
            copy: 0,
            src: r(0, 0, 1, 0, 1),
            dst: r(1, 0, 1, 0, 1),
            parts,
        };
        let ts = [
            t(Grad::Dq, vec![(0, 0), (1, 0)]),
            t(Grad::Dq, vec![(2, 0)]),
            t(Grad::Dkv, vec![(0, 0), (0, 1), (1, 0)]),
            t(Grad::Dkv, vec![(2, 0)]),
        ];
        let dq_ok = [true, false, true];
        let dkv_full = [true, true, false];
        let both = ConvertMode {
            dq: true,
            dkv: true,
        };
        assert_eq!(accept(&ts, both, &dq_ok, &dkv_full), vec![1, 2]);
        assert_eq!(accept(&ts, DEFAULT_CONVERT, &dq_ok, &dkv_full), vec![2]);
        let dq_only = ConvertMode {
            dq: true,
            dkv: false,
        };
        assert_eq!(accept(&ts, dq_only, &[true; 3], &[true; 3]), vec![0, 1]);
    }

    #[test]
    fn unstored_rows_cover_the_tiles_not_stored() {
        // One region of 600 keys at token 1000, tiles of 128: tiles 0, 1 (split) and 4 (the
        // last, 88 keys, unlisted) not stored.
        let a = r(3, 1000, 600, 2, 2);
        let got = unstored_rows(&[a], 128, &[false, false, true, true]);
        assert_eq!(
            got,
            vec![(0, r(3, 1000, 256, 2, 2)), (0, r(3, 1512, 88, 2, 2))]
        );
        // Every tile stored: nothing.
        assert!(unstored_rows(&[a], 128, &[true; 5]).is_empty());
        // Two regions (keys 0..100 and 100..300, other buffers): tile 0 (keys 0..127) not
        // stored spans both; tile 1 stored; tile 2 (keys 256..299) not stored. Runs are not
        // merged across regions.
        let b = r(4, 0, 100, 0, 2);
        let c = r(5, 50, 200, 0, 2);
        let got = unstored_rows(&[b, c], 128, &[false, true, false]);
        assert_eq!(
            got,
            vec![
                (0, r(4, 0, 100, 0, 2)),
                (1, r(5, 50, 28, 0, 2)),
                (1, r(5, 206, 44, 0, 2))
            ]
        );
        // The rows returned and the stored tiles' rows tile every region (random cases).
        let mut seed = 7u64;
        let mut next = |m: u32| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) % m as u64) as u32
        };
        for _ in 0..200 {
            let n = 1 + next(4) as usize;
            let regs: Vec<Region> = (0..n)
                .map(|i| r(i as u32, next(500), 1 + next(400), 0, 1))
                .collect();
            let total: u32 = regs.iter().map(|x| x.len).sum();
            let stored: Vec<bool> = (0..total.div_ceil(64)).map(|_| next(2) == 1).collect();
            let got = unstored_rows(&regs, 64, &stored);
            let mut key0 = 0;
            for (k, x) in regs.iter().enumerate() {
                for key in key0..key0 + x.len {
                    let tok = x.tok + key - key0;
                    let hits = got
                        .iter()
                        .filter(|(gk, g)| *gk == k && g.tok <= tok && tok < g.tok + g.len)
                        .count();
                    assert_eq!(hits, usize::from(!stored[(key / 64) as usize]), "key {key}");
                }
                key0 += x.len;
            }
        }
    }

    #[test]
    fn q_tile_visits_count_split_lists_once_per_task() {
        // Work 0 (3 q tiles): kv tile lists [0, 1 | 2] (split at 2) and [1 | PARTIAL]; work 1 (2
        // q tiles): [0] only, q tile 1 never listed.
        let a = [0u32, 1, 2];
        let b = [1u32 | 0x8000_0000];
        let c = [0u32];
        let v = q_tile_visits(&[3, 2], &[(0, &a), (0, &b), (1, &c)], 2);
        assert_eq!(v, vec![vec![1, 2, 1], vec![1, 0]]);
    }

    #[test]
    fn mode_parses_and_rejects_unknown() {
        assert_eq!(OwnMode::parse(None), Ok(DEFAULT_MODE));
        assert_eq!(OwnMode::parse(Some("0")), Ok(OwnMode::Off));
        assert_eq!(OwnMode::parse(Some(" 1")), Ok(OwnMode::DkvStore));
        assert_eq!(OwnMode::parse(Some("split")), Ok(OwnMode::DkvSplit));
        assert!(OwnMode::parse(Some("chain"))
            .unwrap_err()
            .contains("expected 0, 1 or split"));
    }

    #[test]
    fn zero_set_tracks_fills_and_touches() {
        let mut z = ZeroSet::default();
        z.add(r(1, 0, 100, 0, 8), 3);
        assert!(z.is_zero(&r(1, 10, 20, 2, 4)));
        assert!(!z.is_zero(&r(1, 90, 20, 0, 8)), "runs past the fill");
        assert!(!z.is_zero(&r(2, 10, 20, 0, 8)), "other buffer");
        z.forget(&r(1, 50, 1, 7, 1));
        assert!(
            !z.is_zero(&r(1, 10, 20, 2, 4)),
            "a touch anywhere in the fill forgets it"
        );
        z.add(r(1, 0, 10, 0, 8), 4);
        z.add(r(1, 0, 100, 0, 8), 5);
        assert_eq!(
            z.fills(),
            &[(r(1, 0, 100, 0, 8), 5)],
            "the newer fill replaces the older"
        );
    }

    #[test]
    fn disjoint_flags_only_overlapping_regions() {
        let rs = [
            r(0, 0, 10, 0, 8),
            r(0, 10, 10, 0, 8),
            r(0, 15, 10, 0, 4),
            r(0, 15, 10, 4, 4),
            r(1, 0, 10, 0, 8),
            r(0, 100, 0, 0, 8),
        ];
        assert_eq!(disjoint(&rs), vec![true, false, false, false, true, true]);
        assert_eq!(disjoint(&[]), Vec::<bool>::new());
    }

    #[test]
    fn exact_tiling_needs_full_heads_and_no_gaps() {
        let z = r(2, 100, 30, 0, 8);
        assert!(tiles_exactly(
            &z,
            &[r(2, 110, 20, 0, 8), r(2, 100, 10, 0, 8)]
        ));
        assert!(
            !tiles_exactly(&z, &[r(2, 100, 10, 0, 8), r(2, 111, 19, 0, 8)]),
            "gap"
        );
        assert!(
            !tiles_exactly(&z, &[r(2, 100, 10, 0, 8), r(2, 105, 25, 0, 8)]),
            "overlap"
        );
        assert!(!tiles_exactly(&z, &[r(2, 100, 30, 0, 4)]), "half the heads");
        assert!(!tiles_exactly(&z, &[r(2, 100, 20, 0, 8)]), "short");
        assert!(!tiles_exactly(&z, &[]));
        assert!(contains(&z, &r(2, 100, 0, 0, 8)));
    }

    #[test]
    fn chain_dd_env_values_are_strict() {
        assert_eq!(parse_chain_dd(None), Ok(DEFAULT_CHAIN_DD));
        assert_eq!(parse_chain_dd(Some("")), Ok(DEFAULT_CHAIN_DD));
        assert_eq!(parse_chain_dd(Some(" 1 ")), Ok(true));
        assert_eq!(parse_chain_dd(Some("0")), Ok(false));
        for bad in ["yes", "2", "on", "true"] {
            let e = parse_chain_dd(Some(bad)).unwrap_err();
            assert!(e.contains(&format!("DCP_CUDA_BWD_CHAIN_DD={bad}")), "{e}");
        }
    }

    /// A backward work with 16-bit dO and O (8 heads of 128, rows packed), as the lowering
    /// builds it.
    fn dd_work(elem: u32) -> WorkDesc {
        WorkDesc {
            dout: 0x10_0000,
            do_stride: 1024,
            o: 0x20_0000,
            o_stride: 1024,
            o_dtype: elem,
            n_rows: 256,
            q_heads: 8,
            ..Default::default()
        }
    }

    /// `n` works of 256 rows back to back in one dO and one O run, as the local plan lowers
    /// works1000.
    fn flat_works(n: u32) -> Vec<WorkDesc> {
        (0..n)
            .map(|k| WorkDesc {
                dout: 0x10_0000 + k as u64 * 256 * 1024 * 2,
                o: 0x4000_0000 + k as u64 * 256 * 1024 * 2,
                dd_off: k * 256 * 8,
                ..dd_work(DT_BF16)
            })
            .collect()
    }

    #[test]
    fn dd_flat_takes_one_run_of_rows_and_refuses_the_rest() {
        let w = flat_works(3);
        assert_eq!(
            dd_flat(&w, 128, DT_BF16),
            Some((0x10_0000, 0x4000_0000, 3 * 256 * 8))
        );
        assert_eq!(dd_flat(&[], 128, DT_BF16), None);
        // Head dims: powers of two from 8 to 128.
        assert_eq!(dd_flat(&w, 96, DT_BF16), None);
        assert_eq!(dd_flat(&w, 256, DT_BF16), None);
        // The model dtype and O's: the same 16-bit type.
        assert_eq!(dd_flat(&w, 128, DT_F16), None);
        assert_eq!(dd_flat(&w, 128, crate::desc::DT_F32), None);
        let mut f16 = w.clone();
        f16.iter_mut().for_each(|x| x.o_dtype = DT_F16);
        assert!(dd_flat(&f16, 128, DT_F16).is_some());
        // Any work out of line: gaps in D indices or rows, strides, zeroed dQ, alignment,
        // head counts.
        for (k, f) in [
            (|w: &mut WorkDesc| w.dd_off += 8) as fn(&mut WorkDesc),
            |w| w.dout += 1024 * 2,
            |w| w.o += 1024 * 2,
            |w| w.do_stride = 2048,
            |w| w.o_stride = 2048,
            |w| w.flags |= WORK_DQ_ZERO,
            |w| w.q_heads = 4,
            |w| w.o_dtype = DT_F16,
        ]
        .into_iter()
        .enumerate()
        {
            let mut v = w.clone();
            f(&mut v[1 + k % 2]);
            assert_eq!(
                dd_flat(&v, 128, DT_BF16),
                None,
                "case {k}: {:?}",
                v[1 + k % 2]
            );
        }
        let mut v = w.clone();
        v.iter_mut().for_each(|x| {
            x.dout += 8;
            x.o += 8
        });
        assert_eq!(dd_flat(&v, 128, DT_BF16), None, "8-byte aligned runs");
        // The works' order does not matter, their D indices do.
        let mut v = flat_works(3);
        v.swap(0, 2);
        assert_eq!(dd_flat(&v, 128, DT_BF16).map(|f| f.2), Some(3 * 256 * 8));
        // A work without rows keeps the run (the next starts where it would have).
        let mut v = flat_works(3);
        v[1].n_rows = 0;
        v[2].dd_off = 256 * 8;
        v[2].dout = v[1].dout;
        v[2].o = v[1].o;
        assert_eq!(dd_flat(&v, 128, DT_BF16).map(|f| f.2), Some(2 * 256 * 8));
        // At D 64 the rows are 8 heads x 64.
        let mut v = flat_works(2);
        v.iter_mut().enumerate().for_each(|(k, x)| {
            x.do_stride = 512;
            x.o_stride = 512;
            x.dout = 0x10_0000 + k as u64 * 256 * 512 * 2;
            x.o = 0x4000_0000 + k as u64 * 256 * 512 * 2;
        });
        assert_eq!(dd_flat(&v, 64, DT_BF16).map(|f| f.2), Some(2 * 256 * 8));
    }

    #[test]
    fn chain_dd_takes_16_bit_aligned_rows_only() {
        assert!(chain_dd_work_ok(&dd_work(DT_BF16), DT_BF16));
        assert!(chain_dd_work_ok(&dd_work(DT_F16), DT_F16));
        // An fp32 O (split-K partials), or O of another dtype than dO.
        let mut w = dd_work(DT_BF16);
        w.o_dtype = crate::desc::DT_F32;
        assert!(!chain_dd_work_ok(&w, DT_BF16));
        assert!(!chain_dd_work_ok(&dd_work(DT_F16), DT_BF16));
        // fp32 model dtype: no 16-bit loads.
        assert!(!chain_dd_work_ok(
            &dd_work(crate::desc::DT_F32),
            crate::desc::DT_F32
        ));
        // Misaligned addresses or row strides, absent rows.
        for f in [
            (|w: &mut WorkDesc| w.dout += 8) as fn(&mut WorkDesc),
            |w| w.o += 2,
            |w| w.do_stride = 1028,
            |w| w.o_stride = 4,
            |w| w.o = 0,
        ] {
            let mut w = dd_work(DT_BF16);
            f(&mut w);
            assert!(!chain_dd_work_ok(&w, DT_BF16), "{w:?}");
        }
        // A stride of 8 elements (16 bytes) is enough.
        let mut w = dd_work(DT_BF16);
        w.o_stride = 8;
        w.do_stride = 8;
        assert!(chain_dd_work_ok(&w, DT_BF16));
    }

    #[test]
    fn chain_dd_is_all_or_nothing_per_launch() {
        let ok = vec![dd_work(DT_BF16); 3];
        assert!(chain_dd_launch(true, &ok, DT_BF16));
        assert!(!chain_dd_launch(false, &ok, DT_BF16), "switched off");
        assert!(!chain_dd_launch(true, &[], DT_BF16), "no work");
        let mut one_bad = ok.clone();
        one_bad[1].o_dtype = crate::desc::DT_F32;
        assert!(!chain_dd_launch(true, &one_bad, DT_BF16));
    }

    #[test]
    fn the_d_pass_goes_only_when_the_kernel_computes_every_d_and_nothing_else_is_left() {
        let mut ws = vec![dd_work(DT_BF16); 3];
        assert!(
            dd_pass_needed(&ws, 0),
            "no work flagged: the pass computes D"
        );
        for w in &mut ws {
            w.flags |= WORK_DD | 1 | 2 | 16; // the TMA map bits do not matter
        }
        assert!(!dd_pass_needed(&ws, 0));
        assert!(dd_pass_needed(&ws, 4), "it zeroes dQ arrival counters");
        assert!(dd_pass_needed(&[], 0), "nothing to decide on: kept");
        let mut zero = ws.clone();
        zero[2].flags |= WORK_DQ_ZERO;
        assert!(dd_pass_needed(&zero, 0), "it zeroes a work's dQ rows");
        let mut partial = ws.clone();
        partial[0].flags &= !WORK_DD;
        assert!(
            dd_pass_needed(&partial, 0),
            "one work's D is not computed in the kernel"
        );
    }

    #[test]
    fn chain_env_values_are_strict() {
        assert_eq!(ChainMode::parse(None), Ok(DEFAULT_CHAIN));
        assert_eq!(ChainMode::parse(Some(" 1 ")), Ok(ChainMode::Reverse));
        assert_eq!(ChainMode::parse(Some("fwd")), Ok(ChainMode::Forward));
        assert_eq!(ChainMode::parse(Some("0")), Ok(ChainMode::Off));
        let e = ChainMode::parse(Some("yes")).unwrap_err();
        assert!(e.contains("DCP_CUDA_BWD_CHAIN=yes"), "{e}");
    }

    /// `n` works of `qt` q tiles (full mask: every kv tile lists every q tile) with `kt` kv
    /// tiles each: (works, lists).
    fn full_works(n: u32, qt: u32, kt: u32) -> (Vec<ChainWork>, Vec<(u32, Vec<u32>)>) {
        let works = vec![
            ChainWork {
                n_qtiles: qt,
                dq_ok: true
            };
            n as usize
        ];
        let lists = (0..n)
            .flat_map(|w| (0..kt).map(move |_| (w, (0..qt).collect::<Vec<u32>>())))
            .collect();
        (works, lists)
    }

    fn launch(works: &[ChainWork], lists: &[(u32, Vec<u32>)], chunk: usize, sms: u32) -> bool {
        let l: Vec<(u32, &[u32])> = lists.iter().map(|(w, v)| (*w, v.as_slice())).collect();
        chain_launch(works, &l, chunk, 2, sms)
    }

    #[test]
    fn chains_apply_to_many_short_works() {
        // 1000 documents of 256 tokens: 4 q tiles, 2 kv tiles, 2000 chains on 132 SMs.
        let (w, l) = full_works(1000, 4, 2);
        assert!(launch(&w, &l, 8, 132));
        // Documents of 512 tokens (4 kv tiles), and of 100 tokens (one q tile, one kv tile).
        let (w, l) = full_works(300, 8, 4);
        assert!(launch(&w, &l, 8, 132));
        let (w, l) = full_works(500, 2, 1);
        assert!(launch(&w, &l, 8, 132));
        // Causal documents: kv tile 1 lists only q tiles 2, 3 (one partial); every q tile is
        // still listed somewhere.
        let works = vec![
            ChainWork {
                n_qtiles: 4,
                dq_ok: true
            };
            200
        ];
        let lists: Vec<(u32, Vec<u32>)> = (0..200)
            .flat_map(|w| [(w, vec![0, 1, 2, 3]), (w, vec![2 | 0x8000_0000, 3])])
            .collect();
        assert!(launch(&works, &lists, 8, 132));
    }

    #[test]
    fn chains_do_not_apply_otherwise() {
        let (w, l) = full_works(1000, 4, 2);
        // Too few chains to fill the GPU (onework: one document of 8096 tokens; or 60 works).
        let (w1, l1) = full_works(1, 127, 64);
        assert!(!launch(&w1, &l1, 200, 132));
        let (w2, l2) = full_works(60, 4, 2);
        assert!(!launch(&w2, &l2, 8, 132));
        // Too many kv tiles per work.
        let (w3, l3) = full_works(300, 10, 5);
        assert!(!launch(&w3, &l3, 16, 132));
        // A split list (chunk below the list's length).
        assert!(!launch(&w, &l, 3, 132));
        // One work whose dQ cannot be stored (not zero, shared, no converting copy...).
        let mut w4 = w.clone();
        w4[17].dq_ok = false;
        assert!(!launch(&w4, &l, 8, 132));
        // A q tile no kv tile lists (its dQ would never be written).
        let mut l5 = l.clone();
        for (wk, list) in l5.iter_mut() {
            if *wk == 3 {
                list.retain(|&t| t != 2);
            }
        }
        assert!(!launch(&w, &l5, 8, 132));
        // No work at all.
        assert!(!launch(&[], &[], 8, 132));
    }

    /// Per device and backward launch of `planner`'s plan: per fused work whether its dQ can be
    /// stored and converted by a chain, decided as `Lowering::chain_launch` does (fp32, shaped
    /// like Q, zero at the launch, disjoint, read by a converting copy the launch may take over),
    /// and its number of q tiles (64 rows).
    fn chain_works(
        planner: &str,
        lens: &[u32],
        mask: MaskSpec,
        world: u32,
    ) -> Vec<Vec<Vec<ChainWork>>> {
        walk_bwd_launches(
            planner,
            lens,
            mask,
            world,
            |prog, ii, fused, zeros, f32s| {
                let ok = chain_dq_ok(prog, ii, fused, zeros, f32s);
                fused
                    .iter()
                    .zip(ok)
                    .map(|(w, dq_ok)| ChainWork {
                        n_qtiles: w.q.len.div_ceil(64),
                        dq_ok,
                    })
                    .collect()
            },
        )
    }

    #[test]
    fn local_plans_of_short_documents_chain() {
        // 300 documents of 256 tokens (works1000's shape, fewer): one launch per device whose
        // every work's dQ can be chained; with full lists (2 kv tiles each listing the 4 q
        // tiles) the launch chains on 132 SMs (300 works x 2 kv heads).
        let kvh = ModelShape::default().kv_heads;
        for world in [1, 2] {
            let per_dev = chain_works("local", &[256; 300], MaskSpec::Full, world);
            for launches in &per_dev {
                assert_eq!(launches.len(), 1, "local world {world}");
                let works = &launches[0];
                assert!(
                    works.iter().all(|w| w.dq_ok && w.n_qtiles == 4),
                    "world {world}"
                );
                let lists: Vec<(u32, Vec<u32>)> = (0..works.len() as u32)
                    .flat_map(|w| [(w, vec![0, 1, 2, 3]), (w, vec![0, 1, 2, 3])])
                    .collect();
                let l: Vec<(u32, &[u32])> = lists.iter().map(|(w, v)| (*w, v.as_slice())).collect();
                let want = works.len() as u64 * kvh as u64 >= CHAIN_MIN_PER_SM * 132;
                assert_eq!(chain_launch(works, &l, 31, kvh, 132), want, "world {world}");
                assert!(world == 2 || want);
            }
        }
    }

    #[test]
    fn multi_stage_plans_chain_only_their_last_stage() {
        // zigzag on 4 GPUs: dQ accumulates over the stages' launches into one buffer; only the
        // last launch is followed by the converting copy, the others' dQ must not be stored.
        let per_dev = chain_works("zigzag", &[8192, 4096], MaskSpec::Causal, 4);
        for (d, launches) in per_dev.iter().enumerate() {
            assert!(launches.len() > 1, "device {d}");
            for (k, works) in launches.iter().enumerate() {
                if k + 1 < launches.len() {
                    assert!(works.iter().all(|w| !w.dq_ok), "device {d} launch {k}");
                }
            }
        }
    }

    #[test]
    fn visits_flag_first_and_last_lists_of_each_q_tile() {
        let mut a = vec![0, 1, 2 | 0x8000_0000, 3];
        let mut b = vec![2, 3 | 0x8000_0000];
        let mut c = vec![3];
        mark_visits(&mut [&mut a, &mut b, &mut c]);
        assert_eq!(
            a,
            vec![
                TILE_FIRST | TILE_LAST,
                1 | TILE_FIRST | TILE_LAST,
                2 | 0x8000_0000 | TILE_FIRST,
                3 | TILE_FIRST
            ]
        );
        assert_eq!(b, vec![2 | TILE_LAST, 3 | 0x8000_0000]);
        assert_eq!(c, vec![3 | TILE_LAST]);
        // The index survives the flags.
        assert!(a.iter().chain(&b).all(|t| t & TILE_INDEX <= 3));
    }

    #[test]
    fn chains_are_linked_with_their_first_tasks_first() {
        let t = |work: u32, row0: u32, tiles_n: u32| TaskDesc {
            work,
            row0,
            head: 0,
            tiles_off: 0,
            tiles_n,
            pad: TASK_DKV_STORE,
        };
        let chains = vec![
            vec![t(0, 0, 4), t(0, 1, 4)],
            vec![t(1, 0, 4)],
            vec![t(2, 0, 8), t(2, 1, 4), t(2, 2, 1)],
        ];
        let (tasks, n) = order_chains(chains.clone(), true);
        assert_eq!(n, 3);
        assert_eq!(tasks.len(), 6);
        // Longest first: work 2 (13 steps), work 0 (8), work 1 (4).
        assert_eq!(
            tasks[..3].iter().map(|t| t.work).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
        assert!(tasks
            .iter()
            .all(|t| t.pad & TASK_CHAIN != 0 && t.pad & TASK_DKV_STORE != 0));
        // Follow each chain's links: its tasks in order, the last unlinked.
        for (head, want) in [
            (0usize, vec![(2, 0), (2, 1), (2, 2)]),
            (1, vec![(0, 0), (0, 1)]),
            (2, vec![(1, 0)]),
        ] {
            let mut got = Vec::new();
            let mut i = head;
            loop {
                got.push((tasks[i].work, tasks[i].row0));
                let next = (tasks[i].pad & TASK_NEXT) as usize;
                if next == 0 {
                    break;
                }
                assert!(next >= 3, "links point past the chains' first tasks");
                i = next;
            }
            assert_eq!(got, want);
        }
        // Every other task of a chain walks backwards: work 2's second, work 0's second.
        let rev: Vec<(u32, u32)> = tasks
            .iter()
            .filter(|t| t.pad & TASK_REV != 0)
            .map(|t| (t.work, t.row0))
            .collect();
        assert_eq!(rev, vec![(2, 1), (0, 1)]);
        let (fwd, _) = order_chains(chains, false);
        assert!(fwd.iter().all(|t| t.pad & TASK_REV == 0));
    }
}
