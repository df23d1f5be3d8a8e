//! The CUDA executor from Python (`dcp.torch` is its only intended caller): one
//! [`ExternalExecutor`] per process on PyTorch's device, ordered on PyTorch's current stream, the
//! NCCL communicator built from an id that `torch.distributed` broadcast.
//!
//! Tensors arrive as (device address, bytes) pairs. `dcp.torch` takes them from contiguous
//! tensors it keeps alive until PyTorch's stream has passed the call, which is what the
//! executor's safety contract asks.

use std::sync::Mutex;
use std::time::Duration;

use dcp_core::plan::IoTensor;
use dcp_cuda::external::{self, DevTensor, ExternalExecutor};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::cuda_err;
use crate::plan::PyPlan;

/// A fresh 128-byte NCCL unique id (rank 0 makes it, torch.distributed broadcasts it).
#[pyfunction]
pub fn nccl_unique_id<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
    let id = external::nccl_unique_id().map_err(cuda_err)?;
    Ok(PyBytes::new(py, &id))
}

/// Version code of the NCCL library this extension loaded (e.g. 22809).
#[pyfunction]
pub fn nccl_version() -> PyResult<i32> {
    external::nccl_version().map_err(cuda_err)
}

/// True when the CUDA driver library can be loaded.
#[pyfunction]
pub fn cuda_driver_present() -> bool {
    dcp_cuda::gpu::driver_present()
}

/// A timeout argument `name` in seconds: a positive finite number (a negative or NaN one would
/// make `Duration` panic), else InvalidSpecError naming it.
fn seconds(name: &str, v: f64) -> PyResult<Duration> {
    if v > 0.0 && v.is_finite() {
        Ok(Duration::try_from_secs_f64(v).unwrap_or(Duration::MAX))
    } else {
        Err(crate::errors::InvalidSpecError::new_err(format!(
            "{name} must be a positive number of seconds (got {v})"
        )))
    }
}

fn dt(t: (u64, usize)) -> DevTensor {
    DevTensor {
        ptr: t.0,
        bytes: t.1,
    }
}

/// The executor behind a lock: PyTorch calls forward on the training thread and backward on its
/// autograd thread.
#[pyclass(name = "CudaExecutor", module = "dcp._native", frozen)]
pub struct PyCudaExecutor {
    ex: Mutex<ExternalExecutor>,
}

impl PyCudaExecutor {
    fn run(
        &self,
        plan: &PyPlan,
        rank: usize,
        stream: u64,
        backward: bool,
        inputs: &[(IoTensor, DevTensor)],
        outputs: &[(IoTensor, DevTensor)],
        saved: &[(u64, usize)],
    ) -> PyResult<()> {
        plan.check_rank(rank)?;
        let saved: Vec<DevTensor> = saved.iter().map(|&t| dt(t)).collect();
        // SAFETY: dcp.torch passes live, contiguous tensors of this device and keeps them
        // alive past the stream's use (module docs).
        unsafe {
            self.lock()?.run(
                plan.fingerprint,
                &plan.plan,
                rank,
                stream,
                backward,
                inputs,
                outputs,
                &saved,
            )
        }
        .map_err(cuda_err)
    }

    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, ExternalExecutor>> {
        self.ex.lock().map_err(|_| {
            crate::errors::GpuError::new_err("the CUDA executor failed in another thread earlier")
        })
    }
}

#[pymethods]
impl PyCudaExecutor {
    /// Opens GPU `device`; with `world > 1`, joins the communicator of `nccl_id` as `rank`
    /// (blocks until every rank joins). `cache`: prepared plans kept (LRU).
    /// `blocking_timeout_s`: wait for every call (peer failures surface at once) when set.
    #[new]
    #[pyo3(signature = (device, rank, world, nccl_id=None, cache=4, blocking_timeout_s=None, timeout_s=300.0))]
    fn new(
        device: usize,
        rank: u32,
        world: u32,
        nccl_id: Option<Vec<u8>>,
        cache: usize,
        blocking_timeout_s: Option<f64>,
        timeout_s: f64,
    ) -> PyResult<Self> {
        // One deadline for every blocking step (NCCL init, synchronize, blocking calls).
        let timeout = seconds(
            if blocking_timeout_s.is_some() {
                "blocking_timeout_s"
            } else {
                "timeout_s"
            },
            blocking_timeout_s.unwrap_or(timeout_s),
        )?;
        let mut ex = ExternalExecutor::new(device, rank, timeout, cache).map_err(cuda_err)?;
        if world > 1 {
            let id = nccl_id.ok_or_else(|| {
                crate::errors::InvalidSpecError::new_err("world > 1 needs the NCCL id (nccl_id=)")
            })?;
            ex.nccl = Some(external::comm_from_id(&ex.gpu, &id, rank, world).map_err(cuda_err)?);
        }
        ex.blocking = blocking_timeout_s.is_some();
        Ok(PyCudaExecutor { ex: Mutex::new(ex) })
    }

