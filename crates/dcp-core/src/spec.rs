//! What a batch is: sequences (each with its own mask), the model's attention shape, the cluster
//! topology and the block size. Everything here is plain data with validation; nothing plans.
//!
//! No padding or divisibility rule is imposed on the user: any positive sequence length works, the
//! last token block of a sequence may be partial.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::mask::MaskSpec;

/// Element type of Q/K/V/O and their gradients. LSE is always fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    #[default]
    Bf16,
    F16,
    F32,
}

impl DType {
    pub fn size(self) -> u64 {
        match self {
            DType::Bf16 | DType::F16 => 2,
            DType::F32 => 4,
        }
    }
}

/// Attention shape of the model (per tensor-parallel rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelShape {
    /// Query heads.
    pub heads: u32,
    /// Key/value heads (GQA when fewer than `heads`, MQA when 1).
    pub kv_heads: u32,
    pub head_dim: u32,
    pub dtype: DType,
}

impl Default for ModelShape {
    /// The paper's microbenchmark shape: 8 query heads, 2 KV heads, head dim 128, bf16.
    fn default() -> Self {
        ModelShape {
            heads: 8,
            kv_heads: 2,
            head_dim: 128,
            dtype: DType::Bf16,
        }
    }
}

impl ModelShape {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.head_dim == 0 {
            return Err(SpecError::ZeroHeadDim);
        }
        if self.kv_heads == 0 || self.heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(SpecError::HeadsNotDivisible {
                heads: self.heads,
                kv_heads: self.kv_heads,
            });
        }
        Ok(())
    }
    /// Query heads per KV head.
    pub fn group(&self) -> u32 {
        self.heads / self.kv_heads
    }
    /// Bytes of one token's Q (all query heads); also O, dO, dQ.
    pub fn q_bytes_per_token(&self) -> u64 {
        self.heads as u64 * self.head_dim as u64 * self.dtype.size()
    }
    /// Bytes of one token's K and V (all KV heads); also dK+dV.
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.kv_heads as u64 * self.head_dim as u64 * self.dtype.size()
    }
}

/// Cluster shape and link parameters (α–β model per link class).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub nodes: u32,
    pub gpus_per_node: u32,
    /// Bandwidth of one GPU's link inside a node, GB/s per direction.
    pub intra_gbps: f64,
    /// Latency of an intra-node transfer, microseconds.
    pub intra_latency_us: f64,
    /// Bandwidth of one NIC across nodes, GB/s per direction (what one GPU can drive).
    pub inter_gbps: f64,
    /// NICs per node, shared by the node's GPUs; 0 means one NIC per GPU.
    #[serde(default)]
    pub nics_per_node: u32,
    pub inter_latency_us: f64,
    /// Memory per device available to attention buffers, bytes.
    pub device_memory_bytes: u64,
}

impl Topology {
    /// `nodes` × `gpus_per_node` with H100-like default links (NVLink ~277 GiB/s measured,
    /// 400 Gb/s NICs = 50 GB/s per GPU).
    pub fn new(nodes: u32, gpus_per_node: u32) -> Self {
        Topology {
            nodes,
            gpus_per_node,
            intra_gbps: 277.0 * 1.073_741_824,
            intra_latency_us: 10.0,
            inter_gbps: 50.0,
            nics_per_node: 0,
            inter_latency_us: 20.0,
            device_memory_bytes: 80 << 30,
        }
    }

    /// Parses `NODESxGPUS`, e.g. `4x8`, or a bare device count `N` (one node).
    pub fn parse(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::BadTopology(s.to_string());
        let (n, g) = match s.split_once(['x', 'X']) {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => (1, s.trim().parse::<u32>().map_err(|_| bad())?),
        };
        if n == 0 || g == 0 {
            return Err(bad());
        }
        Ok(Topology::new(n, g))
    }

    /// Aggregate inter-node bandwidth of one node, GB/s per direction.
    pub fn node_inter_gbps(&self) -> f64 {
        let nics = if self.nics_per_node == 0 {
            self.gpus_per_node
        } else {
            self.nics_per_node
        };
        self.inter_gbps * nics as f64
    }

    /// How much dearer an inter-node byte is than an intra-node one when every GPU of a node
    /// sends across nodes at once (its fair share of the node's NICs), clamped to [1, 64].
    pub fn inter_cost_ratio(&self) -> u64 {
        let share = self.node_inter_gbps() / self.gpus_per_node as f64;
        ((self.intra_gbps / share).round() as u64).clamp(1, 64)
    }

    pub fn n_devices(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }
    pub fn node_of(&self, device: u32) -> u32 {
        device / self.gpus_per_node
    }
    pub fn same_node(&self, a: u32, b: u32) -> bool {
        self.node_of(a) == self.node_of(b)
    }
}

/// One sequence of the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    pub len: u32,
    pub mask: MaskSpec,
}

/// A batch ready to plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSpec {
    pub seqs: Vec<Sequence>,
    pub model: ModelShape,
    /// Token block size B.
    pub block_size: u32,
    /// KV heads per head block (query heads per head block = this × group). Defaults to all KV heads.
    pub head_block: u32,
}

impl BatchSpec {
    /// A batch where every sequence uses the same mask.
    pub fn uniform(lens: &[u32], mask: MaskSpec, model: ModelShape, block_size: u32) -> Self {
        BatchSpec {
            seqs: lens
                .iter()
                .map(|&len| Sequence {
                    len,
                    mask: mask.clone(),
                })
                .collect(),
            model,
            block_size,
            head_block: model.kv_heads,
        }
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        if self.seqs.is_empty() {
            return Err(SpecError::EmptyBatch);
        }
        self.model.validate()?;
        if self.block_size == 0 {
            return Err(SpecError::ZeroBlockSize);
        }
        if self.head_block == 0 || !self.model.kv_heads.is_multiple_of(self.head_block) {
            return Err(SpecError::BadHeadBlock {
                head_block: self.head_block,
                kv_heads: self.model.kv_heads,
            });
        }
        for (i, s) in self.seqs.iter().enumerate() {
            if s.len == 0 {
                return Err(SpecError::ZeroLengthSequence { seq: i });
            }
            s.mask.validate(i, s.len)?;
        }
        Ok(())
    }

    pub fn total_tokens(&self) -> u64 {
        self.seqs.iter().map(|s| s.len as u64).sum()
    }

    /// Global token offset of each sequence (prefix sums), plus the total at the end.
    pub fn seq_offsets(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(self.seqs.len() + 1);
        let mut acc = 0u64;
        v.push(0);
        for s in &self.seqs {
            acc += s.len as u64;
            v.push(acc);
        }
        v
    }

    pub fn lens(&self) -> Vec<u32> {
        self.seqs.iter().map(|s| s.len).collect()
    }
}
