//! Python bindings of DCP (`dcp._native`, an abi3 extension for CPython ≥ 3.11). The Python
//! package `dcp` (python/dcp/) wraps it:
//!
//! * [`plan`]: `Planner` → `Plan` with per-rank token layouts and position ids;
//! * [`loader`]: batch forming and the planning-ahead queue of `dcp.data`;
//! * [`cpu`]: the CPU reference executor over all ranks (`dcp.torch` on CPU tensors);
//! * [`cuda`]: the CUDA executor on PyTorch's stream (`dcp.torch` on CUDA tensors);
//! * [`errors`]: the `DcpError` exception hierarchy.

// Python signatures with keyword options are long by nature.
#![allow(clippy::too_many_arguments)]

use pyo3::prelude::*;

pub mod cpu;
pub mod cuda;
pub mod errors;
pub mod loader;
pub mod plan;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    errors::register(py, m)?;
    m.add_class::<plan::PyPlanner>()?;
    m.add_class::<plan::PyPlan>()?;
    m.add_class::<loader::PyPlanningQueue>()?;
    m.add_class::<cuda::PyCudaExecutor>()?;
    m.add_function(wrap_pyfunction!(loader::form_batches, m)?)?;
    m.add_function(wrap_pyfunction!(loader::generate_batches, m)?)?;
    m.add_function(wrap_pyfunction!(cpu::cpu_attention, m)?)?;
    m.add_function(wrap_pyfunction!(cuda::nccl_unique_id, m)?)?;
    m.add_function(wrap_pyfunction!(cuda::nccl_version, m)?)?;
    m.add_function(wrap_pyfunction!(cuda::cuda_driver_present, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
