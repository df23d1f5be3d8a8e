//! Cluster simulator for DCP plans.
//!
//! Replays a [`dcp_core::plan::Plan`] — any planner's, the contract is the same — on a model of a
//! GPU cluster and says how long its forward and backward passes take and where the time goes:
//!
//! * [`profile`]: the hardware rates (kernels, memory, links), built-in H100/A100 defaults or a
//!   calibrated JSON file;
//! * [`cluster`]: the network as levels (NVLink domain, NICs, more levels if wanted) and the
//!   links each transfer uses;
//! * [`cost`]: kernel time of each compute instruction;
//! * [`engine`]: the discrete-event simulation (compute and comm streams per device, grouped
//!   send/recv, max-min fair link sharing);
//! * [`trace`]: Chrome/Perfetto trace of one batch;
//! * [`mod@bench`]: the paper's microbenchmark sweep (`dcp compare`), its report and plots.

pub mod bench;
pub mod cluster;
pub mod cost;
pub mod engine;
pub mod plot;
pub mod profile;
pub mod trace;

pub use cluster::Cluster;
pub use cost::{Hardware, KernelModel};
pub use engine::{
    simulate, simulate_pass, PassResult, PassSummary, SimError, SimOptions, SimResult,
};
pub use profile::Profile;
