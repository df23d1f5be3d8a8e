//! The planning API: [`PlannerConfig`] (what `dcp.Planner(...)` holds; shared with the loader's
//! planning threads) and [`PyPlan`] (a plan plus its per-rank token layout as index arrays).
//!
//! Token layout: every rank holds some tokens of the packed batch (sequences concatenated in the
//! order given). `indices(rank)` are those tokens' positions in the packed batch, in the rank's
//! buffer row order; `position_ids(rank)` are their positions inside their own sequence (RoPE).

use std::sync::Arc;

use dcp_core::error::{PlanningError, SpecError};
use dcp_core::mask::MaskSpec;
use dcp_core::plan::Plan;
use dcp_core::planners::{allowed_planners, is_planner, make_validated_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Sequence, Topology};
use dcp_core::validate::ValidatedPlan;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{format_err, planning_err, spec_err, InvalidSpecError};

/// Everything needed to plan a batch of lengths (Send: planning threads hold a copy).
#[derive(Debug, Clone)]
pub struct PlannerConfig {
    pub planner: String,
    pub topology: Topology,
    pub model: ModelShape,
    pub block_size: u32,
    pub head_block: u32,
    pub mask: MaskSpec,
    pub opts: PlannerOptions,
}

impl PlannerConfig {
    /// Plans `lens`; `masks` (one per sequence) overrides the default mask.
    pub fn plan(
        &self,
        lens: &[u32],
        masks: Option<&[MaskSpec]>,
    ) -> Result<ValidatedPlan, PlanningError> {
        if let Some(m) = masks {
            if m.len() != lens.len() {
                return Err(SpecError::Invalid(format!(
                    "{} masks given for {} sequences: give one mask per sequence or a single mask",
                    m.len(),
                    lens.len()
                ))
                .into());
            }
        }
        let seqs = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| Sequence {
                len,
                mask: masks
                    .map(|m| m[i].clone())
                    .unwrap_or_else(|| self.mask.clone()),
            })
            .collect();
        let batch = BatchSpec {
            seqs,
            model: self.model,
            block_size: self.block_size,
            head_block: self.head_block,
        };
        batch.validate()?;
        make_validated_plan(&self.planner, &batch, &self.topology, &self.opts)
    }
}

pub fn parse_dtype(s: &str) -> PyResult<DType> {
    match s.to_ascii_lowercase().as_str() {
        "bf16" | "bfloat16" => Ok(DType::Bf16),
        "f16" | "fp16" | "float16" => Ok(DType::F16),
        "f32" | "fp32" | "float32" => Ok(DType::F32),
        _ => Err(InvalidSpecError::new_err(format!(
            "unknown dtype `{s}`: allowed are bf16, f16, f32"
        ))),
    }
}

