//! Typed errors for everything a user can pass in (specs, masks, batch files) and for plans that
//! fail validation. Messages name the offending sequence, row, device or instruction.

use thiserror::Error;

use crate::plan::IoTensor;

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

/// Where in a plan a [`PlanError`] points: a device's forward or backward program and, unless the
/// error concerns the program as a whole (layout, final outputs, unwaited groups), an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanSite {
    pub device: u32,
    pub program: &'static str,
    /// Instruction index; `None` for the plan or program as a whole.
    pub instr: Option<usize>,
}

impl std::fmt::Display for PlanSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.instr {
            Some(i) => write!(
                f,
                "device {}, {} instruction {i}",
                self.device, self.program
            ),
            None if matches!(self.program, "forward" | "backward") => {
                write!(f, "device {}, {} program", self.device, self.program)
            }
            None => write!(f, "device {}, {}", self.device, self.program),
        }
    }
}

/// A plan that breaks one of the IR's rules: where ([`PlanSite`]) and what ([`PlanErrorKind`]).
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{site}: {kind}")]
pub struct PlanError {
    pub site: PlanSite,
    pub kind: PlanErrorKind,
}

impl PlanError {
    pub fn new(
        device: u32,
        program: &'static str,
        instr: Option<usize>,
        kind: PlanErrorKind,
    ) -> Self {
        PlanError {
            site: PlanSite {
                device,
                program,
                instr,
            },
            kind,
        }
    }
}

/// Which side of a layout a token is wrong on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutFault {
    /// The layout names a sequence the batch lacks.
    UnknownSequence,
    /// A span is empty or runs past the sequence's end.
    BadSpan { start: u32, end: u32, len: u32 },
    /// A token is held by two devices.
    HeldTwice,
    /// A token is held by no device.
    HeldByNone,
}

/// Why a device's final output misses the mask's pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairCount {
    /// Attended (query, key) pairs, counted per query head (dQ/O) or summed over the query heads of
    /// a KV head (dKV), that the output holds.
    pub got: u64,
    /// The mask's count for the same cells.
    pub want: u64,
}

/// The rule a plan breaks. Regions are shown as `buffer[tokens a..b, heads c..d]`; `item` names
/// the operand (e.g. `work 3 KV 1`, `merge input 0`).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum PlanErrorKind {
    #[error("batch: {0}")]
    Batch(#[from] SpecError),
    #[error("the plan has no devices")]
    NoDevices,
    #[error("device entry {entry} says it is device {says}")]
    DeviceIndex { entry: usize, says: u32 },
    #[error("layout of sequence {seq}: {}", layout_msg(*fault, *token))]
    Layout {
        seq: u32,
        token: u32,
        fault: LayoutFault,
    },
    #[error("buffer {buf} `{name}` is {tensor:?}, which this program does not use")]
    UnusedIoBuffer {
        buf: u32,
        name: String,
        tensor: IoTensor,
    },
    #[error("no buffer declared for {0:?}")]
    MissingIoBuffer(IoTensor),
    #[error("buffer {buf} `{name}` is saved from the forward, which only a backward program's buffer may be")]
    SavedInForward { buf: u32, name: String },
    #[error("writes buffer {buf} `{name}`, which is saved from the forward and read-only in the backward")]
    WriteToSaved { buf: u32, name: String },
    #[error("buffer {buf} `{name}` is saved from forward buffer {forward}: {problem}")]
    SavedBuffer {
        buf: u32,
        name: String,
        forward: u32,
        problem: String,
    },
    #[error("buffer {buf} `{name}` ({tensor:?}) has shape {got:?} (tokens, heads, width), the layout needs {want:?}")]
    IoBufferShape {
        buf: u32,
        name: String,
        tensor: IoTensor,
        got: (u32, u32, u32),
        want: (u32, u32, u32),
    },
    #[error("comm tag {tag} does not increase (previous group had tag {prev})")]
    TagOrder { tag: u32, prev: u32 },
    #[error("comm tag {tag}: bad peer {peer}")]
    BadPeer { tag: u32, peer: u32 },
    #[error("comm tag {tag}: {} device {peer} is unmatched: device {peer} has no group with tag {tag} here ({})",
        if *send { "send to" } else { "receive from" },
        match peer_next { Some(t) => format!("its next group has tag {t}"), None => "it has no further comm group".into() })]
    PeerNotInGroup {
        tag: u32,
        peer: u32,
        send: bool,
        peer_next: Option<u32>,
    },
    #[error("comm tag {tag}: {sends} send(s) to device {peer} but device {peer} posts {recvs} receive(s) from this device")]
    UnmatchedSend {
        tag: u32,
        peer: u32,
        sends: usize,
        recvs: usize,
    },
    #[error("comm tag {tag}: send #{pair} to device {peer} ({send}) does not match its receive ({recv})")]
    SizeMismatch {
        tag: u32,
        peer: u32,
        pair: usize,
        send: String,
        recv: String,
    },
    #[error("{item}: buffer {buf} is not declared")]
    UndeclaredBuffer { item: String, buf: u32 },
    #[error("{item}: region {region} is out of bounds of buffer `{name}` ({tokens} tokens × {heads} heads)")]
    OutOfBounds {
        item: String,
        region: String,
        name: String,
        tokens: u32,
        heads: u32,
    },
    #[error("{item}: {need}")]
    Shape { item: String, need: String },
    #[error("{item} reads {region}, which was never written")]
    ReadBeforeWrite { item: String, region: String },
    #[error("{item} {} {region} while comm group {tag} is still {} it (no wait before it)",
        if *write { "writes" } else { "reads" }, if *write { "transferring" } else { "receiving into" })]
    InFlightHazard {
        item: String,
        region: String,
        tag: u32,
        write: bool,
    },
    #[error("comm group {tag} receives into a region it also sends or receives elsewhere")]
    CommOverlap { tag: u32 },
    #[error("waits for comm group {tag}, which is not in flight")]
    WaitNotInFlight { tag: u32 },
    #[error("comm group {tag} is never waited for")]
    NeverWaited { tag: u32 },
    #[error("attention backward in the forward program")]
    BackwardInForward,
    #[error("works {a} and {b} of one launch write the same output region")]
    OverlappingOutputs { a: usize, b: usize },
    #[error("{item} holds {found}, expected {expected}")]
    WrongContent {
        item: String,
        found: String,
        expected: String,
    },
    #[error("work {work}: pairs queries of sequence {a} with keys of sequence {b} (every attended pair must lie in one sequence)")]
    MixedSequences { work: usize, a: u32, b: u32 },
    #[error(
        "work {work}: query head {q_head} is paired with KV head {kv_head} (GQA needs {want})"
    )]
    GqaMismatch {
        work: usize,
        q_head: u32,
        kv_head: u32,
        want: u32,
    },
    #[error("work {work}: row ranges of rows {}..{} are out of row order, overlap, or reach beyond the {keys} concatenated keys", rows.0, rows.1)]
    RowRanges {
        work: usize,
        rows: (u32, u32),
        keys: u32,
    },
    #[error("work {work}: query tokens {}..{} of sequence {seq} attend {outside} key(s) outside their mask", tokens.0, tokens.1)]
    KeyOutsideMask {
        work: usize,
        seq: u32,
        tokens: (u32, u32),
        outside: u64,
    },
    #[error("{item}: cannot combine {a} with {b}")]
    Combine { item: String, a: String, b: String },
    #[error("output {tensor:?} of sequence {seq} tokens {}..{} heads {}..{} holds {} attended pairs, the mask has {}: some pairs are missed", tokens.0, tokens.1, heads.0, heads.1, count.got, count.want)]
    PairsMissing {
        tensor: IoTensor,
        seq: u32,
        tokens: (u32, u32),
        heads: (u32, u32),
        count: PairCount,
    },
    #[error("output {tensor:?} of sequence {seq} tokens {}..{} heads {}..{} holds {} attended pairs, the mask has {}: {}", tokens.0, tokens.1, heads.0, heads.1, count.got, count.want,
        if count.got == count.want { "as many, but some are computed twice and others missed" } else { "some pairs are computed twice" })]
    PairsDuplicated {
        tensor: IoTensor,
        seq: u32,
        tokens: (u32, u32),
        heads: (u32, u32),
        count: PairCount,
    },
    #[error("output {tensor:?} rows {}..{} heads {}..{} hold {found}, expected sequence {seq} tokens from {token}", rows.0, rows.1, heads.0, heads.1)]
    WrongOutput {
        tensor: IoTensor,
        rows: (u32, u32),
        heads: (u32, u32),
        found: String,
        seq: u32,
        token: u32,
    },
}

