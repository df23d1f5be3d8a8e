//! The executor: turns one device's [`Program`] into a prepared list of GPU operations once
//! (buffers allocated, work lists and descriptors uploaded in one arena), then runs it any number
//! of times without host synchronisation inside the plan.
//!
//! Streams: compute instructions run in order on the compute stream. A [`Instr::Comm`] records
//! an event on the compute stream (after all earlier compute), makes the comm stream wait for it,
//! and issues one NCCL group (`ncclGroupStart`, sends/receives, `ncclGroupEnd`) on the comm
//! stream, followed by a completion event. [`Instr::Wait`] makes the compute stream wait for that
//! event. Regions that are not contiguous (a head sub-range of a multi-token region) travel
//! through staging buffers: packed on the compute stream before the group, unpacked after the
//! wait. At the end the compute stream joins the comm stream, so the end event covers everything.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::Arc;

use cudarc::nccl::{result as nres, sys as nsys};
use dcp_core::flops::{attn_bwd_flops, attn_fwd_flops};
use dcp_core::plan::{
    BufferDecl, BufferRole, BwdWork, Dir, FillValue, FwdWork, Instr, IoTensor, P2p, Program,
    Region, RowRanges,
};
use dcp_core::spec::{DType, ModelShape};

use crate::cluster;
use crate::desc::{
    as_bytes, classify, dtype_code, DqConv, KvSeg, MergeDesc, RegionDesc, RowCsr, TaskDesc,
    WorkDesc, DT_F32, PARTIAL,
};
use crate::dist::Nccl;
use crate::error::{nccl, CudaError, Result};
use crate::gpu::{tensor_map_f32_sw128, DevBuf, Event, Gpu, Kernel, Staged, Stream};
use crate::knobs::{
    bwd_half_with, bwd_smem_override, chain_variant_defs, copy_batch_with, dd_ctas_override,
    dd_flat_with, fwd_half_max_with, fwd_half_short_with, fwd_half_with, fwd_halfbits_with,
    fwd_short_omap_with, fwd_short_one_min_with, fwd_short_one_with, fwd_short_pp_with,
    fwd_short_rel_with, fwd_short_variant_defs, fwd_short_with, l2_budget_with, l2_tail_with,
    op_timing_with,
};
use crate::nvrtc::Source;
use crate::order::{self, TaskOrder};
use crate::own::{
    self, ChainMode, ConvertMode, CopyTarget, Grad, OwnMode, ZeroSet, TASK_DKV_ALT, TASK_DKV_STORE,
    TASK_DQ_CONV,
};
use crate::prepclock::PrepClock;
use crate::switch;
use crate::tensormaps::{bwd_tensor_maps, bwd_tma_min_keys, fwd_tensor_maps, TMA_KV};
use crate::tilemask;

/// Which forward kernel family to use (`DCP_CUDA_FAMILY`: `auto`, `mma`, `sm90`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FamilyChoice {
    /// The Hopper kernel where it applies (compute capability 9.0, head dim 64 or 128) and
    /// [`SM90_FWD_DEFAULT`] is on; `mma.sync` otherwise.
    #[default]
    Auto,
    /// Always the `mma.sync` kernels (any architecture from sm_80).
    Mma,
    /// The Hopper forward; an error (not a silent fallback) where it does not apply.
    Sm90,
}

impl FamilyChoice {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "" | "auto" => Ok(FamilyChoice::Auto),
            "mma" => Ok(FamilyChoice::Mma),
            "sm90" => Ok(FamilyChoice::Sm90),
            other => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_FAMILY={other}: expected auto, mma or sm90"
            ))),
        }
    }
}

/// Whether `auto` picks the Hopper forward on sm_90 (on once it passes the GPU selftest).
pub const SM90_FWD_DEFAULT: bool = true;
/// Whether `auto` picks the Hopper backward on sm_90 (on: 16/16 selftest cases and memcheck clean
/// on 1x H100, 2026-11-28, bench/results/kernels-2026-11-28c).
pub const SM90_BWD_DEFAULT: bool = true;

/// The forward kernel family that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFamily {
    /// `attn_fwd.cu`: mma.sync m16n8k16, cp.async double buffering (sm_80+).
    MmaSync,
    /// `attn_fwd_sm90.cu`: wgmma, producer/consumer warpgroups, mbarrier pipeline (sm_90a).
    Sm90Wgmma,
}

impl KernelFamily {
    pub fn name(self) -> &'static str {
        match self {
            KernelFamily::MmaSync => "mma.sync",
            KernelFamily::Sm90Wgmma => "sm90-wgmma",
        }
    }
}

/// Picks the kernel family of one direction for a device and head dim (`default_sm90`: what
/// `auto` does where the Hopper kernel applies).
pub fn choose_family(
    choice: FamilyChoice,
    cc: (i32, i32),
    head_dim: u32,
    default_sm90: bool,
) -> Result<KernelFamily> {
    let fits = cc == (9, 0) && (head_dim == 64 || head_dim == 128);
    match choice {
        FamilyChoice::Mma => Ok(KernelFamily::MmaSync),
        FamilyChoice::Auto if fits && default_sm90 => Ok(KernelFamily::Sm90Wgmma),
        FamilyChoice::Auto => Ok(KernelFamily::MmaSync),
        FamilyChoice::Sm90 if fits => Ok(KernelFamily::Sm90Wgmma),
        FamilyChoice::Sm90 => Err(CudaError::Unsupported(format!(
            "the sm90 kernels need compute capability 9.0 and head dim 64 or 128 \
             (device sm_{}{}, head dim {head_dim}); use DCP_CUDA_FAMILY=mma or auto",
            cc.0, cc.1
        ))),
    }
}

/// Tile shapes of the attention kernels (compile-time defines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Forward: warps per CTA (query rows per CTA = 16 × m-tiles × warps).
    pub fwd_warps: u32,
    /// Forward: 16-row m-tiles per warp (2 reuses every K/V fragment twice; head dims above 128
    /// fall back to 1, which the register file can hold).
    pub fwd_mt: u32,
    /// Backward: warps per CTA (keys per CTA = 16 × warps).
    pub bwd_warps: u32,
    /// Backward: query rows per inner iteration.
    pub bwd_br: u32,
    /// Forward kernel family.
    pub family: FamilyChoice,
}

impl Default for TileConfig {
    fn default() -> Self {
        TileConfig {
            fwd_warps: 4,
            fwd_mt: 2,
            bwd_warps: 8,
            bwd_br: 64,
            family: FamilyChoice::Auto,
        }
    }
}

impl TileConfig {
    /// The default, with `DCP_CUDA_FWD_MT` (m-tiles per forward warp of the mma.sync kernel, 1
    /// or 2) overriding `fwd_mt` (A/B timing against kernels read through `DCP_CUDA_KERNELS`);
    /// another value is an error naming it. `DCP_CUDA_FAMILY` chooses the forward family (an
    /// unknown value is reported by [`Kernels::load`]).
    pub fn from_env() -> Result<Self> {
        Self::with_fwd_mt(std::env::var("DCP_CUDA_FWD_MT").ok().as_deref())
    }

    /// [`TileConfig::from_env`] on the value of `DCP_CUDA_FWD_MT` (unset: the default).
    pub fn with_fwd_mt(v: Option<&str>) -> Result<Self> {
        let mut c = TileConfig::default();
        match v.map(str::trim) {
            None | Some("") => {}
            Some(m) => match m.parse::<u32>() {
                Ok(mt @ 1..=2) => c.fwd_mt = mt,
                _ => {
                    return Err(CudaError::Unsupported(format!(
                        "DCP_CUDA_FWD_MT={m}: expected 1 or 2 (m-tiles per forward warp)"
                    )))
                }
            },
        }
        Ok(c)
    }
}

/// Forward kv tile of the `mma.sync` kernel.
pub const FWD_BC: u32 = 64;
/// Forward tile of the sm90 kernel: query rows, keys, threads.
pub const SM90_BR: u32 = 128;
pub const SM90_BC: u32 = 128;
pub const SM90_THREADS: u32 = 384;
/// The most dynamic shared memory a CTA may take on sm_90 (227 KiB).
pub const SM90_SMEM_MAX: u32 = 232_448;

/// Shared memory of the sm90 forward at head dim `d` with `ns` K/V stages and `nq` Q buffers
/// (kernels/attn_fwd_sm90.cu `FWD_NS`, `FWD_NQ`): the Q buffers and K and V stages, 1 KiB for
/// aligning the swizzle atoms, per stage each row's first two ranges and the tile word, per Q
/// buffer the task and work descriptors and each row's range span, two mbarriers per stage and
/// per Q buffer and the two task-index slots (`F90_*`).
fn sm90_fwd_smem(d: u32, ns: u32, nq: u32) -> u32 {
    (nq * SM90_BR + 2 * ns * SM90_BC) * d * 2
        + 1024
        + ns * (SM90_BR * 16 + 16)
        + nq * (160 + SM90_BR * 8)
        + 16 * (ns + nq)
        + 8
}

/// `DCP_CUDA_FWD_STAGES` at head dim `d`: the sm90 forward's K/V stages and Q buffers, as `NS`
/// (as many Q buffers) or `NS:NQ`, each at least 2, within [`SM90_SMEM_MAX`]. Unset or empty:
/// 4 and 4 at D 64, 2 and 2 otherwise (at D 128 nothing more fits). At D 64, 4:4 against 2:2
/// (bench/results/kernels-2026-11-30-s29, 1x H200, alternated x2): forward +21 % on 2 000
/// documents of 128 tokens, +16 % causal, +4..+6 % on causal documents of 256 and 512 tokens,
/// +8 % on the packed batch; works1000 -4 %, the long-task shapes within -2..+1 %. A one-tile
/// task is short, so with two Q buffers the next task's loads alone did not hide the latency
/// (4:2, more K/V stages only, gave the packed batch +6 % and short documents nothing; 3:3 lost
/// 8-9 % on the long tasks). Anything else is an error naming the value.
fn fwd_stages_with(v: Option<&str>, d: u32) -> Result<(u32, u32)> {
    let Some(o) = v.map(str::trim).filter(|o| !o.is_empty()) else {
        return Ok(if d == 64 { (4, 4) } else { (2, 2) });
    };
    let bad = |why: String| CudaError::Unsupported(format!("DCP_CUDA_FWD_STAGES={o}: {why}"));
    let num = |x: &str| {
        x.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 2)
            .ok_or_else(|| bad("expected NS or NS:NQ, each a number of at least 2".into()))
    };
    let (ns, nq) = match o.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(o)?, num(o)?),
    };
    let smem = sm90_fwd_smem(d, ns, nq);
    if smem > SM90_SMEM_MAX {
        return Err(bad(format!(
            "{smem} bytes of shared memory at head dim {d}, above the {SM90_SMEM_MAX} a CTA may take"
        )));
    }
    Ok((ns, nq))
}

/// Backward tile of the sm90 kernel: keys per CTA, query rows per step (the same as the
/// `mma.sync` backward's defaults, so the host task lists are identical).
pub const SM90_BWD_BC: u32 = 128;
pub const SM90_BWD_BR: u32 = 64;
// The precomputed tile masks ([`tilemask`]) are laid out for these tile shapes.
const _: () = assert!(SM90_BR == 128 && SM90_BC == 128 && SM90_BWD_BC == 128 && SM90_BWD_BR == 64);
/// Shared memory of the sm90 backward's dQ staging area: per consumer warpgroup two TMA boxes
/// of `SM90_BWD_BR` rows x 32 fp32 (kernels/attn_bwd_sm90.cu).
pub const SM90_BWD_DQ_STAGE: u32 = 2 * 2 * SM90_BWD_BR * 128;
/// Query tiles (of `SM90_BWD_BR` rows) per consumer step of the sm90 backward at head dim `d`
/// (kernels/attn_bwd_sm90.cu `BWD_QT`): two at D 64, whose Q, dO and dS stages hold 128 rows.
pub fn sm90_bwd_qtiles(d: u32) -> u32 {
    if d == 64 {
        2
    } else {
        1
    }
}
/// Dynamic shared memory of the sm90 backward at head dim `d` (the layout of
/// kernels/attn_bwd_sm90.cu): K, V; Q, dO, dS double buffered (`sr` query rows per step); per
/// stage LSE, D, spans, two ranges per row and the tile words; alignment; mbarriers and
/// task-index slots (128 bytes); dQ staging; the two per-task info slots of the persistent kernel.
pub fn sm90_bwd_smem(d: u32) -> u32 {
    let (bc, sr) = (SM90_BWD_BC, SM90_BWD_BR * sm90_bwd_qtiles(d));
    (2 * bc + 4 * sr) * d * 2
        + 2 * sr * bc * 2
        + 2 * (sr * 32 + 16)
        + 1024
        + 128
        + SM90_BWD_DQ_STAGE
        + SM90_BWD_INFO
}
/// Shared memory of the sm90 backward's two per-task info slots (task and work descriptors, 160
/// bytes each; kernels/attn_bwd_sm90.cu `B90_INFO`).
pub const SM90_BWD_INFO: u32 = 2 * 160;
/// Shared memory the plain sm90 backward adds at head dim 128 (kernels/attn_bwd_sm90.cu `sscr`,
/// session 17: `BWD_STSM`, `BWD_TQ_SMEM`, `BWD_XINFO`): a 1 KiB dK/dV staging block per consumer
/// warp, a task-counter word per consumer thread, two 64-byte extra info slots, and up to 96 bytes
/// to align them to 128 (they follow the 128 bytes of mbarriers). Not in its half-step, chain or
/// dQ-conversion builds, nor in the cluster kernel (its own layout, `cluster::SMEM_EXTRA`).
pub const SM90_BWD_SCRATCH: u32 = 9 * 1024 + 128 + 128;
/// Shared memory the chain kernel adds where it computes D (`BWD_CHAIN_DD`): O of a D step, 64
/// rows x head dim 128, 16-bit (kernels/attn_bwd_sm90.cu `B90_O_BYTES`).
pub const SM90_BWD_O_STAGE: u32 = 64 * 128 * 2;

