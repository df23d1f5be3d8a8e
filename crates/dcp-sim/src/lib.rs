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
//!
//! # Quick start
//!
//! Time a dcp plan and a zigzag plan of the same batch on 2 nodes of 4 H100s:
//!
//! ```
//! use dcp_core::mask::MaskSpec;
//! use dcp_core::planners::{make_plan, PlannerOptions};
//! use dcp_core::spec::{BatchSpec, ModelShape, Topology};
//! use dcp_sim::{simulate, Cluster, Hardware, Profile, SimOptions};
//!
//! let batch = BatchSpec::uniform(
//!     &[40_000, 9_000, 3_000, 700],
//!     MaskSpec::parse("lambda")?, // 64 sink tokens + a 4096-token window
//!     ModelShape::default(),
//!     1024,
//! );
//! let topo = Topology::new(2, 4);
//! let profile = Profile::h100(); // or a calibrated JSON file (`dcp calibrate`)
//! let (cluster, hw) = (Cluster::from_topology(&topo, &profile), Hardware::new(profile));
//! let mut ms = Vec::new();
//! for planner in ["dcp", "zigzag"] {
//!     let plan = make_plan(planner, &batch, &topo, &PlannerOptions::default())?;
//!     let r = simulate(&plan, &cluster, &hw, &SimOptions::default())?;
//!     let (f, b) = (r.forward.summary(), r.backward.summary());
//!     assert!(f.ms > 0.0 && b.ms > 0.0 && f.compute_imbalance >= 1.0);
//!     ms.push(f.ms + b.ms);
//! }
//! // A sparse mask over a mixed batch: placing by the mask beats passing all KV around.
//! assert!(ms[0] < ms[1], "dcp {} ms, zigzag {} ms", ms[0], ms[1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
