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
    fwd_half_short_with, fwd_half_with, fwd_halfbits_with, fwd_short_omap_with,
    fwd_short_one_min_with, fwd_short_one_with, fwd_short_pp_with, fwd_short_rel_with,
    fwd_short_variant_defs, fwd_short_with, l2_budget_with, l2_tail_with, op_timing_with,
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

/// The kernels for one model shape.
pub struct Kernels {
    pub cfg: TileConfig,
    pub head_dim: u32,
    pub elem: DType,
    fill: Kernel,
    copy: Kernel,
    copy_multi: Kernel,
    copy_raw16: Kernel,
    sum: Kernel,
    merge: Kernel,
    bwd_dd: Kernel,
    pub fwd: Kernel,
    pub bwd: Kernel,
    /// The sm90 backward with chains compiled in (`BWD_CHAIN`; `DCP_CUDA_BWD_CHAIN` on, head
    /// dim 128), compiled when a launch first chains. Its shared memory: `bwd_smem`, plus the O
    /// half rows of its D steps where it computes D (`chain_dd`).
    bwd_chain: OnDemand,
    /// The sm90 backward with half steps compiled in (`BWD_HALF`, opt-in `DCP_CUDA_BWD_HALF`, head
    /// dim 128), compiled when a launch first takes it: launches without chains where at least
    /// `bwd_half_min` of the steps leave one consumer warpgroup without a key.
    bwd_half: OnDemand,
    bwd_half_min: f64,
    /// The sm90 backward on 2-CTA clusters for chained launches of works two kv tiles wide
    /// ([`cluster`], `DCP_CUDA_BWD_CLUSTER`; kernels/attn_bwd_cluster_sm90.cu), compiled when a
    /// launch first clusters.
    bwd_cluster: OnDemand,
    /// The sm90 forward with half tiles compiled in (`FWD_HALF`, `DCP_CUDA_FWD_HALF`), compiled
    /// when a launch first has half tiles.
    fwd_half: OnDemand,
    /// The half-tile forward for launches of short tasks (`FWD_HALF` with `FWD_LATEREL 3`,
    /// `DCP_CUDA_FWD_HALF_SHORT`): launches with half tiles whose tasks average at most
    /// `fwd_half_short_max` tiles take it, compiled when such a launch first runs.
    fwd_half_short: OnDemand,
    fwd_half_short_max: u32,
    /// `DCP_CUDA_FWD_HALFBITS`: the half-tile kernel is compiled with `FWD_HALFBITS` and the host
    /// writes each half tile's per-warpgroup halves into its tile word ([`fwd_halfbits_with`]).
    fwd_halfbits: bool,
    /// The sm90 forward for launches of short tasks (`FWD_LATEREL 1`, `DCP_CUDA_FWD_SHORT`):
    /// launches without half tiles whose tasks average at most `fwd_short_max` tiles take it.
    fwd_short: OnDemand,
    fwd_short_max: u32,
    /// `DCP_CUDA_FWD_SHORT_OMAP`: the short-task kernel's launches get O tensor maps (the
    /// epilogue's tensor store); without, the kernel's generic O store ([`fwd_short_omap_with`]).
    fwd_short_omap: bool,
    /// `DCP_CUDA_FWD_SHORT_ONE`: the short-task kernel compiled with `FWD_ONE`, whose launches'
    /// tasks of two full tiles run as one step ([`WorkLists::mark_fwd_one`]). A short-task
    /// launch takes it when at least `fwd_one_min` % of its tasks are such
    /// (`DCP_CUDA_FWD_SHORT_ONE_MIN`), the plain short-task kernel otherwise.
    fwd_one: OnDemand,
    fwd_one_min: u32,
    /// Byte budgets of the forward's and the backward's L2 windows ([`WorkLists::order_for_l2`],
    /// `DCP_CUDA_FWD_L2_MB`, `DCP_CUDA_BWD_L2_MB`; 0: off), each with the share of the tiles
    /// run as one final window (`DCP_CUDA_FWD_L2_TAIL`, `DCP_CUDA_BWD_L2_TAIL`, %).
    fwd_l2: (u64, u32),
    bwd_l2: (u64, u32),
    fwd_smem: u32,
    bwd_smem: u32,
    /// The forward family loaded, its query rows and keys per tile and threads per CTA.
    pub fwd_family: KernelFamily,
    fwd_br: u32,
    fwd_bc: u32,
    fwd_block: u32,
    /// The backward family loaded, its keys per CTA, query rows per step, threads per CTA.
    pub bwd_family: KernelFamily,
    bwd_bc: u32,
    bwd_br: u32,
    bwd_block: u32,
    /// Owned gradient rows of the sm90 backward ([`own`], `DCP_CUDA_BWD_OWN`); off for the
    /// mma.sync family.
    pub own: OwnMode,
    /// Gradients the sm90 backward converts into the plan's copy destinations itself ([`own`],
    /// `DCP_CUDA_BWD_CONVERT`); neither for the mma.sync family.
    pub convert: ConvertMode,
    /// The sm90 backward's D pre-pass zeroes its works' dQ rows in place of the plan's fills
    /// ([`own::dq_fills_to_fuse`], `DCP_CUDA_BWD_FUSE_FILL`); off for the mma.sync family.
    pub fuse_fill: bool,
    /// The sm90 backward's D pre-pass also zeroes the launch's dK/dV rows in place of their zero
    /// fills ([`own::dkv_fills_to_zero`], `DCP_CUDA_BWD_DD_ZERO`); off for the mma.sync family.
    pub dd_zero: bool,
    /// Work-resident backward tasks for launches of many short works ([`own::chain_launch`],
    /// `DCP_CUDA_BWD_CHAIN`); off for the mma.sync family and head dims other than 128.
    pub chain: ChainMode,
    /// The order and size of the backward's tasks ([`order`], `DCP_CUDA_BWD_ORDER`).
    pub bwd_order: TaskOrder,
    /// Print each backward launch's piece-size model to stderr (`DCP_CUDA_BWD_PIECE_LOG=1`).
    pub piece_log: bool,
    /// The chain kernel computes D = rowsum(dO * O) at each q tile's first visit and chained
    /// launches drop their D pre-pass ([`own::chain_dd_launch`], `DCP_CUDA_BWD_CHAIN_DD`);
    /// only where chains are on.
    pub chain_dd: bool,
}

/// NVRTC defines (name, value) of a kernel build.
type Defines = Vec<(String, String)>;

/// A kernel variant (extra defines) compiled on first use and run only by the launches that
/// need it: compiled into the main kernel, such code slowed every other shape (the chains
/// 3-5 %, the half tiles up to 7 %; bench/results/kernels-2026-11-29-kw11, -kbw11c).
struct OnDemand {
    /// Source, entry point and defines; `None` where the variant is off.
    build: Option<(Source, &'static str, Defines)>,
    /// Its dynamic shared memory.
    smem: u32,
    kernel: std::sync::OnceLock<Kernel>,
}

impl OnDemand {
    fn new(src: Source, name: &'static str, defs: Defines, smem: u32) -> Self {
        OnDemand {
            build: Some((src, name, defs)),
            smem,
            kernel: std::sync::OnceLock::new(),
        }
    }