/// Masks given from Python: None, one name for the whole batch, or one name per sequence.
pub fn parse_masks(masks: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<MaskSpec>>> {
    let Some(m) = masks else { return Ok(None) };
    if m.is_none() {
        return Ok(None);
    }
    if let Ok(s) = m.extract::<String>() {
        return Ok(Some(vec![MaskSpec::parse(&s).map_err(spec_err)?]));
    }
    let names: Vec<String> = m.extract().map_err(|_| {
        InvalidSpecError::new_err("mask must be a string or a list of strings (one per sequence)")
    })?;
    names
        .iter()
        .map(|s| MaskSpec::parse(s).map_err(spec_err))
        .collect::<PyResult<Vec<_>>>()
        .map(Some)
}

/// Per-rank layout arrays, computed once per plan.
pub struct Layout {
    pub indices: Vec<Vec<i64>>,
    pub positions: Vec<Vec<i64>>,
    pub seq_ids: Vec<Vec<i64>>,
}

impl Layout {
    pub fn of(plan: &Plan) -> Self {
        let offs = plan.batch.seq_offsets();
        let mut l = Layout {
            indices: Vec::new(),
            positions: Vec::new(),
            seq_ids: Vec::new(),
        };
        for d in &plan.devices {
            let (mut ix, mut pos, mut sid) = (Vec::new(), Vec::new(), Vec::new());
            for s in &d.layout {
                let g0 = offs[s.seq as usize] as i64 + s.start as i64;
                ix.extend(g0..g0 + s.len as i64);
                pos.extend(s.start as i64..(s.start + s.len) as i64);
                sid.extend(std::iter::repeat_n(s.seq as i64, s.len as usize));
            }
            l.indices.push(ix);
            l.positions.push(pos);
            l.seq_ids.push(sid);
        }
        l
    }
}

/// A plan for one batch (immutable). Python: `dcp._native.Plan`, wrapped by `dcp.Plan`.
#[pyclass(name = "Plan", module = "dcp._native", frozen)]
pub struct PyPlan {
    /// Validated when made (planned, or loaded from JSON/bytes): executors take only these.
    pub plan: Arc<ValidatedPlan>,
    pub layout: Arc<Layout>,
    /// FNV-1a of the binary form: equal plans have equal fingerprints (cache key).
    pub fingerprint: u64,
}

pub fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl PyPlan {
    pub fn new(plan: ValidatedPlan) -> Self {
        let fingerprint = fnv1a(&plan.to_bytes());
        let layout = Arc::new(Layout::of(&plan));
        PyPlan {
            plan: Arc::new(plan),
            layout,
            fingerprint,
        }
    }
    /// A loaded plan, validated before anything may run it.
    pub fn checked(plan: Plan) -> PyResult<Self> {
        let v = ValidatedPlan::new(plan)
            .map_err(|e| crate::errors::PlanFormatError::new_err(format!("invalid plan: {e}")))?;
        Ok(PyPlan::new(v))
    }
    pub fn check_rank(&self, rank: usize) -> PyResult<()> {
        if rank >= self.plan.devices.len() {
            return Err(InvalidSpecError::new_err(format!(
                "rank {rank} is out of range: the plan has {} ranks",
                self.plan.devices.len()
            )));
        }
        Ok(())
    }
}

fn arr<'py>(py: Python<'py>, v: &[i64]) -> Bound<'py, PyArray1<i64>> {
    v.to_vec().into_pyarray(py)
}

