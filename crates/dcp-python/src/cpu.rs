//! The CPU reference executor from Python: runs every rank's forward and backward programs of a
//! plan in one process (f64), with tensors in packed-batch order. `dcp.torch` dispatches and
//! undispatches around it, so the autograd op is tested against dense attention without a GPU.

use dcp_core::cpu::{execute, Tensors};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArrayDyn};
use pyo3::prelude::*;

use crate::errors::{InvalidSpecError, PlanningError};
use crate::plan::PyPlan;

type Out<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

fn flat(name: &str, a: &PyReadonlyArrayDyn<'_, f64>, want: usize) -> PyResult<Vec<f64>> {
    let s = a.as_slice().map_err(|_| {
        InvalidSpecError::new_err(format!("{name} must be a C-contiguous float64 array"))
    })?;
    if s.len() != want {
        return Err(InvalidSpecError::new_err(format!(
            "{name} has {} elements, the plan needs {want}",
            s.len()
        )));
    }
    Ok(s.to_vec())
}

/// Forward and backward of the whole plan on the CPU. `q`, `d_o`: [tokens, heads, D]; `kv`:
/// [tokens, kv_heads, 2D] (K then V per head), packed-batch order. Returns flat (O, LSE, dQ,
/// dKV) in the same order and layouts. Runs without the GIL.
#[pyfunction]
pub fn cpu_attention<'py>(
    py: Python<'py>,
    plan: &PyPlan,
    q: PyReadonlyArrayDyn<'py, f64>,
    kv: PyReadonlyArrayDyn<'py, f64>,
    d_o: PyReadonlyArrayDyn<'py, f64>,
) -> PyResult<Out<'py>> {
    let m = plan.plan.batch.model;
    let t = plan.plan.batch.total_tokens() as usize;
    let (h, hk, d) = (m.heads as usize, m.kv_heads as usize, m.head_dim as usize);
    let x = Tensors {
        q: flat("q", &q, t * h * d)?,
        kv: flat("kv", &kv, t * hk * 2 * d)?,
        d_o: flat("grad_out", &d_o, t * h * d)?,
    };
    let p = plan.plan.clone();
    let out = py
        .detach(move || execute(&p, &x))
        .map_err(|e| PlanningError::new_err(format!("CPU executor: {e}")))?;
    Ok((
        out.o.into_pyarray(py),
        out.lse.into_pyarray(py),
        out.dq.into_pyarray(py),
        out.dkv.into_pyarray(py),
    ))
}