    fn off() -> Self {
        OnDemand {
            build: None,
            smem: 0,
            kernel: std::sync::OnceLock::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.build.is_some()
    }

    /// The kernel, compiled at the first call; `None` where the variant is off.
    fn get_or_compile(&self, gpu: &Gpu) -> Result<Option<&Kernel>> {
        let Some((src, name, defs)) = &self.build else {
            return Ok(None);
        };
        if self.kernel.get().is_none() {
            let k = gpu.kernel(*src, defs, name)?;
            gpu.set_smem(&k, self.smem as usize)?;
            // A racing caller may have set it first: the same module either way.
            let _ = self.kernel.set(k);
        }
        Ok(self.kernel.get())
    }

    /// The compiled kernel for a launch lowered to it; an error naming `what` where it was never
    /// compiled (a program enqueued with other `Kernels` than it was prepared with).
    fn compiled(&self, what: &str) -> Result<&Kernel> {
        self.kernel.get().ok_or_else(|| {
            CudaError::Unsupported(format!(
                "a {what} launch was enqueued with kernels that never compiled its kernel: \
                 enqueue a program with the Kernels it was prepared with"
            ))
        })
    }
}

impl Kernels {
    pub fn load(gpu: &Gpu, model: &ModelShape, mut cfg: TileConfig) -> Result<Self> {
        let d = model.head_dim;
        if d > 128 {
            // Register file (forward) and shared memory (backward, Q/dO double buffered).
            cfg.fwd_mt = 1;
            cfg.bwd_br = cfg.bwd_br.min(32);
        }
        if !d.is_multiple_of(16) || d == 0 || d > 256 {
            return Err(CudaError::Unsupported(format!(
                "head dim {d}: the attention kernels need a multiple of 16 up to 256"
            )));
        }
        let mut defs = vec![
            ("HEAD_DIM".to_string(), d.to_string()),
            ("FWD_WARPS".to_string(), cfg.fwd_warps.to_string()),
            ("FWD_MT".to_string(), cfg.fwd_mt.to_string()),
            ("BWD_WARPS".to_string(), cfg.bwd_warps.to_string()),
            ("BWD_BR".to_string(), cfg.bwd_br.to_string()),
        ];
        match model.dtype {
            DType::Bf16 => {}
            DType::F16 => defs.push(("ELEM_F16".into(), "1".into())),
            DType::F32 => {
                return Err(CudaError::Unsupported(
                    "fp32 Q/K/V: the tensor-core kernels take bf16 or fp16 inputs".into(),
                ))
            }
        }
        let choice = match std::env::var("DCP_CUDA_FAMILY") {
            Ok(v) => FamilyChoice::parse(&v)?,
            Err(_) => cfg.family,
        };
        let fwd_family = choose_family(choice, gpu.cc, d, SM90_FWD_DEFAULT)?;
        let bwd_family = choose_family(choice, gpu.cc, d, SM90_BWD_DEFAULT)?;
        let own = match bwd_family {
            KernelFamily::Sm90Wgmma => OwnMode::from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => OwnMode::Off,
        };
        let fuse_fill = match bwd_family {
            KernelFamily::Sm90Wgmma => own::fuse_fill_from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => false,
        };
        let dd_zero = match bwd_family {
            KernelFamily::Sm90Wgmma => own::dd_zero_from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => false,
        };
        let chain = match bwd_family {
            KernelFamily::Sm90Wgmma if d == 128 => {
                ChainMode::from_env().map_err(CudaError::Unsupported)?
            }
            _ => ChainMode::Off,
        };
        let bwd_order = TaskOrder::from_env().map_err(CudaError::Unsupported)?;
        let piece_log = crate::switch::from_env("DCP_CUDA_BWD_PIECE_LOG", false)
            .map_err(CudaError::Unsupported)?;
        let chain_dd = match bwd_family {
            KernelFamily::Sm90Wgmma if d == 128 => {
                own::chain_dd_from_env().map_err(CudaError::Unsupported)? && chain != ChainMode::Off
            }
            _ => false,
        };
        let convert = match bwd_family {
            KernelFamily::Sm90Wgmma => ConvertMode::from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => ConvertMode {
                dq: false,
                dkv: false,
            },
        };
        let u = |n: &str| gpu.kernel(Source::Util, &[], n);
        let lds = d + 8;
        // The defines of every sm90 forward build (plain, half-tile, short): `defs` plus the
        // forward's shared layout, which the backward kernels do not take.
        let mut fwd_defs = defs.clone();
        let (fwd_br, fwd_bc, fwd_block, fwd_smem, fwd) = match fwd_family {
            KernelFamily::MmaSync => {
                let br = 16 * cfg.fwd_mt * cfg.fwd_warps;
                let smem = (br + 4 * FWD_BC) * lds * 2 + 2 * FWD_BC * 8 + br * 8;
                let k = gpu.kernel(Source::AttnFwd, &defs, "dcp_attn_fwd")?;
                (br, FWD_BC, 32 * cfg.fwd_warps, smem, k)
            }
            KernelFamily::Sm90Wgmma => {
                let (ns, nq) =
                    fwd_stages_with(std::env::var("DCP_CUDA_FWD_STAGES").ok().as_deref(), d)?;
                let smem = sm90_fwd_smem(d, ns, nq);
                if (ns, nq) != (2, 2) {
                    fwd_defs.push(("FWD_NS".into(), ns.to_string()));
                    fwd_defs.push(("FWD_NQ".into(), nq.to_string()));
                }
                let k = gpu.kernel(Source::AttnFwdSm90, &fwd_defs, "dcp_attn_fwd_sm90")?;
                (SM90_BR, SM90_BC, SM90_THREADS, smem, k)
            }
        };
        // Half tiles in a forward kernel of their own, compiled when the first launch has half
        // tiles and used by those launches only: compiled into the one kernel, their code cost
        // works1000 -7 % and lambda -5 % with no half tile run (bench/results/
        // kernels-2026-11-29-kbw11c).
        let fwd_halfbits =
            fwd_halfbits_with(std::env::var("DCP_CUDA_FWD_HALFBITS").ok().as_deref(), d)?;
        let mut half_defs = fwd_defs.clone();
        half_defs.push(("FWD_HALF".into(), "1".into()));
        if fwd_halfbits {
            half_defs.push(("FWD_HALFBITS".into(), "1".into()));
        }
        let fwd_half = match fwd_family {
            KernelFamily::Sm90Wgmma
                if fwd_half_with(std::env::var("DCP_CUDA_FWD_HALF").ok().as_deref(), d)? =>
            {
                let defs = half_defs.clone();
                OnDemand::new(Source::AttnFwdSm90, "dcp_attn_fwd_sm90", defs, fwd_smem)
            }
            _ => OnDemand::off(),
        };
        // The same with the short-task kernel's Q release (`FWD_LATEREL 3`), for launches with
        // half tiles whose tasks are short: causal documents of 256-1 024 tokens +2.0..+2.4 %,
        // where the long-task launches lose 1-2 % under it (bench/results/kernels-2026-11-30-s29,
        // call 6), so they keep the half kernel's own.
        let fwd_half_short_max = if fwd_half.enabled() {
            fwd_half_short_with(std::env::var("DCP_CUDA_FWD_HALF_SHORT").ok().as_deref())?
        } else {
            0
        };
        let fwd_half_short = if fwd_half_short_max > 0 {
            let mut defs = half_defs;
            defs.push(("FWD_LATEREL".into(), "3".into()));
            OnDemand::new(Source::AttnFwdSm90, "dcp_attn_fwd_sm90", defs, fwd_smem)
        } else {
            OnDemand::off()
        };
        // Launches of short tasks (no half tiles) in a kernel of their own that releases the Q
        // buffer late (`FWD_LATEREL 1`: the O-storing thread does not wait for the tensor store's
        // read before the next task): compiled into the one kernel, its check in every tile step
        // cost the long shapes (lambda -6 %, D 64 causal -9 %: kernels-2026-11-29-kbw11).
        let fwd_short_max = match fwd_family {
            KernelFamily::Sm90Wgmma => {
                fwd_short_with(std::env::var("DCP_CUDA_FWD_SHORT").ok().as_deref(), d)?
            }
            KernelFamily::MmaSync => 0,
        };
        // One step for the short kernel's 256-key tasks (`FWD_ONE`, a kernel of its own; default
        // on at D 128, bench/results/kernels-2026-11-30-s27, and at D 64, gpu-x1-2026-12-01s34).
        let fwd_short_one = fwd_short_max > 0
            && fwd_short_one_with(std::env::var("DCP_CUDA_FWD_SHORT_ONE").ok().as_deref(), d)?;
        let fwd_one_min =
            fwd_short_one_min_with(std::env::var("DCP_CUDA_FWD_SHORT_ONE_MIN").ok().as_deref())?;
        let fwd_short_defs = if fwd_short_max > 0 {
            let mut defs = fwd_defs.clone();
            let rel =
                fwd_short_rel_with(std::env::var("DCP_CUDA_FWD_SHORT_LATEREL").ok().as_deref())?;
            defs.push(("FWD_LATEREL".into(), rel.to_string()));
            defs.extend(
                fwd_short_variant_defs(std::env::var("DCP_CUDA_FWD_SHORT_DEFS").ok().as_deref())
                    .map_err(CudaError::Unsupported)?,
            );
            // The one-time stagger per task (`FWD_PP`) in this kernel alone, opt-in
            // (kernels-2026-11-29-kf20): at D 128 only (its go points need `FWD_SPLIT 2`).
            if d == 128 {
                let pp = fwd_short_pp_with(std::env::var("DCP_CUDA_FWD_SHORT_PP").ok().as_deref())?;
                if let Some((min, at)) = pp {
                    defs.push(("FWD_PP".into(), "1".into()));
                    defs.push(("FWD_PP_MIN".into(), min.to_string()));
                    if let Some(at) = at {
                        defs.push(("FWD_PP_AT".into(), at.to_string()));
                    }
                }
            }
            Some(defs)
        } else {
            None
        };
        let on_demand =
            |defs: Defines| OnDemand::new(Source::AttnFwdSm90, "dcp_attn_fwd_sm90", defs, fwd_smem);
        let fwd_one = match &fwd_short_defs {
            Some(defs) if fwd_short_one => {
                let mut defs = defs.clone();
                defs.push(("FWD_ONE".into(), "1".into()));
                on_demand(defs)
            }
            _ => OnDemand::off(),
        };
        let fwd_short = fwd_short_defs.map_or_else(OnDemand::off, on_demand);
        let fwd_short_omap =
            fwd_short_omap_with(std::env::var("DCP_CUDA_FWD_SHORT_OMAP").ok().as_deref())?;
        // L2 windows of an eighth of the L2; a final window of the last 10 % of the tiles in
        // the forward only (bench/results/kernels-2026-11-30-s30).
        let l2_default = gpu.l2_bytes / L2_WINDOW_DIV;
        let l2 = |dir: &str, tail: u32| -> Result<(u64, u32)> {
            let (mb, pct) = (
                format!("DCP_CUDA_{dir}_L2_MB"),
                format!("DCP_CUDA_{dir}_L2_TAIL"),
            );
            Ok((
                l2_budget_with(&mb, std::env::var(&mb).ok().as_deref(), l2_default)?,
                l2_tail_with(&pct, std::env::var(&pct).ok().as_deref(), tail)?,
            ))
        };
        let (fwd_l2, bwd_l2) = (l2("FWD", 10)?, l2("BWD", 0)?);
        let mut bwd_chain = OnDemand::off();
        let mut bwd_half = OnDemand::off();
        let bwd_half_min = match bwd_family {
            KernelFamily::Sm90Wgmma if d == 128 => {
                bwd_half_with(std::env::var("DCP_CUDA_BWD_HALF").ok().as_deref())?
            }
            _ => 0.0,
        };
        let mut bwd_cluster = OnDemand::off();
        let (bwd_bc, bwd_br, bwd_block, bwd_smem, bwd) = match bwd_family {
            KernelFamily::MmaSync => {
                let bc = 16 * cfg.bwd_warps;
                let br = cfg.bwd_br;
                // K, V; Q, dO double buffered; dS; LSE, D, range spans double buffered; key
                // pointers.
                let smem = (2 * bc + 4 * br) * lds * 2 + br * (bc + 8) * 2 + 2 * br * 16 + bc * 20;
                let k = gpu.kernel(Source::AttnBwd, &defs, "dcp_attn_bwd")?;
                (bc, br, 32 * cfg.bwd_warps, smem, k)
            }
            KernelFamily::Sm90Wgmma => {
                let (bc, br) = (SM90_BWD_BC, SM90_BWD_BR);
                let smem = sm90_bwd_smem(d);
                let smem =
                    bwd_smem_override(smem, std::env::var("DCP_CUDA_BWD_SMEM").ok().as_deref())?;
                // The dQ conversion's code only where it may run (kernels/attn_bwd_sm90.cu
                // `BWD_DQ_CONV`: compiled in, it cost ~1 % on causal 128K).
                let mut defs = defs.clone();
                if convert.dq && d == 128 {
                    defs.push(("BWD_DQ_CONV".into(), "1".into()));
                }
                let k = gpu.kernel(Source::AttnBwdSm90, &defs, "dcp_attn_bwd_sm90")?;
                // Half steps (`BWD_HALF`) in a kernel of their own: their branches move the
                // whole step's schedule (attn_bwd_sm90.cu).
                if bwd_half_min > 0.0 {
                    let mut defs = defs.clone();
                    defs.push(("BWD_HALF".into(), "1".into()));
                    bwd_half = OnDemand::new(Source::AttnBwdSm90, "dcp_attn_bwd_sm90", defs, smem);
                }
                // Clusters (a kernel file of their own, the main kernel's layout), where chains
                // are on.
                if chain != ChainMode::Off && cluster::from_env().map_err(CudaError::Unsupported)? {
                    bwd_cluster = OnDemand::new(
                        Source::AttnBwdClusterSm90,
                        "dcp_attn_bwd_cluster_sm90",
                        defs.clone(),
                        smem + cluster::SMEM_EXTRA,
                    );
                }
                // Chains (`BWD_CHAIN`) in a kernel of their own, compiled when the first launch
                // chains ([`OnDemand`]) and used by chained launches only:
                // compiled into the one kernel, their code cost 3-5 % on every other shape
                // (bench/results/kernels-2026-11-29-kw11).
                if chain != ChainMode::Off {
                    defs.push(("BWD_CHAIN".into(), "1".into()));
                    // Measurement knob: variants of the chain kernel (A/B in one binary).
                    defs.extend(
                        chain_variant_defs(
                            std::env::var("DCP_CUDA_BWD_CHAIN_DEFS").ok().as_deref(),
                        )
                        .map_err(CudaError::Unsupported)?,
                    );
                    let mut chain_smem = smem;
                    if chain_dd {
                        // D steps' O half rows (`BWD_CHAIN_DD`, `sO`).
                        defs.push(("BWD_CHAIN_DD".into(), "1".into()));
                        chain_smem += SM90_BWD_O_STAGE;
                    }
                    bwd_chain =
                        OnDemand::new(Source::AttnBwdSm90, "dcp_attn_bwd_sm90", defs, chain_smem);
                }
                // The plain D 128 build's staging and counters (`SM90_BWD_SCRATCH`; not with the
                // dQ conversion compiled in).
                let plain_smem = if d == 128 && !convert.dq {
                    smem.max(sm90_bwd_smem(d) + SM90_BWD_SCRATCH)
                } else {
                    smem
                };
                (bc, br, SM90_THREADS, plain_smem, k)
            }
        };
        gpu.set_smem(&fwd, fwd_smem as usize)?;
        gpu.set_smem(&bwd, bwd_smem as usize)?;
        Ok(Kernels {
            cfg,
            head_dim: d,
            elem: model.dtype,
            fill: u("dcp_fill")?,
            copy: u("dcp_copy")?,
            copy_multi: u("dcp_copy_multi")?,
            copy_raw16: u("dcp_copy_raw16")?,
            sum: u("dcp_sum")?,
            merge: u("dcp_merge")?,
            bwd_dd: u("dcp_bwd_dd")?,
            fwd,
            bwd,
            bwd_chain,
            bwd_half,
            bwd_half_min,
            bwd_cluster,
            fwd_half,
            fwd_half_short,
            fwd_half_short_max,
            fwd_halfbits,
            fwd_short,
            fwd_short_max,
            fwd_short_omap,
            fwd_one,
            fwd_one_min,
            fwd_l2,
            bwd_l2,
            fwd_smem,
            bwd_smem,
            fwd_family,
            fwd_br,
            fwd_bc,
            fwd_block,
            bwd_family,
            bwd_bc,
            bwd_br,
            bwd_block,
            own,
            convert,
            fuse_fill,
            dd_zero,
            chain,
            bwd_order,
            piece_log,
            chain_dd,
        })
    }

    pub fn fwd_br(&self) -> u32 {
        self.fwd_br
    }

    /// Which kernels run, e.g. `fwd sm90-wgmma, bwd mma.sync`.
    pub fn family(&self) -> String {
        format!(
            "fwd {}, bwd {}",
            self.fwd_family.name(),
            self.bwd_family.name()
        )
    }
    pub fn bwd_bc(&self) -> u32 {
        self.bwd_bc
    }
}

/// A kernel argument.
#[derive(Debug, Clone, Copy)]
enum Arg {
    U32(u32),
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

/// The descriptor arrays of one attention launch (forward or backward), built work by work:
/// works, KV segments, tasks, tile lists, and every work's per-row ranges as one CSR.
#[derive(Default)]
struct WorkLists {
    works: Vec<WorkDesc>,
    segs: Vec<KvSeg>,
    tasks: Vec<TaskDesc>,
    tiles: Vec<u32>,
    row_ptr: Vec<u32>,
    ranges: Vec<[u32; 2]>,
    /// sm90 launches: per entry of `tiles`, the index of its precomputed element mask in
    /// `masks` ([`tilemask::NO_MASK`]: full tile, or the kernel evaluates the ranges), and the
    /// masks ([`tilemask`]). Empty for the mma.sync kernels, which take no masks.
    tmask: Vec<u32>,
    masks: Vec<u32>,
    mask_mode: TileMasks,
    // Scratch of `classify` and of the masks.
    touched: Vec<i32>,
    full: Vec<i32>,
    out: Vec<u32>,
    mask_rows: Vec<u128>,
    /// The distinct masks built so far: equal masks are built and uploaded once.
    mask_seen: tilemask::Distinct,
    /// The tasks are in launch order already (chains, [`own::order_chains`]): not sorted.
    keep_order: bool,
    /// sm90 forward, `DCP_CUDA_FWD_HALF` on: per entry of `tiles`, whether it is a half tile
    /// ([`tilemask::fwd_half`]); [`Self::order_fwd_half`] puts them first in each task's list.
    half_mode: bool,
    half: Vec<bool>,
    /// With `half_mode` and `DCP_CUDA_FWD_HALFBITS`: per entry of `tiles`, its
    /// [`tilemask::fwd_half_bits`], which [`Self::order_fwd_half`] writes into the half tiles'
    /// words (bits 27-30).
    half_bits: bool,
    hbits: Vec<u32>,
}

/// Whether a work whose tiles are `partial` of `total` partial gets precomputed tile masks: the
/// masks save the kernels' per-element range tests on partial tiles (causal-blockwise −8 %
/// backward), but cost ~2 µs of host time each per new plan, which a work with few partial
/// tiles (one long causal sequence: 0.2 %) does not win back.
fn worth_masks(partial: usize, total: usize) -> bool {
    partial > 0 && partial * 32 >= total
}

/// A backward launch's q tiles of one kv tile before tasks are cut: (work, kv tile, KV heads, q
/// tile words, and for sm90 their mask indices).
type KvTileList = (u32, u32, u32, Vec<u32>, Vec<u32>);

/// Whether and in which layout a launch's partial tiles get precomputed masks ([`tilemask`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TileMasks {
    /// No mask indices at all (mma.sync kernels).
    #[default]
    None,
    /// sm90 kernels with every tile at [`tilemask::NO_MASK`] (`DCP_CUDA_TILE_MASKS=0`: the
    /// kernels evaluate the ranges, for A/B runs and tests of that path).
    Off,
    Fwd,
    Bwd,
}

impl TileMasks {
    /// The mode of an sm90 launch (`fwd`: forward layout), honouring `DCP_CUDA_TILE_MASKS`.
    fn sm90(fwd: bool) -> Result<Self> {
        Self::sm90_with(fwd, std::env::var("DCP_CUDA_TILE_MASKS").ok().as_deref())
    }

