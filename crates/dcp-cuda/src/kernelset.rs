//! The compiled kernels of one model shape ([`Kernels`]): the families chosen for the device,
//! the main forward and backward builds with their `DCP_CUDA_*` variant defines, and the
//! variants compiled on first use ([`OnDemand`]: chains, half tiles, clusters, short tasks).

use super::*;

/// The kernels for one model shape.
pub struct Kernels {
    pub cfg: TileConfig,
    pub head_dim: u32,
    pub elem: DType,
    pub(super) fill: Kernel,
    pub(super) copy: Kernel,
    pub(super) copy_multi: Kernel,
    pub(super) copy_raw16: Kernel,
    pub(super) sum: Kernel,
    pub(super) merge: Kernel,
    pub(super) bwd_dd: Kernel,
    /// The D pre-pass over one flat run of rows (`own::dd_flat`).
    pub(super) bwd_dd_flat: Kernel,
    pub fwd: Kernel,
    pub bwd: Kernel,
    /// The sm90 backward with chains compiled in (`BWD_CHAIN`; `DCP_CUDA_BWD_CHAIN` on, head
    /// dim 128), compiled when a launch first chains. Its shared memory: `bwd_smem`, plus the O
    /// half rows of its D steps where it computes D (`chain_dd`).
    pub(super) bwd_chain: OnDemand,
    /// The sm90 backward with half steps compiled in (`BWD_HALF`, opt-in `DCP_CUDA_BWD_HALF`, head
    /// dim 128), compiled when a launch first takes it: launches without chains where at least
    /// `bwd_half_min` of the steps leave one consumer warpgroup without a key.
    pub(super) bwd_half: OnDemand,
    pub(super) bwd_half_min: f64,
    /// The sm90 backward on 2-CTA clusters for chained launches of works two kv tiles wide
    /// ([`cluster`], `DCP_CUDA_BWD_CLUSTER`; kernels/attn_bwd_cluster_sm90.cu), compiled when a
    /// launch first clusters.
    pub(super) bwd_cluster: OnDemand,
    /// The same with D clusters (`CL_DSM`, [`cluster::Dsm`], `DCP_CUDA_BWD_CLUSTER_DSM`), compiled
    /// when a launch first takes them.
    pub(super) bwd_cluster_dsm: OnDemand,
    /// The sm90 forward with half tiles compiled in (`FWD_HALF`, `DCP_CUDA_FWD_HALF`), compiled
    /// when a launch first has half tiles.
    pub(super) fwd_half: OnDemand,
    /// The half-tile forward for launches of short tasks (`FWD_HALF` with `FWD_LATEREL 3`,
    /// `DCP_CUDA_FWD_HALF_SHORT`): launches with half tiles whose tasks average at most
    /// `fwd_half_short_max` tiles take it, compiled when such a launch first runs.
    pub(super) fwd_half_short: OnDemand,
    pub(super) fwd_half_short_max: u32,
    /// `DCP_CUDA_FWD_HALF_MAX`: launches with more half tiles per q tile on average run without
    /// half steps ([`fwd_half_max_with`]).
    pub(super) fwd_half_max: f64,
    /// `DCP_CUDA_FWD_HALFBITS`: the half-tile kernel is compiled with `FWD_HALFBITS` and the host
    /// writes each half tile's per-warpgroup halves into its tile word ([`fwd_halfbits_with`]).
    pub(super) fwd_halfbits: bool,
    /// The sm90 forward for launches of short tasks (`FWD_LATEREL 1`, `DCP_CUDA_FWD_SHORT`):
    /// launches without half tiles whose tasks average at most `fwd_short_max` tiles take it.
    pub(super) fwd_short: OnDemand,
    pub(super) fwd_short_max: u32,
    /// `DCP_CUDA_FWD_SHORT_OMAP`: the short-task kernel's launches get O tensor maps (the
    /// epilogue's tensor store); without, the kernel's generic O store ([`fwd_short_omap_with`]).
    pub(super) fwd_short_omap: bool,
    /// `DCP_CUDA_FWD_SHORT_ONE`: the short-task kernel compiled with `FWD_ONE`, whose launches'
    /// tasks of two full tiles run as one step ([`WorkLists::mark_fwd_one`]). A short-task
    /// launch takes it when at least `fwd_one_min` % of its tasks are such
    /// (`DCP_CUDA_FWD_SHORT_ONE_MIN`), the plain short-task kernel otherwise.
    pub(super) fwd_one: OnDemand,
    pub(super) fwd_one_min: u32,
    /// Byte budgets of the forward's and the backward's L2 windows ([`WorkLists::order_for_l2`],
    /// `DCP_CUDA_FWD_L2_MB`, `DCP_CUDA_BWD_L2_MB`; 0: off), each with the share of the tiles
    /// run as one final window (`DCP_CUDA_FWD_L2_TAIL`, `DCP_CUDA_BWD_L2_TAIL`, %).
    pub(super) fwd_l2: (u64, u32),
    pub(super) bwd_l2: (u64, u32),
    pub(super) fwd_smem: u32,
    pub(super) bwd_smem: u32,
    /// The forward family loaded, its query rows and keys per tile and threads per CTA.
    pub fwd_family: KernelFamily,
    pub(super) fwd_br: u32,
    pub(super) fwd_bc: u32,
    pub(super) fwd_block: u32,
    /// The backward family loaded, its keys per CTA, query rows per step, threads per CTA.
    pub bwd_family: KernelFamily,
    pub(super) bwd_bc: u32,
    pub(super) bwd_br: u32,
    pub(super) bwd_block: u32,
    /// Owned gradient rows of the sm90 backward ([`own`], `DCP_CUDA_BWD_OWN`); off for the
    /// mma.sync family.
    pub own: OwnMode,
    /// Owned dK/dV rows in D 64 launches that do not cluster too
    /// (`DCP_CUDA_BWD_OWN_D64`, parsed by `knobs::own_d64_with`); off for the mma.sync family.
    pub own_d64: bool,
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
    /// `DCP_CUDA_BWD_CHAIN`); off for the mma.sync family and head dims other than 128 and 64
    /// (at 64 there is no chain kernel: only launches that cluster chain).
    pub chain: ChainMode,
    /// The order and size of the backward's tasks ([`order`], `DCP_CUDA_BWD_ORDER`).
    pub bwd_order: TaskOrder,
    /// Print each backward launch's piece-size model to stderr (`DCP_CUDA_BWD_PIECE_LOG=1`).
    pub piece_log: bool,
    /// (forward, backward): among tasks of equal length, those with more partial tiles are
    /// claimed first (`DCP_CUDA_PARTIAL_FIRST`, `WorkLists::sort_tasks`).
    pub partial_first: (bool, bool),
    /// The chain kernel computes D = rowsum(dO * O) at each q tile's first visit and chained
    /// launches drop their D pre-pass ([`own::chain_dd_launch`], `DCP_CUDA_BWD_CHAIN_DD`);
    /// only where chains are on.
    pub chain_dd: bool,
    /// D clusters in clustered launches (`DCP_CUDA_BWD_CLUSTER_DSM`, [`cluster::parse_dsm`]).
    pub cluster_dsm: cluster::Dsm,
}

