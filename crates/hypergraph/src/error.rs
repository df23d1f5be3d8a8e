//! Typed errors for every way the partitioner can refuse its input.
//!
//! All public entry points return [`enum@Error`]; nothing in this crate panics on bad user
//! input (builder misuse, malformed hMETIS files, infeasible capacities).

use thiserror::Error;

/// Everything that can go wrong when building, reading or partitioning a hypergraph.
#[derive(Debug, Error)]
pub enum Error {
    /// A hypergraph (or a config) must carry at least one weight dimension.
    #[error("number of weight dimensions must be >= 1")]
    ZeroDims,
    /// A vertex was added with a weight vector of the wrong length.
    #[error("vertex {vertex}: expected {expected} weight(s), got {got}")]
    DimMismatch {
        vertex: usize,
        expected: usize,
        got: usize,
    },
    /// A net without pins.
    #[error("net {net} has no pins")]
    EmptyNet { net: usize },
    /// A pin refers to a vertex that does not exist.
    #[error("net {net}: pin {pin} out of range (hypergraph has {num_vertices} vertices)")]
    PinOutOfRange {
        net: usize,
        pin: u64,
        num_vertices: usize,
    },
    /// `k == 0`.
    #[error("number of parts must be >= 1")]
    ZeroParts,
    /// An invalid configuration value (negative / NaN epsilon, wrong vector shapes, ...).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A vertex was fixed to a part that does not exist.
    #[error("vertex {vertex} fixed to part {part}, but k = {k}")]
    FixedOutOfRange { vertex: usize, part: u32, k: u32 },
    /// The capacities cannot hold the weights. `part` is `None` when the problem is global
    /// (sum of capacities below the total weight, or a vertex fitting no part at all).
    #[error("infeasible: dimension {dim}{}: {reason}", part.map(|p| format!(", part {p}")).unwrap_or_default())]
    Infeasible {
        dim: usize,
        part: Option<u32>,
        reason: String,
    },
    /// A malformed hMETIS / fix file (1-based line number).
    #[error("parse error at line {line}: {msg}")]
    Parse { line: usize, msg: String },
    /// I/O failure while reading or writing a file.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