    /// [`TileMasks::sm90`] on the value of `DCP_CUDA_TILE_MASKS`: unset, empty or `1` builds the
    /// masks, `0` turns them off, anything else is an error naming the value.
    fn sm90_with(fwd: bool, v: Option<&str>) -> Result<Self> {
        match v.map(str::trim) {
            None | Some("") | Some("1") => Ok(if fwd { TileMasks::Fwd } else { TileMasks::Bwd }),
            Some("0") => Ok(TileMasks::Off),
            Some(o) => Err(CudaError::Unsupported(format!(
                "DCP_CUDA_TILE_MASKS={o}: expected 0 or 1"
            ))),
        }
    }
}

/// `TaskDesc.pad` of a forward task that the `FWD_ONE` kernel runs as one step (`FWD_ONE_TASK`
/// in `attn_fwd_sm90.cu`).
const FWD_ONE_TASK: u32 = 1;

/// Per unit (`unit[w]`: work `w`'s unit, numbered from 0), its window for
/// [`WorkLists::order_for_l2`]: units in order of their longest task (descending, stable),
/// consecutive ones sharing a window while the `bytes` of their works sum to at most `budget`.
/// The last units, whose tiles sum to at most `tail_pct` % of the launch's, share one final
/// window, run longest first: with every window in turn, the grid's last round would wait for
/// the longest task of the last window (a batch of equal causal documents, one per window,
/// modelled as list scheduling: ~3 % longer, ~1 % with a tail of 10 %).
fn l2_windows(
    works: &[WorkDesc],
    unit: &[u32],
    tasks: &[TaskDesc],
    budget: u64,
    tail_pct: u32,
    bytes: impl Fn(&WorkDesc) -> u64,
) -> Vec<u32> {
    let n = unit.iter().map(|&u| u as usize + 1).max().unwrap_or(0);
    let mut longest = vec![0u32; n];
    let mut tiles = vec![0u64; n];
    let mut size = vec![0u64; n];
    for t in tasks {
        let u = unit[t.work as usize] as usize;
        longest[u] = longest[u].max(t.tiles_n);
        tiles[u] += t.tiles_n as u64;
    }
    for (w, &u) in works.iter().zip(unit) {
        size[u as usize] += bytes(w);
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&u| std::cmp::Reverse(longest[u]));
    let total: u64 = tiles.iter().sum();
    let (mut tail, mut acc) = (order.len(), 0u64);
    while tail > 0 && (acc + tiles[order[tail - 1]]) * 100 <= total * tail_pct as u64 {
        tail -= 1;
        acc += tiles[order[tail]];
    }
    let mut window = vec![0u32; n];
    let (mut win, mut acc) = (0u32, 0u64);
    for (i, &u) in order.iter().enumerate() {
        let b = size[u];
        let cut = if i < tail {
            acc > 0 && acc + b > budget
        } else {
            i == tail && i > 0
        };
        if cut {
            win += 1;
            acc = 0;
        }
        window[u] = win;
        acc += b;
    }
    window
}

/// Per work, its unit for [`WorkLists::order_for_l2`] (numbered from 0 in order of first
/// work): works whose KV segments overlap in memory (`segs[kv_first..][..kv_count]`, rows of
/// `stride` 16-bit elements) share one. dcp's own placement of one sequence reads each KV block
/// in many works; separate documents share none.
fn kv_units(works: &[WorkDesc], segs: &[KvSeg]) -> Vec<u32> {
    let mut parent: Vec<usize> = (0..works.len()).collect();
    fn root(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (w, wd) in works.iter().enumerate() {
        let r = wd.kv_first as usize..(wd.kv_first + wd.kv_count) as usize;
        for sg in &segs[r] {
            let end = sg.k + sg.len as u64 * sg.stride as u64 * 2;
            spans.push((sg.k, end, w));
        }
    }
    spans.sort_unstable();
    let mut cur: Option<(u64, usize)> = None;
    for (start, end, w) in spans {
        match cur {
            Some((e, r)) if start < e => {
                let (a, b) = (root(&mut parent, r), root(&mut parent, w));
                parent[b] = a;
                cur = Some((e.max(end), r));
            }
            _ => cur = Some((end, w)),
        }
    }
    let mut id = vec![u32::MAX; works.len()];
    let mut next = 0u32;
    (0..works.len())
        .map(|w| {
            let r = root(&mut parent, w);
            if id[r] == u32::MAX {
                id[r] = next;
                next += 1;
            }
            id[r]
        })
        .collect()
}

/// [`WorkLists::order_for_l2`] reorders a launch only where its works with tasks number more
/// than the grid's CTAs divided by this: under plain longest-first each work then gets fewer
/// than about 12 CTAs at a time (62 causal documents of 4 096 tokens on 132 SMs: 2), which
/// sweep its q tiles apart instead of together.
const L2_SPREAD: u64 = 12;

/// The default L2 window: the card's L2 size divided by this.
const L2_WINDOW_DIV: u64 = 8;

/// Whether `one` tasks of `n` reach `min_pct` % (`DCP_CUDA_FWD_SHORT_ONE_MIN`; 0: always).
fn one_share(one: usize, n: usize, min_pct: u32) -> bool {
    min_pct == 0 || (one > 0 && one as u64 * 100 >= min_pct as u64 * n as u64)
}

/// Whether a forward launch's tasks average at most `max` tiles (none: no).
fn short_tasks(tasks: &[TaskDesc], max: u32) -> bool {
    let tiles: u64 = tasks.iter().map(|t| t.tiles_n as u64).sum();
    max > 0 && !tasks.is_empty() && tiles <= max as u64 * tasks.len() as u64
}

impl WorkLists {
    /// `FWD_ONE` (the one-step short-task forward, D 64 and 128): flags each task of exactly two full kv
    /// tiles whose work has a single KV region loaded by TMA (`WorkDesc::flags` bit `TMA_KV`, set
    /// by [`fwd_tensor_maps`]) with [`FWD_ONE_TASK`] in its `pad`. The kernel's producer then
    /// loads both tiles' K into one stage and both V into the next, and its consumers run the
    /// task as one step. Other tasks keep `pad` 0 (this kernel has no half tiles). Returns how
    /// many it flagged.
    fn mark_fwd_one(&mut self) -> usize {
        let mut n = 0;
        for i in 0..self.tasks.len() {
            if self.one_step(&self.tasks[i]) {
                let t = &mut self.tasks[i];
                debug_assert_eq!(t.pad, 0, "a short-kernel task with half tiles: {t:?}");
                t.pad = FWD_ONE_TASK;
                n += 1;
            }
        }
        n
    }

    /// How many tasks [`WorkLists::mark_fwd_one`] would flag.
    fn count_fwd_one(&self) -> usize {
        self.tasks.iter().filter(|t| self.one_step(t)).count()
    }

    /// Whether `FWD_ONE` runs task `t` as one step: two full kv tiles of a work with a single
    /// KV region loaded by TMA.
    fn one_step(&self, t: &TaskDesc) -> bool {
        let w = &self.works[t.work as usize];
        let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
        t.tiles_n == 2
            && w.kv_count == 1
            && w.flags & TMA_KV != 0
            && self.tiles[r].iter().all(|&x| x & PARTIAL == 0)
    }

    /// Appends a work's row ranges to the shared CSR; returns the work's own CSR and the offset
    /// of its first row in `row_ptr` (`WorkDesc::row_off`).
    fn push_rows(&mut self, rows: &RowRanges, n_rows: u32) -> (RowCsr, u32) {
        let csr = RowCsr::expand(rows, n_rows);
        let row_off = self.row_ptr.len() as u32;
        let base = self.ranges.len() as u32;
        self.row_ptr.extend(csr.ptr.iter().map(|p| p + base));
        self.ranges.extend_from_slice(&csr.ranges);
        (csr, row_off)
    }

    /// The non-empty kv tiles (`bc` keys) of rows `r0..r1`, `PARTIAL` marking partial ones.
    fn classify(&mut self, csr: &RowCsr, r0: u32, r1: u32, n_keys: u32, bc: u32) -> &[u32] {
        classify(
            csr,
            r0 as usize,
            r1 as usize,
            n_keys,
            bc,
            &mut self.touched,
            &mut self.full,
            &mut self.out,
        );
        &self.out
    }

    /// [`Self::classify`] appended to the tile lists: (offset, count) for a `TaskDesc`.
    fn classify_into_tiles(
        &mut self,
        csr: &RowCsr,
        r0: u32,
        r1: u32,
        n_keys: u32,
        bc: u32,
    ) -> (u32, u32) {
        self.classify(csr, r0, r1, n_keys, bc);
        let off = self.tiles.len() as u32;
        self.tiles.extend_from_slice(&self.out);
        if self.mask_mode != TileMasks::None {
            // Placeholders: [`Self::fill_fwd_masks`] decides per work.
            self.tmask
                .resize(self.tmask.len() + self.out.len(), tilemask::NO_MASK);
        }
        (off, self.out.len() as u32)
    }

    /// The forward tasks of work `wdx` (rows `0..n_rows` against `n_keys` keys): per q tile of
    /// `br` rows its kv tiles of `bc` keys ([`Self::classify_into_tiles`]) and one task per query
    /// head. Returns the q tiles as `(r0, r1, tiles_off, tiles_n)`.
    #[allow(
        clippy::too_many_arguments,
        reason = "the work's shape and the kernel's tile sizes"
    )]
    fn push_fwd_tasks(
        &mut self,
        csr: &RowCsr,
        wdx: u32,
        n_rows: u32,
        n_keys: u32,
        heads: u32,
        br: u32,
        bc: u32,
    ) -> Vec<(u32, u32, u32, u32)> {
        let mut qtiles = Vec::with_capacity(n_rows.div_ceil(br) as usize);
        let mut r0 = 0u32;
        while r0 < n_rows {
            let r1 = (r0 + br).min(n_rows);
            let (off, n) = self.classify_into_tiles(csr, r0, r1, n_keys, bc);
            qtiles.push((r0, r1, off, n));
            for head in 0..heads {
                self.tasks.push(TaskDesc {
                    work: wdx,
                    row0: r0,
                    head,
                    tiles_off: off,
                    tiles_n: n,
                    pad: 0,
                });
            }
            r0 = r1;
        }
        qtiles
    }

    /// Masks for the partial tiles of one forward work whose q tiles `(r0, r1, tiles_off,
    /// tiles_n)` were classified by [`Self::classify_into_tiles`], when it is worth it
    /// ([`worth_masks`]).
    fn fill_fwd_masks(&mut self, csr: &RowCsr, qtiles: &[(u32, u32, u32, u32)], n_keys: u32) {
        if self.mask_mode == TileMasks::None {
            return;
        }
        let entries = |&(_, _, off, n): &(u32, u32, u32, u32)| off as usize..(off + n) as usize;
        let total: usize = qtiles.iter().map(|q| entries(q).len()).sum();
        let partial = qtiles
            .iter()
            .flat_map(entries)
            .filter(|&i| self.tiles[i] & PARTIAL != 0)
            .count();
        if !worth_masks(partial, total) {
            return;
        }
        for q in qtiles {
            for i in entries(q) {
                let t = self.tiles[i];
                if t & PARTIAL != 0 {
                    self.tmask[i] = self.tile_mask(csr, q.0, q.1, t & !PARTIAL, n_keys);
                }
            }
        }
    }

    /// With `half_mode`: marks the half tiles ([`tilemask::fwd_half`], partial tiles only) of one
    /// forward work whose q tiles `(r0, r1, tiles_off, tiles_n)` (128 rows, 128-key tiles) were
    /// classified by [`Self::classify_into_tiles`].
    fn mark_fwd_half(&mut self, csr: &RowCsr, qtiles: &[(u32, u32, u32, u32)], n_keys: u32) {
        if !self.half_mode {
            return;
        }
        self.half.resize(self.tiles.len(), false);
        if self.half_bits {
            self.hbits.resize(self.tiles.len(), 0);
        }
        for &(r0, r1, off, n) in qtiles {
            let r = off as usize..(off + n) as usize;
            // A full tile is no half tile; its bits say both halves of both warpgroups.
            self.half[r.clone()].fill(false);
            if self.half_bits {
                self.hbits[r.clone()].fill(0xf);
            }
            for i in r {
                let t = self.tiles[i];
                if t & PARTIAL == 0 {
                    continue;
                }
                if self.half_bits {
                    // From the tile's mask where it has one (cheaper than its rows' ranges).
                    let b = match self.tmask.get(i) {
                        Some(&m) if m != tilemask::NO_MASK => self.mask_seen.fwd_half_bits(m),
                        _ => tilemask::fwd_half_bits(csr, r0, r1, t & !PARTIAL, n_keys),
                    };
                    self.half[i] = (0..2).any(|cw| (b >> (2 * cw)) & 3 != 3);
                    self.hbits[i] = b;
                } else {
                    self.half[i] = tilemask::fwd_half(csr, r0, r1, t & !PARTIAL, n_keys);
                }
            }
        }
    }

    /// With `half_mode`, after the split-K rewrite: each task's slice of the tile list (tasks of
    /// one q tile's heads share it, split pieces have disjoint ones) gets its half tiles first,
    /// the rest after them, both in key order (the mask indices move with their tiles), and the
    /// task their count in `pad` (`attn_fwd_sm90.cu` runs that many tiles through its half step).
    /// Without it every count stays 0. The order of a task's tiles does not change its result
    /// (online softmax), only which step computes them.
    fn order_fwd_half(&mut self) {
        if !self.half_mode {
            return;
        }
        self.half.resize(self.tiles.len(), false);
        let bits = self.half_bits;
        if bits {
            self.hbits.resize(self.tiles.len(), 0);
        }
        let WorkLists {
            tasks,
            tiles,
            tmask,
            half,
            hbits,
            ..
        } = self;
        let masks = tmask.len() == tiles.len();
        let mut count: HashMap<(u32, u32), u32> = HashMap::new();
        let mut ordered = vec![false; tiles.len()];
        // The half tiles of one slice (tile word as the kernel reads it, mask index): few, so
        // the slice is partitioned in place — they are held, the others move to the slice's
        // end (walking back, so every read precedes the write over it), then they go first.
        let mut held: Vec<(u32, u32)> = Vec::new();
        for t in tasks.iter_mut() {
            let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
            t.pad = *count.entry((t.tiles_off, t.tiles_n)).or_insert_with(|| {
                assert!(
                    !ordered[r.clone()].iter().any(|&o| o),
                    "forward tile lists {r:?} overlap another task's"
                );
                ordered[r.clone()].fill(true);
                held.clear();
                for i in r.clone().filter(|&i| half[i]) {
                    // FWD_HALFBITS: a half tile's word carries its warpgroups' halves.
                    let word = if bits {
                        assert!(
                            tiles[i] & !PARTIAL < 1 << 27,
                            "key tile {} does not fit FWD_HALFBITS' 27 bits",
                            tiles[i] & !PARTIAL
                        );
                        tiles[i] | hbits[i] << 27
                    } else {
                        tiles[i]
                    };
                    held.push((word, if masks { tmask[i] } else { 0 }));
                }
                let n = held.len();
                if n == 0 {
                    return 0;
                }
                let mut w = r.end;
                for i in r.clone().rev() {
                    if !half[i] {
                        w -= 1;
                        tiles[w] = tiles[i];
                        if masks {
                            tmask[w] = tmask[i];
                        }
                    }
                }
                debug_assert_eq!(w, r.start + n);
                for (k, &(word, m)) in held.iter().enumerate() {
                    tiles[r.start + k] = word;
                    if masks {
                        tmask[r.start + k] = m;
                    }
                }
                half[r.clone()]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(k, h)| *h = k < n);
                n as u32
            });
        }
    }

