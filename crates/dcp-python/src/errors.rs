//! Typed Rust errors → the `dcp.DcpError` exception hierarchy, same message text.
//!
//! ```text
//! DcpError
//! ├── InvalidSpecError
//! │   ├── BadLengthsError        empty batch, zero-length sequence, a sequence over the budget
//! │   └── MaskError
//! │       └── UnknownMaskError   a mask name that is not one of the allowed kinds
//! ├── PlanningError
//! │   └── PlanDoesNotFitError    a device needs more attention memory than the cap
//! ├── UnsupportedError           a feature this planner or executor does not have
//! ├── PlanFormatError            a serialized plan that cannot be read
//! ├── GpuLibraryError            no driver / GPU / NVRTC / NCCL / CUDA headers
//! ├── PeerFailureError           NCCL failures, timeouts, rendezvous failures
//! └── GpuError                   any other CUDA driver failure
//! ```

use dcp_core::error::{PlanningError as CorePlanningError, SpecError};
use dcp_core::plan::PlanFormatError as CorePlanFormatError;
use dcp_cuda::CudaError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    dcp,
    DcpError,
    PyException,
    "Base class of every error raised by dcp."
);
create_exception!(
    dcp,
    InvalidSpecError,
    DcpError,
    "A batch, model or topology specification that is not valid."
);
create_exception!(
    dcp,
    BadLengthsError,
    InvalidSpecError,
    "Sequence lengths that cannot be planned (empty batch, zero length, longer than the budget)."
);
create_exception!(
    dcp,
    MaskError,
    InvalidSpecError,
    "A mask with bad parameters."
);
create_exception!(
    dcp,
    UnknownMaskError,
    MaskError,
    "A mask name that is not one of the allowed kinds."
);
create_exception!(
    dcp,
    PlanningError,
    DcpError,
    "A plan cannot be made for these inputs."
);
create_exception!(
    dcp,
    PlanDoesNotFitError,
    PlanningError,
    "A plan needs more attention memory on some device than the cap allows."
);
create_exception!(
    dcp,
    UnsupportedError,
    DcpError,
    "A feature the chosen planner or executor does not support."
);
create_exception!(
    dcp,
    PlanFormatError,
    DcpError,
    "A serialized plan that cannot be read."
);
create_exception!(
    dcp,
    GpuLibraryError,
    DcpError,
    "A GPU library (driver, NVRTC, NCCL, CUDA headers) or the GPU itself is missing."
);
create_exception!(
    dcp,
    PeerFailureError,
    DcpError,
    "A communication peer failed (NCCL error, timeout, rendezvous)."
);
create_exception!(dcp, GpuError, DcpError, "A CUDA driver call failed.");

pub fn spec_err(e: SpecError) -> PyErr {
    let msg = e.to_string();
    match e {
        SpecError::EmptyBatch | SpecError::ZeroLengthSequence { .. } => {
            BadLengthsError::new_err(msg)
        }
        SpecError::UnknownMask(_) => UnknownMaskError::new_err(msg),
        SpecError::BadMaskParam { .. }
        | SpecError::RangeStartAfterEnd { .. }
        | SpecError::RangeOutOfBounds { .. }
        | SpecError::RangeRowCount { .. } => MaskError::new_err(msg),
        _ => InvalidSpecError::new_err(msg),
    }
}

/// The error's message followed by its sources, `: `-separated (one line, as the CLI prints).
fn message_with_sources(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

pub fn planning_err(e: CorePlanningError) -> PyErr {
    let msg = message_with_sources(&e);
    match e {
        CorePlanningError::Spec(s) => spec_err(s),
        CorePlanningError::SequenceTooLarge { .. }
        | CorePlanningError::BatchTooLarge { .. }
        | CorePlanningError::PlanTooLarge { .. } => BadLengthsError::new_err(msg),
        // Refused up front (its share alone exceeds every device's memory) or after planning.
        CorePlanningError::SequenceExceedsCluster { .. } | CorePlanningError::MemoryCap { .. } => {
            PlanDoesNotFitError::new_err(msg)
        }
        CorePlanningError::Unsupported { .. } | CorePlanningError::UnknownPlanner(_) => {
            UnsupportedError::new_err(msg)
        }
        CorePlanningError::Partition(_) | CorePlanningError::Invalid(_) => {
            PlanningError::new_err(msg)
        }
    }
}

pub fn format_err(e: CorePlanFormatError) -> PyErr {
    PlanFormatError::new_err(e.to_string())
}

pub fn cuda_err(e: CudaError) -> PyErr {
    let msg = e.to_string();
    match e {
        CudaError::NoDriver
        | CudaError::NoDevice(_)
        | CudaError::NoNvrtc
        | CudaError::NoNccl
        | CudaError::NoHeaders(_) => GpuLibraryError::new_err(msg),
        CudaError::Nccl { .. }
        | CudaError::Stalled(_)
        | CudaError::Aborted
        | CudaError::Rendezvous(_) => PeerFailureError::new_err(msg),
        CudaError::Unsupported(_) => UnsupportedError::new_err(msg),
        _ => GpuError::new_err(msg),
    }
}

pub fn register(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DcpError", py.get_type::<DcpError>())?;
    m.add("InvalidSpecError", py.get_type::<InvalidSpecError>())?;
    m.add("BadLengthsError", py.get_type::<BadLengthsError>())?;
    m.add("MaskError", py.get_type::<MaskError>())?;
    m.add("UnknownMaskError", py.get_type::<UnknownMaskError>())?;
    m.add("PlanningError", py.get_type::<PlanningError>())?;
    m.add("PlanDoesNotFitError", py.get_type::<PlanDoesNotFitError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("PlanFormatError", py.get_type::<PlanFormatError>())?;
    m.add("GpuLibraryError", py.get_type::<GpuLibraryError>())?;
    m.add("PeerFailureError", py.get_type::<PeerFailureError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    Ok(())
}