#[pymethods]
impl PyPlan {
    #[getter]
    fn world_size(&self) -> usize {
        self.plan.devices.len()
    }
    /// The planner that produced it (`dcp` plans say which candidate won: dcp, dcp:local, ...).
    #[getter]
    fn planner(&self) -> String {
        self.plan.label()
    }
    #[getter]
    fn lengths(&self) -> Vec<u32> {
        self.plan.batch.lens()
    }
    #[getter]
    fn total_tokens(&self) -> u64 {
        self.plan.batch.total_tokens()
    }
    #[getter]
    fn heads(&self) -> u32 {
        self.plan.batch.model.heads
    }
    #[getter]
    fn kv_heads(&self) -> u32 {
        self.plan.batch.model.kv_heads
    }
    #[getter]
    fn head_dim(&self) -> u32 {
        self.plan.batch.model.head_dim
    }
    #[getter]
    fn dtype(&self) -> &'static str {
        match self.plan.batch.model.dtype {
            DType::Bf16 => "bf16",
            DType::F16 => "f16",
            DType::F32 => "f32",
        }
    }
    #[getter]
    fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
    /// Masks of the sequences, as names (`causal`, `lambda`, ...).
    #[getter]
    fn masks(&self) -> Vec<&'static str> {
        self.plan.batch.seqs.iter().map(|s| s.mask.name()).collect()
    }
    fn num_tokens(&self, rank: usize) -> PyResult<usize> {
        self.check_rank(rank)?;
        Ok(self.layout.indices[rank].len())
    }
    /// Positions in the packed batch of the tokens rank `rank` holds, in its row order.
    fn indices<'py>(&self, py: Python<'py>, rank: usize) -> PyResult<Bound<'py, PyArray1<i64>>> {
        self.check_rank(rank)?;
        Ok(arr(py, &self.layout.indices[rank]))
    }
    /// Position of each of the rank's tokens inside its own sequence (for RoPE).
    fn position_ids<'py>(
        &self,
        py: Python<'py>,
        rank: usize,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        self.check_rank(rank)?;
        Ok(arr(py, &self.layout.positions[rank]))
    }
    /// Sequence index of each of the rank's tokens.
    fn sequence_ids<'py>(
        &self,
        py: Python<'py>,
        rank: usize,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        self.check_rank(rank)?;
        Ok(arr(py, &self.layout.seq_ids[rank]))
    }
    /// The rank's token spans: (sequence, first token, length), in row order.
    fn layout(&self, rank: usize) -> PyResult<Vec<(u32, u32, u32)>> {
        self.check_rank(rank)?;
        Ok(self.plan.devices[rank]
            .layout
            .iter()
            .map(|s| (s.seq, s.start, s.len))
            .collect())
    }
    /// Bytes moved, compute and memory balance, stages (dict).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = dcp_core::stats::plan_stats(&self.plan);
        let d = PyDict::new(py);
        d.set_item("fwd_bytes", s.fwd_bytes_intra + s.fwd_bytes_inter)?;
        d.set_item("bwd_bytes", s.bwd_bytes_intra + s.bwd_bytes_inter)?;
        d.set_item("fwd_bytes_inter", s.fwd_bytes_inter)?;
        d.set_item("bwd_bytes_inter", s.bwd_bytes_inter)?;
        d.set_item("compute_imbalance", s.compute_imbalance)?;
        d.set_item("memory_imbalance", s.memory_imbalance)?;
        d.set_item("device_bytes", s.device_bytes)?;
        d.set_item("stages", s.n_stages)?;
        Ok(d)
    }
    fn to_json(&self) -> String {
        self.plan.to_json()
    }
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.plan.to_bytes())
    }
    #[staticmethod]
    fn from_json(s: &str) -> PyResult<Self> {
        PyPlan::checked(Plan::from_json(s).map_err(format_err)?)
    }
    #[staticmethod]
    fn from_bytes(b: &[u8]) -> PyResult<Self> {
        PyPlan::checked(Plan::from_bytes(b).map_err(format_err)?)
    }
    /// Runs the validator (symbolic execution of all ranks); raises on a broken plan.
    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        let p = self.plan.clone();
        py.detach(move || dcp_core::validate(&p))
            .map_err(|e| crate::errors::PlanningError::new_err(e.to_string()))
    }
    fn __eq__(&self, other: &Self) -> bool {
        self.plan == other.plan
    }
    fn __repr__(&self) -> String {
        format!(
            "Plan(planner={:?}, world_size={}, sequences={}, tokens={})",
            self.plan.planner,
            self.plan.devices.len(),
            self.plan.batch.seqs.len(),
            self.plan.batch.total_tokens()
        )
    }
}

/// dcp's cost model from `cost_model`: JSON text (starting with `{`) or the path of a JSON file,
/// e.g. the `<profile>.cost.json` that `dcp calibrate` writes (fitted kernel model and
/// send/recv curve of the GPUs it ran on).
fn load_cost_model(c: &str) -> PyResult<dcp_core::cost::CostModel> {
    let text = if c.trim_start().starts_with('{') {
        c.to_string()
    } else {
        std::fs::read_to_string(c)
            .map_err(|e| InvalidSpecError::new_err(format!("cost_model: reading `{c}`: {e}")))?
    };
    dcp_core::cost::CostModel::from_json(&text).map_err(|e| {
        InvalidSpecError::new_err(format!(
            "cost_model `{c}`: {e} (expected the JSON of a cost model, e.g. `dcp calibrate`'s <profile>.cost.json)"
        ))
    })
}

/// `dcp.Planner`: plans batches of sequence lengths.
#[pyclass(name = "Planner", module = "dcp._native", frozen)]
pub struct PyPlanner {
    pub cfg: PlannerConfig,
}