    /// The precomputed mask of the partial tile (rows `r0..r1`, key tile `kt`) in this launch's
    /// layout: its index in `masks`, or [`tilemask::NO_MASK`] when masks are off or the launch
    /// has used its [`tilemask::MAX_MASK_WORDS`].
    fn tile_mask(&mut self, csr: &RowCsr, r0: u32, r1: u32, kt: u32, n_keys: u32) -> u32 {
        let layout = match self.mask_mode {
            TileMasks::Fwd => tilemask::Layout::Fwd,
            TileMasks::Bwd => tilemask::Layout::Bwd,
            TileMasks::None | TileMasks::Off => return tilemask::NO_MASK,
        };
        tilemask::push_distinct(
            layout,
            csr,
            r0,
            r1,
            kt,
            n_keys,
            &mut self.mask_rows,
            &mut self.mask_seen,
            &mut self.masks,
            tilemask::MAX_MASK_WORDS,
        )
        .unwrap_or(tilemask::NO_MASK)
    }

    /// The sm90 kernels' last two arguments: the tiles' mask indices and the masks.
    fn mask_args(&self, arena: &mut Arena) -> [Arg; 2] {
        // The kernels index `tmask` like `tiles`: one entry each, or they would read past it.
        assert!(
            self.mask_mode == TileMasks::None || self.tmask.len() == self.tiles.len(),
            "tile mask indices ({}) out of step with the tiles ({})",
            self.tmask.len(),
            self.tiles.len()
        );
        [
            Arg::Arena(arena.push(as_bytes(&self.tmask))),
            Arg::Arena(arena.push(as_bytes(&self.masks))),
        ]
    }

    /// Forward split-K, the part that needs no GPU: which rows of each work are cut into how
    /// many key pieces. A forward task (`br` query rows of one head) walks its kv tiles in one
    /// CTA, so a launch of a few works with long key ranges (a late stage of a dcp plan on one
    /// long causal sequence: 3 works of 1024 rows over 60-90K keys, 192 tasks for 132 SMs), or
    /// of one work where a few rows see far more keys than the rest (causal-blockwise: the last
    /// block attends everything, the others a window), runs at the speed of its longest task.
    /// A task is long when it has more than `max(total tiles / (4 · sms), FWD_SPLIT_MIN_TILES)`
    /// tiles; a work with long tasks has the rows from its first long task's to its last long
    /// task's cut into `ceil(longest / that)` pieces (at most `FWD_SPLIT_MAX`, and within
    /// `scratch_cap` bytes of fp32 partial outputs, where a row of a piece costs
    /// `row_bytes[work]`), its other rows are left whole. Launches that already fill the GPU
    /// (any packed batch, ring steps over thousands of rows) are left as they are.
    fn fwd_split(&self, sms: u64, row_bytes: &[u64], scratch_cap: u64, br: u32) -> Vec<FwdSplit> {
        let total: u64 = self.tasks.iter().map(|t| t.tiles_n as u64).sum();
        let chunk = total.div_ceil(4 * sms.max(1)).max(FWD_SPLIT_MIN_TILES);
        let mut longest = vec![0u32; self.works.len()];
        let mut span = vec![(u32::MAX, 0u32); self.works.len()];
        for t in &self.tasks {
            let w = t.work as usize;
            longest[w] = longest[w].max(t.tiles_n);
            if t.tiles_n as u64 > chunk {
                let end = (t.row0 + br).min(self.works[w].n_rows);
                span[w] = (span[w].0.min(t.row0), span[w].1.max(end));
            }
        }
        // Longest works first, so that the scratch cap drops the least useful splits.
        let mut order: Vec<usize> = (0..longest.len()).collect();
        order.sort_by_key(|&w| std::cmp::Reverse(longest[w]));
        let mut out = vec![FwdSplit::NONE; longest.len()];
        let mut used = 0u64;
        for w in order {
            let (r0, r1) = span[w];
            if r0 >= r1 {
                continue;
            }
            let want = (longest[w] as u64)
                .div_ceil(chunk)
                .min(FWD_SPLIT_MAX as u64);
            let piece = (r1 - r0) as u64 * row_bytes[w].max(1);
            let np = want.min((scratch_cap - used) / piece);
            if np >= 2 {
                out[w] = FwdSplit {
                    pieces: np as u32,
                    r0,
                    r1,
                };
                used += np * piece;
            }
        }
        // Only where the cut shortens the schedule: the persistent kernel hands out tasks
        // longest first, i.e. list scheduling, whose makespan `lpt_makespan` estimates. A split
        // costs fp32 partial outputs and a merge launch: one 8K full-mask work (512 tasks of 64
        // tiles, cut in 2 at chunk 63 on 132 SMs, the schedule no shorter) ran 557 TFLOP/s split
        // and 642 whole (kernels-2026-11-29-kf13, call 2). Hence a cut must shorten it by 10 %.
        if out.iter().any(|s| s.pieces >= 2) {
            let m = sms.max(1) as usize;
            let whole: Vec<u64> = self.tasks.iter().map(|t| t.tiles_n as u64).collect();
            let mut cut = Vec::with_capacity(self.tasks.len());
            for t in &self.tasks {
                let s = out[t.work as usize];
                let n = t.tiles_n as u64;
                if s.pieces >= 2 && t.row0 >= s.r0 && t.row0 < s.r1 {
                    let np = s.pieces as u64;
                    cut.extend((0..np).map(|p| (n * (p + 1)) / np - (n * p) / np));
                } else {
                    cut.push(n);
                }
            }
            if 10 * lpt_makespan(cut, m) >= 9 * lpt_makespan(whole, m) {
                out.fill(FwdSplit::NONE);
            }
        }
        out
    }

    /// Applies [`Self::fwd_split`]'s splits: a work split into `np` pieces over rows `r0..r1`
    /// gets `np` shadow works (`shadow(w, p, work)` redirects a piece's O / LSE; here they are
    /// already narrowed to those rows: Q moved by `r0` rows of `q_elem`-byte elements, the
    /// CSR offset by `r0`), and each of its tasks in those rows becomes `np` tasks over
    /// consecutive, near-equal slices of its tile list (a slice may be empty: that piece writes
    /// O = 0, LSE = −∞ for those rows); its tasks outside them stay on the work.
    fn apply_fwd_split(
        &mut self,
        splits: &[FwdSplit],
        q_elem: u64,
        mut shadow: impl FnMut(usize, u32, WorkDesc) -> WorkDesc,
    ) {
        let mut first = vec![u32::MAX; splits.len()];
        for (w, s) in splits.iter().enumerate() {
            if s.pieces >= 2 {
                first[w] = self.works.len() as u32;
                let wd = self.works[w];
                let base = WorkDesc {
                    q: wd.q + s.r0 as u64 * wd.q_stride as u64 * q_elem,
                    n_rows: s.r1 - s.r0,
                    row_off: wd.row_off + s.r0,
                    ..wd
                };
                for p in 0..s.pieces {
                    self.works.push(shadow(w, p, base));
                }
            }
        }
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            let s = splits[t.work as usize];
            if s.pieces < 2 || t.row0 < s.r0 || t.row0 >= s.r1 {
                out.push(*t);
                continue;
            }
            let (n, np) = (t.tiles_n as u64, s.pieces as u64);
            for p in 0..np {
                let (lo, hi) = (n * p / np, n * (p + 1) / np);
                out.push(TaskDesc {
                    work: first[t.work as usize] + p as u32,
                    row0: t.row0 - s.r0,
                    tiles_off: t.tiles_off + lo as u32,
                    tiles_n: (hi - lo) as u32,
                    ..*t
                });
            }
        }
        self.tasks = out;
    }

    /// Orders the tasks for L2 reuse where the launch's works together do not fit in `budget`
    /// bytes (`bytes`: what one work's tasks keep re-reading or reducing into, e.g. a backward
    /// work's fp32 dQ with its Q and dO). The works, taken longest task first (list order among
    /// equals), are cut into windows of at most `budget` bytes (a larger work alone); the tasks
    /// run window by window, longest first inside each. Plain longest-first across the whole
    /// launch ran the first kv tiles of every document of a batch of short causal documents
    /// together, so the concurrent tasks' dQ reductions spanned the whole batch and went to DRAM.
    /// Only a launch of more than `ctas / L2_SPREAD` works with tasks is reordered: with fewer,
    /// longest first already runs each work's tasks side by side (on 2 GPUs, 8-9 documents of
    /// 4-15K tokens per launch: the windows cost the backward 2-4 %, its concurrent tasks then
    /// reducing into the same dQ rows). `budget` 0, tasks already in launch order (chains), or
    /// works that fit in one window: nothing changes (`finish` sorts longest first).
    ///
    /// With `by_kv` (the forward) the works that read overlapping KV ([`kv_units`]) count as one
    /// unit, windowed and gated together: split apart, their shared K/V would be loaded once per
    /// window (on 2 GPUs, dcp's own placements of one long sequence ran the forward 6-12 %
    /// slower with every work its own unit).
    fn order_for_l2(
        &mut self,
        (budget, tail_pct): (u64, u32),
        ctas: u32,
        by_kv: bool,
        bytes: impl Fn(&WorkDesc) -> u64,
    ) {
        if budget == 0 || self.keep_order || self.works.len() < 2 {
            return;
        }
        let unit: Vec<u32> = if by_kv {
            kv_units(&self.works, &self.segs)
        } else {
            (0..self.works.len() as u32).collect()
        };
        let mut has = vec![false; self.works.len()];
        for t in &self.tasks {
            has[unit[t.work as usize] as usize] = true;
        }
        if has.iter().filter(|&&h| h).count() as u64 * L2_SPREAD <= ctas as u64 {
            return;
        }
        let window = l2_windows(&self.works, &unit, &self.tasks, budget, tail_pct, bytes);
        if window.iter().all(|&w| w == 0) {
            return;
        }
        self.tasks.sort_by_key(|t| {
            (
                window[unit[t.work as usize] as usize],
                std::cmp::Reverse(t.tiles_n),
            )
        });
        self.keep_order = true;
    }

    /// Sorts the tasks longest first (better tail balance), counts them, and puts the six
    /// arrays into the arena: the launch's grid and its first six arguments (works, segments,
    /// tasks, tiles, row pointers, ranges).
    fn finish(mut self, arena: &mut Arena, stats: &mut ProgramStats) -> (u32, Vec<Arg>) {
        if !self.keep_order {
            self.tasks.sort_by_key(|t| std::cmp::Reverse(t.tiles_n));
        }
        stats.attn_tasks += self.tasks.len();
        let args = vec![
            Arg::Arena(arena.push(as_bytes(&self.works))),
            Arg::Arena(arena.push(as_bytes(&self.segs))),
            Arg::Arena(arena.push(as_bytes(&self.tasks))),
            Arg::Arena(arena.push(as_bytes(&self.tiles))),
            Arg::Arena(arena.push(as_bytes(&self.row_ptr))),
            Arg::Arena(arena.push(as_bytes(&self.ranges))),
        ];
        (self.tasks.len() as u32, args)
    }
}

/// Forward split-K of one work ([`WorkLists::fwd_split`]): `pieces` key pieces over its rows
/// `r0..r1`; `pieces` < 2: not split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FwdSplit {
    pieces: u32,
    r0: u32,
    r1: u32,
}

impl FwdSplit {
    const NONE: Self = Self {
        pieces: 1,
        r0: 0,
        r1: 0,
    };
}

/// Bytes of one element of a region's dtype code.
fn dtype_bytes(code: u32) -> u64 {
    if code == DT_F32 {
        4
    } else {
        2
    }
}

/// Rows `r0..r1` of a region (its first `r0` rows skipped).
fn rows_of(r: RegionDesc, r0: u32, r1: u32) -> RegionDesc {
    RegionDesc {
        ptr: r.ptr + r0 as u64 * r.stride as u64 * dtype_bytes(r.dtype),
        len: r1 - r0,
        ..r
    }
}

/// Forward split-K: fewest kv tiles per piece (2048 keys of 128: ~130 MFLOP per head, far
/// above the cost of writing and merging a 128-row fp32 partial output).
const FWD_SPLIT_MIN_TILES: u64 = 16;
/// Forward split-K: most pieces per work.
const FWD_SPLIT_MAX: u32 = 16;