fn layout_msg(f: LayoutFault, token: u32) -> String {
    match f {
        LayoutFault::UnknownSequence => "the batch has no such sequence".into(),
        LayoutFault::BadSpan { start, end, len } => {
            format!("span {start}..{end} is empty or out of bounds ({len} tokens)")
        }
        LayoutFault::HeldTwice => format!("tokens from {token} are held twice"),
        LayoutFault::HeldByNone => format!("tokens from {token} are held by no device"),
    }
}

/// The partitioner's typed error inside [`PlanningError::Partition`], shared so that
/// [`PlanningError`] stays `Clone` (the partitioner's error holds an `std::io::Error`, which is not).
/// Two failures are equal when they print the same.
#[derive(Debug, Clone, Error)]
#[error(transparent)]
pub struct PartitionFailure(std::sync::Arc<hypergraph::Error>);

impl PartitionFailure {
    /// The partitioner's error.
    pub fn error(&self) -> &hypergraph::Error {
        &self.0
    }
}

impl From<hypergraph::Error> for PartitionFailure {
    fn from(e: hypergraph::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl From<hypergraph::Error> for PlanningError {
    fn from(e: hypergraph::Error) -> Self {
        Self::Partition(e.into())
    }
}

impl PartialEq for PartitionFailure {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
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
    /// The plan failed the validator (a planner bug, never the user's input).
    #[error("the planned program failed validation (a planner bug; please report it): {0}")]
    Invalid(Box<PlanError>),
    #[error("device {device} needs {need} bytes of attention buffers but the memory cap is {cap} bytes ({planner} plan); use more devices, a smaller block size, or raise the cap")]
    MemoryCap {
        planner: String,
        device: u32,
        need: u64,
        cap: u64,
    },
    /// The hypergraph partitioner refused the placement problem; its typed error is the source.
    #[error("partitioning the placement hypergraph failed")]
    Partition(#[from] PartitionFailure),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A partitioner failure stays typed: the planning error's source is the partitioner's
    /// error, which callers can inspect, and the message chain names both.
    #[test]
    fn partition_error_keeps_the_partitioners_error() {
        let e: PlanningError = hypergraph::Error::FixedOutOfRange {
            vertex: 3,
            part: 9,
            k: 4,
        }
        .into();
        let PlanningError::Partition(f) = &e else {
            panic!("expected Partition, got {e:?}");
        };
        assert!(matches!(
            f.error(),
            hypergraph::Error::FixedOutOfRange {
                vertex: 3,
                part: 9,
                k: 4
            }
        ));
        let src = std::error::Error::source(&e).expect("a source");
        assert_eq!(src.to_string(), "vertex 3 fixed to part 9, but k = 4");
        assert_eq!(e, e.clone());
        assert_ne!(e, PlanningError::from(hypergraph::Error::ZeroParts));
    }
}
