//! The attention FLOP count that every crate reports and models: one formula for the forward
//! pass and one factor for the backward pass.
//!
//! Forward attention over an attended (query, key) pair of one query head with head dimension
//! `D` costs `2·D` multiply-adds for QKᵀ and `2·D` for PV: `4·D` FLOPs. The backward pass is
//! counted as [`BWD_FLOP_FACTOR`] times the forward FLOPs (recomputing QKᵀ, then dV, dP, dQ and
//! dK: the FlashAttention-2 convention). Rates (TFLOP/s) in profiles, cost models and benchmark
//! tables are "attended FLOPs per second" under these counts, so they compare across masks.

/// FLOPs per attended (query, key) pair, per query head and per head-dimension element
/// (QKᵀ and PV, 2 each).
pub const FWD_FLOPS_PER_PAIR_DIM: f64 = 4.0;

/// Attention FLOPs of the backward pass relative to the forward pass.
pub const BWD_FLOP_FACTOR: f64 = 2.5;

/// Forward FLOPs of `head_pairs` attended (query, key) pairs summed over query heads, with head
/// dimension `head_dim`.
pub fn attn_fwd_flops(head_pairs: f64, head_dim: u32) -> f64 {
    FWD_FLOPS_PER_PAIR_DIM * head_dim as f64 * head_pairs
}

/// Backward FLOPs of the same pairs: [`BWD_FLOP_FACTOR`] × [`attn_fwd_flops`].
pub fn attn_bwd_flops(head_pairs: f64, head_dim: u32) -> f64 {
    BWD_FLOP_FACTOR * attn_fwd_flops(head_pairs, head_dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_sequence_counts() {
        // One causal sequence of 4 tokens attends 10 pairs; 2 query heads, D = 8.
        assert_eq!(attn_fwd_flops(20.0, 8), 4.0 * 8.0 * 20.0);
        assert_eq!(attn_bwd_flops(20.0, 8), 2.5 * 640.0);
    }
}