/// Makespan, in tiles plus one per task (its epilogue), of `lens` (tiles per task) handed out
/// longest first to `m` persistent CTAs, each taking the next task when it finishes one.
fn lpt_makespan(mut lens: Vec<u64>, m: usize) -> u64 {
    use std::cmp::Reverse;
    lens.sort_unstable_by(|a, b| b.cmp(a));
    let mut cta: std::collections::BinaryHeap<Reverse<u64>> =
        (0..m.max(1)).map(|_| Reverse(0)).collect();
    for n in lens {
        let Reverse(t) = cta.pop().expect("m >= 1");
        cta.push(Reverse(t + n + 1));
    }
    cta.into_iter().map(|Reverse(t)| t).max().unwrap_or(0)
}
/// Forward split-K: most bytes of fp32 partial outputs per attention instruction.
const FWD_SPLIT_SCRATCH: u64 = 128 << 20;

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
            wl.half_mode = kernels.fwd_half.enabled();
            wl.half_bits = wl.half_mode && kernels.fwd_halfbits;
        }
        let br = kernels.fwd_br();
        let mut outs = Vec::with_capacity(works.len());
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
        }
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
                if worth_masks(partials.len(), total) {
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
        let chunk = total.div_ceil(4 * self.gpu.sm_count.max(1) as u64).max(8) as usize;
        // Owned dK/dV rows ([`own`], head dim 128): a task that alone adds into its kv tile's
        // dK/dV rows, which are zero (its work's dKV regions are its own, its list unsplit),
        // stores them.
        let dkv_own = if kernels.bwd_family == KernelFamily::Sm90Wgmma
            && kernels.own != OwnMode::Off
            && d == 128
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
        // Chains ([`own::chain_launch`]): all or nothing per launch.
        let chain = kernels.chain != ChainMode::Off
            && self.chain_launch(ii, &works, &wl, &pending, chunk)
            && kernels.bwd_chain.get_or_compile(self.gpu)?.is_some();
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
        // Clusters ([`cluster`]): a chained launch whose works are all two kv tiles wide with
        // the same q tiles.
        let cluster = chain
            && kernels.bwd_cluster.enabled()
            && cluster::pairs_ok(
                &pending
                    .iter()
                    .map(|p| (p.0, p.3.as_slice()))
                    .collect::<Vec<_>>(),
            )
            && kernels.bwd_cluster.get_or_compile(self.gpu)?.is_some();
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
        let (grid, mut args) = wl.finish(&mut self.arena, &mut self.stats);
        // Chains: the claim counter hands out chains, whose first tasks lead the list.
        let grid = n_claim.unwrap_or(grid);
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
            self.ops.push(Op::Launch(Launch {
                k: K::BwdDd,
                grid: grid_for(dd_off, dd_tile_pairs(d), dd_cap),
                block: 256,
                smem: 0,
                args: vec![
                    args[0],
                    Arg::U32(n_works),
                    Arg::Dd,
                    Arg::U32(d),
                    Arg::U32(dtype_code(model.dtype)),
                    cnt_arg,
                    Arg::U32(n_cnt),
                    dd_zero_arg,
                    Arg::U32(dd_zeros.len() as u32),
                ],
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
                args.push(Arg::Arena(self.arena.push(as_bytes(&expect))));
                let maps = bwd_maps.unwrap_or_default();
                args.push(Arg::Arena(self.arena.push_aligned(as_bytes(&maps), 128)));
                let env = std::env::var("DCP_CUDA_BWD_CTAS").ok();
                persistent_bwd_grid(grid, self.gpu.sm_count.max(1) as u32, env.as_deref())?
            }
            None => grid,
        };
        // Clusters: two CTAs per pair (n_claim pairs), at most one cluster per two SMs.
        let grid = match (cluster, n_claim) {
            (true, Some(n)) => cluster::grid(n, self.gpu.sm_count.max(1) as u32),
            _ => grid,
        };
        self.ops.push(Op::Launch(Launch {
            k: if cluster {
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
        let mut conv = self.kernels.convert;
        // Chains convert dQ themselves ([`Self::chain_launch`] checked every work's copy).
        conv.dq |= chain;
        let mut out = vec![None; works.len()];
        let mut copies = Vec::new();
        if self.kernels.bwd_family != KernelFamily::Sm90Wgmma
            || self.d != 128
            || !(conv.dq || conv.dkv)
        {
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
        if self.kernels.bwd_family != KernelFamily::Sm90Wgmma || self.d != 128 {
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
    /// ([`Prepared::copy_saved_in`]).
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
        })
    }

    fn launch(&self, gpu: &Gpu, ks: &Kernels, l: &Launch) -> Result<()> {
        let mut vals: Vec<[u8; 32]> = Vec::with_capacity(l.args.len());
        for a in &l.args {
            let mut b = [0u8; 32];
            match *a {
                Arg::U32(v) => b[..4].copy_from_slice(&v.to_ne_bytes()),
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
mod tests {
    use super::*;

    #[test]
    fn forward_stages_fit_the_shared_memory_and_bad_values_are_named() {
        // The default layout, as the kernel's F90_* put it: 2 Q buffers and 2 K/V stages.
        let d128 = (2 * 128 + 2 * 2 * 128) * 128 * 2
            + 1024
            + 2 * (128 * 16 + 16)
            + 2 * (160 + 128 * 8)
            + 72;
        assert_eq!(sm90_fwd_smem(128, 2, 2), d128);
        assert!(d128 <= SM90_SMEM_MAX);
        assert_eq!(fwd_stages_with(None, 128).unwrap(), (2, 2));
        assert_eq!(fwd_stages_with(Some(" "), 64).unwrap(), (4, 4));
        assert!(sm90_fwd_smem(64, 4, 4) <= SM90_SMEM_MAX);
        assert_eq!(fwd_stages_with(Some("4"), 64).unwrap(), (4, 4));
        assert_eq!(fwd_stages_with(Some("3:2"), 64).unwrap(), (3, 2));
        // A third stage does not fit at D 128.
        let e = fwd_stages_with(Some("3"), 128).unwrap_err().to_string();
        assert!(
            e.contains("DCP_CUDA_FWD_STAGES=3") && e.contains("head dim 128"),
            "{e}"
        );
        for bad in ["1", "2:1", "x", "4:", ":3", "-2"] {
            let e = fwd_stages_with(Some(bad), 64).unwrap_err().to_string();
            assert!(e.contains(&format!("DCP_CUDA_FWD_STAGES={bad}")), "{e}");
        }
    }

    /// `DCP_CUDA_FWD_MT`: unset or empty keeps the default, 1 and 2 are taken, anything else is
    /// an error that names the variable and the value (it was silently ignored).
    #[test]
    fn tile_masks_and_op_times_are_parsed_or_refused() {
        assert_eq!(TileMasks::sm90_with(true, None).unwrap(), TileMasks::Fwd);
        assert_eq!(
            TileMasks::sm90_with(false, Some("1")).unwrap(),
            TileMasks::Bwd
        );
        assert_eq!(
            TileMasks::sm90_with(true, Some("0")).unwrap(),
            TileMasks::Off
        );
        let e = TileMasks::sm90_with(true, Some("off"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DCP_CUDA_TILE_MASKS=off"), "{e}");
        assert!(!op_timing_with(None).unwrap() && !op_timing_with(Some("0")).unwrap());
        assert!(op_timing_with(Some("1")).unwrap());
        let e = op_timing_with(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_OP_TIMES=yes"), "{e}");
    }

    #[test]
    fn fwd_mt_is_parsed_or_refused() {
        let d = TileConfig::default().fwd_mt;
        assert_eq!(TileConfig::with_fwd_mt(None).unwrap().fwd_mt, d);
        assert_eq!(TileConfig::with_fwd_mt(Some(" ")).unwrap().fwd_mt, d);
        assert_eq!(TileConfig::with_fwd_mt(Some("1")).unwrap().fwd_mt, 1);
        assert_eq!(TileConfig::with_fwd_mt(Some("2")).unwrap().fwd_mt, 2);
        for bad in ["0", "3", "two"] {
            let e = TileConfig::with_fwd_mt(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("DCP_CUDA_FWD_MT") && e.contains(bad), "{e}");
        }
    }

    /// Two works through `WorkLists`: each work's rows land in the shared CSR at its own
    /// offset (ranges re-based), tiles and tasks are recorded, `finish` sorts the tasks longest
    /// first and lays the six arrays out in the arena in argument order.
    fn task(work: u32, row0: u32, tiles_off: u32, tiles_n: u32) -> TaskDesc {
        TaskDesc {
            work,
            row0,
            head: 0,
            tiles_off,
            tiles_n,
            pad: 0,
        }
    }

    /// Forward split-K: a launch of few long tasks is cut (pieces cover every task's tiles
    /// exactly once, in order, each piece on its own shadow work), one that fills the GPU is
    /// not, and the scratch cap bounds the pieces.
    #[test]
    fn forward_split_cuts_only_launches_of_few_long_tasks() {
        let mut wl = WorkLists::default();
        for w in 0..3u32 {
            wl.works.push(WorkDesc {
                n_rows: 256,
                q_heads: 1,
                o: 1000 + w as u64,
                ..Default::default()
            });
            // Two row tiles per work: 700 and 300 tiles (work 2: 40 and 5).
            let (a, b) = if w == 2 { (40, 5) } else { (700, 300) };
            wl.tasks.push(task(w, 0, 10_000 * w, a));
            wl.tasks.push(task(w, 128, 10_000 * w + a, b));
        }
        let before = wl.tasks.clone();
        let total: u64 = before.iter().map(|t| t.tiles_n as u64).sum();
        // 132 SMs: chunk = max(ceil(2045 / 528), 16) = 16 tiles; works 0 and 1 are long in
        // both row tiles, work 2 only in its first.
        let splits = wl.fwd_split(132, &[1, 1, 1], u64::MAX, 128);
        let np: Vec<u32> = splits.iter().map(|s| s.pieces).collect();
        assert_eq!(np, [FWD_SPLIT_MAX, FWD_SPLIT_MAX, 3]);
        assert_eq!((splits[0].r0, splits[0].r1), (0, 256));
        assert_eq!((splits[2].r0, splits[2].r1), (0, 128));
        wl.apply_fwd_split(&splits, 2, |w, p, wd| WorkDesc {
            o: 10 * wd.o + p as u64,
            dd_off: w as u32,
            ..wd
        });
        assert_eq!(wl.works.len(), 3 + 2 * FWD_SPLIT_MAX as usize + 3);
        // Work 2's second row tile (5 tiles) stays whole on work 2.
        assert_eq!(wl.tasks.len(), 2 * 2 * FWD_SPLIT_MAX as usize + 3 + 1);
        assert!(wl.tasks.contains(&task(2, 128, 20_040, 5)));
        for t0 in &before[..5] {
            let parts: Vec<&TaskDesc> = wl
                .tasks
                .iter()
                .filter(|t| {
                    t.work >= 3 && wl.works[t.work as usize].dd_off == t0.work && t.row0 == t0.row0
                })
                .collect();
            assert_eq!(parts.len() as u32, np[t0.work as usize]);
            let mut at = t0.tiles_off;
            for (p, t) in parts.iter().enumerate() {
                assert_eq!(t.tiles_off, at, "piece {p} of {t0:?}");
                at += t.tiles_n;
                let sw = &wl.works[t.work as usize];
                assert_eq!(sw.o, 10 * (1000 + t0.work as u64) + p as u64);
                assert_eq!(sw.n_rows, if t0.work == 2 { 128 } else { 256 });
            }
            assert_eq!(at, t0.tiles_off + t0.tiles_n);
        }
        assert_eq!(
            wl.tasks.iter().map(|t| t.tiles_n as u64).sum::<u64>(),
            total
        );

        // 1000 tasks of 50 tiles on 132 SMs: chunk = max(ceil(50000 / 528), 16) = 95: no cut.
        let mut full = WorkLists::default();
        full.works.push(WorkDesc {
            n_rows: 128_000,
            ..Default::default()
        });
        full.tasks = (0..1000).map(|i| task(0, 128 * i, 50 * i, 50)).collect();
        assert_eq!(full.fwd_split(132, &[1], u64::MAX, 128), [FwdSplit::NONE]);

        // One 8K full-mask work: 512 tasks of 64 tiles; chunk = ceil(32768 / 528) = 63 would
        // cut each in 2, but 4 waves of 64 take as long as 8 of 32: no cut.
        let mut one = WorkLists::default();
        one.works.push(WorkDesc {
            n_rows: 8192,
            ..Default::default()
        });
        one.tasks = (0..512)
            .map(|i| task(0, 128 * (i % 64), 64 * i, 64))
            .collect();
        assert_eq!(one.fwd_split(132, &[1], u64::MAX, 128), [FwdSplit::NONE]);

        // Scratch for 5 pieces of work 0 only: work 0 (longest) gets them, the others none.
        let mut capped = WorkLists::default();
        for w in 0..2u32 {
            capped.works.push(WorkDesc {
                n_rows: 100,
                ..Default::default()
            });
            capped.tasks.push(task(w, 0, 0, 400 - 100 * w));
        }
        let s = capped.fwd_split(132, &[10, 10], 5000, 128);
        assert_eq!(
            s[0],
            FwdSplit {
                pieces: 5,
                r0: 0,
                r1: 100
            }
        );
        assert_eq!(s[1], FwdSplit::NONE);
    }

    /// L2 windows: works taken longest task first, cut where the next would overflow the
    /// budget; a work over the budget sits alone; the works of the last tail share of the tiles
    /// share one window.
    #[test]
    fn l2_windows_group_works_longest_first_within_the_budget() {
        let works = vec![WorkDesc::default(); 5];
        let t = |work: u32, n: u32| TaskDesc {
            work,
            tiles_n: n,
            ..Default::default()
        };
        let tasks = [t(0, 2), t(1, 5), t(2, 5), t(3, 1), t(0, 1), t(4, 3)];
        let bytes = |w: &WorkDesc| if w.n_rows == 1 { 100 } else { 10 };
        let ids = [0, 1, 2, 3, 4];
        // Longest first: 1, 2 (5 tiles), 4 (3), 0 (2 + 1), 3 (1); 17 tiles in all.
        assert_eq!(
            l2_windows(&works, &ids, &tasks, 25, 0, bytes),
            [1, 0, 0, 2, 1]
        );
        assert_eq!(l2_windows(&works, &ids, &tasks, 1000, 0, bytes), [0; 5]);
        let mut big = works.clone();
        big[4].n_rows = 1;
        assert_eq!(
            l2_windows(&big, &ids, &tasks, 25, 0, bytes),
            [2, 0, 0, 2, 1]
        );
        // One work per window; a tail of 30 % (5 tiles) takes works 3 and 0 (1 + 3 tiles).
        assert_eq!(
            l2_windows(&works, &ids, &tasks, 1, 0, bytes),
            [3, 0, 1, 4, 2]
        );
        assert_eq!(
            l2_windows(&works, &ids, &tasks, 1, 30, bytes),
            [3, 0, 1, 3, 2]
        );
        // A tail of everything: one window.
        assert_eq!(l2_windows(&works, &ids, &tasks, 1, 100, bytes), [0; 5]);
        // Units (per work: 1, 0, 2, 3, 0): unit 0 = works 1 and 4 (longest 5, 20 bytes), then
        // unit 2 (5), unit 1 (2), unit 3 (1), 10 bytes each; the answer is per unit.
        let units = [1, 0, 2, 3, 0];
        assert_eq!(
            l2_windows(&works, &units, &tasks, 25, 0, bytes),
            [0, 1, 1, 2]
        );
    }

    /// KV units: works whose KV segments overlap in memory share a unit, through chains of
    /// overlaps too; disjoint ones do not.
    #[test]
    fn kv_units_join_works_reading_overlapping_kv() {
        let seg = |k: u64, len: u32| KvSeg {
            k,
            len,
            stride: 256, // 512 bytes per row
            ..Default::default()
        };
        // w0 [0, 5120), w1 [4096, 9216): overlap. w2 [10240, 10752). w3 reads [20480, 21504)
        // and [10240, 10752) (w2's). w4 [30720, ...) alone, w5 [9216, 9728) touches w1's end.
        let segs = [
            seg(0, 10),
            seg(4096, 10),
            seg(10240, 1),
            seg(20480, 2),
            seg(10240, 1),
            seg(30720, 4),
            seg(9216, 1),
        ];
        let w = |first: u32, count: u32| WorkDesc {
            kv_first: first,
            kv_count: count,
            ..Default::default()
        };
        let works = [w(0, 1), w(1, 1), w(2, 1), w(3, 2), w(5, 1), w(6, 1)];
        assert_eq!(kv_units(&works, &segs), [0, 0, 1, 1, 2, 3]);
        assert_eq!(kv_units(&[], &segs), Vec::<u32>::new());
    }

    /// The windowed order: window by window, longest first inside, stable among equals; no
    /// budget, one work, one window or a kept order leave the tasks alone (and `finish` sorts
    /// them).
    #[test]
    fn order_for_l2_runs_windows_in_turn() {
        // Three causal documents of 3 kv tiles: per work, lists of 3, 2 and 1 q tiles.
        let docs = |n: u32| {
            let mut wl = WorkLists::default();
            for w in 0..n {
                wl.works.push(WorkDesc {
                    n_rows: 384,
                    q_heads: 1,
                    ..Default::default()
                });
                for (kt, len) in [3u32, 2, 1].into_iter().enumerate() {
                    wl.tasks.push(TaskDesc {
                        work: w,
                        row0: kt as u32,
                        tiles_n: len,
                        ..Default::default()
                    });
                }
            }
            wl
        };
        let key = |wl: &WorkLists| -> Vec<(u32, u32)> {
            wl.tasks.iter().map(|t| (t.work, t.tiles_n)).collect()
        };
        let rows = |w: &WorkDesc| w.n_rows as u64;
        // Works 0 and 1 in the first window, 2 in the second.
        let two_windows = [
            (0, 3),
            (1, 3),
            (0, 2),
            (1, 2),
            (0, 1),
            (1, 1),
            (2, 3),
            (2, 2),
            (2, 1),
        ];
        let mut wl = docs(3);
        wl.order_for_l2((2 * 384, 0), 1, false, rows);
        assert!(wl.keep_order);
        assert_eq!(key(&wl), two_windows);
        // One work per window, the last half of the tiles (works 2 and 3) as the tail.
        let mut wl = docs(4);
        wl.order_for_l2((1, 50), 1, false, rows);
        let w = |w: u32| [(w, 3), (w, 2), (w, 1)];
        let tail = [(2, 3), (3, 3), (2, 2), (3, 2), (2, 1), (3, 1)];
        assert_eq!(key(&wl), [&w(0)[..], &w(1), &tail].concat());
        // By KV: with works 0 and 1 reading the same KV, 2 units (0+1, 2) in 2 windows of
        // 2 * 384 bytes; with all three on it, one unit and no reordering.
        let shared = |n_shared: u32| {
            let mut wl = docs(3);
            wl.segs = vec![
                KvSeg {
                    k: 0,
                    len: 384,
                    stride: 256,
                    ..Default::default()
                },
                KvSeg {
                    k: 1 << 30,
                    len: 384,
                    stride: 256,
                    ..Default::default()
                },
            ];
            for (i, w) in wl.works.iter_mut().enumerate() {
                (w.kv_first, w.kv_count) = (u32::from(i as u32 >= n_shared), 1);
            }
            wl.order_for_l2((2 * 384, 0), 1, true, rows);
            wl
        };
        assert_eq!(key(&shared(2)), two_windows);
        let all = shared(3);
        assert!(!all.keep_order && key(&all) == key(&docs(3)));
        // With 3 works of tasks, a grid of 36 CTAs or more keeps longest first.
        for ctas in [35, 36] {
            let mut wl = docs(3);
            wl.order_for_l2((2 * 384, 0), ctas, false, rows);
            assert_eq!(wl.keep_order, ctas == 35, "{ctas} CTAs");
        }
        for budget in [(0, 0), (3 * 384, 0), (1, 100)] {
            let mut wl = docs(3);
            wl.order_for_l2(budget, 1, false, rows);
            assert!(!wl.keep_order && key(&wl) == key(&docs(3)), "{budget:?}");
        }
        let mut one = docs(1);
        one.order_for_l2((1, 0), 1, false, rows);
        assert!(!one.keep_order);
        let mut kept = docs(3);
        kept.keep_order = true;
        kept.order_for_l2((1, 0), 1, false, rows);
        assert_eq!(key(&kept), key(&docs(3)));
    }

    #[test]
    fn l2_budget_names_bad_values() {
        assert_eq!(l2_budget_with("X", None, 7).unwrap(), 7);
        assert_eq!(l2_budget_with("X", Some(" "), 7).unwrap(), 7);
        assert_eq!(l2_budget_with("X", Some("0"), 7).unwrap(), 0);
        assert_eq!(l2_budget_with("X", Some("25"), 7).unwrap(), 25 << 20);
        let e = l2_budget_with("DCP_CUDA_BWD_L2_MB", Some("big"), 7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DCP_CUDA_BWD_L2_MB=big"), "{e}");
        let tail = |v| l2_tail_with("DCP_CUDA_FWD_L2_TAIL", v, 10);
        assert_eq!(tail(None).unwrap(), 10);
        assert_eq!(tail(Some(" 0")).unwrap(), 0);
        assert_eq!(tail(Some("100")).unwrap(), 100);
        for bad in ["101", "x", "-1"] {
            let e = tail(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(&format!("DCP_CUDA_FWD_L2_TAIL={bad}")), "{e}");
        }
    }

    /// The list-scheduling estimate behind the split gate.
    #[test]
    fn lpt_makespan_is_list_scheduling_longest_first() {
        // 3 CTAs (+1 per task): 8 | 6 | 5, then 3 joins the 5 (9), 2 the 6 (9).
        assert_eq!(lpt_makespan(vec![2, 7, 3, 5, 4], 3), 9);
        assert_eq!(lpt_makespan(vec![10; 8], 4), 22);
        assert_eq!(lpt_makespan(vec![], 4), 0);
        assert_eq!(lpt_makespan(vec![3], 0), 4);
    }

    /// Forward split-K of a work whose long rows are few (causal-blockwise: the last block
    /// attends every key): only those rows are cut, their shadow works start at them (Q moved,
    /// CSR offset), their tasks' rows are re-based, and the scratch is sized for them alone.
    #[test]
    fn forward_split_cuts_only_the_long_rows_of_a_work() {
        let mut wl = WorkLists::default();
        wl.works.push(WorkDesc {
            q: 1 << 20,
            q_stride: 8 * 128,
            n_rows: 32_768,
            q_heads: 8,
            row_off: 7,
            ..Default::default()
        });
        // 256 row tiles of 8 tiles, the last two of 256 tiles (8 heads each).
        for r in 0..256u32 {
            let n = if r >= 254 { 256 } else { 8 };
            for h in 0..8 {
                wl.tasks.push(TaskDesc {
                    head: h,
                    ..task(0, 128 * r, 1000 * r, n)
                });
            }
        }
        // Whole-work pieces would need 32768 rows x 8 heads x 129 x 4 B = 135 MB each; the two
        // long row tiles need 1 MB.
        let row_bytes = 8 * 129 * 4;
        let splits = wl.fwd_split(132, &[row_bytes], 128 << 20, 128);
        // chunk = max(ceil((254·8 + 2·256)·8 / 528), 16) = 39: 256 tiles -> 7 pieces.
        assert_eq!(
            splits[0],
            FwdSplit {
                pieces: 7,
                r0: 32_512,
                r1: 32_768
            }
        );
        wl.apply_fwd_split(&splits, 2, |_, p, wd| WorkDesc { o: p as u64, ..wd });
        let sw = wl.works[1];
        assert_eq!(sw.n_rows, 256);
        assert_eq!(sw.row_off, 7 + 32_512);
        assert_eq!(sw.q, (1 << 20) + 32_512 * 8 * 128 * 2);
        let (short, long): (Vec<&TaskDesc>, Vec<&TaskDesc>) =
            wl.tasks.iter().partition(|t| t.work == 0);
        assert_eq!(short.len(), 254 * 8);
        assert!(short.iter().all(|t| t.tiles_n == 8 && t.row0 < 32_512));
        assert_eq!(long.len(), 2 * 8 * 7);
        assert!(long.iter().all(|t| t.row0 == 0 || t.row0 == 128));
        assert_eq!(long.iter().map(|t| t.tiles_n).sum::<u32>(), 2 * 8 * 256);
    }

    /// `FWD_ONE`: only tasks of exactly two full tiles of a single TMA-loaded KV region are
    /// flagged for the one step (not partial tiles, cp.async K/V, two KV regions or three
    /// tiles), with the value the kernel reads; the switch parses 0 / 1 and names itself.
    #[test]
    fn forward_one_step_flags_only_two_full_tiles_of_a_tma_region() {
        // (rows, keys per row as ranges, work flags, kv regions) -> whether its tasks are flagged.
        type Rows = Vec<Vec<(u32, u32)>>;
        let full = |n: u32| (0..256).map(|_| vec![(0, n)]).collect::<Rows>();
        let causal: Rows = (0..256).map(|i| vec![(0, i + 1)]).collect();
        let cases: [(Rows, u32, u32, u32, bool); 5] = [
            (full(256), 256, TMA_KV, 1, true),
            (causal, 256, TMA_KV, 1, false),    // partial tiles
            (full(256), 256, 0, 1, false),      // K/V not by TMA
            (full(256), 256, TMA_KV, 2, false), // two KV regions
            (full(384), 384, TMA_KV, 1, false), // three tiles
        ];
        let mut wl = WorkLists {
            mask_mode: TileMasks::Fwd,
            ..Default::default()
        };
        for (wdx, (rows, n_keys, flags, kv_count, _)) in cases.iter().enumerate() {
            wl.works.push(WorkDesc {
                n_rows: 256,
                n_keys: *n_keys,
                q_heads: 2,
                flags: *flags,
                kv_count: *kv_count,
                ..Default::default()
            });
            let (csr, _) = wl.push_rows(&RowRanges::from_rows(rows), 256);
            for r0 in (0..256).step_by(SM90_BR as usize) {
                let (off, len) = wl.classify_into_tiles(&csr, r0, r0 + SM90_BR, *n_keys, SM90_BC);
                for h in 0..2 {
                    wl.tasks.push(TaskDesc {
                        head: h,
                        ..task(wdx as u32, r0, off, len)
                    });
                }
            }
        }
        assert_eq!(wl.count_fwd_one(), 4);
        assert_eq!(wl.mark_fwd_one(), 4, "work 0: 2 q tiles x 2 heads");
        for t in &wl.tasks {
            let want = cases[t.work as usize].4;
            assert_eq!(t.pad == FWD_ONE_TASK, want, "task {t:?}");
            assert!(t.pad == 0 || t.pad == FWD_ONE_TASK, "task {t:?}");
        }
        // The kernel reads the same flag.
        let def = format!("#define FWD_ONE_TASK {FWD_ONE_TASK}u");
        assert!(crate::nvrtc::ATTN_FWD_SM90.contains(&def), "{def}");
        assert!(fwd_short_one_with(None, 128).unwrap());
        assert!(fwd_short_one_with(Some("1"), 128).unwrap());
        assert!(!fwd_short_one_with(Some("0"), 128).unwrap());
        assert!(fwd_short_one_with(None, 64).unwrap() && !fwd_short_one_with(None, 96).unwrap());
        assert!(!fwd_short_one_with(Some("0"), 64).unwrap());
        assert!(!fwd_short_one_with(Some("0"), 96).unwrap());
        let e = fwd_short_one_with(Some("1"), 96).unwrap_err().to_string();
        assert!(
            e.contains("DCP_CUDA_FWD_SHORT_ONE") && e.contains("96"),
            "{e}"
        );
        let e = fwd_short_one_with(Some("two"), 128)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DCP_CUDA_FWD_SHORT_ONE"), "{e}");
        // Which short-task launches take the FWD_ONE kernel.
        assert_eq!(fwd_short_one_min_with(None).unwrap(), 50);
        assert_eq!(fwd_short_one_min_with(Some(" 0")).unwrap(), 0);
        assert_eq!(fwd_short_one_min_with(Some("100")).unwrap(), 100);
        for bad in ["101", "-1", "half", "0.5"] {
            let e = fwd_short_one_min_with(Some(bad)).unwrap_err().to_string();
            assert!(
                e.contains("DCP_CUDA_FWD_SHORT_ONE_MIN") && e.contains(bad),
                "{e}"
            );
        }
        assert!(one_share(4, 8, 50) && !one_share(3, 8, 50));
        assert!(one_share(0, 8, 0) && !one_share(0, 8, 1) && !one_share(0, 0, 50));
        assert!(one_share(8, 8, 100) && !one_share(7, 8, 100));
    }

    /// Forward half tiles (`DCP_CUDA_FWD_HALF`): on causal-blockwise (256-token blocks, 2 local)
    /// over 4096 tokens, each task's slice holds its half tiles first — the window's first tile
    /// (rows 64-127 see its upper 64 keys only) and the diagonal (rows 0-63 its lower keys) —
    /// then the others, both in key order; `pad` counts them; the mask indices move with their
    /// tiles; the split last block's pieces are ordered each within its own slice. A full-mask
    /// work and the switch off keep key order and a count of 0.
    #[test]
    fn forward_half_tiles_first_with_their_count() {
        let n = 4096u32;
        let blockwise: Vec<Vec<(u32, u32)>> = (0..n)
            .map(|i| {
                if i < 256 || i >= n - 256 {
                    vec![(0, i + 1)]
                } else {
                    vec![(0, 256), (256.max(i.saturating_sub(512)), i + 1)]
                }
            })
            .collect();
        let full: Vec<Vec<(u32, u32)>> = (0..n).map(|_| vec![(0, n)]).collect();
        let build_bits = |rows: &[Vec<(u32, u32)>], half_mode: bool, half_bits: bool| {
            let mut wl = WorkLists {
                mask_mode: TileMasks::Fwd,
                half_mode,
                half_bits,
                ..Default::default()
            };
            wl.works.push(WorkDesc {
                n_rows: n,
                q_heads: 2,
                ..Default::default()
            });
            let (csr, _) = wl.push_rows(&RowRanges::from_rows(rows), n);
            let mut qtiles = Vec::new();
            for r0 in (0..n).step_by(SM90_BR as usize) {
                let (off, len) = wl.classify_into_tiles(&csr, r0, r0 + SM90_BR, n, SM90_BC);
                qtiles.push((r0, r0 + SM90_BR, off, len));
                for h in 0..2 {
                    wl.tasks.push(TaskDesc {
                        head: h,
                        ..task(0, r0, off, len)
                    });
                }
            }
            wl.fill_fwd_masks(&csr, &qtiles, n);
            wl.mark_fwd_half(&csr, &qtiles, n);
            let key_order = (wl.tiles.clone(), wl.tmask.clone());
            // 132 SMs: chunk = 16 tiles; the last block's q tiles (31 and 32 tiles) are split
            // in 2 pieces each.
            let splits = wl.fwd_split(132, &[1], u64::MAX, SM90_BR);
            wl.apply_fwd_split(&splits, 2, |_, _, wd| wd);
            wl.order_fwd_half();
            (wl, csr, key_order)
        };
        let build = |rows: &[Vec<(u32, u32)>], half_mode: bool| build_bits(rows, half_mode, false);

        let (wl, csr, (key_tiles, key_masks)) = build(&blockwise, true);
        assert!(
            wl.tasks.iter().any(|t| t.work > 0),
            "the last block is split"
        );
        let mut scratch = (Vec::new(), Vec::new());
        for t in &wl.tasks {
            let r = t.tiles_off as usize..(t.tiles_off + t.tiles_n) as usize;
            let (row0, np) = if t.work == 0 {
                (t.row0, 1)
            } else {
                (t.row0 + (n - 256), wl.works.len() - 1)
            };
            let qt = row0 / SM90_BR;
            // Half tiles: the window's first tile (tile qt - 4, from q tile 6 on, where the
            // window starts past the first block) and the diagonal.
            let want_half: Vec<u32> = (0..n / SM90_BC)
                .filter(|&kt| kt == qt || (kt + 4 == qt && qt >= 6 && row0 < n - 256))
                .collect();
            let (half, rest) = wl.tiles[r.clone()].split_at(t.pad as usize);
            assert!(half.iter().all(|&w| w & PARTIAL != 0), "task {t:?}");
            assert!(half.windows(2).all(|w| w[0] < w[1]) && rest.windows(2).all(|w| w[0] < w[1]));
            for &w in half {
                assert!(
                    want_half.contains(&(w & !PARTIAL)),
                    "task {t:?}: tile {w:#x}"
                );
            }
            for &w in rest {
                assert!(
                    !want_half.contains(&(w & !PARTIAL)),
                    "task {t:?}: tile {w:#x}"
                );
            }
            if np == 1 {
                assert_eq!(t.pad as usize, want_half.len(), "task {t:?}");
                // The slice holds the tiles of key order, permuted.
                let mut sorted = wl.tiles[r.clone()].to_vec();
                sorted.sort_by_key(|w| w & !PARTIAL);
                assert_eq!(sorted, key_tiles[r.clone()]);
            }
            // Each tile's mask index still names its mask.
            for i in r {
                let w = wl.tiles[i];
                if w & PARTIAL == 0 {
                    assert_eq!(wl.tmask[i], tilemask::NO_MASK);
                    continue;
                }
                let m = wl.tmask[i] as usize * tilemask::FWD_MASK_WORDS;
                scratch.1.clear();
                tilemask::push(
                    tilemask::Layout::Fwd,
                    &csr,
                    row0,
                    row0 + SM90_BR,
                    w & !PARTIAL,
                    n,
                    &mut scratch.0,
                    &mut scratch.1,
                );
                assert_eq!(wl.masks[m..m + tilemask::FWD_MASK_WORDS], scratch.1[..]);
            }
        }
        // The split pieces of the last block's q tiles: the diagonal in the last piece, its
        // slice's only half tile; every other piece none.
        let pieces: Vec<&TaskDesc> = wl.tasks.iter().filter(|t| t.work > 0).collect();
        assert_eq!(
            pieces.iter().map(|t| t.pad).sum::<u32>(),
            2 * 2,
            "2 q tiles x 2 heads"
        );
        let mut all_masks = key_masks.clone();
        all_masks.sort_unstable();
        let mut now = wl.tmask.clone();
        now.sort_unstable();
        assert_eq!(all_masks, now);
        let middle = wl
            .tasks
            .iter()
            .filter(|t| t.work == 0 && t.row0 >= 6 * SM90_BR)
            .count();
        assert!(
            middle > 0
                && wl
                    .tasks
                    .iter()
                    .filter(|t| t.work == 0 && t.row0 >= 6 * SM90_BR)
                    .all(|t| t.pad == 2)
        );

        for (rows, mode) in [(&full, true), (&blockwise, false)] {
            let (wl, _, (key_tiles, key_masks)) = build(rows, mode);
            assert!(wl.tasks.iter().all(|t| t.pad == 0));
            assert_eq!((wl.tiles, wl.tmask), (key_tiles, key_masks));
        }
        // DCP_CUDA_FWD_HALFBITS: the same lists, each half tile's word with its warpgroups'
        // halves in bits 27-30 (as tilemask::fwd_half_bits has them), no other word changed.
        let (plain, ..) = build(&blockwise, true);
        let (wb, csr, _) = build_bits(&blockwise, true, true);
        assert_eq!(
            (&plain.tasks, &plain.tmask),
            (&wb.tasks, &wb.tmask),
            "the bits change no task or mask"
        );
        let mut with_bits = 0;
        for t in &wb.tasks {
            let row0 = if t.work == 0 {
                t.row0
            } else {
                t.row0 + (n - 256)
            };
            for k in 0..t.tiles_n as usize {
                let i = t.tiles_off as usize + k;
                let (w, p) = (wb.tiles[i], plain.tiles[i]);
                if k < t.pad as usize {
                    let b = tilemask::fwd_half_bits(&csr, row0, row0 + SM90_BR, p & !PARTIAL, n);
                    assert!((0..2).any(|cw| (b >> (2 * cw)) & 3 != 3));
                    assert_eq!(w, p | b << 27, "task {t:?} tile {k}");
                    with_bits += 1;
                } else {
                    assert_eq!(w, p, "task {t:?} tile {k}");
                }
            }
        }
        assert!(with_bits > 0);
        assert!(fwd_halfbits_with(None, 128).unwrap() && fwd_halfbits_with(Some(""), 128).unwrap());
        assert!(
            !fwd_halfbits_with(None, 64).unwrap() && !fwd_halfbits_with(Some("0"), 128).unwrap()
        );
        assert!(fwd_halfbits_with(Some(" 1"), 64).unwrap());
        assert!(fwd_halfbits_with(Some("2"), 128).is_err());
        assert!(fwd_half_with(Some("1"), 64).unwrap() && fwd_half_with(Some("1"), 128).unwrap());
        assert!(!fwd_half_with(Some(" 0"), 128).unwrap() && !fwd_half_with(Some("0"), 64).unwrap());
        // Unset: on at D 128 (where it was measured faster), off at D 64.
        assert!(fwd_half_with(None, 128).unwrap() && fwd_half_with(Some(""), 128).unwrap());
        assert!(!fwd_half_with(None, 64).unwrap());
        let e = fwd_half_with(Some("on"), 128).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_HALF=on"), "{e}");
        assert_eq!(bwd_half_with(None).unwrap(), 0.0);
        assert_eq!(bwd_half_with(Some("")).unwrap(), 0.0);
        assert_eq!(bwd_half_with(Some(" 0")).unwrap(), 0.0);
        assert_eq!(bwd_half_with(Some("12.5")).unwrap(), 0.125);
        for bad in ["on", "-1", "101"] {
            let e = bwd_half_with(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(&format!("DCP_CUDA_BWD_HALF={bad}")), "{e}");
        }
        assert_eq!(fwd_short_with(None, 128).unwrap(), 3);
        assert_eq!(fwd_short_with(Some(""), 64).unwrap(), 2);
        assert_eq!(fwd_short_with(None, 96).unwrap(), 0);
        assert_eq!(fwd_short_with(Some(" 0"), 128).unwrap(), 0);
        assert_eq!(fwd_short_with(Some("5"), 64).unwrap(), 5);
        let e = fwd_short_with(Some("on"), 128).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_SHORT=on"), "{e}");
        assert_eq!(fwd_half_short_with(None).unwrap(), 5);
        assert_eq!(fwd_half_short_with(Some(" 0")).unwrap(), 0);
        assert_eq!(fwd_half_short_with(Some("1000000")).unwrap(), 1_000_000);
        let e = fwd_half_short_with(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_HALF_SHORT=yes"), "{e}");
        assert_eq!(fwd_short_pp_with(None).unwrap(), None);
        assert_eq!(fwd_short_pp_with(Some(" 0")).unwrap(), None);
        assert_eq!(fwd_short_pp_with(Some("2")).unwrap(), Some((2, None)));
        assert_eq!(fwd_short_pp_with(Some("2:2")).unwrap(), Some((2, Some(2))));
        for bad in ["on", "2:4", "0:3", "2:", ":3", "-1"] {
            let e = fwd_short_pp_with(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(&format!("DCP_CUDA_FWD_SHORT_PP={bad}")), "{e}");
        }
        assert_eq!(fwd_short_rel_with(None).unwrap(), 3);
        assert_eq!(fwd_short_rel_with(Some(" 2")).unwrap(), 2);
        assert_eq!(fwd_short_rel_with(Some("1")).unwrap(), 1);
        let e = fwd_short_rel_with(Some("0")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_SHORT_LATEREL=0"), "{e}");
        assert!(fwd_short_omap_with(None).unwrap() && fwd_short_omap_with(Some("1")).unwrap());
        assert!(!fwd_short_omap_with(Some(" 0")).unwrap());
        let e = fwd_short_omap_with(Some("no")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_FWD_SHORT_OMAP=no"), "{e}");
        let t = |n: u32| TaskDesc {
            tiles_n: n,
            ..Default::default()
        };
        // works1000's tasks (2 tiles) are short; a mean above the bound, or no task, is not.
        assert!(short_tasks(&[t(2), t(2)], 3));
        assert!(short_tasks(&[t(1), t(5)], 3));
        assert!(!short_tasks(&[t(2), t(5)], 3));
        assert!(!short_tasks(&[t(2)], 0));
        assert!(!short_tasks(&[], 3));
    }

    /// Forward tile masks: a work with many partial tiles gets one per partial tile (and none
    /// for full tiles), one long causal sequence (0.8 % partial tiles) none; the mma kernels'
    /// lists carry no mask indices at all.
    #[test]
    fn forward_tile_masks_where_they_pay() {
        let classify_all = |wl: &mut WorkLists, rows: &RowRanges, n: u32| {
            let (csr, _) = wl.push_rows(rows, n);
            let mut qtiles = Vec::new();
            let mut r0 = 0;
            while r0 < n {
                let r1 = (r0 + SM90_BR).min(n);
                let (off, len) = wl.classify_into_tiles(&csr, r0, r1, n, SM90_BC);
                qtiles.push((r0, r1, off, len));
                r0 = r1;
            }
            wl.fill_fwd_masks(&csr, &qtiles, n);
        };
        // A 512-token sliding window over 4096 tokens: about 2 of 5 tiles a row are partial.
        let window: Vec<Vec<(u32, u32)>> = (0..4096u32)
            .map(|r| vec![(r.saturating_sub(512), r + 1)])
            .collect();
        let causal: Vec<Vec<(u32, u32)>> = (0..32768u32).map(|r| vec![(0, r + 1)]).collect();
        for (rows, want_masks) in [(window, true), (causal, false)] {
            let n = rows.len() as u32;
            let mut wl = WorkLists {
                mask_mode: TileMasks::Fwd,
                ..Default::default()
            };
            classify_all(&mut wl, &RowRanges::from_rows(&rows), n);
            assert_eq!(wl.tmask.len(), wl.tiles.len());
            // Every partial tile names a mask equal to its own (tiles of equal masks share
            // one), masks are distinct and each is named by some tile.
            let (csr, _) = WorkLists::default().push_rows(&RowRanges::from_rows(&rows), n);
            let words = tilemask::FWD_MASK_WORDS;
            let n_masks = wl.masks.len() / words;
            let (mut partial, mut named) = (0, vec![false; n_masks]);
            let mut scratch = (Vec::new(), Vec::new());
            let mut ti = 0;
            for r0 in (0..n).step_by(SM90_BR as usize) {
                let end = ti
                    + wl.classify(&csr, r0, (r0 + SM90_BR).min(n), n, SM90_BC)
                        .len();
                for i in ti..end {
                    let (t, m) = (wl.tiles[i], wl.tmask[i]);
                    if t & PARTIAL == 0 || !want_masks {
                        assert_eq!(m, tilemask::NO_MASK);
                        continue;
                    }
                    partial += 1;
                    named[m as usize] = true;
                    scratch.1.clear();
                    let r1 = (r0 + SM90_BR).min(n);
                    let kt = t & !PARTIAL;
                    tilemask::push(
                        tilemask::Layout::Fwd,
                        &csr,
                        r0,
                        r1,
                        kt,
                        n,
                        &mut scratch.0,
                        &mut scratch.1,
                    );
                    assert_eq!(
                        wl.masks[m as usize * words..(m as usize + 1) * words],
                        scratch.1[..]
                    );
                    assert_eq!(
                        wl.mask_seen.fwd_half_bits(m),
                        tilemask::fwd_half_bits(&csr, r0, r1, kt, n),
                        "half bits from the mask, q tile {r0}, key tile {kt}"
                    );
                }
                ti = end;
            }
            assert!(named.iter().all(|&x| x), "every mask is used");
            let distinct: std::collections::HashSet<&[u32]> = wl.masks.chunks(words).collect();
            assert_eq!(distinct.len(), n_masks, "masks are distinct");
            assert_eq!(n_masks > 0, want_masks);
            // The window's diagonal and window-start tiles repeat: few shapes for many tiles.
            assert!(
                !want_masks || n_masks * 4 < partial,
                "{n_masks} masks for {partial} tiles"
            );
            let mut mma = WorkLists::default();
            classify_all(&mut mma, &RowRanges::from_rows(&rows), n);
            assert!(mma.tmask.is_empty() && mma.masks.is_empty());
        }
    }

    #[test]
    fn work_lists_share_one_csr_and_sort_tasks() {
        let a = RowRanges::from_rows(&[vec![(0, 3)], vec![(0, 70)], vec![(64, 130)]]);
        let b = RowRanges::from_rows(&[vec![(5, 9), (20, 30)], vec![]]);
        let mut wl = WorkLists::default();
        let (csr_a, off_a) = wl.push_rows(&a, 3);
        let (csr_b, off_b) = wl.push_rows(&b, 2);
        assert_eq!((off_a, off_b), (0, 4));
        assert_eq!(wl.row_ptr, [0, 1, 2, 3, 3, 5, 5]);
        assert_eq!(wl.ranges, [[0, 3], [0, 70], [64, 130], [5, 9], [20, 30]]);
        // Work a, rows 0..3, 64-key tiles of 130 keys: tiles 0 (partial), 1 (partial), 2 (partial).
        let (t_off, t_n) = wl.classify_into_tiles(&csr_a, 0, 3, 130, 64);
        assert_eq!((t_off, t_n), (0, 3));
        assert_eq!(wl.tiles, [PARTIAL, 1 | PARTIAL, 2 | PARTIAL]);
        // Work b: one partial tile; row 1 attends nothing.
        assert_eq!(wl.classify(&csr_b, 0, 2, 30, 64), [PARTIAL]);
        for (n, work) in [(1u32, 0u32), (3, 1), (2, 0)] {
            wl.tasks.push(TaskDesc {
                work,
                row0: 0,
                head: 0,
                tiles_off: 0,
                tiles_n: n,
                pad: 0,
            });
        }
        wl.works.push(WorkDesc::default());
        let mut arena = Arena::default();
        let mut stats = ProgramStats::default();
        let (grid, args) = wl.finish(&mut arena, &mut stats);
        assert_eq!((grid, stats.attn_tasks, args.len()), (3, 3, 6));
        let offs: Vec<usize> = args
            .iter()
            .map(|a| match a {
                Arg::Arena(o) => *o,
                other => panic!("{other:?} is not an arena offset"),
            })
            .collect();
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "{offs:?}");
        let tasks: &[u8] = &arena.bytes[offs[2]..offs[2] + 3 * std::mem::size_of::<TaskDesc>()];
        let n_of = |i: usize| {
            let t = i * std::mem::size_of::<TaskDesc>() + 16; // tiles_n: fifth u32
            u32::from_le_bytes(tasks[t..t + 4].try_into().unwrap())
        };
        assert_eq!([n_of(0), n_of(1), n_of(2)], [3, 2, 1]);
    }

    #[test]
    fn lowering_refuses_regions_outside_their_buffers() {
        use dcp_core::spec::DType;
        let decl = BufferDecl {
            name: "q".into(),
            role: BufferRole::Scratch,
            dtype: DType::Bf16,
            tokens: 10,
            heads: 2,
            width: 16,
        };
        let r = |buf, tok, len, head, heads| Region {
            buf,
            tok,
            len,
            head,
            heads,
        };
        let prog = |dst: Region| Program {
            buffers: vec![decl.clone()],
            instrs: vec![
                Instr::Wait { tag: 0 },
                Instr::Fill {
                    dst,
                    value: FillValue::Zero,
                },
            ],
        };
        assert!(check_regions(&prog(r(0, 0, 10, 0, 2))).is_ok());
        for (bad, why) in [
            (r(0, 5, 6, 0, 2), "10 tokens"),
            (r(0, 0, 10, 1, 2), "2 heads"),
            (r(1, 0, 1, 0, 1), "1 buffers declared"),
            (r(0, u32::MAX, 2, 0, 1), "10 tokens"),
        ] {
            match check_regions(&prog(bad)) {
                Err(CudaError::RegionOutOfBounds {
                    instr,
                    kind,
                    why: w,
                    ..
                }) => {
                    assert_eq!((instr, kind), (1, "fill"));
                    assert!(w.contains(why), "{w}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn copy_batches_join_only_adjacent_independent_copies() {
        // fp32 rows of 8 heads x 128 (4 KiB) at `ptr`, `len` rows.
        let rd = |ptr: u64, len: u32, dtype: u32| RegionDesc {
            ptr,
            stride: 1024,
            dtype,
            len,
            heads: 8,
            width: 128,
            pad: 0,
        };
        let cp = |s: RegionDesc, d: RegionDesc, grid: u32| {
            Op::Launch(Launch {
                k: K::Copy,
                grid,
                block: 256,
                smem: 0,
                args: vec![Arg::Region(s), Arg::Region(d)],
            })
        };
        assert_eq!(desc_span(&rd(4096, 2, 2)), (4096, 4096 + 8192));
        assert_eq!(desc_span(&rd(4096, 2, 0)), (4096, 4096 + 4096));
        let (a, b) = (1u64 << 20, 1u64 << 30);
        let ops = vec![
            // dK/dV rows and the dQ conversion: independent, one launch.
            cp(rd(a, 4, 2), rd(b, 4, 0), 16),
            cp(rd(a + 65536, 64, 2), rd(b + 65536, 64, 0), 256),
            // reads what the run wrote: a new run
            cp(rd(b, 4, 0), rd(a + (1 << 24), 4, 0), 8),
            Op::Memcpy {
                dst: 0,
                src: 0,
                bytes: 0,
            },
            // alone between other ops: unchanged
            cp(rd(a, 1, 2), rd(b, 1, 2), 4),
        ];
        let instr: Vec<(u32, &'static str)> = (0..ops.len() as u32).map(|i| (i, "x")).collect();
        let mut arena = Arena::default();
        let (out, ins) = batch_copies(ops, instr, &mut arena);
        assert_eq!(out.len(), 4);
        assert_eq!(ins, vec![(0, "x"), (2, "x"), (3, "x"), (4, "x")]);
        match &out[0] {
            Op::Launch(l) => {
                assert_eq!((l.k, l.grid), (K::CopyMulti, 256));
                assert!(matches!(l.args.as_slice(), [Arg::Arena(0), Arg::U32(2)]));
            }
            _ => panic!("expected the batched launch"),
        }
        assert_eq!(arena.bytes.len(), 4 * std::mem::size_of::<RegionDesc>());
        assert!(matches!(&out[1], Op::Launch(l) if l.k == K::Copy && l.grid == 8));
        assert!(matches!(&out[2], Op::Memcpy { .. }));
        assert!(matches!(&out[3], Op::Launch(l) if l.k == K::Copy && l.grid == 4));
        // A copy into what an earlier one of the run reads splits the run as well.
        let ops = vec![
            cp(rd(a, 4, 2), rd(b, 4, 0), 16),
            cp(rd(b + (1 << 24), 4, 0), rd(a, 1, 2), 16),
        ];
        let (out, _) = batch_copies(ops, vec![(0, "x"); 2], &mut arena);
        assert!(out
            .iter()
            .all(|o| matches!(o, Op::Launch(l) if l.k == K::Copy)));
    }

    #[test]
    fn merge_batches_keep_rows_back_to_back_and_dependent_merges_apart() {
        let reg = |buf, tok, len| Region {
            buf,
            tok,
            len,
            head: 0,
            heads: 4,
        };
        let rd = |len| RegionDesc {
            len,
            heads: 4,
            width: 8,
            ..Default::default()
        };
        let mut b = MergeBatch::default();
        b.add(rd(10), rd(10), &[rd(10), rd(10), rd(10), rd(10)]);
        b.add(rd(0), rd(0), &[rd(0), rd(0)]); // empty: skipped
        b.add(rd(5), rd(5), &[rd(5), rd(5)]);
        assert_eq!(b.merges.len(), 2);
        assert_eq!(
            (b.merges[0].row0, b.merges[0].first, b.merges[0].n),
            (0, 0, 2)
        );
        assert_eq!(
            (b.merges[1].row0, b.merges[1].first, b.merges[1].n),
            (40, 4, 1)
        );
        assert_eq!(b.rows, 60);
        // Pending: block 0 of O (buffer 0) and LSE (buffer 1) from partials in buffers 2, 3.
        b.writes.extend([reg(0, 0, 10), reg(1, 0, 10)]);
        b.reads.extend([reg(2, 0, 10), reg(3, 0, 10)]);
        let other = (reg(2, 10, 10), reg(3, 10, 10));
        assert!(
            !b.depends(&reg(0, 10, 10), &reg(1, 10, 10), &[other]),
            "next block: independent"
        );
        assert!(
            b.depends(
                &reg(0, 20, 5),
                &reg(1, 20, 5),
                &[(reg(0, 5, 2), reg(1, 5, 2))]
            ),
            "reads a pending output"
        );
        assert!(
            b.depends(&reg(0, 5, 1), &reg(1, 30, 1), &[other]),
            "writes a pending output"
        );
        assert!(
            b.depends(&reg(2, 5, 1), &reg(1, 30, 1), &[other]),
            "overwrites a pending input"
        );
        let mut arena = Arena::default();
        let l = b.launch(&mut arena, 100).unwrap();
        assert_eq!(l.k, K::Merge);
        assert!(MergeBatch::default().launch(&mut arena, 100).is_none());
    }

    #[test]
    fn persistent_grid_caps_at_the_sms_and_takes_the_override() {
        assert_eq!(persistent_grid(2048, 132, None).unwrap(), 132);
        assert_eq!(persistent_grid(40, 132, None).unwrap(), 40);
        assert_eq!(
            persistent_grid(0, 132, None).unwrap(),
            1,
            "a launch with no task"
        );
        assert_eq!(persistent_grid(2048, 132, Some("0")).unwrap(), 2048);
        assert_eq!(persistent_grid(2048, 132, Some(" 64 ")).unwrap(), 64);
        let e = persistent_grid(10, 132, Some("many"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DCP_CUDA_FWD_CTAS=many"), "{e}");
    }

    #[test]
    fn persistent_bwd_grid_names_its_override() {
        assert_eq!(persistent_bwd_grid(4000, 132, None).unwrap(), 132);
        assert_eq!(persistent_bwd_grid(4000, 132, Some("0")).unwrap(), 4000);
        assert_eq!(persistent_bwd_grid(0, 132, None).unwrap(), 1);
        let e = persistent_bwd_grid(10, 132, Some("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DCP_CUDA_BWD_CTAS=x"), "{e}");
    }

    #[test]
    fn sm90_bwd_smem_fits_the_sm90_limit() {
        // D 128: one 64-row q tile per step; D 64: two (128-row Q, dO and dS stages). The
        // per-task info slots are 160 bytes each (2 x 128 overran by the WorkDesc's last 8).
        assert_eq!(sm90_bwd_smem(128), 202_208);
        assert_eq!(sm90_bwd_smem(64), 206_304);
        // The chain kernel computing D (`BWD_CHAIN_DD`) adds O's 64 x 128 16-bit rows.
        assert!(sm90_bwd_smem(128) + SM90_BWD_O_STAGE <= 232_448);
        // The plain D 128 build's staging (session 17).
        assert!(sm90_bwd_smem(128) + SM90_BWD_SCRATCH <= 232_448);
        for d in [64, 128] {
            assert!(sm90_bwd_smem(d) <= 232_448, "d {d}");
        }
    }

    #[test]
    fn chain_variant_defs_take_only_the_named_switches() {
        assert!(chain_variant_defs(None).unwrap().is_empty());
        assert!(chain_variant_defs(Some(" ")).unwrap().is_empty());
        assert_eq!(
            chain_variant_defs(Some(" BWD_CHAIN_ST16=0,")).unwrap(),
            vec![("BWD_CHAIN_ST16".to_string(), "0".to_string())]
        );
        assert!(chain_variant_defs(Some("BWD_CHAIN_ST16=2")).is_err());
        assert!(chain_variant_defs(Some("HEAD_DIM=64")).is_err());
        assert!(chain_variant_defs(Some("BWD_CHAIN_L2=1")).is_err());
        assert!(chain_variant_defs(Some("BWD_CHAIN_ST16")).is_err());
        assert!(fwd_short_variant_defs(None).unwrap().is_empty());
        assert_eq!(
            fwd_short_variant_defs(Some("FWD_FASTDESC=1, FWD_SPLIT=2")).unwrap(),
            vec![
                ("FWD_FASTDESC".to_string(), "1".to_string()),
                ("FWD_SPLIT".to_string(), "2".to_string())
            ]
        );
        for bad in ["FWD_ONE=1", "FWD_LATEREL=1", "FWD_LAZY=3", "FWD_LAZY"] {
            let e = fwd_short_variant_defs(Some(bad)).unwrap_err();
            assert!(
                e.contains("DCP_CUDA_FWD_SHORT_DEFS") && e.contains(bad),
                "{e}"
            );
        }
    }

    #[test]
    fn copy_batch_is_on_unless_set_to_0() {
        assert!(copy_batch_with(None).unwrap());
        assert!(copy_batch_with(Some(" ")).unwrap());
        assert!(copy_batch_with(Some("1")).unwrap());
        assert!(!copy_batch_with(Some(" 0")).unwrap());
        let e = copy_batch_with(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_COPY_BATCH=yes"), "{e}");
    }

    #[test]
    fn dd_ctas_override_parses_ctas_per_sm() {
        assert_eq!(dd_ctas_override(None).unwrap(), None);
        assert_eq!(dd_ctas_override(Some(" ")).unwrap(), None);
        assert_eq!(dd_ctas_override(Some("16")).unwrap(), Some(16));
        assert_eq!(dd_ctas_override(Some("3")).unwrap(), Some(3));
        assert!(dd_ctas_override(Some("0")).is_err());
        assert!(dd_ctas_override(Some("x")).is_err());
        assert!(dd_ctas_override(Some("65")).is_err());
    }

    #[test]
    fn dd_tile_pairs_follow_the_kernels_lanes_per_pair() {
        // dcp_bwd_dd: L = the smallest power of two with L * 8 >= head_dim (32 at most, 32 when
        // head_dim is not a multiple of 8), 4 passes of 256 / L pairs.
        assert_eq!(dd_tile_pairs(128), 64);
        assert_eq!(dd_tile_pairs(64), 128);
        assert_eq!(dd_tile_pairs(96), 64);
        assert_eq!(dd_tile_pairs(8), 1024);
        assert_eq!(dd_tile_pairs(256), 32);
        assert_eq!(dd_tile_pairs(512), 32);
        assert_eq!(dd_tile_pairs(100), 32);
    }

    #[test]
    fn bwd_smem_override_only_grows_and_is_capped() {
        assert_eq!(bwd_smem_override(201_888, None).unwrap(), 201_888);
        assert_eq!(
            bwd_smem_override(201_888, Some(" 232448 ")).unwrap(),
            232_448
        );
        assert_eq!(bwd_smem_override(201_888, Some("1000")).unwrap(), 201_888);
        for bad in ["232449", "lots"] {
            let e = bwd_smem_override(1, Some(bad)).unwrap_err().to_string();
            assert!(e.contains(&format!("DCP_CUDA_BWD_SMEM={bad}")), "{e}");
        }
    }

    #[test]
    fn family_choice_parses_and_rejects_unknown() {
        assert_eq!(FamilyChoice::parse("auto").unwrap(), FamilyChoice::Auto);
        assert_eq!(FamilyChoice::parse("").unwrap(), FamilyChoice::Auto);
        assert_eq!(FamilyChoice::parse("mma").unwrap(), FamilyChoice::Mma);
        assert_eq!(FamilyChoice::parse(" sm90 ").unwrap(), FamilyChoice::Sm90);
        let e = FamilyChoice::parse("wgmma").unwrap_err().to_string();
        assert!(e.contains("wgmma") && e.contains("sm90"), "{e}");
    }

    #[test]
    fn family_follows_device_and_head_dim() {
        use KernelFamily::*;
        for d in [64, 128] {
            for def in [false, true] {
                let c = |ch| choose_family(ch, (9, 0), d, def).unwrap();
                assert_eq!(c(FamilyChoice::Sm90), Sm90Wgmma);
                assert_eq!(c(FamilyChoice::Mma), MmaSync);
                assert_eq!(c(FamilyChoice::Auto) == Sm90Wgmma, def);
            }
        }
        // Other architectures and head dims: auto falls back, an explicit sm90 is an error.
        for (cc, d) in [((8, 0), 128), ((9, 0), 96), ((9, 0), 256), ((10, 0), 128)] {
            assert_eq!(
                choose_family(FamilyChoice::Auto, cc, d, true).unwrap(),
                MmaSync
            );
            let e = choose_family(FamilyChoice::Sm90, cc, d, true)
                .unwrap_err()
                .to_string();
            assert!(e.contains("head dim"), "{e}");
        }
    }
}
