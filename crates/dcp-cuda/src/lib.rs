//! DCP's CUDA executor: runs any valid [`dcp_core::plan::Plan`] forward and backward on NVIDIA
//! GPUs, one process per GPU, NCCL point-to-point between them.
//!
//! * [`gpu`]: the device, its compute and comm streams, memory, events, NVRTC-built kernels.
//! * [`nvrtc`]: kernel sources (`kernels/*.cu`, embedded) compiled at first use for the device's
//!   arch (sm_90a on H100), cached per process.
//! * [`desc`]: host-side work lists (per-row ranges, per-tile full/partial classification).
//! * [`fuse`]: a launch's works fused before lowering (neighbouring KV regions, works over the
//!   same keys with continuing rows).
//! * [`own`]: dK/dV rows a backward launch may store instead of add (and the fills it drops).
//! * [`order`]: the order and size of a backward launch's tasks.
//! * [`exec`]: a device program prepared once (buffers, descriptors), enqueued without host sync.
//! * [`dist`]: torchrun-style ranks, TCP rendezvous for the NCCL id, the communicator.
//! * [`watchdog`]: a deadline on every blocking step; on expiry (or a failed peer) the
//!   communicator is aborted and the call fails naming this rank, the step and the peers.
//! * [`heartbeat`]: peer liveness over the rendezvous connections (frozen or exited peers).
//! * [`fault`]: fault injection (`DCP_FAULT=rank:2,kind:freeze,phase:backward,repeat:3`).
//! * [`runner`]: what `dcp bench-gpu` / `dcp calibrate` need: inputs laid out per plan, runs,
//!   checks against the CPU reference or a single-GPU plan, timings reduced over ranks.
//!
//! Everything builds and its CPU-side tests run without CUDA: libraries load dynamically and are
//! probed first, so a machine without a GPU gets [`error::CudaError::NoDriver`], not a panic.
//!
//! Soundness: safe functions take owned buffers ([`gpu::DevBuf`]) and checked byte ranges;
//! functions taking raw device addresses are `unsafe fn` with a `# Safety` section.

pub mod cluster;
pub mod desc;
pub mod dist;
pub mod error;
pub mod exec;
pub mod external;
pub mod fault;
pub mod fuse;
pub mod gpu;
pub mod heartbeat;
mod knobs;
pub mod nvrtc;
pub mod order;
pub mod own;
pub mod pool;
mod prepclock;
pub mod runner;
pub mod switch;
pub mod tensormaps;
pub mod tilemask;
pub mod watchdog;

pub use error::{CudaError, Result};
