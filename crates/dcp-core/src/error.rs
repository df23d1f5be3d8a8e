//! Typed errors for everything a user can pass in (specs, masks, batch files) and for plans that
//! fail validation. Messages name the offending sequence, row, device or instruction.

use thiserror::Error;

/// Errors in a batch, mask, model or topology specification.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    #[error("the batch is empty: give at least one sequence")]
    EmptyBatch,
    #[error("sequence {seq} has length 0: every sequence needs at least one token")]
    ZeroLengthSequence { seq: usize },
    #[error("block size must be at least 1 token (got 0)")]
    ZeroBlockSize,
    #[error("query heads ({heads}) must be a positive multiple of KV heads ({kv_heads})")]
    HeadsNotDivisible { heads: u32, kv_heads: u32 },
    #[error("head dim must be positive")]
    ZeroHeadDim,
    #[error("head block of {head_block} KV heads does not divide {kv_heads} KV heads")]
    BadHeadBlock { head_block: u32, kv_heads: u32 },
    #[error("sequence {seq}: mask {kind}: {msg}")]
    BadMaskParam {
        seq: usize,
        kind: &'static str,
        msg: String,
    },
    #[error("sequence {seq}, row {row}: range [{start}, {end}) has start > end")]
    RangeStartAfterEnd {
        seq: usize,
        row: usize,
        start: u32,
        end: u32,
    },
    #[error("sequence {seq}, row {row}: range [{start}, {end}) is out of bounds for a sequence of {len} tokens")]
    RangeOutOfBounds {
        seq: usize,
        row: usize,
        start: u32,
        end: u32,
        len: u32,
    },
    #[error("sequence {seq}: user ranges give {rows} rows for a sequence of {len} tokens")]
    RangeRowCount { seq: usize, rows: usize, len: u32 },
    #[error("unknown mask kind `{0}`: allowed are causal, full, sliding-window:W, lambda[:SINK:WINDOW], shared-question[:FRAC:ANSWERS], causal-blockwise[:BLOCK:LOCAL], prefix-lm:P")]
    UnknownMask(String),
    #[error("mask `{spec}`: {msg}; accepted forms: causal, full, sliding-window:W, lambda[:SINK:WINDOW], shared-question[:FRAC:ANSWERS], causal-blockwise[:BLOCK:LOCAL], prefix-lm:P")]
    BadMaskSpec { spec: String, msg: String },
    #[error("bad topology `{0}`: expected NODESxGPUS, e.g. 4x8 (both at least 1)")]
    BadTopology(String),
    #[error("{0}")]
    Invalid(String),
}

/// A plan that breaks one of the IR's rules, pointing at the instruction.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("device {device}, {program} instruction {instr}: {msg}")]
pub struct PlanError {
    pub device: u32,
    pub program: &'static str,
    pub instr: usize,
    pub msg: String,
}

impl PlanError {
    pub fn new(device: u32, program: &'static str, instr: usize, msg: impl Into<String>) -> Self {
        PlanError {
            device,
            program,
            instr,
            msg: msg.into(),
        }
    }
    /// An error about the plan as a whole (instruction index `usize::MAX` means "at the end").
    pub fn at_end(device: u32, program: &'static str, msg: impl Into<String>) -> Self {
        PlanError {
            device,
            program,
            instr: usize::MAX,
            msg: msg.into(),
        }
    }
}

/// Planner failures (a plan cannot be made for these inputs).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PlanningError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(
        "sequence {seq} ({tokens} tokens) does not fit a device's memory budget of {budget} tokens"
    )]
    SequenceTooLarge {
        seq: usize,
        tokens: u64,
        budget: u64,
    },
    #[error(
        "the batch ({tokens} tokens) does not fit {devices} devices with a memory budget of {budget} tokens each"
    )]
    BatchTooLarge {
        tokens: u64,
        devices: u32,
        budget: u64,
    },
    #[error("planner `{planner}` does not support {what}")]
    Unsupported { planner: &'static str, what: String },
    #[error("device {device} needs {need} bytes of attention buffers but the memory cap is {cap} bytes ({planner} plan); use more devices, a smaller block size, or raise the cap")]
    MemoryCap {
        planner: String,
        device: u32,
        need: u64,
        cap: u64,
    },
    #[error("partitioning failed: {0}")]
    Partition(String),
    #[error(transparent)]
    UnknownPlanner(#[from] crate::planners::UnknownPlanner),
    #[error("sequence {seq} ({tokens} tokens) does not fit {devices} devices with a memory budget of {budget} tokens each, even split over all of them")]
    SequenceExceedsCluster {
        seq: usize,
        tokens: u64,
        devices: u32,
        budget: u64,
    },
    #[error("the {planner} plan of this batch would hold about {works} attention works (sequence {seq}, {tokens} tokens, is the largest contributor); the limit is {limit}: use fewer devices, a larger block size, or split the sequence")]
    PlanTooLarge {
        planner: crate::planners::PlannerKind,
        seq: usize,
        tokens: u64,
        works: u64,
        limit: u64,
    },
}