#[pymethods]
impl PyPlanner {
    /// `world_size` ranks over `nodes` nodes (world_size must be a multiple of nodes).
    #[new]
    #[pyo3(signature = (world_size, *, nodes=1, heads=8, kv_heads=2, head_dim=128, dtype="bf16",
        block_size=1024, head_block=None, planner="dcp", mask="causal", device_memory_gib=80.0,
        inter_gbps=None, intra_gbps=None, seed=0, cost_model=None, token_epsilon=None))]
    fn new(
        world_size: u32,
        nodes: u32,
        heads: u32,
        kv_heads: u32,
        head_dim: u32,
        dtype: &str,
        block_size: u32,
        head_block: Option<u32>,
        planner: &str,
        mask: &str,
        device_memory_gib: f64,
        inter_gbps: Option<f64>,
        intra_gbps: Option<f64>,
        seed: u64,
        cost_model: Option<&str>,
        token_epsilon: Option<f64>,
    ) -> PyResult<Self> {
        if world_size == 0 || nodes == 0 || !world_size.is_multiple_of(nodes) {
            return Err(InvalidSpecError::new_err(format!(
                "world_size {world_size} must be a positive multiple of nodes {nodes}"
            )));
        }
        if !is_planner(planner) {
            return Err(InvalidSpecError::new_err(format!(
                "unknown planner `{planner}`: allowed are {}",
                allowed_planners()
            )));
        }
        if !(device_memory_gib > 0.0 && device_memory_gib.is_finite()) {
            return Err(InvalidSpecError::new_err(format!(
                "device_memory_gib must be a positive number (got {device_memory_gib})"
            )));
        }
        let model = ModelShape {
            heads,
            kv_heads,
            head_dim,
            dtype: parse_dtype(dtype)?,
        };
        model.validate().map_err(spec_err)?;
        if block_size == 0 {
            return Err(spec_err(SpecError::ZeroBlockSize));
        }
        let mut topology = Topology::new(nodes, world_size / nodes);
        topology.device_memory_bytes = (device_memory_gib * (1u64 << 30) as f64) as u64;
        if let Some(b) = inter_gbps {
            topology.inter_gbps = b;
        }
        if let Some(b) = intra_gbps {
            topology.intra_gbps = b;
        }
        let mut opts = PlannerOptions::default();
        opts.dcp.seed = seed;
        if let Some(c) = cost_model {
            opts.dcp.cost = load_cost_model(c)?;
        }
        if let Some(e) = token_epsilon {
            if !(e.is_finite() && (0.0..=10.0).contains(&e)) {
                return Err(InvalidSpecError::new_err(format!(
                    "token_epsilon must be a number in [0, 10] (allowed max/mean - 1 of the tokens each rank holds; got {e})"
                )));
            }
            opts.dcp.mem_epsilon = e;
        }
        Ok(PyPlanner {
            cfg: PlannerConfig {
                planner: planner.to_string(),
                topology,
                model,
                block_size,
                head_block: head_block.unwrap_or(kv_heads),
                mask: MaskSpec::parse(mask).map_err(spec_err)?,
                opts,
            },
        })
    }

    /// Plans one batch: `lengths` of the packed sequences; `mask` None (the planner's), one name,
    /// or one name per sequence. Runs without holding the GIL.
    #[pyo3(signature = (lengths, mask=None))]
    fn plan(
        &self,
        py: Python<'_>,
        lengths: Vec<u32>,
        mask: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyPlan> {
        let mut masks = parse_masks(mask)?;
        if let Some(m) = &masks {
            if m.len() == 1 && lengths.len() != 1 {
                masks = Some(vec![m[0].clone(); lengths.len()]);
            }
        }
        let cfg = self.cfg.clone();
        let plan = py
            .detach(move || cfg.plan(&lengths, masks.as_deref()))
            .map_err(planning_err)?;
        Ok(PyPlan::new(plan))
    }

    #[getter]
    fn world_size(&self) -> u32 {
        self.cfg.topology.n_devices()
    }
    #[getter]
    fn planner(&self) -> String {
        self.cfg.planner.clone()
    }
    fn __repr__(&self) -> String {
        format!(
            "Planner(world_size={}, nodes={}, planner={:?}, heads={}, kv_heads={}, head_dim={}, block_size={})",
            self.cfg.topology.n_devices(),
            self.cfg.topology.nodes,
            self.cfg.planner,
            self.cfg.model.heads,
            self.cfg.model.kv_heads,
            self.cfg.model.head_dim,
            self.cfg.block_size
        )
    }
}