/// Which converting copies a backward launch of the sm90 kernels may take over (`convert`:
/// `DCP_CUDA_BWD_CONVERT`), at head dim `d`, chained (`chain`; at 64 that means clustered) or
/// not, with D 64 rows owned (`own_d64`: `DCP_CUDA_BWD_OWN_D64`). Chains convert dQ themselves.
/// At head dim 64 the main kernel has no dQ conversion (`BWD_DQ_CONV` is D 128 only), so an
/// unchained launch never takes a dQ copy over, and dK/dV converts only where rows are owned.
/// Head dims other than 64 and 128 take nothing over.
pub(crate) fn launch_conversions(
    convert: ConvertMode,
    d: u32,
    chain: bool,
    own_d64: bool,
) -> ConvertMode {
    match d {
        128 => ConvertMode {
            dq: convert.dq || chain,
            dkv: convert.dkv,
        },
        64 => ConvertMode {
            dq: chain,
            dkv: convert.dkv && (chain || own_d64),
        },
        _ => ConvertMode {
            dq: false,
            dkv: false,
        },
    }
}

#[path = "kernelset.rs"]
mod kernelset;
pub use kernelset::Kernels;

/// A kernel argument.
#[derive(Debug, Clone, Copy)]
enum Arg {
    U32(u32),
    U64(u64),
    F32(f32),
    Region(RegionDesc),
    /// Offset into the descriptor arena (resolved to a device pointer at run time).
    Arena(usize),
    /// The D = rowsum(dO∘O) scratch.
    Dd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    Fill,
    Copy,
    /// Independent copies in one launch ([`batch_copies`], `DCP_CUDA_COPY_BATCH`).
    CopyMulti,
    CopyRaw16,
    Sum,
    Merge,
    BwdDd,
    /// The D pre-pass over one flat run of dO and O rows (`own::dd_flat`, `DCP_CUDA_BWD_DD_FLAT`).
    BwdDdFlat,
    Fwd,
    /// The sm90 forward with half tiles (`FWD_HALF`; lowered only where `Kernels::fwd_half` is).
    FwdHalf,
    /// The sm90 forward with half tiles for short tasks (`FWD_HALF`, `FWD_LATEREL 3`; lowered only
    /// where `Kernels::fwd_half_short` is).
    FwdHalfShort,
    /// The sm90 forward for short tasks (`FWD_LATEREL`; lowered only where `Kernels::fwd_short` is).
    FwdShort,
    /// The same with `FWD_ONE` (lowered only where `Kernels::fwd_one` is).
    FwdOne,
    Bwd,
    /// The sm90 backward with chains (`BWD_CHAIN`; lowered only where `Kernels::bwd_chain` is).
    BwdChain,
    /// The sm90 backward with half steps (`BWD_HALF`; lowered only where `Kernels::bwd_half` is).
    BwdHalf,
    /// The sm90 backward on clusters (`Kernels::bwd_cluster`).
    BwdCluster,
    /// The same with D clusters (`Kernels::bwd_cluster_dsm`, [`cluster::DsmPlan`]).
    BwdClusterDsm,
}

#[derive(Debug, Clone)]
struct Launch {
    k: K,
    grid: u32,
    block: u32,
    smem: u32,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct P2pOp {
    send: bool,
    peer: u32,
    ptr: u64,
    bytes: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Launch(Launch),
    Memcpy {
        dst: u64,
        src: u64,
        bytes: usize,
    },
    Comm {
        group: usize,
        packs: Vec<Launch>,
        p2p: Vec<P2pOp>,
        /// The group's peers, sorted, and its watchdog step name.
        peers: Vec<u32>,
        step: String,
    },
    Wait {
        group: usize,
        unpacks: Vec<Launch>,
    },
}

/// What a prepared program does, for reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProgramStats {
    pub attended_flops: f64,
    pub bytes_sent: u64,
    pub launches: usize,
    pub comm_groups: usize,
    pub attn_tasks: usize,
    pub buffer_bytes: u64,
}

/// One device program, ready to run.
pub struct Prepared {
    pub backward: bool,
    decls: Vec<BufferDecl>,
    /// One per declared buffer; a backward's saved buffer may share the forward's allocation.
    bufs: Vec<Arc<DevBuf>>,
    arena: DevBuf,
    /// The arena's bytes (page-locked unless `DCP_CUDA_PINNED_STAGING=0`), kept until the
    /// program goes: their upload is not waited for ([`Gpu::upload_async`]). None with
    /// `DCP_CUDA_PREPARE_SYNC=1`.
    _arena_host: Option<Staged>,
    dd: DevBuf,
    _staging: Vec<DevBuf>,
    group_pre: Vec<Event>,
    group_done: Vec<Event>,
    /// Per group unless `DCP_CUDA_COMM_FIRST=0`: recorded on the comm stream just before the
    /// group's NCCL kernel; the compute stream waits for it (see [`comm_first_enabled`]).
    group_go: Option<Vec<Event>>,
    comm_end: Event,
    pub start: Event,
    pub end: Event,
    ops: Vec<Op>,
    peers: Vec<u32>,
    pub stats: ProgramStats,
    /// Per op: the plan instruction it lowers and that instruction's kind.
    op_instr: Vec<(u32, &'static str)>,
    /// Per op, when op timing is on (`DCP_CUDA_OP_TIMES`): events before and after it.
    op_events: Option<Vec<(Event, Event)>>,
}

/// One executor operation of the last run of a program, timed by CUDA events recorded around
/// it (`DCP_CUDA_OP_TIMES=1` when the program is prepared; the events add ~µs per op).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpTime {
    /// Index of the plan instruction this op belongs to, and that instruction's kind.
    pub instr: u32,
    pub instr_kind: &'static str,
    /// `launch:<kernel>`, `memcpy`, `comm` (packs on the compute stream, then the NCCL group on
    /// the communication stream: the span runs until the group is done) or `wait` (from the
    /// moment the compute stream may go on past the group, through the unpack copies).
    pub op: String,
    /// Milliseconds from the program's start event.
    pub start_ms: f32,
    pub end_ms: f32,
}

/// `DCP_CUDA_COMM_FIRST` (`1`, the default, on; `0` off): before each NCCL group the compute
/// stream waits until the comm stream has reached the group's kernel, so that the kernel is
/// queued for SMs before the next launch on the compute stream. A persistent attention launch
/// holds every SM until it ends: when it became ready together with the group's kernel it won,
/// and the transfer waited for the whole launch (ring's forward on 2× H200: 1.75 ms for a
/// 0.28 ms transfer; shared-question ring / zigzag forwards 23 % faster with the wait,
/// bench/results/gpu-x2-2026-11-30s25).
fn comm_first_enabled() -> Result<bool> {
    switch::from_env("DCP_CUDA_COMM_FIRST", true).map_err(CudaError::Unsupported)
}

/// Whether programs prepared now record per-op events (`DCP_CUDA_OP_TIMES`: `1` on; unset,
/// empty or `0` off; anything else is an error naming the value).
pub fn op_timing_enabled() -> Result<bool> {
    op_timing_with(std::env::var("DCP_CUDA_OP_TIMES").ok().as_deref())
}

fn esize(d: DType) -> u64 {
    d.size()
}

fn region_desc(decls: &[BufferDecl], bufs: &[Arc<DevBuf>], r: &Region) -> RegionDesc {
    let b = &decls[r.buf as usize];
    let off = ((r.tok as u64 * b.heads as u64 + r.head as u64) * b.width as u64) * esize(b.dtype);
    RegionDesc {
        ptr: bufs[r.buf as usize].device_ptr() + off,
        stride: b.heads * b.width,
        dtype: dtype_code(b.dtype),
        len: r.len,
        heads: r.heads,
        width: b.width,
        pad: 0,
    }
}

/// Every region of `prog` inside its declared buffer (token and head ranges, buffer index), so a
/// plan can never make a kernel or a copy touch memory outside its allocations.
fn check_regions(prog: &Program) -> Result<()> {
    for (i, ins) in prog.instrs.iter().enumerate() {
        let mut bad: Option<(Region, String)> = None;
        ins.for_each_region(|r| {
            if bad.is_some() {
                return;
            }
            let why = match prog.buffers.get(r.buf as usize) {
                None => Some(format!("{} buffers declared", prog.buffers.len())),
                Some(b) if r.tok as u64 + r.len as u64 > b.tokens as u64 => {
                    Some(format!("buffer `{}` has {} tokens", b.name, b.tokens))
                }
                Some(b) if r.head as u64 + r.heads as u64 > b.heads as u64 => {
                    Some(format!("buffer `{}` has {} heads", b.name, b.heads))
                }
                Some(_) => None,
            };
            if let Some(w) = why {
                bad = Some((*r, w));
            }
        });
        if let Some((r, why)) = bad {
            return Err(CudaError::RegionOutOfBounds {
                instr: i,
                kind: ins.name(),
                region: format!("{r:?}"),
                why,
            });
        }
    }
    Ok(())
}

fn contiguous(decls: &[BufferDecl], r: &Region) -> bool {
    decls[r.buf as usize].is_contiguous(r)
}

fn region_bytes(decls: &[BufferDecl], r: &Region) -> usize {
    let b = &decls[r.buf as usize];
    (r.len as u64 * r.heads as u64 * b.width as u64 * esize(b.dtype)) as usize
}

/// CTAs of the persistent sm90 forward over `n_tasks` tasks: one per SM and none idle (at least
/// one, so a launch with no task still runs and leaves its counters at zero). `ctas_env`, the
/// value of `DCP_CUDA_FWD_CTAS`, overrides the cap (A/B timing): a number of CTAs, or 0 for one
/// CTA per task (no task taken from the counter).
fn persistent_grid(n_tasks: u32, sm_count: u32, ctas_env: Option<&str>) -> Result<u32> {
    let cap = match ctas_env {
        None => sm_count.max(1),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(0) => u32::MAX,
            Ok(c) => c,
            Err(_) => {
                return Err(CudaError::Unsupported(format!(
                    "DCP_CUDA_FWD_CTAS={v}: expected a number of CTAs (0: one per task)"
                )))
            }
        },
    };
    Ok(n_tasks.min(cap).max(1))
}

/// CTAs of the persistent sm90 backward: [`persistent_grid`] with the override
/// `DCP_CUDA_BWD_CTAS` (0: one CTA per task, the kernel's pre-persistent launch shape).
fn persistent_bwd_grid(n_tasks: u32, sm_count: u32, ctas_env: Option<&str>) -> Result<u32> {
    persistent_grid(n_tasks, sm_count, ctas_env).map_err(|_| {
        CudaError::Unsupported(format!(
            "DCP_CUDA_BWD_CTAS={}: expected a number of CTAs (0: one per task)",
            ctas_env.unwrap_or_default()
        ))
    })
}

/// CTAs per SM of the backward's D pre-pass (`dcp_bwd_dd`) before a chained launch: one wave
/// (its launch bounds keep 4 CTAs of 256 threads resident per SM; the CTAs take tiles of 64
/// (row, head) pairs at head dim 128 round robin). Unchained launches keep the elementwise cap
/// (16 per SM, ~1-2 tiles per CTA on one 32K sequence). In a standalone microbenchmark
/// (bench/results/kernels-2026-11-29-kbb15) 1000 works of 256 rows took 290 us at 4 per SM, 309
/// at 8, 322-350 with other tile sizes; one 32K sequence with the dQ zero 73.7 us at 4 per SM, 72.8
/// at 8, 71.4 at one tile per CTA. (The form before, one chunk of pairs per warp: one wave of 3
/// per SM, bench/results/kernels-2026-11-29-kb13.)
const DD_CTAS_PER_SM: u32 = 4;

/// CTAs per SM of the flat D pre-pass (`dcp_bwd_dd_flat`): one wave of what its launch bounds
/// keep resident (64 registers). 5 per SM (48 registers, spilled) measured 7 % slower on
/// works1000 (bench/results/gpu-x1-2026-12-03s43).
const DD_FLAT_CTAS_PER_SM: u32 = 4;

/// (row, head) pairs per CTA and tile of the D pre-pass (`dcp_bwd_dd`, `DD_U` passes of 256 / L
/// pairs, L lanes a pair; 64 at head dim 128, 128 at 64): its grid is one CTA per tile up to the
/// cap.
fn dd_tile_pairs(d: u32) -> u64 {
    let lanes = if d.is_multiple_of(8) {
        (d / 8).next_power_of_two().clamp(1, 32)
    } else {
        32
    };
    4 * (256 / lanes) as u64
}

/// Whether adjacent independent copy launches become one ([`batch_copies`]):
/// `DCP_CUDA_COPY_BATCH`, `1` (the default since session 19: five alternated runs over two
/// sessions, causal-blockwise +0.1..+0.5 %, no shape lower by more than the runs' spread;
/// bench/results/kernels-2026-11-29-kb19) or `0`.
fn copy_batch_from_env() -> Result<bool> {
    copy_batch_with(std::env::var("DCP_CUDA_COPY_BATCH").ok().as_deref())
}

/// Device bytes `[start, end)` that region `r` spans (its rows' extent: a superset of what it
/// touches when rows are strided).
fn desc_span(r: &RegionDesc) -> (u64, u64) {
    if r.len == 0 || r.heads == 0 || r.width == 0 {
        return (r.ptr, r.ptr);
    }
    let elems = (r.len as u64 - 1) * r.stride as u64 + r.heads as u64 * r.width as u64;
    (r.ptr, r.ptr + elems * dtype_bytes(r.dtype))
}

