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

use dcp_core::error::{PlanningError, SpecError};
use dcp_core::plan::PlanFormatError;
use dcp_cuda::CudaError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    DcpError,
    PyException,
    "Base class of every error raised by dcp."
);
create_exception!(
    _native,
    InvalidSpecError,
    DcpError,
    "A batch, model or topology specification that is not valid."
);
create_exception!(
    _native,
    BadLengthsError,
    InvalidSpecError,
    "Sequence lengths that cannot be planned (empty batch, zero length, longer than the budget)."
);
create_exception!(
    _native,
    MaskError,
    InvalidSpecError,
    "A mask with bad parameters."
);
create_exception!(
    _native,
    UnknownMaskError,
    MaskError,
    "A mask name that is not one of the allowed kinds."
);
create_exception!(
    _native,
    PlanningError_,
    DcpError,
    "A plan cannot be made for these inputs."
);
create_exception!(
    _native,
    PlanDoesNotFitError,
    PlanningError_,
    "A plan needs more attention memory on some device than the cap allows."
);
create_exception!(
    _native,
    UnsupportedError,
    DcpError,
    "A feature the chosen planner or executor does not support."
);
create_exception!(
    _native,
    PlanFormatError_,
    DcpError,
    "A serialized plan that cannot be read."
);
create_exception!(
    _native,
    GpuLibraryError,
    DcpError,
    "A GPU library (driver, NVRTC, NCCL, CUDA headers) or the GPU itself is missing."
);
create_exception!(
    _native,
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

pub fn planning_err(e: PlanningError) -> PyErr {
    let msg = message_with_sources(&e);
    match e {
        PlanningError::Spec(s) => spec_err(s),
        PlanningError::SequenceTooLarge { .. }
        | PlanningError::BatchTooLarge { .. }
        | PlanningError::PlanTooLarge { .. } => BadLengthsError::new_err(msg),
        // Refused up front (its share alone exceeds every device's memory) or after planning.
        PlanningError::SequenceExceedsCluster { .. } | PlanningError::MemoryCap { .. } => {
            PlanDoesNotFitError::new_err(msg)
        }
        PlanningError::Unsupported { .. } | PlanningError::UnknownPlanner(_) => {
            UnsupportedError::new_err(msg)
        }
        PlanningError::Partition(_) | PlanningError::Invalid(_) => PlanningError_::new_err(msg),
    }
}

pub fn format_err(e: PlanFormatError) -> PyErr {
    PlanFormatError_::new_err(e.to_string())
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
    m.add("PlanningError", py.get_type::<PlanningError_>())?;
    m.add("PlanDoesNotFitError", py.get_type::<PlanDoesNotFitError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("PlanFormatError", py.get_type::<PlanFormatError_>())?;
    m.add("GpuLibraryError", py.get_type::<GpuLibraryError>())?;
    m.add("PeerFailureError", py.get_type::<PeerFailureError>())?;
    m.add("GpuError", py.get_type::<GpuError>())?;
    Ok(())
}