/// NVRTC defines (name, value) of a kernel build.
pub(super) type Defines = Vec<(String, String)>;

/// A kernel variant (extra defines) compiled on first use and run only by the launches that
/// need it: compiled into the main kernel, such code slowed every other shape (the chains
/// 3-5 %, the half tiles up to 7 %; bench/results/kernels-2026-11-29-kw11, -kbw11c).
pub(super) struct OnDemand {
    /// Source, entry point and defines; `None` where the variant is off.
    pub(super) build: Option<(Source, &'static str, Defines)>,
    /// Its dynamic shared memory.
    pub(super) smem: u32,
    pub(super) kernel: std::sync::OnceLock<Kernel>,
}

impl OnDemand {
    pub(super) fn new(src: Source, name: &'static str, defs: Defines, smem: u32) -> Self {
        OnDemand {
            build: Some((src, name, defs)),
            smem,
            kernel: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn off() -> Self {
        OnDemand {
            build: None,
            smem: 0,
            kernel: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.build.is_some()
    }

    /// The kernel, compiled at the first call; `None` where the variant is off.
    pub(super) fn get_or_compile(&self, gpu: &Gpu) -> Result<Option<&Kernel>> {
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
    pub(super) fn compiled(&self, what: &str) -> Result<&Kernel> {
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
        let own_d64 = match bwd_family {
            KernelFamily::Sm90Wgmma => {
                crate::knobs::own_d64_with(std::env::var("DCP_CUDA_BWD_OWN_D64").ok().as_deref())?
            }
            KernelFamily::MmaSync => false,
        };
        let fuse_fill = match bwd_family {
            KernelFamily::Sm90Wgmma => own::fuse_fill_from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => false,
        };
        let dd_zero = match bwd_family {
            KernelFamily::Sm90Wgmma => own::dd_zero_from_env().map_err(CudaError::Unsupported)?,
            KernelFamily::MmaSync => false,
        };
        // D 64 has no chain kernel: its chained launches run only as clusters (exec.rs).
        let chain = match bwd_family {
            KernelFamily::Sm90Wgmma if d == 128 || d == 64 => {
                ChainMode::from_env().map_err(CudaError::Unsupported)?
            }
            _ => ChainMode::Off,
        };
        let bwd_order = TaskOrder::from_env().map_err(CudaError::Unsupported)?;
        let piece_log = crate::switch::from_env("DCP_CUDA_BWD_PIECE_LOG", false)
            .map_err(CudaError::Unsupported)?;
        let partial_first = crate::knobs::partial_first_with(
            std::env::var("DCP_CUDA_PARTIAL_FIRST").ok().as_deref(),
        )?;
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
        let fwd_half_max =
            fwd_half_max_with(std::env::var("DCP_CUDA_FWD_HALF_MAX").ok().as_deref(), d)?;
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
        let mut bwd_cluster_dsm = OnDemand::off();
        let cluster_dsm = cluster::dsm_from_env().map_err(CudaError::Unsupported)?;
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
                    if cluster_dsm != cluster::Dsm::Off {
                        let mut dsm_defs = defs.clone();
                        dsm_defs.push(("CL_DSM".into(), "1".into()));
                        bwd_cluster_dsm = OnDemand::new(
                            Source::AttnBwdClusterSm90,
                            "dcp_attn_bwd_cluster_sm90",
                            dsm_defs,
                            smem + cluster::SMEM_EXTRA,
                        );
                    }
                }
                // Chains (`BWD_CHAIN`) in a kernel of their own, compiled when the first launch
                // chains ([`OnDemand`]) and used by chained launches only:
                // compiled into the one kernel, their code cost 3-5 % on every other shape
                // (bench/results/kernels-2026-11-29-kw11).
                if chain != ChainMode::Off && d == 128 {
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
            bwd_dd_flat: u("dcp_bwd_dd_flat")?,
            fwd,
            bwd,
            bwd_chain,
            bwd_half,
            bwd_half_min,
            bwd_cluster,
            bwd_cluster_dsm,
            fwd_half,
            fwd_half_short,
            fwd_half_short_max,
            fwd_half_max,
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
            own_d64,
            convert,
            fuse_fill,
            dd_zero,
            chain,
            bwd_order,
            piece_log,
            partial_first,
            chain_dd,
            cluster_dsm,
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