fn spans_overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Runs of adjacent `dcp_copy` launches (program order, nothing between them) whose copies are
/// independent (no copy writes bytes that another of the run reads or writes) as one
/// `dcp_copy_multi` launch over the pairs (pushed into `arena`), with the run's largest grid;
/// `op_instr` (per op its instruction) keeps the run's first. The backward's copies of split dK/dV
/// rows and the plan's dQ conversion that follows them are such a run.
fn batch_copies(
    ops: Vec<Op>,
    op_instr: Vec<(u32, &'static str)>,
    arena: &mut Arena,
) -> (Vec<Op>, Vec<(u32, &'static str)>) {
    fn pair(op: &Op) -> Option<(RegionDesc, RegionDesc, u32)> {
        match op {
            Op::Launch(l) if l.k == K::Copy => match l.args.as_slice() {
                [Arg::Region(s), Arg::Region(d)] => Some((*s, *d, l.grid)),
                _ => None,
            },
            _ => None,
        }
    }
    let mut out_ops = Vec::with_capacity(ops.len());
    let mut out_instr = Vec::with_capacity(ops.len());
    let mut run: Vec<(Op, (u32, &'static str))> = Vec::new();
    let flush = |run: &mut Vec<(Op, (u32, &'static str))>,
                 out_ops: &mut Vec<Op>,
                 out_instr: &mut Vec<(u32, &'static str)>,
                 arena: &mut Arena| {
        if run.len() < 2 {
            for (op, ins) in run.drain(..) {
                out_ops.push(op);
                out_instr.push(ins);
            }
            return;
        }
        let mut descs = Vec::with_capacity(2 * run.len());
        let mut grid = 1;
        for (op, _) in run.iter() {
            let (s, d, g) = pair(op).expect("runs hold copies");
            descs.extend([s, d]);
            grid = grid.max(g);
        }
        let n = run.len() as u32;
        let ins = run[0].1;
        run.clear();
        out_ops.push(Op::Launch(Launch {
            k: K::CopyMulti,
            grid,
            block: 256,
            smem: 0,
            args: vec![Arg::Arena(arena.push(as_bytes(&descs))), Arg::U32(n)],
        }));
        out_instr.push(ins);
    };
    for (op, ins) in ops.into_iter().zip(op_instr) {
        let Some((s, d, _)) = pair(&op) else {
            flush(&mut run, &mut out_ops, &mut out_instr, arena);
            out_ops.push(op);
            out_instr.push(ins);
            continue;
        };
        let (s, d) = (desc_span(&s), desc_span(&d));
        let independent = run.iter().all(|(o, _)| {
            let (rs, rd, _) = pair(o).expect("runs hold copies");
            let (rs, rd) = (desc_span(&rs), desc_span(&rd));
            !spans_overlap(d, rs) && !spans_overlap(d, rd) && !spans_overlap(s, rd)
        });
        if !independent {
            flush(&mut run, &mut out_ops, &mut out_instr, arena);
        }
        run.push((op, ins));
    }
    flush(&mut run, &mut out_ops, &mut out_instr, arena);
    (out_ops, out_instr)
}

fn grid_for(n: u64, per_block: u64, cap: u32) -> u32 {
    (n.div_ceil(per_block.max(1)).max(1)).min(cap as u64) as u32
}

/// Merges lowered into one `dcp_merge` launch: their descriptors, their input regions (O_k,
/// LSE_k pairs), their rows ((token, head) pairs of O) back to back, and the plan regions the
/// batch writes and reads (to keep dependent merge instructions in separate launches).
#[derive(Default)]
struct MergeBatch {
    merges: Vec<MergeDesc>,
    inputs: Vec<RegionDesc>,
    rows: u64,
    writes: Vec<Region>,
    reads: Vec<Region>,
}

impl MergeBatch {
    /// Adds a merge of `inputs` (O_k, LSE_k pairs) into `o` / `lse`.
    fn add(&mut self, o: RegionDesc, lse: RegionDesc, inputs: &[RegionDesc]) {
        let rows = o.len as u64 * o.heads as u64;
        if rows == 0 {
            return;
        }
        self.merges.push(MergeDesc {
            o,
            lse,
            row0: self.rows,
            first: self.inputs.len() as u32,
            n: (inputs.len() / 2) as u32,
        });
        self.inputs.extend_from_slice(inputs);
        self.rows += rows;
    }

    /// Whether a merge of `inputs` into `o` / `lse` must not run in the same launch as the
    /// batch: it reads or writes a region the batch writes, or writes one the batch reads.
    fn depends(&self, o: &Region, lse: &Region, inputs: &[(Region, Region)]) -> bool {
        let reads = inputs.iter().flat_map(|(a, l)| [a, l]);
        reads
            .chain([o, lse])
            .any(|r| self.writes.iter().any(|w| w.overlaps(r)))
            || [o, lse]
                .into_iter()
                .any(|w| self.reads.iter().any(|r| r.overlaps(w)))
    }

    /// The launch of the batch (descriptors in `arena`), or None when it is empty.
    fn launch(self, arena: &mut Arena, cap: u32) -> Option<Launch> {
        if self.merges.is_empty() {
            return None;
        }
        let m = arena.push(as_bytes(&self.merges));
        let i = arena.push(as_bytes(&self.inputs));
        Some(Launch {
            k: K::Merge,
            grid: grid_for(self.rows, 8, cap),
            block: 256,
            smem: 0,
            args: vec![
                Arg::Arena(m),
                Arg::U32(self.merges.len() as u32),
                Arg::Arena(i),
                Arg::U32(self.rows as u32),
                Arg::U32((self.rows >> 32) as u32),
            ],
        })
    }
}

#[path = "worklists.rs"]
mod worklists;
use worklists::*;

/// Host-side arena of descriptors (16-byte aligned pieces).
#[derive(Default)]
struct Arena {
    bytes: Vec<u8>,
}

impl Arena {
    fn push(&mut self, data: &[u8]) -> usize {
        self.push_aligned(data, 16)
    }

    /// [`Self::push`] at a multiple of `align` (a power of two; the device copy of the arena
    /// starts 256-byte aligned).
    fn push_aligned(&mut self, data: &[u8], align: usize) -> usize {
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        let off = self.bytes.len();
        self.bytes.extend_from_slice(data);
        if data.is_empty() {
            self.bytes.extend_from_slice(&[0u8; 16]);
        }
        off
    }
}

/// Lowering of one device program into operations (see [`Prepared::new`]): the buffers, the
/// descriptor arena, the NCCL groups and their staging, and one method per instruction kind.
struct Lowering<'a> {
    gpu: &'a Gpu,
    kernels: &'a Kernels,
    model: &'a ModelShape,
    backward: bool,
    d: u32,
    group: u32,
    /// Most CTAs of an elementwise launch.
    cap: u32,
    /// CTAs per SM of the D pre-pass set by `DCP_CUDA_BWD_DD_CTAS` ([`dd_ctas_override`]).
    dd_ctas: Option<u32>,
    /// The flat D pre-pass where a launch's rows allow it (`DCP_CUDA_BWD_DD_FLAT`, [`dd_flat_with`]).
    dd_flat: bool,
    decls: Vec<BufferDecl>,
    bufs: Vec<Arc<DevBuf>>,
    stats: ProgramStats,
    arena: Arena,
    ops: Vec<Op>,
    staging: Vec<DevBuf>,
    /// Forward split-K scratch, shared by the program's attention instructions.
    split_scratch: Option<DevBuf>,
    groups: HashMap<u32, usize>,
    pending_unpacks: HashMap<u32, Vec<Launch>>,
    /// Merge instructions not yet issued (see [`Lowering::merge`]).
    merge_batch: MergeBatch,
    dd_max: u64,
    /// Owned gradient rows ([`own`]): regions a fill left zero so far, and the fill ops that a
    /// backward launch made redundant (dropped at the end).
    zeros: ZeroSet,
    elided: Vec<usize>,
    /// The program being lowered, and the `Copy` instructions a backward launch made redundant
    /// by writing their destinations itself ([`own::copy_targets`]): not lowered.
    prog: &'a Program,
    skip: Vec<usize>,
}

/// An `Unsupported` error unless `ok`.
fn check(ok: bool, what: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(CudaError::Unsupported(what))
    }
}

impl Lowering<'_> {
    fn rd(&self, r: &Region) -> RegionDesc {
        region_desc(&self.decls, &self.bufs, r)
    }

    /// A copy (with dtype conversion) between two regions of equal shape; 16-byte raw copies when
    /// both sides allow.
    fn copy_launch(&self, src: RegionDesc, dst: RegionDesc) -> Launch {
        let cap = self.cap;
        let n = dst.len as u64 * dst.heads as u64 * dst.width as u64;
        let es = dtype_bytes(src.dtype);
        let raw = src.dtype == dst.dtype
            && (src.width as u64 * es).is_multiple_of(16)
            && src.ptr.is_multiple_of(16)
            && dst.ptr.is_multiple_of(16)
            && (src.stride as u64 * es).is_multiple_of(16)
            && (dst.stride as u64 * es).is_multiple_of(16);
        if raw {
            Launch {
                k: K::CopyRaw16,
                grid: grid_for(n * es / 16, 256, cap),
                block: 256,
                smem: 0,
                args: vec![Arg::Region(src), Arg::Region(dst)],
            }
        } else {
            Launch {
                k: K::Copy,
                grid: grid_for(n, 256, cap),
                block: 256,
                smem: 0,
                args: vec![Arg::Region(src), Arg::Region(dst)],
            }
        }
    }

    fn fill(&mut self, dst: &Region, value: &FillValue) -> Result<()> {
        let r = self.rd(dst);
        let n = r.len as u64 * r.heads as u64 * r.width as u64;
        let v = match value {
            FillValue::Zero => 0.0f32,
            FillValue::NegInf => f32::NEG_INFINITY,
        };
        self.ops.push(Op::Launch(Launch {
            k: K::Fill,
            grid: grid_for(n, 256, self.cap),
            block: 256,
            smem: 0,
            args: vec![Arg::Region(r), Arg::F32(v)],
        }));
        Ok(())
    }

    fn copy(&mut self, at: &dyn Fn(String) -> CudaError, src: &Region, dst: &Region) -> Result<()> {
        let (s, t) = (self.rd(src), self.rd(dst));
        if s.len as u64 * s.heads as u64 * s.width as u64
            != t.len as u64 * t.heads as u64 * t.width as u64
            || s.width != t.width
        {
            return Err(at("source and destination shapes differ".into()));
        }
        if s.dtype == t.dtype && contiguous(&self.decls, src) && contiguous(&self.decls, dst) {
            self.ops.push(Op::Memcpy {
                dst: t.ptr,
                src: s.ptr,
                bytes: region_bytes(&self.decls, src),
            });
        } else {
            self.ops.push(Op::Launch(self.copy_launch(s, t)));
        }
        Ok(())
    }

    fn sum(&mut self, dst: &Region, inputs: &[Region]) -> Result<()> {
        let t = self.rd(dst);
        let ins: Vec<RegionDesc> = inputs.iter().map(|r| self.rd(r)).collect();
        let off = self.arena.push(as_bytes(&ins));
        let n = t.len as u64 * t.heads as u64 * t.width as u64;
        self.ops.push(Op::Launch(Launch {
            k: K::Sum,
            grid: grid_for(n, 256, self.cap),
            block: 256,
            smem: 0,
            args: vec![Arg::Region(t), Arg::Arena(off), Arg::U32(ins.len() as u32)],
        }));
        Ok(())
    }

    /// A Merge joins the pending batch (one launch for a run of merge instructions, issued by
    /// [`Self::flush_merges`]); a merge that reads or writes what the batch writes, or writes
    /// what it reads, flushes the batch first, so the batch's merges are independent.
    fn merge(&mut self, o: &Region, lse: &Region, inputs: &[(Region, Region)]) -> Result<()> {
        if self.merge_batch.depends(o, lse, inputs) {
            self.flush_merges();
        }
        let mut v = Vec::with_capacity(inputs.len() * 2);
        for (a, b) in inputs {
            v.push(self.rd(a));
            v.push(self.rd(b));
        }
        let (ro, rl) = (self.rd(o), self.rd(lse));
        let b = &mut self.merge_batch;
        b.add(ro, rl, &v);
        b.writes.extend([*o, *lse]);
        b.reads.extend(inputs.iter().flat_map(|&(a, l)| [a, l]));
        Ok(())
    }

    /// Issues the pending merges as one launch.
    fn flush_merges(&mut self) {
        let b = std::mem::take(&mut self.merge_batch);
        if let Some(l) = b.launch(&mut self.arena, self.cap) {
            self.ops.push(Op::Launch(l));
        }
    }

    /// One NCCL group: non-contiguous regions travel through staging buffers (packed before,
    /// unpacked after the matching wait).
    fn comm(&mut self, tag: &u32, p2p: &[P2p]) -> Result<()> {
        let gi = self.groups.len();
        self.groups.insert(*tag, gi);
        let mut packs = Vec::new();
        let mut list = Vec::new();
        let mut unpacks = Vec::new();
        for op in p2p {
            let bytes = region_bytes(&self.decls, &op.region);
            let r = self.rd(&op.region);
            let send = op.dir == Dir::Send;
            if send {
                self.stats.bytes_sent += bytes as u64;
            }
            let ptr = if contiguous(&self.decls, &op.region) {
                r.ptr
            } else {
                let st = self.gpu.alloc(bytes)?;
                let flat = RegionDesc {
                    ptr: st.device_ptr(),
                    stride: r.heads * r.width,
                    ..r
                };
                if send {
                    packs.push(self.copy_launch(r, flat));
                } else {
                    unpacks.push(self.copy_launch(flat, r));
                }
                let p = st.device_ptr();
                self.staging.push(st);
                p
            };
            list.push(P2pOp {
                send,
                peer: op.peer,
                ptr,
                bytes,
            });
        }
        self.pending_unpacks.insert(*tag, unpacks);
        self.stats.comm_groups += 1;
        let mut peers: Vec<u32> = list.iter().map(|p| p.peer).collect();
        peers.sort_unstable();
        peers.dedup();
        let phase = if self.backward { "backward" } else { "forward" };
        self.ops.push(Op::Comm {
            group: gi,
            packs,
            p2p: list,
            peers,
            step: format!("{phase} NCCL group {gi}"),
        });
        Ok(())
    }

    fn wait(&mut self, at: &dyn Fn(String) -> CudaError, tag: &u32) -> Result<()> {
        let gi = *self
            .groups
            .get(tag)
            .ok_or_else(|| at(format!("waits for group {tag} before it is issued")))?;
        let unpacks = self.pending_unpacks.remove(tag).unwrap_or_default();
        self.ops.push(Op::Wait { group: gi, unpacks });
        Ok(())
    }

    /// One forward launch over a work list: work and KV-segment descriptors, per-row ranges as
    /// CSR, (q tile, kv tile) pairs classified empty / full / partial, tasks longest first.
    fn attn(&mut self, ii: usize, works: &[FwdWork]) -> Result<()> {
        let (d, group, model, kernels) = (self.d, self.group, self.model, self.kernels);
        let (works, first) = crate::fuse::fuse_fwd(works);
        let mut wl = WorkLists::default();
        if kernels.fwd_family == KernelFamily::Sm90Wgmma {
            wl.mask_mode = TileMasks::sm90(true)?;
            wl.partial_first = kernels.partial_first.0;
            wl.half_mode = kernels.fwd_half.enabled();
            wl.half_bits = wl.half_mode && kernels.fwd_halfbits;
        }
        let br = kernels.fwd_br();
        let mut outs = Vec::with_capacity(works.len());
        let mut n_qtiles = 0usize; // q tile lists of the launch (DCP_CUDA_FWD_HALF_MAX)
        for (w, &wi) in works.iter().zip(&first) {
            let q = self.rd(&w.q);
            let o = self.rd(&w.o);
            let l = self.rd(&w.lse);
            check(
                q.width == d && o.width == d && l.width == 1,
                format!(
                    "instruction {ii}: work {wi} has Q/O/LSE widths {}/{}/{} (want {d}/{d}/1)",
                    q.width, o.width, l.width
                ),
            )?;
            check(
                q.dtype == dtype_code(model.dtype) && l.dtype == DT_F32,
                format!("instruction {ii}: work {wi}: Q must be the model dtype and LSE fp32"),
            )?;
            check(
                w.o.heads == w.q.heads
                    && w.lse.heads == w.q.heads
                    && w.o.len == w.q.len
                    && w.lse.len == w.q.len,
                format!("instruction {ii}: work {wi}: Q/O/LSE regions differ in shape"),
            )?;
            let kv_first = wl.segs.len() as u32;
            let mut key0 = 0u32;
            for kv in &w.kv {
                let k = self.rd(kv);
                check(
                k.width == 2 * d && k.dtype == dtype_code(model.dtype) && kv.heads * group == w.q.heads,
                format!("instruction {ii}: work {wi}: KV region must be width {} in the model dtype with Q heads / {group} heads", 2 * d),
            )?;
                wl.segs.push(KvSeg {
                    k: k.ptr,
                    dk: 0,
                    key0,
                    len: kv.len,
                    stride: k.stride,
                    dstride: 0,
                    ddtype: 0,
                    pad: 0,
                });
                key0 += kv.len;
            }
            let n_rows = w.q.len;
            let (csr, row_off) = wl.push_rows(&w.rows, n_rows);
            self.stats.attended_flops +=
                attn_fwd_flops(w.q.heads as f64 * w.rows.attended() as f64, d);
            let wdx = wl.works.len() as u32;
            outs.push((o, l));
            wl.works.push(WorkDesc {
                q: q.ptr,
                o: o.ptr,
                lse: l.ptr,
                q_stride: q.stride,
                o_stride: o.stride,
                lse_stride: l.stride,
                o_dtype: o.dtype,
                n_rows,
                n_keys: key0,
                q_heads: w.q.heads,
                kv_first,
                kv_count: w.kv.len() as u32,
                row_off,
                ..Default::default()
            });
            let qtiles = wl.push_fwd_tasks(&csr, wdx, n_rows, key0, w.q.heads, br, kernels.fwd_bc);
            wl.fill_fwd_masks(&csr, &qtiles, key0);
            wl.mark_fwd_half(&csr, &qtiles, key0);
            n_qtiles += qtiles.len();
        }
        wl.limit_fwd_half(n_qtiles, kernels.fwd_half_max);
        let merges = self.split_fwd(&mut wl, &outs)?;
        wl.order_fwd_half();
        // Only a launch with half tiles takes the half-tile kernel; of the others, launches of
        // short tasks the short-task kernel, the rest the plain one.
        let half = wl.tasks.iter().any(|t| t.pad > 0);
        let mut k = if half
            && short_tasks(&wl.tasks, kernels.fwd_half_short_max)
            && kernels.fwd_half_short.get_or_compile(self.gpu)?.is_some()
        {
            K::FwdHalfShort
        } else if half && kernels.fwd_half.get_or_compile(self.gpu)?.is_some() {
            K::FwdHalf
        } else if short_tasks(&wl.tasks, kernels.fwd_short_max)
            && kernels.fwd_short.get_or_compile(self.gpu)?.is_some()
        {
            K::FwdShort
        } else {
            K::Fwd
        };
        // sm90: TMA tensor maps of each work's Q and single KV region (`tensormaps.rs`; the kernel
        // loads them with tensor copies under `FWD_TMA`), built after the split-K rewrite.
        let fwd_maps = if kernels.fwd_family == KernelFamily::Sm90Wgmma {
            let (dt, bc) = (dtype_code(model.dtype), kernels.fwd_bc);
            // (`DCP_CUDA_FWD_SHORT_OMAP=0`: no O maps for the short-task kernel's launches.)
            let o_maps = k != K::FwdShort || kernels.fwd_short_omap;
            // (`FWD_ONE` is chosen below among short-task launches: the same O maps.)
            Some(fwd_tensor_maps(
                &mut wl.works,
                &wl.segs,
                d,
                group,
                dt,
                br,
                bc,
                o_maps,
            )?)
        } else {
            None
        };
        // Short-task launches whose tasks are mostly of two full tiles take the `FWD_ONE` kernel
        // (after the maps: it needs the works' TMA flags).
        if k == K::FwdShort
            && kernels.fwd_one.enabled()
            && one_share(wl.count_fwd_one(), wl.tasks.len(), kernels.fwd_one_min)
            && kernels.fwd_one.get_or_compile(self.gpu)?.is_some()
        {
            wl.mark_fwd_one();
            k = K::FwdOne;
        }
        // K and V of a work are re-read by each of its q tiles and heads.
        let ctas = self.gpu.sm_count.max(1) as u32;
        wl.order_for_l2(kernels.fwd_l2, ctas, true, |w| {
            w.n_keys as u64 * (w.q_heads / group.max(1)) as u64 * d as u64 * 4
        });
        let mask_args = wl.mask_args(&mut self.arena);
        let (n_tasks, mut args) = wl.finish(&mut self.arena, &mut self.stats);
        let scale = 1.0 / (d as f32).sqrt();
        args.extend([Arg::U32(group), Arg::F32(scale * std::f32::consts::LOG2_E)]);
        let grid = match kernels.fwd_family {
            KernelFamily::MmaSync => n_tasks,
            KernelFamily::Sm90Wgmma => {
                // Persistent: at most one CTA per SM, each taking tasks from a counter (next
                // task, CTAs done, number of tasks); the kernel leaves the counters at zero.
                args.push(Arg::Arena(
                    self.arena.push(as_bytes(&[0u32, 0, n_tasks, 0])),
                ));
                args.extend(mask_args);
                let maps = fwd_maps.unwrap_or_default();
                args.push(Arg::Arena(self.arena.push_aligned(as_bytes(&maps), 128)));
                let env = std::env::var("DCP_CUDA_FWD_CTAS").ok();
                persistent_grid(n_tasks, self.gpu.sm_count.max(1) as u32, env.as_deref())?
            }
        };
        self.ops.push(Op::Launch(Launch {
            k,
            grid,
            block: kernels.fwd_block,
            smem: kernels.fwd_smem,
            args,
        }));
        self.ops.extend(merges.into_iter().map(Op::Launch));
        Ok(())
    }

    /// The forward split-K scratch (`FWD_SPLIT_SCRATCH` bytes, allocated at the first split):
    /// one buffer for every attention instruction of the program, since they and their merges
    /// run one after the other on the compute stream.
    fn fwd_scratch(&mut self) -> Result<u64> {
        if self.split_scratch.is_none() {
            let buf = self.gpu.alloc(FWD_SPLIT_SCRATCH as usize)?;
            self.stats.buffer_bytes += FWD_SPLIT_SCRATCH;
            self.split_scratch = Some(buf);
        }
        Ok(self
            .split_scratch
            .as_ref()
            .expect("just allocated")
            .device_ptr())
    }

    /// Forward split-K ([`WorkLists::fwd_split`]): the split works' pieces write fp32 partial
    /// O and LSE into the program's split scratch; one merge launch for all split works (after
    /// the attention launch, on the same stream) combines them into the works' O / LSE, so the
    /// instruction computes what the unsplit work would.
    fn split_fwd(
        &mut self,
        wl: &mut WorkLists,
        outs: &[(RegionDesc, RegionDesc)],
    ) -> Result<Vec<Launch>> {
        let d = self.d as u64;
        let row_bytes: Vec<u64> = wl
            .works
            .iter()
            .map(|w| w.q_heads as u64 * (d + 1) * 4)
            .collect();
        let splits = wl.fwd_split(
            self.gpu.sm_count.max(1) as u64,
            &row_bytes,
            FWD_SPLIT_SCRATCH,
            self.kernels.fwd_br(),
        );
        // Per split work: (partial O base, partial LSE base); piece p at + p · one piece's size.
        let mut scratch: Vec<(u64, u64)> = vec![(0, 0); splits.len()];
        // The split works write distinct outputs: one merge launch for all of them.
        let mut merges = MergeBatch::default();
        let mut used = 0u64;
        for (w, s) in splits.iter().enumerate() {
            let np = s.pieces as u64;
            if np < 2 {
                continue;
            }
            let wd = wl.works[w];
            let (rows, heads) = ((s.r1 - s.r0) as u64, wd.q_heads as u64);
            let (o_bytes, l_bytes) = (rows * heads * d * 4, rows * heads * 4);
            let base = self.fwd_scratch()? + used;
            used += np * rows * row_bytes[w];
            let lse_base = base + np * o_bytes;
            scratch[w] = (base, lse_base);
            let part = |ptr: u64, stride: u32, width: u32| RegionDesc {
                ptr,
                stride,
                dtype: DT_F32,
                len: s.r1 - s.r0,
                heads: wd.q_heads,
                width,
                pad: 0,
            };
            let mut inputs = Vec::with_capacity(2 * np as usize);
            for p in 0..np {
                inputs.push(part(base + p * o_bytes, (heads * d) as u32, self.d));
                inputs.push(part(lse_base + p * l_bytes, wd.q_heads, 1));
            }
            // The merge writes the split rows of the work's O / LSE.
            let (o, l) = outs[w];
            merges.add(rows_of(o, s.r0, s.r1), rows_of(l, s.r0, s.r1), &inputs);
        }
        let q_elem = self.model.dtype.size();
        wl.apply_fwd_split(&splits, q_elem, |w, p, wd| {
            let (rows, heads, p) = (wd.n_rows as u64, wd.q_heads as u64, p as u64);
            let (base, lse_base) = scratch[w];
            WorkDesc {
                o: base + p * rows * heads * d * 4,
                lse: lse_base + p * rows * heads * 4,
                o_stride: (heads * d) as u32,
                lse_stride: wd.q_heads,
                o_dtype: DT_F32,
                ..wd
            }
        });
        Ok(merges
            .launch(&mut self.arena, self.cap)
            .into_iter()
            .collect())
    }

    /// The backward pre-pass (D = rowsum(dO∘O)) and one backward launch: per kv tile the q tiles
    /// touching it, long lists split over several CTAs.
    fn attn_bwd(&mut self, ii: usize, works: &[BwdWork]) -> Result<()> {
        let (d, group, model, kernels) = (self.d, self.group, self.model, self.kernels);
        let mut wl = WorkLists::default();
        if kernels.bwd_family == KernelFamily::Sm90Wgmma {
            wl.mask_mode = TileMasks::sm90(false)?;
            wl.partial_first = kernels.partial_first.1;
        }
        let br = kernels.bwd_br;
        let bc = kernels.bwd_bc();
        let mut dd_off = 0u64;
        let mut pending: Vec<KvTileList> = Vec::new();
        // Per entry of `pending`: its tiles' half-step bits (empty where half steps are off).
        let mut pending_half: Vec<Vec<u32>> = Vec::new();
        let (works, first) = crate::fuse::fuse_bwd(works);
        for (w, &wi) in works.iter().zip(&first) {
            let q = self.rd(&w.q);
            let o = self.rd(&w.o);
            let l = self.rd(&w.lse);
            let dout = self.rd(&w.do_);
            let dq = self.rd(&w.dq);
            check(
                q.width == d && o.width == d && dout.width == d && dq.width == d && l.width == 1,
                format!("instruction {ii}: work {wi}: Q/O/dO/dQ must have width {d}, LSE 1"),
            )?;
            check(
                q.dtype == dtype_code(model.dtype)
                    && dout.dtype == dtype_code(model.dtype)
                    && l.dtype == DT_F32,
                format!("instruction {ii}: work {wi}: Q and dO must be the model dtype, LSE fp32"),
            )?;
            check(
                w.dkv.len() == w.kv.len(),
                format!(
                    "instruction {ii}: work {wi}: {} KV regions but {} dKV regions",
                    w.kv.len(),
                    w.dkv.len()
                ),
            )?;
            let kv_first = wl.segs.len() as u32;
            let mut key0 = 0u32;
            for (kv, dkv) in w.kv.iter().zip(&w.dkv) {
                let k = self.rd(kv);
                let dk = self.rd(dkv);
                check(
                k.width == 2 * d && dk.width == 2 * d && k.dtype == dtype_code(model.dtype)
                    && kv.heads * group == w.q.heads && dkv.heads == kv.heads && dkv.len == kv.len,
                format!("instruction {ii}: work {wi}: KV/dKV regions must match (width {}, Q heads / {group})", 2 * d),
            )?;
                wl.segs.push(KvSeg {
                    k: k.ptr,
                    dk: dk.ptr,
                    key0,
                    len: kv.len,
                    stride: k.stride,
                    dstride: dk.stride,
                    ddtype: dk.dtype,
                    pad: 0,
                });
                key0 += kv.len;
            }
            let n_rows = w.q.len;
            let (csr, row_off) = wl.push_rows(&w.rows, n_rows);
            self.stats.attended_flops +=
                attn_bwd_flops(w.q.heads as f64 * w.rows.attended() as f64, d);
            let wdx = wl.works.len() as u32;
            wl.works.push(WorkDesc {
                q: q.ptr,
                o: o.ptr,
                lse: l.ptr,
                dout: dout.ptr,
                dq: dq.ptr,
                q_stride: q.stride,
                o_stride: o.stride,
                lse_stride: l.stride,
                do_stride: dout.stride,
                dq_stride: dq.stride,
                o_dtype: o.dtype,
                dq_dtype: dq.dtype,
                n_rows,
                n_keys: key0,
                q_heads: w.q.heads,
                kv_first,
                kv_count: w.kv.len() as u32,
                row_off,
                dd_off: dd_off as u32,
                ..Default::default()
            });
            dd_off += n_rows as u64 * w.q.heads as u64;
            // Per kv tile: the q tiles touching it.
            let n_kt = key0.div_ceil(bc) as usize;
            let mut per_kt: Vec<Vec<u32>> = vec![Vec::new(); n_kt];
            let mut per_kt_mask: Vec<Vec<u32>> = vec![Vec::new(); n_kt];
            let mut r0 = 0u32;
            let (mut total, mut partials) = (0usize, Vec::new());
            while r0 < n_rows {
                let r1 = (r0 + br).min(n_rows);
                let qt = r0 / br;
                for &t in wl.classify(&csr, r0, r1, key0, bc) {
                    let kt = (t & !PARTIAL) as usize;
                    if t & PARTIAL != 0 {
                        partials.push((r0, r1, kt, per_kt[kt].len()));
                    }
                    per_kt[kt].push(qt | (t & PARTIAL));
                    total += 1;
                }
                r0 = r1;
            }
            // Half steps' tile word bits (`BWD_HALF`), applied where the launch takes that kernel.
            let mut per_kt_half: Vec<Vec<u32>> = Vec::new();
            if kernels.bwd_half.enabled() {
                per_kt_half = per_kt.iter().map(|l| vec![0; l.len()]).collect();
                for &(r0, r1, kt, i) in &partials {
                    per_kt_half[kt][i] = tilemask::bwd_half_bits(&csr, r0, r1, kt as u32, key0);
                }
            }
            if wl.mask_mode != TileMasks::None {
                for (m, list) in per_kt_mask.iter_mut().zip(&per_kt) {
                    m.resize(list.len(), tilemask::NO_MASK);
                }
                if wl.mask_mode.wanted(partials.len(), total) {
                    for (r0, r1, kt, i) in partials {
                        per_kt_mask[kt][i] = wl.tile_mask(&csr, r0, r1, kt as u32, key0);
                    }
                }
            }
            for (kt, (list, masks)) in per_kt.into_iter().zip(per_kt_mask).enumerate() {
                if !list.is_empty() {
                    pending_half.push(
                        per_kt_half
                            .get_mut(kt)
                            .map(std::mem::take)
                            .unwrap_or_default(),
                    );
                    pending.push((wdx, kt as u32, w.q.heads / group, list, masks));
                }
            }
        }
        // dK/dV are added atomically, so a kv tile's q-tile list can be split over
        // several CTAs: long lists (attention sinks, full masks) would otherwise
        // serialise on one SM. Aim for a few waves of CTAs.
        let total: u64 = pending.iter().map(|p| p.3.len() as u64 * p.2 as u64).sum();
        let mut chunk = total.div_ceil(4 * self.gpu.sm_count.max(1) as u64).max(8) as usize;
        if kernels.bwd_order == TaskOrder::Whole {
            chunk = chunk.max(pending.iter().map(|p| p.3.len()).max().unwrap_or(0));
        }
        // Chains ([`own::chain_launch`]): all or nothing per launch.
        let chain_ok =
            kernels.chain != ChainMode::Off && self.chain_launch(ii, &works, &wl, &pending, chunk);
        // Clusters ([`cluster`]): a chained launch whose works are all two kv tiles wide with
        // the same q tiles.
        let cluster = chain_ok
            && kernels.bwd_cluster.enabled()
            && cluster::pairs_ok(
                &pending
                    .iter()
                    .map(|p| (p.0, p.3.as_slice()))
                    .collect::<Vec<_>>(),
            )
            && kernels.bwd_cluster.get_or_compile(self.gpu)?.is_some();
        // Otherwise the chain kernel (head dim 128 only: at 64 `bwd_chain` is off, and a launch
        // that does not cluster does not chain).
        let chain = cluster || chain_ok && kernels.bwd_chain.get_or_compile(self.gpu)?.is_some();
        // Owned dK/dV rows ([`own`]; head dim 128, and 64 in clustered launches and, with
        // `DCP_CUDA_BWD_OWN_D64`, the others): a task that alone adds into its kv tile's dK/dV
        // rows, which are zero (its work's dKV regions are its own, its list unsplit), stores
        // them.
        let dkv_own = if kernels.bwd_family == KernelFamily::Sm90Wgmma
            && kernels.own != OwnMode::Off
            && (d == 128 || d == 64 && (cluster || kernels.own_d64))
        {
            self.dkv_ownable(&works, &wl)
        } else {
            vec![false; works.len()]
        };
        // Works whose every dKV row is stored: all kv tiles listed, no list split.
        let mut dkv_full: Vec<bool> = dkv_own.clone();
        let mut kts = vec![0u32; works.len()];
        for (wdx, _, _, list, _) in &pending {
            dkv_full[*wdx as usize] &= list.len() <= chunk;
            kts[*wdx as usize] += 1;
        }
        for (i, f) in dkv_full.iter_mut().enumerate() {
            *f &= kts[i] == wl.works[i].n_keys.div_ceil(bc);
        }
        // Split ownership ([`OwnMode::DkvSplit`]): per owned work the rows of its kv tiles that
        // no one task stores (split lists, unlisted tiles): only they keep the zeroed fp32
        // scratch and, where the launch converts the work's dK/dV, a converting copy.
        let mut split = kernels.own == OwnMode::DkvSplit;
        let mut unstored: Vec<Vec<(usize, Region)>> = vec![Vec::new(); works.len()];
        if split {
            let mut stored: Vec<Vec<bool>> = wl
                .works
                .iter()
                .map(|w| vec![false; w.n_keys.div_ceil(bc) as usize])
                .collect();
            for (wdx, kt, _, list, _) in &pending {
                stored[*wdx as usize][*kt as usize] = list.len() <= chunk;
            }
            for (i, w) in works.iter().enumerate() {
                if dkv_own[i] {
                    unstored[i] = own::unstored_rows(&w.dkv, bc, &stored[i]);
                }
            }
            // Each run of such rows costs a fill and a copy launch: a launch with many (works
            // of many KV segments) keeps the whole-region fill and copy.
            if unstored.iter().map(Vec::len).sum::<usize>() > own::SPLIT_MAX_RUNS {
                split = false;
                unstored.iter_mut().for_each(Vec::clear);
            }
        }
        // Works whose dK/dV the launch may convert: every row stored, or (split) owned.
        let dkv_conv = if split { &dkv_own } else { &dkv_full };
        // Half steps (`BWD_HALF`): an unchained launch where enough of the steps are half steps.
        let half = !chain
            && {
                let (mut n, mut h) = (0u64, 0u64);
                for ((_, _, kvh, list, _), bits) in pending.iter().zip(&pending_half) {
                    n += list.len() as u64 * *kvh as u64;
                    h += bits.iter().filter(|&&b| b != 0).count() as u64 * *kvh as u64;
                }
                h > 0 && h as f64 >= kernels.bwd_half_min * n as f64
            }
            && kernels.bwd_half.get_or_compile(self.gpu)?.is_some();
        let (dq_dst, dkv_copies) = self.convert_targets(
            ii, &works, &mut wl, &pending, chunk, dkv_conv, &unstored, chain,
        );
        // D in the chain kernel (`BWD_CHAIN_DD`): all works flagged, or none.
        if chain
            && !cluster
            && own::chain_dd_launch(kernels.chain_dd, &wl.works, dtype_code(model.dtype))
        {
            for w in &mut wl.works {
                w.flags |= own::WORK_DD;
            }
        }
        // dQ arrival counters (zeroed by the D pre-pass) and expected arrivals per q tile of the
        // works whose dQ the launch converts, and per work its destination.
        let mut convs = vec![DqConv::default(); works.len()];
        let (mut n_cnt, mut expect) = (0u32, Vec::<u32>::new());
        for (i, dst) in dq_dst.iter().enumerate() {
            let Some((dst, visits)) = dst else { continue };
            let r = self.rd(dst);
            if chain {
                // The chain's last visits write the destination (no counters).
                convs[i] = DqConv {
                    dst: r.ptr,
                    stride: r.stride,
                    dtype: r.dtype,
                    ..Default::default()
                };
                continue;
            }
            convs[i] = DqConv {
                dst: r.ptr,
                stride: r.stride,
                dtype: r.dtype,
                cnt_off: n_cnt,
                exp_off: expect.len() as u32,
            };
            n_cnt += visits.len() as u32 * wl.works[i].q_heads * 2;
            expect.extend_from_slice(visits);
        }
        let cnt_arg = Arg::Arena(self.arena.push(as_bytes(&vec![0u32; n_cnt as usize])));
        if chain && !cluster {
            // Visit flags per work (its kv tiles' lists in key order, `pending`'s order).
            let mut a = 0;
            while a < pending.len() {
                let w = pending[a].0;
                let b = a + pending[a..].iter().take_while(|p| p.0 == w).count();
                let mut lists: Vec<&mut Vec<u32>> =
                    pending[a..b].iter_mut().map(|p| &mut p.3).collect();
                own::mark_visits(&mut lists);
                a = b;
            }
        }
        let mut chains: Vec<Vec<TaskDesc>> = Vec::new();
        let mut chain_of: HashMap<(u32, u32), usize> = HashMap::new();
        // Pieces of the lists in launch order ([`order`]; split lists cut finer only where no
        // q tile's visits are counted by `chunk`, i.e. no dQ is converted by the launch).
        let lens: Vec<usize> = pending.iter().map(|p| p.3.len()).collect();
        let piece = match kernels.bwd_order {
            TaskOrder::Even { min_gain_bp } if dq_dst.iter().all(|d| d.is_none()) => {
                let tasks: Vec<u32> = pending.iter().map(|p| p.2).collect();
                let ctas = self.gpu.sm_count.max(1) as usize;
                let m = order::even_piece_model(&lens, &tasks, group as u64, chunk, ctas);
                let piece = m.choose(min_gain_bp);
                if kernels.piece_log && m.span_chunk > 0 {
                    eprintln!(
                        "dcp-cuda: backward instr {ii}: {} lists ({} over chunk), chunk {chunk}, \
                         best piece {} (modelled makespan {} -> {} steps, gain {:.2} %), launched {piece}",
                        lens.len(),
                        lens.iter().filter(|&&n| n > chunk).count(),
                        m.piece,
                        m.span_chunk,
                        m.span_piece,
                        m.gain_bp() as f64 / 100.0,
                    );
                }
                piece
            }
            _ => chunk,
        };
        for pc in order::pieces(&lens, chunk, piece) {
            let (wdx, kt, kv_heads, list, masks) = &pending[pc.list];
            let mut pad = if dkv_own[*wdx as usize] && list.len() <= chunk {
                TASK_DKV_STORE
            } else if wl.works[*wdx as usize].kv_alt != 0 {
                TASK_DKV_ALT
            } else {
                0
            };
            if dq_dst[*wdx as usize].is_some() {
                pad |= TASK_DQ_CONV;
            }
            let part = &list[pc.start..pc.start + pc.len];
            let off = wl.tiles.len() as u32;
            if half {
                let bits = &pending_half[pc.list][pc.start..pc.start + pc.len];
                wl.tiles.extend(part.iter().zip(bits).map(|(&t, &b)| t | b));
            } else {
                wl.tiles.extend_from_slice(part);
            }
            if wl.mask_mode != TileMasks::None {
                wl.tmask
                    .extend_from_slice(&masks[pc.start..pc.start + pc.len]);
            }
            for kvh in 0..*kv_heads {
                let t = TaskDesc {
                    work: *wdx,
                    row0: *kt,
                    head: kvh,
                    tiles_off: off,
                    tiles_n: part.len() as u32,
                    pad,
                };
                if !chain {
                    wl.tasks.push(t);
                    continue;
                }
                // One chain per (work, kv head): kv tiles in `pending`'s (key) order.
                match chain_of.entry((*wdx, kvh)) {
                    std::collections::hash_map::Entry::Occupied(e) => chains[*e.get()].push(t),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(chains.len());
                        chains.push(vec![t]);
                    }
                }
            }
        }
        let mut n_claim = None;
        if chain {
            let (tasks, n) = if cluster {
                cluster::order_pairs(chains).ok_or_else(|| {
                    CudaError::Unsupported(format!(
                        "instruction {ii}: a clustered backward launch with a chain other than \
                         two tasks of the same length"
                    ))
                })?
            } else {
                own::order_chains(chains, kernels.chain == ChainMode::Reverse)
            };
            wl.tasks = tasks;
            wl.keep_order = true;
            n_claim = Some(n);
            // Every dQ element of the launch is stored before anything reads it: the zero
            // fills its dQ regions tile exactly go.
            self.drop_fills_tiled_by(&works.iter().map(|w| w.dq).collect::<Vec<_>>());
        }
        // Split rows to zero: by fill launches, or by the D pre-pass (below).
        let mut refill = Vec::new();
        if split {
            refill = self.refill_unstored(&works, &dkv_own, &unstored);
        } else {
            self.drop_covered_fills(&works, &dkv_full);
        }
        if kernels.fuse_fill && !chain {
            // The D pre-pass zeroes dQ rows whose fill it takes over ([`own`]).
            let dq: Vec<Region> = works.iter().map(|w| w.dq).collect();
            // fp32, and shaped like Q (the pre-pass zeroes (row, head) pairs of Q's shape).
            let f32s: Vec<bool> = works
                .iter()
                .zip(&wl.works)
                .map(|(w, wd)| {
                    wd.dq_dtype == DT_F32 && w.dq.len == w.q.len && w.dq.heads == w.q.heads
                })
                .collect();
            for (op, inside) in own::dq_fills_to_fuse(&self.zeros, &dq, &f32s) {
                self.elided.push(op);
                for i in inside {
                    wl.works[i].flags |= own::WORK_DQ_ZERO;
                }
            }
        }
        self.dd_max = self.dd_max.max(dd_off);
        let n_works = wl.works.len() as u32;
        // sm90: per work a TMA tensor map of its fp32 dQ rows (the kernel adds 64-row dQ tiles
        // with tensor bulk reductions); zeros where dQ is 16-bit (added by atomics).
        let dq_maps = if kernels.bwd_family == KernelFamily::Sm90Wgmma {
            let mut maps = vec![[0u64; 16]; wl.works.len()];
            for (m, w) in maps.iter_mut().zip(&wl.works) {
                if w.dq_dtype == DT_F32 && w.n_rows > 0 {
                    *m = tensor_map_f32_sw128(w.dq, w.n_rows, w.q_heads * d, w.dq_stride, br)?;
                }
            }
            Some(maps)
        } else {
            None
        };
        // sm90: per work TMA tensor maps of its Q, single KV region and dO (`tensormaps.rs`; the
        // kernel loads them with tensor copies under `BWD_TMA`), flagged in the works.
        let bwd_maps = if kernels.bwd_family == KernelFamily::Sm90Wgmma {
            let dt = dtype_code(model.dtype);
            let env = std::env::var("DCP_CUDA_BWD_TMA_MIN_KEYS").ok();
            let min_keys = bwd_tma_min_keys(env.as_deref()).map_err(CudaError::Unsupported)?;
            Some(bwd_tensor_maps(
                &mut wl.works,
                &wl.segs,
                d,
                group,
                dt,
                br,
                bc,
                min_keys,
            )?)
        } else {
            None
        };
        let mask_args = wl.mask_args(&mut self.arena);
        let dd_pass = own::dd_pass_needed(&wl.works, n_cnt);
        // Zero fills of the launch's dK/dV rows (still zero) and its split rows: zeroed by the D
        // pre-pass where there is one (`DCP_CUDA_BWD_DD_ZERO`), else fill launches here.
        // Up to own::DD_ZERO_MAX_BYTES in all: the split rows first, then the plan's fills.
        let mut dd_zeros: Vec<RegionDesc> = Vec::new();
        let mut budget = if dd_pass && kernels.dd_zero {
            own::DD_ZERO_MAX_BYTES
        } else {
            0
        };
        for r in &refill {
            let b = region_bytes(&self.decls, r);
            if b <= budget {
                budget -= b;
                dd_zeros.push(self.rd(r));
            } else {
                self.fill(r, &FillValue::Zero)?;
            }
        }
        if budget > 0 {
            let dkv: Vec<Region> = works.iter().flat_map(|w| w.dkv.iter().copied()).collect();
            for (op, z) in own::dkv_fills_to_zero(&self.zeros, &self.elided, &dkv) {
                let b = region_bytes(&self.decls, &z);
                if b <= budget {
                    budget -= b;
                    self.elided.push(op);
                    dd_zeros.push(self.rd(&z));
                }
            }
        }
        let dd_zero_arg = Arg::Arena(self.arena.push(as_bytes(&dd_zeros)));
        // Each kv tile's task re-reads its work's Q and dO rows and reduces into its dQ.
        let ctas = self.gpu.sm_count.max(1) as u32;
        wl.order_for_l2(kernels.bwd_l2, ctas, false, |w| {
            let dq = if w.dq_dtype == DT_F32 { 4 } else { 2 };
            w.n_rows as u64 * w.q_heads as u64 * d as u64 * (4 + dq)
        });
        // Where the works' dO and O rows are one flat run each (works1000, a packed batch on one
        // device), the D pre-pass below is the flat one.
        let elem = dtype_code(model.dtype);
        let flat = if dd_pass && self.dd_flat {
            own::dd_flat(&wl.works, d, elem)
        } else {
            None
        };
        // D clusters ([`cluster::Dsm`]): a clustered launch over flat rows, its pairs in D order
        // where they run (else the claim order stays longest first).
        let dsm = match (cluster, flat, n_claim) {
            (true, Some((dout, o, n_items)), Some(pairs))
                if n_cnt == 0 && kernels.cluster_dsm != cluster::Dsm::Off =>
            {
                let works = &wl.works;
                cluster::plan_in_d_order(
                    &mut wl.tasks,
                    |w| works[w as usize].dd_off,
                    |tasks| self.dsm_plan(works, tasks, pairs, n_items, d, group),
                )?
                .map(|p| (p, p.info(n_items, dout, o)))
            }
            _ => None,
        };
        let (grid, mut args) = wl.finish(&mut self.arena, &mut self.stats);
        // Chains: the claim counter hands out chains, whose first tasks lead the list.
        let grid = n_claim.unwrap_or(grid);
        // With D clusters the pre-pass computes the first pairs' D only and zeroes the D units'
        // flags, which the kernel takes in place of the dQ counters.
        let (cnt_arg, n_cnt) = match dsm {
            Some((p, _)) => (
                Arg::Arena(self.arena.push(as_bytes(&vec![0u32; p.n_units as usize]))),
                p.n_units,
            ),
            None => (cnt_arg, n_cnt),
        };
        let scale = 1.0 / (d as f32).sqrt();
        // The D pre-pass, unless the chain kernel computes every work's D and the pass has
        // nothing else to do (counters, dQ zeroing).
        if dd_pass {
            // One wave before a chained launch ([`DD_CTAS_PER_SM`]), else the elementwise cap.
            let dd_cap = match (self.dd_ctas, chain) {
                (Some(n), _) => n * self.gpu.sm_count.max(1) as u32,
                (None, true) => DD_CTAS_PER_SM * self.gpu.sm_count.max(1) as u32,
                (None, false) => self.cap,
            };
            // The flat pass (no per-tile work search, one wave of 4 CTAs per SM) takes the runs'
            // addresses and its pairs where the tiled pass takes the works; the rest is the same.
            let (k, grid, mut dd_args) = match flat {
                Some((dout, o, n_all)) => {
                    let n_pairs = dsm.map_or(n_all, |(p, _)| p.prefix_items.min(n_all));
                    (
                        K::BwdDdFlat,
                        grid_for(
                            n_pairs,
                            dd_tile_pairs(d),
                            self.dd_ctas.unwrap_or(DD_FLAT_CTAS_PER_SM)
                                * self.gpu.sm_count.max(1) as u32,
                        ),
                        vec![Arg::U64(dout), Arg::U64(o), Arg::U64(n_pairs)],
                    )
                }
                None => (
                    K::BwdDd,
                    grid_for(dd_off, dd_tile_pairs(d), dd_cap),
                    vec![args[0], Arg::U32(n_works)],
                ),
            };
            dd_args.extend([
                Arg::Dd,
                Arg::U32(d),
                Arg::U32(elem),
                cnt_arg,
                Arg::U32(n_cnt),
                dd_zero_arg,
                Arg::U32(dd_zeros.len() as u32),
            ]);
            self.ops.push(Op::Launch(Launch {
                k,
                grid,
                block: 256,
                smem: 0,
                args: dd_args,
            }));
        }
        args.extend([
            Arg::Dd,
            Arg::U32(group),
            Arg::F32(scale * std::f32::consts::LOG2_E),
            Arg::F32(scale),
        ]);
        let grid = match dq_maps {
            Some(maps) => {
                args.push(Arg::Arena(self.arena.push_aligned(as_bytes(&maps), 128)));
                // Persistent like the forward: at most one CTA per SM taking tasks (longest
                // first) from a counter (next task, CTAs done, number of tasks) that the
                // kernel leaves at zero.
                args.push(Arg::Arena(self.arena.push(as_bytes(&[0u32, 0, grid, 0]))));
                args.extend(mask_args);
                args.push(Arg::Arena(self.arena.push(as_bytes(&convs))));
                args.push(cnt_arg);
                // With D clusters, the kernel's D block in place of the expected arrivals
                // (a clustered launch has none).
                match dsm {
                    Some((_, info)) => args.push(Arg::Arena(self.arena.push(as_bytes(&info)))),
                    None => args.push(Arg::Arena(self.arena.push(as_bytes(&expect)))),
                }
                let maps = bwd_maps.unwrap_or_default();
                args.push(Arg::Arena(self.arena.push_aligned(as_bytes(&maps), 128)));
                let env = std::env::var("DCP_CUDA_BWD_CTAS").ok();
                persistent_bwd_grid(grid, self.gpu.sm_count.max(1) as u32, env.as_deref())?
            }
            None => grid,
        };
        // Clusters: two CTAs per pair (n_claim pairs), at most one cluster per two SMs.
        let grid = match (cluster, n_claim, dsm) {
            (true, _, Some((p, _))) => p.grid(),
            (true, Some(n), None) => cluster::grid(n, self.gpu.sm_count.max(1) as u32),
            _ => grid,
        };
        self.ops.push(Op::Launch(Launch {
            k: if dsm.is_some() {
                K::BwdClusterDsm
            } else if cluster {
                K::BwdCluster
            } else if chain {
                K::BwdChain
            } else if half {
                K::BwdHalf
            } else {
                K::Bwd
            },
            grid,
            block: kernels.bwd_block,
            smem: if cluster {
                kernels.bwd_cluster.smem
            } else if chain {
                kernels.bwd_chain.smem
            } else if half {
                kernels.bwd_half.smem
            } else {
                kernels.bwd_smem
            },
            args,
        }));
        // The rows of converted works that no one task stored: their fp32 sums into the
        // destination (the plan's copy of the whole region is skipped).
        let at = |m: String| CudaError::Unsupported(format!("instruction {ii}: {m}"));
        for (src, dst) in &dkv_copies {
            self.copy(&at, src, dst)?;
        }
        Ok(())
    }
}

impl Lowering<'_> {
    /// D clusters for a clustered backward launch (`pairs` pairs, tasks 2 p and 2 p + 1 of
    /// `tasks`, in D order, over `works`) over flat rows of `n_items` (row, head) items
    /// ([`own::dd_flat`]): the plan, or `None` where `DCP_CUDA_BWD_CLUSTER_DSM` is off, auto
    /// finds they do not pay ([`cluster::dsm_pays`]), or the launch's pairs or sizes do not
    /// allow them ([`cluster::dsm_plan`]).
    fn dsm_plan(
        &self,
        works: &[WorkDesc],
        tasks: &[TaskDesc],
        pairs: u32,
        n_items: u64,
        d: u32,
        group: u32,
    ) -> Result<Option<cluster::DsmPlan>> {
        let sm = self.gpu.sm_count.max(1) as u32;
        let d_bytes = 2 * n_items * d as u64 * 2;
        // Backward FLOPs with every listed tile counted whole (not the attended ones): 10 br bc d
        // per (q tile, kv tile, query head).
        let tiles: u64 = tasks.iter().map(|t| t.tiles_n as u64 * group as u64).sum();
        let (br, bc) = (self.kernels.bwd_br as f64, self.kernels.bwd_bc as f64);
        let flops = tiles as f64 * 10.0 * br * bc * d as f64;
        let k = match self.kernels.cluster_dsm {
            cluster::Dsm::Off => return Ok(None),
            cluster::Dsm::Clusters(k) => k,
            cluster::Dsm::Auto => {
                let k = cluster::dsm_auto_clusters(d_bytes, flops, d, sm);
                if !cluster::dsm_pays(d_bytes, flops, d, sm, k) {
                    return Ok(None);
                }
                k
            }
        };
        let ranges: Vec<(u64, u64)> = (0..pairs as usize)
            .map(|p| {
                let w = &works[tasks[2 * p].work as usize];
                let lo = w.dd_off as u64;
                (lo, lo + w.n_rows as u64 * w.q_heads as u64)
            })
            .collect();
        let plan = cluster::dsm_plan(&ranges, n_items, d, sm, k);
        if self.kernels.piece_log {
            eprintln!(
                "dcp-cuda: clustered backward, {pairs} pairs, {n_items} D items, ~{:.0} MFLOP: D clusters {k} asked ({:?}), plan {plan:?}",
                flops / 1e6,
                self.kernels.cluster_dsm
            );
        }
        if plan.is_some()
            && self
                .kernels
                .bwd_cluster_dsm
                .get_or_compile(self.gpu)?
                .is_none()
        {
            return Ok(None);
        }
        Ok(plan)
    }

    /// Gradients this backward launch (instruction `ii`, fused `works`) writes into the plan's
    /// copy destinations itself ([`own::copy_targets`]), all or nothing per copy: dK/dV where
    /// every work of the copy stores all its rows (`dkv_full`: the work's KV segments are pointed
    /// at the destination), dQ where every q tile of every work of the copy is listed by some
    /// task and the launch's dQ regions are disjoint. The copies go on the skip list. Under
    /// split ownership (`dkv_full` = the owned works) a work's rows in `unstored` (of its kv
    /// tiles no one task stores) stay in the fp32 scratch: the work gets alternate KV segments
    /// pointing there (`WorkDesc.kv_alt`, for [`TASK_DKV_ALT`] tasks) and those rows a copy of
    /// their own. Returns per work the dQ destination and the tasks listing each of its q tiles
    /// (the arrivals the tile's counters expect), or `None`; and the (scratch, destination)
    /// copies of unstored rows to issue after the launch.
    #[allow(
        clippy::type_complexity,
        reason = "per work an optional (destination, arrivals per q tile) pair"
    )]
    #[allow(
        clippy::too_many_arguments,
        reason = "the launch's lists and per-work decisions, each used once"
    )]
    fn convert_targets(
        &mut self,
        ii: usize,
        works: &[BwdWork],
        wl: &mut WorkLists,
        pending: &[KvTileList],
        chunk: usize,
        dkv_full: &[bool],
        unstored: &[Vec<(usize, Region)>],
        chain: bool,
    ) -> (Vec<Option<(Region, Vec<u32>)>>, Vec<(Region, Region)>) {
        let conv = launch_conversions(self.kernels.convert, self.d, chain, self.kernels.own_d64);
        let mut out = vec![None; works.len()];
        let mut copies = Vec::new();
        if self.kernels.bwd_family != KernelFamily::Sm90Wgmma || !(conv.dq || conv.dkv) {
            return (out, copies);
        }
        let targets: Vec<CopyTarget> = own::copy_targets(self.prog, ii, works);
        if targets.is_empty() {
            return (out, copies);
        }
        let br = self.kernels.bwd_br;
        let n_qt: Vec<u32> = wl.works.iter().map(|w| w.n_rows.div_ceil(br)).collect();
        let lists: Vec<(u32, &[u32])> = pending
            .iter()
            .map(|(w, _, _, list, _)| (*w, list.as_slice()))
            .collect();
        let visits = own::q_tile_visits(&n_qt, &lists, chunk);
        let dq_alone = own::disjoint(&works.iter().map(|w| w.dq).collect::<Vec<_>>());
        let dq_ok: Vec<bool> = (0..works.len())
            .map(|i| {
                chain
                    || wl.works[i].dq_dtype == DT_F32
                        && dq_alone[i]
                        && !visits[i].is_empty()
                        && visits[i].iter().all(|&v| v > 0)
            })
            .collect();
        for ti in own::accept(&targets, conv, &dq_ok, dkv_full) {
            let t = &targets[ti];
            for &(i, k) in &t.parts {
                match t.grad {
                    Grad::Dq => out[i] = Some((t.map(&works[i].dq), visits[i].clone())),
                    Grad::Dkv => {
                        let wd = wl.works[i];
                        if !unstored[i].is_empty() && wd.kv_alt == 0 {
                            // The scratch segments, before any points at the destination.
                            let (f, n) = (wd.kv_first as usize, wd.kv_count as usize);
                            let alt: Vec<KvSeg> = wl.segs[f..f + n].to_vec();
                            wl.works[i].kv_alt = wl.segs.len() as u32;
                            wl.segs.extend(alt);
                        }
                        for (_, sub) in unstored[i].iter().filter(|u| u.0 == k) {
                            copies.push((*sub, t.map(sub)));
                        }
                        let r = self.rd(&t.map(&works[i].dkv[k]));
                        let seg = &mut wl.segs[wl.works[i].kv_first as usize + k];
                        seg.dk = r.ptr;
                        seg.dstride = r.stride;
                        seg.ddtype = r.dtype;
                    }
                }
            }
            self.skip.push(t.copy);
        }
        (out, copies)
    }

    /// Per fused work of a backward launch: whether its dKV rows are its own ([`own`]): fp32,
    /// zero, overlapping no other work's dKV region of the launch.
    fn dkv_ownable(&self, works: &[BwdWork], wl: &WorkLists) -> Vec<bool> {
        let (mut dkv, mut dkv_of) = (Vec::new(), Vec::new());
        for (i, w) in works.iter().enumerate() {
            dkv.extend_from_slice(&w.dkv);
            dkv_of.extend(std::iter::repeat_n(i, w.dkv.len()));
        }
        let mut ok: Vec<bool> = wl
            .works
            .iter()
            .map(|wd| {
                let segs = &wl.segs[wd.kv_first as usize..(wd.kv_first + wd.kv_count) as usize];
                !segs.is_empty() && segs.iter().all(|s| s.ddtype == DT_F32)
            })
            .collect();
        for ((r, &i), alone) in dkv.iter().zip(&dkv_of).zip(own::disjoint(&dkv)) {
            ok[i] &= alone && self.zeros.is_zero(r);
        }
        ok
    }

    /// Whether backward launch `ii` (fused `works`, kv-tile lists `pending` cut at `chunk`) runs
    /// as chains ([`own::chain_launch`]): besides the lists' conditions, per work its dQ fp32,
    /// shaped like Q, zero, disjoint from the other works' dQ, and read by a converting copy the
    /// launch can take over ([`own::copy_targets`], [`own::accept`]).
    fn chain_launch(
        &self,
        ii: usize,
        works: &[BwdWork],
        wl: &WorkLists,
        pending: &[KvTileList],
        chunk: usize,
    ) -> bool {
        // Head dim 64 chains only as clusters (no chain kernel there).
        let d_ok = self.d == 128 || self.d == 64 && self.kernels.bwd_cluster.enabled();
        if self.kernels.bwd_family != KernelFamily::Sm90Wgmma || !d_ok {
            return false;
        }
        let f32s: Vec<bool> = wl.works.iter().map(|w| w.dq_dtype == DT_F32).collect();
        let ok = own::chain_dq_ok(self.prog, ii, works, &self.zeros, &f32s);
        let br = self.kernels.bwd_br;
        let cw: Vec<own::ChainWork> = wl
            .works
            .iter()
            .zip(ok)
            .map(|(wd, dq_ok)| own::ChainWork {
                n_qtiles: wd.n_rows.div_ceil(br),
                dq_ok,
            })
            .collect();
        let lists: Vec<(u32, &[u32])> = pending
            .iter()
            .map(|(w, _, _, list, _)| (*w, list.as_slice()))
            .collect();
        let kv_heads = pending.first().map_or(0, |p| p.2);
        pending.iter().all(|p| p.2 == kv_heads)
            && own::chain_launch(&cw, &lists, chunk, kv_heads, self.gpu.sm_count as u32)
    }

    /// Drops the zero fills that `parts` (regions this launch stores in full) tile exactly;
    /// returns the dropped fills' regions.
    fn drop_fills_tiled_by(&mut self, parts: &[Region]) -> Vec<Region> {
        let mut dropped = Vec::new();
        for (z, op) in self.zeros.fills() {
            let inside: Vec<Region> = parts.iter().filter(|r| r.overlaps(z)).copied().collect();
            if own::tiles_exactly(z, &inside) {
                self.elided.push(*op);
                dropped.push(*z);
            }
        }
        dropped
    }

    /// The dKV regions of the works flagged in `which`.
    fn dkv_of(works: &[BwdWork], which: &[bool]) -> Vec<Region> {
        works
            .iter()
            .zip(which)
            .filter(|(_, &f)| f)
            .flat_map(|(w, _)| w.dkv.iter().copied())
            .collect()
    }

    /// Split ownership: drops the zero fills that the dKV regions of owned works (`own`) tile
    /// exactly and returns, to be zeroed in their place, those works' rows in `unstored` (the kv
    /// tiles no one task stores, which are added into) inside them.
    fn refill_unstored(
        &mut self,
        works: &[BwdWork],
        own: &[bool],
        unstored: &[Vec<(usize, Region)>],
    ) -> Vec<Region> {
        let parts = Self::dkv_of(works, own);
        if parts.is_empty() {
            return Vec::new();
        }
        let rows: Vec<Region> = unstored
            .iter()
            .zip(own)
            .filter(|(_, &o)| o)
            .flat_map(|(u, _)| u.iter().map(|x| x.1))
            .collect();
        let mut out = Vec::new();
        for z in self.drop_fills_tiled_by(&parts) {
            out.extend(rows.iter().filter(|r| r.overlaps(&z)).copied());
        }
        out
    }

    /// Drops the zero fills whose regions this backward launch stores in full: the dKV
    /// regions of works whose every dKV row is stored (`dkv_full`) must tile the fill's region
    /// exactly.
    fn drop_covered_fills(&mut self, works: &[BwdWork], dkv_full: &[bool]) {
        if !dkv_full.iter().any(|&f| f) {
            return;
        }
        self.drop_fills_tiled_by(&Self::dkv_of(works, dkv_full));
    }
}

