//! DCP core: the batch and mask model, the block table, the Plan IR every executor shares, the
//! validator that proves a plan right, the CPU reference executor, and the planners.
//!
//! Pipeline: [`spec::BatchSpec`] → [`blocks::BlockTable`] → planner → [`plan::Plan`] →
//! [`mod@validate`] → executors ([`cpu`], the simulator, the CUDA executor).

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
