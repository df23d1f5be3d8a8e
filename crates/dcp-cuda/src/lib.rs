//! DCP's CUDA executor: runs any valid [`dcp_core::plan::Plan`] forward and backward on NVIDIA
//! GPUs, one process per GPU, NCCL point-to-point between them.
//!
//! * [`gpu`]: the device, its compute and comm streams, memory, events, NVRTC-built kernels.
//! * [`nvrtc`]: kernel sources (`kernels/*.cu`, embedded) compiled at first use for the device's
//!   arch (sm_90a on H100), cached per process.
//! * [`desc`]: host-side work lists (per-row ranges, per-tile full/partial classification).
//! * [`exec`]: a device program prepared once (buffers, descriptors), enqueued without host sync.
//! * [`dist`]: torchrun-style ranks, TCP rendezvous for the NCCL id, the communicator.
//! * [`runner`]: what `dcp bench-gpu` / `dcp calibrate` need: inputs laid out per plan, runs,
//!   checks against the CPU reference or a single-GPU plan, timings reduced over ranks.
//!
//! Everything builds and its CPU-side tests run without CUDA: libraries load dynamically and are
//! probed first, so a machine without a GPU gets [`error::CudaError::NoDriver`], not a panic.

// Kernel argument lists and work checks are long by nature.
// Streams are raw CUDA handles owned by `Gpu`; passing them is not a dereference by us.
#![allow(clippy::too_many_arguments, clippy::not_unsafe_ptr_arg_deref)]

pub mod desc;
pub mod dist;
pub mod error;
pub mod exec;
pub mod external;
pub mod gpu;
pub mod nvrtc;
pub mod runner;

pub use error::{CudaError, Result};