impl Prepared {
    /// Allocates buffers and builds every operation of `prog` (device `dev` of the plan).
    ///
    /// A backward program's saved buffers ([`BufferRole::Saved`]) share the allocations of
    /// `forward`'s buffers they name when `forward` (this device's prepared forward program) is
    /// given, so each backward run reads what the forward run before it left there. Without it
    /// they get buffers of their own, which the caller fills before each run
    /// ([`Prepared::copy_io_from`], [`Prepared::upload_io`]).
    pub fn new(
        gpu: &Gpu,
        kernels: &Kernels,
        model: &ModelShape,
        prog: &Program,
        backward: bool,
        forward: Option<&Prepared>,
    ) -> Result<Self> {
        let mut clock = PrepClock::from_env()?;
        check_regions(prog)?;
        gpu.bind()?;
        clock.lap("check");
        let decls = prog.buffers.clone();
        let mut bufs = Vec::with_capacity(decls.len());
        let mut stats = ProgramStats::default();
        for (i, b) in decls.iter().enumerate() {
            if let (BufferRole::Saved { forward: j }, Some(f)) = (b.role, forward) {
                let shared = f.decls.get(j as usize).filter(|fd| fd.bytes() == b.bytes());
                let Some(_) = shared else {
                    return Err(CudaError::Unsupported(format!(
                        "buffer {i} `{}` is saved from forward buffer {j}, which the forward program does not declare with {} bytes",
                        b.name,
                        b.bytes()
                    )));
                };
                bufs.push(Arc::clone(&f.bufs[j as usize]));
                continue;
            }
            if !backward && matches!(b.role, BufferRole::Saved { .. }) {
                return Err(CudaError::Unsupported(format!(
                    "buffer {i} `{}`: a forward program cannot start from saved buffers",
                    b.name
                )));
            }
            bufs.push(Arc::new(gpu.alloc(b.bytes() as usize)?));
            stats.buffer_bytes += b.bytes();
        }
        clock.lap("buffers");
        let mut lw = Lowering {
            gpu,
            kernels,
            model,
            backward,
            d: model.head_dim,
            group: model.group(),
            cap: (gpu.sm_count.max(1) * 16) as u32,
            dd_ctas: dd_ctas_override(std::env::var("DCP_CUDA_BWD_DD_CTAS").ok().as_deref())?,
            dd_flat: dd_flat_with(std::env::var("DCP_CUDA_BWD_DD_FLAT").ok().as_deref())?,
            decls,
            bufs,
            stats,
            arena: Arena::default(),
            ops: Vec::new(),
            staging: Vec::new(),
            split_scratch: None,
            groups: HashMap::new(),
            pending_unpacks: HashMap::new(),
            merge_batch: MergeBatch::default(),
            dd_max: 0,
            zeros: ZeroSet::default(),
            elided: Vec::new(),
            prog,
            skip: Vec::new(),
        };
        let mut op_instr: Vec<(u32, &'static str)> = Vec::new();
        for (ii, ins) in prog.instrs.iter().enumerate() {
            op_instr.resize(lw.ops.len(), (ii as u32, ins.name()));
            let at = |m: String| {
                CudaError::Unsupported(format!("instruction {ii} ({}): {m}", ins.name()))
            };
            match ins {
                // A copy a backward launch wrote itself ([`own::copy_targets`]).
                Instr::Copy { .. } if lw.skip.contains(&ii) => {}
                Instr::Fill { dst, value } => {
                    let op = lw.ops.len();
                    lw.fill(dst, value)?;
                    if *value == FillValue::Zero {
                        lw.zeros.add(*dst, op);
                    }
                }
                Instr::Copy { src, dst } => lw.copy(&at, src, dst)?,
                Instr::Sum { dst, inputs } => lw.sum(dst, inputs)?,
                Instr::Merge { o, lse, inputs } => lw.merge(o, lse, inputs)?,
                Instr::Comm { tag, ops } => lw.comm(tag, ops)?,
                Instr::Wait { tag } => lw.wait(&at, tag)?,
                Instr::Attn { works, .. } => lw.attn(ii, works)?,
                Instr::AttnBwd { works, .. } => lw.attn_bwd(ii, works)?,
            }
            if !matches!(
                ins,
                Instr::Fill {
                    value: FillValue::Zero,
                    ..
                }
            ) {
                ins.for_each_region(|r| lw.zeros.forget(r));
            }
            // A run of merge instructions is one launch, issued after its last merge.
            if !matches!(prog.instrs.get(ii + 1), Some(Instr::Merge { .. })) {
                lw.flush_merges();
            }
            op_instr.resize(lw.ops.len(), (ii as u32, ins.name()));
            clock.lap(ins.name());
        }
        let Lowering {
            decls,
            bufs,
            mut stats,
            ops,
            mut staging,
            split_scratch,
            groups,
            dd_max,
            elided,
            mut arena,
            ..
        } = lw;
        // Fills a backward launch writes over in full ([`own`]).
        let (ops, mut op_instr) = if elided.is_empty() {
            (ops, op_instr)
        } else {
            op_instr.resize(ops.len(), (u32::MAX, "?"));
            ops.into_iter()
                .zip(op_instr)
                .enumerate()
                .filter(|(i, _)| !elided.contains(i))
                .map(|(_, x)| x)
                .unzip()
        };
        // Adjacent independent copies as one launch (`DCP_CUDA_COPY_BATCH`).
        let (ops, mut op_instr) = if copy_batch_from_env()? {
            op_instr.resize(ops.len(), (u32::MAX, "?"));
            batch_copies(ops, op_instr, &mut arena)
        } else {
            (ops, op_instr)
        };
        staging.extend(split_scratch);
        clock.lap("post");
        let arena_buf = gpu.alloc(arena.bytes.len())?;
        let dd = gpu.alloc((dd_max * 4) as usize)?;
        let n_groups = groups.len();
        let mut group_pre = Vec::with_capacity(n_groups);
        let mut group_done = Vec::with_capacity(n_groups);
        for _ in 0..n_groups {
            group_pre.push(gpu.event()?);
            group_done.push(gpu.event()?);
        }
        let group_go = if comm_first_enabled()? {
            let mut v = Vec::with_capacity(n_groups);
            for _ in 0..n_groups {
                v.push(gpu.event()?);
            }
            Some(v)
        } else {
            None
        };
        stats.launches = ops.iter().filter(|o| matches!(o, Op::Launch(_))).count();
        let mut peers: Vec<u32> = ops
            .iter()
            .flat_map(|o| match o {
                Op::Comm { peers, .. } => peers.clone(),
                _ => Vec::new(),
            })
            .collect();
        peers.sort_unstable();
        peers.dedup();
        let op_events = if op_timing_enabled()? {
            let mut v = Vec::with_capacity(ops.len());
            for _ in 0..ops.len() {
                v.push((gpu.event()?, gpu.event()?));
            }
            Some(v)
        } else {
            None
        };
        op_instr.resize(ops.len(), (u32::MAX, "?"));
        let (comm_end, start, end) = (gpu.event()?, gpu.event()?, gpu.event()?);
        clock.lap("events");
        // The arena's upload comes last: nothing after it can fail, so its source is never
        // dropped on an error path while the copy may be pending.
        // From page-locked memory: from pageable memory the driver may wait for the compute
        // stream while it stages the copy, i.e. for all work queued there (a plan prepared
        // during the previous step's backward waited ~1 s per step that way, session 18).
        let arena_host = if gpu.prepare_sync() {
            gpu.upload(&arena_buf, 0, &arena.bytes)?;
            None
        } else {
            let staged = gpu.stage(arena.bytes)?;
            // SAFETY: `staged` moves into the returned Prepared just below and stays there
            // until it is dropped, which its owners do only after its work has passed.
            unsafe { gpu.upload_async(&arena_buf, 0, &staged)? };
            Some(staged)
        };
        clock.lap("arena");
        clock.report(&format!(
            "{} ({} instructions, {} ops)",
            if backward { "bwd" } else { "fwd" },
            prog.instrs.len(),
            ops.len(),
        ));
        Ok(Prepared {
            backward,
            decls,
            bufs,
            arena: arena_buf,
            dd,
            _arena_host: arena_host,
            _staging: staging,
            group_pre,
            group_done,
            group_go,
            comm_end,
            start,
            end,
            peers,
            ops,
            stats,
            op_instr,
            op_events,
        })
    }

    /// The kernel of launch kind `k` in `ks`; an error for a chained launch when `ks` is not
    /// the `Kernels` the program was lowered with (its chain kernel was never compiled).
    fn kernel<'a>(&self, ks: &'a Kernels, k: K) -> Result<&'a Kernel> {
        Ok(match k {
            K::Fill => &ks.fill,
            K::Copy => &ks.copy,
            K::CopyMulti => &ks.copy_multi,
            K::CopyRaw16 => &ks.copy_raw16,
            K::Sum => &ks.sum,
            K::Merge => &ks.merge,
            K::BwdDd => &ks.bwd_dd,
            K::BwdDdFlat => &ks.bwd_dd_flat,
            K::Fwd => &ks.fwd,
            K::FwdHalf => ks
                .fwd_half
                .compiled("half-tile forward (DCP_CUDA_FWD_HALF)")?,
            K::FwdHalfShort => ks
                .fwd_half_short
                .compiled("short-task half-tile forward (DCP_CUDA_FWD_HALF_SHORT)")?,
            K::FwdShort => ks
                .fwd_short
                .compiled("short-task forward (DCP_CUDA_FWD_SHORT)")?,
            K::FwdOne => ks
                .fwd_one
                .compiled("one-step short-task forward (DCP_CUDA_FWD_SHORT_ONE)")?,
            K::Bwd => &ks.bwd,
            K::BwdChain => ks
                .bwd_chain
                .compiled("chained backward (DCP_CUDA_BWD_CHAIN)")?,
            K::BwdHalf => ks
                .bwd_half
                .compiled("half-step backward (DCP_CUDA_BWD_HALF)")?,
            K::BwdCluster => ks
                .bwd_cluster
                .compiled("clustered backward (DCP_CUDA_BWD_CLUSTER)")?,
            K::BwdClusterDsm => ks
                .bwd_cluster_dsm
                .compiled("clustered backward with D clusters (DCP_CUDA_BWD_CLUSTER_DSM)")?,
        })
    }

    fn launch(&self, gpu: &Gpu, ks: &Kernels, l: &Launch) -> Result<()> {
        let mut vals: Vec<[u8; 32]> = Vec::with_capacity(l.args.len());
        for a in &l.args {
            let mut b = [0u8; 32];
            match *a {
                Arg::U32(v) => b[..4].copy_from_slice(&v.to_ne_bytes()),
                Arg::U64(v) => b[..8].copy_from_slice(&v.to_ne_bytes()),
                Arg::F32(v) => b[..4].copy_from_slice(&v.to_ne_bytes()),
                Arg::Region(r) => b.copy_from_slice(as_bytes(std::slice::from_ref(&r))),
                Arg::Arena(off) => {
                    b[..8].copy_from_slice(&(self.arena.device_ptr() + off as u64).to_ne_bytes())
                }
                Arg::Dd => b[..8].copy_from_slice(&self.dd.device_ptr().to_ne_bytes()),
            }
            vals.push(b);
        }
        let mut params: Vec<*mut c_void> = vals
            .iter_mut()
            .map(|v| v.as_mut_ptr() as *mut c_void)
            .collect();
        // SAFETY: `Prepared::new` built every launch's argument list for its kernel's signature
        // (kernels/*.cu), with device addresses inside this program's buffers, staging buffers,
        // descriptor arena and D scratch, all owned by `self` and alive while it is; work
        // lists and regions were checked against the buffers' declared shapes when lowering.
        // Kernels launched with programmatic serialization (`Kernel::pdl`: the module declares
        // it) wait for the launches before them themselves (kernels/common.cuh `pdl_wait`).
        unsafe {
            gpu.launch(
                self.kernel(ks, l.k)?,
                l.grid,
                l.block,
                l.smem,
                Stream::Compute,
                &mut params,
            )
        }
    }

    /// Enqueues the whole program (start event, every op, end event). Returns at once.
    pub fn enqueue(&self, gpu: &Gpu, ks: &Kernels, comm: Option<&Nccl>) -> Result<()> {
        gpu.bind()?;
        gpu.record(&self.start, Stream::Compute)?;
        let mut any_comm = false;
        for (oi, op) in self.ops.iter().enumerate() {
            let evs = self.op_events.as_ref().map(|v| &v[oi]);
            // A Wait's span starts once the compute stream may go past its group.
            if let (Some((a, _)), false) = (evs, matches!(op, Op::Wait { .. })) {
                gpu.record(a, Stream::Compute)?;
            }
            match op {
                Op::Launch(l) => self.launch(gpu, ks, l)?,
                Op::Memcpy { dst, src, bytes } => {
                    // SAFETY: both ranges lie inside buffers allocated by this program (regions
                    // checked when lowering), alive while `self` is.
                    unsafe { gpu.copy_dtod_raw(*dst, *src, *bytes, Stream::Compute)? }
                }
                Op::Comm {
                    group,
                    packs,
                    p2p,
                    peers,
                    step,
                } => {
                    for l in packs {
                        self.launch(gpu, ks, l)?;
                    }
                    gpu.record(&self.group_pre[*group], Stream::Compute)?;
                    gpu.wait(Stream::Comm, &self.group_pre[*group])?;
                    if p2p.is_empty() {
                        // A group that moves nothing (a head-parallel plan on one device keeps
                        // every share local): no NCCL call, same event order for its wait.
                        gpu.record(&self.group_done[*group], Stream::Comm)?;
                        if let Some((_, b)) = evs {
                            gpu.record(b, Stream::Comm)?;
                        }
                        continue;
                    }
                    let comm = comm.ok_or_else(|| {
                        CudaError::Unsupported("the plan communicates but no NCCL communicator is open (world size 1?)".into())
                    })?;
                    let raw = comm.raw()?;
                    let stream = gpu.raw_stream(Stream::Comm);
                    if let Some(go) = &self.group_go {
                        // The compute stream goes on only once the comm stream has reached the
                        // NCCL kernel, so that the kernel is queued for SMs before the next
                        // (persistent) launch takes them all.
                        gpu.record(&go[*group], Stream::Comm)?;
                        gpu.wait(Stream::Compute, &go[*group])?;
                    }
                    // ncclGroupEnd may block (connection setup with a peer): bounded by the
                    // watchdog, which aborts the communicator if it stays stuck.
                    gpu.watchdog().guard(step, peers, || -> Result<()> {
                        nccl("ncclGroupStart", nres::group_start())?;
                        for p in p2p {
                            // SAFETY: pointers/sizes inside this program's buffers; comm stream
                            // valid.
                            let r = unsafe {
                                if p.send {
                                    nres::send(
                                        p.ptr as *const c_void,
                                        p.bytes,
                                        nsys::ncclDataType_t::ncclUint8,
                                        p.peer as i32,
                                        raw,
                                        stream as _,
                                    )
                                } else {
                                    nres::recv(
                                        p.ptr as *mut c_void,
                                        p.bytes,
                                        nsys::ncclDataType_t::ncclUint8,
                                        p.peer as i32,
                                        raw,
                                        stream as _,
                                    )
                                }
                            };
                            if let Err(e) = r {
                                let _ = nres::group_end();
                                return nccl(if p.send { "ncclSend" } else { "ncclRecv" }, Err(e));
                            }
                        }
                        nccl("ncclGroupEnd", nres::group_end())?;
                        Ok(())
                    })??;
                    gpu.record(&self.group_done[*group], Stream::Comm)?;
                    any_comm = true;
                }
                Op::Wait { group, unpacks } => {
                    gpu.wait(Stream::Compute, &self.group_done[*group])?;
                    if let Some((a, _)) = evs {
                        gpu.record(a, Stream::Compute)?;
                    }
                    for l in unpacks {
                        self.launch(gpu, ks, l)?;
                    }
                }
            }
            if let Some((_, b)) = evs {
                let s = match op {
                    Op::Comm { .. } => Stream::Comm,
                    _ => Stream::Compute,
                };
                gpu.record(b, s)?;
            }
        }
        if any_comm {
            gpu.record(&self.comm_end, Stream::Comm)?;
            gpu.wait(Stream::Compute, &self.comm_end)?;
        }
        gpu.record(&self.end, Stream::Compute)?;
        Ok(())
    }

    fn phase(&self) -> &'static str {
        if self.backward {
            "backward"
        } else {
            "forward"
        }
    }

    /// The ranks this program exchanges data with.
    pub fn peers(&self) -> &[u32] {
        &self.peers
    }

    /// Waits for the end event, polling NCCL's asynchronous error, within the watchdog's
    /// deadline (step `<phase> program<label>`, waiting for this program's peers); on an NCCL
    /// error, a deadline or a failed peer the communicator is aborted and the error returned.
    /// Returns the program's time in milliseconds.
    pub fn finish(&self, gpu: &Gpu, comm: Option<&Nccl>, label: &str) -> Result<f32> {
        let step = format!("{} program{label}", self.phase());
        crate::dist::wait_polling_peers(gpu.watchdog(), &step, &self.peers, comm, || {
            self.end.is_done()
        })?;
        self.start.elapsed_ms(&self.end)
    }

    /// Per-op times of the last completed run (after [`Prepared::finish`]); `None` unless the
    /// program was prepared with op timing on ([`op_timing_enabled`]).
    pub fn op_times(&self) -> Result<Option<Vec<OpTime>>> {
        let Some(evs) = &self.op_events else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(evs.len());
        for ((op, (a, b)), &(instr, instr_kind)) in self.ops.iter().zip(evs).zip(&self.op_instr) {
            let op = match op {
                Op::Launch(l) => format!("launch:{:?}", l.k),
                Op::Memcpy { .. } => "memcpy".to_string(),
                Op::Comm { .. } => "comm".to_string(),
                Op::Wait { .. } => "wait".to_string(),
            };
            out.push(OpTime {
                instr,
                instr_kind,
                op,
                start_ms: self.start.elapsed_ms(a)?,
                end_ms: self.start.elapsed_ms(b)?,
            });
        }
        Ok(Some(out))
    }

    /// Index of the buffer holding caller tensor `t`.
    pub fn io_index(&self, t: IoTensor) -> Option<usize> {
        self.decls.iter().position(|b| b.role == BufferRole::Io(t))
    }

    pub fn decl(&self, i: usize) -> &BufferDecl {
        &self.decls[i]
    }

    /// Device address of buffer `i` (for callers that hand it to other CUDA code).
    pub fn buffer_ptr(&self, i: usize) -> u64 {
        self.bufs[i].device_ptr()
    }

    /// Uploads a caller tensor (bytes in the buffer's dtype and layout).
    pub fn upload_io(&self, gpu: &Gpu, t: IoTensor, data: &[u8]) -> Result<()> {
        let i = self
            .io_index(t)
            .ok_or_else(|| CudaError::Unsupported(format!("program has no {t:?} buffer")))?;
        if data.len() as u64 != self.decls[i].bytes() {
            return Err(CudaError::Unsupported(format!(
                "{t:?}: {} bytes given, buffer holds {}",
                data.len(),
                self.decls[i].bytes()
            )));
        }
        gpu.upload(&self.bufs[i], 0, data)
    }

    pub fn download_io(&self, gpu: &Gpu, t: IoTensor) -> Result<Vec<u8>> {
        let i = self
            .io_index(t)
            .ok_or_else(|| CudaError::Unsupported(format!("program has no {t:?} buffer")))?;
        let mut out = vec![0u8; self.decls[i].bytes() as usize];
        gpu.download(&self.bufs[i], 0, &mut out)?;
        Ok(out)
    }

    /// Copies caller tensor `t` from `other` (same declared size), e.g. forward O → backward O.
    pub fn copy_io_from(&self, gpu: &Gpu, other: &Prepared, t: IoTensor) -> Result<()> {
        let (i, j) = match (self.io_index(t), other.io_index(t)) {
            (Some(i), Some(j)) => (i, j),
            _ => {
                return Err(CudaError::Unsupported(format!(
                    "{t:?} missing in a program"
                )))
            }
        };
        let bytes = self.decls[i].bytes() as usize;
        if bytes != other.decls[j].bytes() as usize {
            return Err(CudaError::Unsupported(format!("{t:?} sizes differ")));
        }
        gpu.copy_buf(&self.bufs[i], &other.bufs[j])
    }

    /// Copies buffer `i` whole between caller memory and this program (`into`: caller →
    /// buffer) on the compute stream: a backward's saved buffer in, or the forward buffer it
    /// names out ([`BufferRole::Saved`]).
    ///
    /// # Safety
    /// `ptr` must address `bytes` bytes of device memory of this GPU that stay valid until the
    /// compute stream has passed this copy.
    pub unsafe fn copy_buffer(
        &self,
        gpu: &Gpu,
        i: usize,
        ptr: u64,
        bytes: usize,
        into: bool,
    ) -> Result<()> {
        let Some(decl) = self.decls.get(i) else {
            return Err(CudaError::Unsupported(format!(
                "buffer {i}: the {} program declares {}",
                self.phase(),
                self.decls.len()
            )));
        };
        let want = decl.bytes() as usize;
        if bytes != want {
            return Err(CudaError::Unsupported(format!(
                "buffer {i} `{}`: the tensor has {bytes} bytes, the buffer {want}",
                decl.name
            )));
        }
        if want == 0 {
            return Ok(());
        }
        let buf = self.bufs[i].device_ptr();
        let (dst, src) = if into { (buf, ptr) } else { (ptr, buf) };
        // SAFETY: both ranges hold `want` bytes (checked above; caller's contract).
        unsafe { gpu.copy_dtod_raw(dst, src, want, Stream::Compute) }
    }

    /// Fills every buffer except the program's inputs with 0xFF bytes (NaN in bf16/f32), so a
    /// check finds any output element the program failed to write.
    pub fn poison(&self, gpu: &Gpu) -> Result<()> {
        gpu.bind()?;
        for (b, d) in self.bufs.iter().zip(&self.decls) {
            let input = matches!(d.role, BufferRole::Io(t) if t.is_input(self.backward))
                || matches!(d.role, BufferRole::Saved { .. });
            if !input {
                gpu.memset(b, 0xFF)?;
            }
        }
        gpu.sync()
    }
}

#[cfg(test)]
#[path = "lower_prof.rs"]
mod lower_prof;

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
