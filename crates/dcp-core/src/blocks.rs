//! The block table: a batch cut into token blocks and head blocks, the data blocks they carry and
//! the computation blocks (q block × kv block × head block tiles) the mask does not fully hide,
//! each with its exact attended-element count.

use serde::Serialize;

use crate::error::SpecError;
use crate::mask::CompiledMask;
use crate::spec::BatchSpec;

/// `B` consecutive tokens of one sequence (the last block of a sequence may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokenBlock {
    pub seq: u32,
    /// Index of this block inside its sequence.
    pub index: u32,
    /// First token, relative to the sequence.
    pub start: u32,
    pub len: u32,
}

/// How a tile is covered by the mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TileKind {
    Full,
    Partial,
}

/// A computation block: query token block × key token block × head block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WorkTile {
    pub q_block: u32,
    pub kv_block: u32,
    pub head_block: u32,
    /// Attended (row, key) pairs per query head.
    pub attended: u64,
    pub kind: TileKind,
}

/// Kinds of data blocks and their element sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DataKind {
    Q,
    Kv,
    O,
    Lse,
    DO,
    DQ,
    DKv,
}

/// The whole table.
#[derive(Debug, Clone)]
pub struct BlockTable {
    pub block_size: u32,
    pub blocks: Vec<TokenBlock>,
    /// First block of each sequence (prefix), plus the total at the end.
    pub seq_first_block: Vec<u32>,
    pub n_head_blocks: u32,
    /// Query heads per head block.
    pub q_heads_per_block: u32,
    /// KV heads per head block.
    pub kv_heads_per_block: u32,
    pub head_dim: u32,
    pub elem_bytes: u64,
    pub tiles: Vec<WorkTile>,
    pub masks: Vec<CompiledMask>,
}

impl BlockTable {
    /// Builds the table. Tiles are ordered by (q block, kv block, head block).
    pub fn build(batch: &BatchSpec) -> Result<Self, SpecError> {
        batch.validate()?;
        let bs = batch.block_size;
        let masks: Vec<CompiledMask> = batch.seqs.iter().map(|s| s.mask.compile(s.len)).collect();
        let mut blocks = Vec::new();
        let mut seq_first_block = Vec::with_capacity(batch.seqs.len() + 1);
        for (si, s) in batch.seqs.iter().enumerate() {
            seq_first_block.push(blocks.len() as u32);
            let nb = s.len.div_ceil(bs);
            for b in 0..nb {
                let start = b * bs;
                blocks.push(TokenBlock {
                    seq: si as u32,
                    index: b,
                    start,
                    len: (s.len - start).min(bs),
                });
            }
        }
        seq_first_block.push(blocks.len() as u32);
        let n_head_blocks = batch.model.kv_heads / batch.head_block;
        let mut tiles = Vec::new();
        for (si, m) in masks.iter().enumerate() {
            let first = seq_first_block[si];
            let last = seq_first_block[si + 1];
            for qb in first..last {
                let q = blocks[qb as usize];
                let Some((lo, hi)) = m.key_span(q.start, q.start + q.len) else {
                    continue;
                };
                for kb_idx in lo / bs..hi.div_ceil(bs) {
                    let k = blocks[(first + kb_idx) as usize];
                    let attended = m.count_tile(q.start, q.start + q.len, k.start, k.start + k.len);
                    if attended == 0 {
                        continue;
                    }
                    let kind = if attended == q.len as u64 * k.len as u64 {
                        TileKind::Full
                    } else {
                        TileKind::Partial
                    };
                    for hb in 0..n_head_blocks {
                        tiles.push(WorkTile {
                            q_block: qb,
                            kv_block: first + kb_idx,
                            head_block: hb,
                            attended,
                            kind,
                        });
                    }
                }
            }
        }
        Ok(BlockTable {
            block_size: bs,
            blocks,
            seq_first_block,
            n_head_blocks,
            q_heads_per_block: batch.head_block * batch.model.group(),
            kv_heads_per_block: batch.head_block,
            head_dim: batch.model.head_dim,
            elem_bytes: batch.model.dtype.size(),
            tiles,
            masks,
        })
    }

    /// Bytes of one data block (token block × head block) of the given kind.
    pub fn data_bytes(&self, kind: DataKind, block: u32) -> u64 {
        let t = self.blocks[block as usize].len as u64;
        let d = self.head_dim as u64;
        let (hq, hk) = (
            self.q_heads_per_block as u64,
            self.kv_heads_per_block as u64,
        );
        match kind {
            DataKind::Q | DataKind::O | DataKind::DO | DataKind::DQ => t * hq * d * self.elem_bytes,
            DataKind::Kv | DataKind::DKv => t * hk * 2 * d * self.elem_bytes,
            DataKind::Lse => t * hq * 4,
        }
    }

    /// Forward FLOPs of a tile ([`crate::flops::attn_fwd_flops`] over its query heads).
    pub fn tile_flops(&self, t: &WorkTile) -> f64 {
        crate::flops::attn_fwd_flops(
            t.attended as f64 * self.q_heads_per_block as f64,
            self.head_dim,
        )
    }

    /// Attended pairs per query head over the whole batch.
    pub fn total_attended(&self) -> u64 {
        self.masks.iter().map(|m| m.count_all()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskSpec;
    use crate::spec::ModelShape;

    #[test]
    fn causal_table_counts() {
        let model = ModelShape {
            heads: 4,
            kv_heads: 2,
            head_dim: 8,
            dtype: crate::spec::DType::Bf16,
        };
        let mut b = BatchSpec::uniform(&[10, 3], MaskSpec::Causal, model, 4);
        b.head_block = 1;
        let t = BlockTable::build(&b).unwrap();
        assert_eq!(t.blocks.len(), 3 + 1);
        assert_eq!(t.blocks[2].len, 2);
        // seq 0: blocks 4,4,2 → tiles (0,0),(1,0),(1,1),(2,0),(2,1),(2,2); seq 1: (3,3); × 2 head blocks
        assert_eq!(t.tiles.len(), 7 * 2);
        let per_head: u64 = t
            .tiles
            .iter()
            .filter(|x| x.head_block == 0)
            .map(|x| x.attended)
            .sum();
        assert_eq!(per_head, 55 + 6);
        assert_eq!(t.total_attended(), 61);
        assert_eq!(t.data_bytes(DataKind::Kv, 2), 2 * 2 * 8 * 2);
        assert_eq!(
            t.tiles.iter().filter(|x| x.kind == TileKind::Full).count(),
            3 * 2
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let model = ModelShape::default();
        assert_eq!(
            BlockTable::build(&BatchSpec::uniform(&[], MaskSpec::Causal, model, 4)).unwrap_err(),
            SpecError::EmptyBatch
        );
        assert_eq!(
            BlockTable::build(&BatchSpec::uniform(&[3, 0], MaskSpec::Causal, model, 4))
                .unwrap_err(),
            SpecError::ZeroLengthSequence { seq: 1 }
        );
        assert_eq!(
            BlockTable::build(&BatchSpec::uniform(&[3], MaskSpec::Causal, model, 0)).unwrap_err(),
            SpecError::ZeroBlockSize
        );
        let m = ModelShape {
            heads: 6,
            kv_heads: 4,
            ..model
        };
        assert!(matches!(
            BlockTable::build(&BatchSpec::uniform(&[3], MaskSpec::Causal, m, 4)),
            Err(SpecError::HeadsNotDivisible { .. })
        ));
    }
}
