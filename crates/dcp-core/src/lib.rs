//! DCP core: the batch and mask model, the block table, the Plan IR every executor shares, the
//! validator that proves a plan right, the CPU reference executor, and the planners.
//!
//! Pipeline: [`spec::BatchSpec`] → [`blocks::BlockTable`] → planner → [`plan::Plan`] →
//! [`mod@validate`] → executors ([`cpu`], the simulator, the CUDA executor).
//!
//! # Quick start
//!
//! Plan a batch of three documents for 2 nodes × 4 GPUs, prove the plan, and read what it costs;
//! then check a small plan end to end against dense attention on the CPU:
//!
//! ```
//! use dcp_core::cost::{predict, CostModel};
//! use dcp_core::mask::MaskSpec;
//! use dcp_core::planners::{make_plan, PlannerOptions};
//! use dcp_core::spec::{BatchSpec, DType, ModelShape, Topology};
//!
//! // 8 query / 2 KV heads, head dim 128, bf16; dcp places blocks of 1024 tokens.
//! let batch = BatchSpec::uniform(
//!     &[30_000, 12_000, 800],
//!     MaskSpec::Causal,
//!     ModelShape::default(),
//!     1024,
//! );
//! let plan = make_plan("dcp", &batch, &Topology::new(2, 4), &PlannerOptions::default())?;
//! dcp_core::validate(&plan)?; // every device's program, executed symbolically
//! let stats = dcp_core::stats::plan_stats(&plan);
//! assert!(stats.compute_imbalance < 1.5);
//! let t = predict(&plan, &CostModel::default()); // this project's Hopper kernels, by default
//! assert!(t.fwd_ms > 0.0 && t.bwd_ms > t.fwd_ms);
//!
//! // The CPU reference executor (f64) against dense masked attention: O, LSE, dQ, dK, dV.
//! let small = BatchSpec::uniform(
//!     &[70, 33],
//!     MaskSpec::parse("lambda:4:16")?,
//!     ModelShape { heads: 4, kv_heads: 2, head_dim: 16, dtype: DType::Bf16 },
//!     16,
//! );
//! for planner in ["dcp", "ring", "zigzag", "ulysses"] {
//!     let plan = make_plan(planner, &small, &Topology::new(1, 2), &PlannerOptions::default())?;
//!     let max_err = dcp_core::check::check_plan(&plan, 7)?;
//!     assert!(max_err < 1e-9, "{planner}: {max_err}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Numeric kernels index several arrays with one loop variable; work checks take many regions.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]

pub mod baselines;
pub mod blocks;
pub mod builder;
pub mod check;
pub mod cost;
pub mod cpu;
pub mod datasets;
pub mod error;
pub mod flops;
pub mod mask;
pub mod spec;
pub mod stats;

pub use error::{PlanError, PlanErrorKind, PlanningError, SpecError};
pub mod interp;
pub mod plan;
pub mod planners;
mod prefetch;
/// The DCP planner under its historical path (it lives in [`planners::dcp`]).
pub use planners::{dcp, ulysses, usp};
pub mod validate;

pub use validate::{validate, ValidatedPlan};