    /// Bytes of each buffer `rank`'s backward keeps from its forward (`Plan.saved_bytes`): the
    /// caller allocates one tensor per entry for each forward/backward pair.
    fn saved_bytes(&self, plan: &PyPlan, rank: usize) -> PyResult<Vec<usize>> {
        plan.check_rank(rank)?;
        Ok(external::saved_bytes(&plan.plan, rank))
    }

    /// Which of Q, KV, O and LSE `rank`'s backward program reads from the caller (names
    /// "q", "kv", "o", "lse"): a backward that starts from saved buffers may read none, and the
    /// caller need not keep those tensors for it.
    fn backward_reads(&self, plan: &PyPlan, rank: usize) -> PyResult<Vec<&'static str>> {
        plan.check_rank(rank)?;
        let prog = &plan.plan.devices[rank].backward;
        Ok([
            (IoTensor::Q, "q"),
            (IoTensor::Kv, "kv"),
            (IoTensor::O, "o"),
            (IoTensor::Lse, "lse"),
        ]
        .into_iter()
        .filter(|(t, _)| prog.io(*t).is_some())
        .map(|(_, n)| n)
        .collect())
    }

    /// Prepares `rank`'s forward and backward programs of `plan` now (lowering, buffers,
    /// descriptor upload), so that its first calls do not. Not collective; waits for the GPU
    /// only to evict a cached plan whose own work has not finished.
    fn prepare(&self, plan: &PyPlan, rank: usize) -> PyResult<()> {
        plan.check_rank(rank)?;
        self.lock()?
            .prepare(plan.fingerprint, &plan.plan, rank)
            .map_err(cuda_err)
    }

    /// Forward of `rank` on `stream`; each tensor is (address, bytes). `saved`: one tensor per
    /// entry of `saved_bytes`, which the forward fills and the backward of the same call reads.
    #[allow(clippy::too_many_arguments)] // the caller's tensors, one argument each
    fn forward(
        &self,
        plan: &PyPlan,
        rank: usize,
        stream: u64,
        q: (u64, usize),
        kv: (u64, usize),
        o: (u64, usize),
        lse: (u64, usize),
        saved: Vec<(u64, usize)>,
    ) -> PyResult<()> {
        let inputs = [(IoTensor::Q, dt(q)), (IoTensor::Kv, dt(kv))];
        self.run(
            plan,
            rank,
            stream,
            false,
            &inputs,
            &[(IoTensor::O, dt(o)), (IoTensor::Lse, dt(lse))],
            &saved,
        )
    }

    /// Backward of `rank` on `stream`; each tensor is (address, bytes); `saved`: the tensors its
    /// forward filled.
    fn backward(
        &self,
        plan: &PyPlan,
        rank: usize,
        stream: u64,
        q: (u64, usize),
        kv: (u64, usize),
        o: (u64, usize),
        lse: (u64, usize),
        d_o: (u64, usize),
        dq: (u64, usize),
        dkv: (u64, usize),
        saved: Vec<(u64, usize)>,
    ) -> PyResult<()> {
        let inputs = [
            (IoTensor::Q, dt(q)),
            (IoTensor::Kv, dt(kv)),
            (IoTensor::O, dt(o)),
            (IoTensor::Lse, dt(lse)),
            (IoTensor::DO, dt(d_o)),
        ];
        self.run(
            plan,
            rank,
            stream,
            true,
            &inputs,
            &[(IoTensor::DQ, dt(dq)), (IoTensor::DKv, dt(dkv))],
            &saved,
        )
    }

    /// Waits for all queued work, raising PeerFailureError on an NCCL error or when it is not
    /// done within `timeout_s` seconds or the executor's own deadline (set at construction),
    /// whichever is shorter. Like any stall, that leaves the executor failed.
    #[pyo3(signature = (timeout_s=300.0))]
    fn synchronize(&self, timeout_s: f64) -> PyResult<()> {
        let limit = seconds("timeout_s", timeout_s)?;
        self.lock()?.synchronize_within(limit).map_err(cuda_err)
    }

    /// Prepared plans currently cached.
    #[getter]
    fn cached(&self) -> PyResult<usize> {
        Ok(self.lock()?.cached())
    }

    /// Host time outside the GPU work so far: (programs prepared, seconds preparing them, the
    /// part of those seconds spent waiting for the GPU, seconds evicting cached plans).
    #[getter]
    fn host_stats(&self) -> PyResult<(u64, f64, f64, f64)> {
        Ok(self.lock()?.host_stats())
    }

    /// The device-memory pool: (bytes cached, allocations it served, allocations that went to
    /// the driver, seconds those spent in the driver).
    #[getter]
    fn pool_stats(&self) -> PyResult<(usize, u64, u64, f64)> {
        self.lock()?.pool_stats().map_err(cuda_err)
    }
}
