//! Errors of the CUDA executor. Missing libraries are reported before cudarc would panic.

/// Everything the CUDA executor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver found (libcuda.so could not be loaded): this machine has no NVIDIA GPU driver")]
    NoDriver,
    #[error("no GPU visible to the CUDA driver ({0})")]
    NoDevice(String),
    #[error("NVRTC (libnvrtc.so.13) could not be loaded: put the CUDA 13 NVRTC library (pip nvidia/cu13/lib or the toolkit's lib64) on LD_LIBRARY_PATH")]
    NoNvrtc,
    #[error("NCCL (libnccl.so) could not be loaded: put a libnccl.so (e.g. a symlink to pip nvidia/nccl/lib/libnccl.so.2) first on LD_LIBRARY_PATH")]
    NoNccl,
    #[error(
        "cuda_bf16.h not found: set DCP_CUDA_INCLUDE to a CUDA include directory (tried: {0})"
    )]
    NoHeaders(String),
    #[error("CUDA driver call `{call}` failed: {err}")]
    Driver { call: &'static str, err: String },
    #[error("NVRTC failed to compile {name} with {options:?}:\n{log}")]
    Compile {
        name: String,
        options: Vec<String>,
        log: String,
    },
    #[error("NCCL call `{call}` failed: {err}")]
    Nccl { call: &'static str, err: String },
    #[error("rendezvous failed: {0}")]
    Rendezvous(String),
    #[error("plan not supported by the CUDA executor: {0}")]
    Unsupported(String),
    /// A step passed its deadline or a peer failed (see [`crate::watchdog`]); the
    /// communicator was aborted.
    #[error("{0}")]
    Stalled(Box<crate::watchdog::Failure>),
    /// Errors met while releasing GPU resources (kept by `Drop`, reported by the next call).
    #[error("releasing GPU resources failed earlier: {0}")]
    Deferred(String),
    #[error("byte range {offset}..{offset}+{len} lies outside a device buffer of {bytes} bytes")]
    OutOfBounds {
        offset: usize,
        len: usize,
        bytes: usize,
    },
    /// A plan region outside its buffer, found while lowering (a plan that skipped the
    /// validator, or a corrupt one).
    #[error("instruction {instr} ({kind}) has region {region} outside its buffer: {why}")]
    RegionOutOfBounds {
        instr: usize,
        kind: &'static str,
        region: String,
        why: String,
    },
    #[error("the NCCL communicator was aborted after an earlier failure")]
    Aborted,
    #[error("an internal lock was poisoned by a panic on another thread")]
    Poisoned,
    #[error("bad fault injection spec: {0}")]
    Fault(String),
    #[error("injected fault: {0}")]
    Injected(String),
    #[error("bad environment: {0}")]
    Env(String),
}

pub type Result<T, E = CudaError> = std::result::Result<T, E>;

pub(crate) fn drv<T>(
    call: &'static str,
    r: std::result::Result<T, cudarc::driver::DriverError>,
) -> Result<T> {
    r.map_err(|e| CudaError::Driver {
        call,
        err: format!("{e:?}"),
    })
}

pub(crate) fn nccl<T>(
    call: &'static str,
    r: std::result::Result<T, cudarc::nccl::result::NcclError>,
) -> Result<T> {
    r.map_err(|e| CudaError::Nccl {
        call,
        err: format!("{e:?}"),
    })
}
