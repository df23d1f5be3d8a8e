//! The `ulysses` planner (DeepSpeed-Ulysses): inputs and outputs in the static zigzag layout
//! (T/N tokens of every sequence per device); an all-to-all over all N devices turns the
//! sequence split into a head split, attention runs locally on whole sequences for each device's
//! heads, and an all-to-all returns O and LSE to the sequence split. The backward starts from the
//! forward's head-split Q, KV, O and LSE ([`crate::plan::BufferRole::Saved`], as DeepSpeed-Ulysses
//! keeps them): only dO goes in, dQ and dKV come back. It is the `usp` engine ([`crate::usp`]) with one head
//! group of all N devices and a ring of one.
//!
//! Requirements (typed errors otherwise): N ≤ query heads (Ulysses splits heads, one device per
//! head at most), and N divides the KV heads or is a multiple of them.
//!
//! Bytes sent per device (t = the device's tokens, e = bytes per element, D = head dim,
//! Hq / Hkv = query / KV heads; Q-like rows are Hq·D elements, KV rows 2·Hkv·D):
//! * N divides Hkv (heads split evenly): every all-to-all moves (N−1)/N of each tensor it
//!   carries — forward Q and KV in, O and LSE out; backward dO in, dQ and dKV out (16-bit,
//!   final on the sender).
//! * N > Hkv (ρ = N/Hkv devices per KV head; KV heads replicated, as DeepSpeed-Ulysses does): each
//!   device receives its KV head for every token of the batch, so KV in costs
//!   (N−1)·t·2D·e bytes — (N/Hkv)× the (N−1)/N·t·2·Hkv·D·e of an unreplicated split. The ρ devices
//!   of one KV head split its query group by rows (a work of the IR reads whole GQA groups), so
//!   Q-like tensors move (Hkv−1)/Hkv of their bytes, not (N−1)/N. dKV returns as fp32 partials
//!   (one per device of the KV head, summed once by the owner): (N−1)·t·2D·4 bytes.
//!
//! With 8 query / 2 KV heads, D 128, bf16 on 4 devices that is, per own token, forward 1024 (Q),
//! 1536 (KV), 1024 (O) and 16 (LSE) bytes against 1536, 768, 1536 and 24 for an unreplicated
//! (N−1)/N split of every tensor, which this model cannot have: replication doubles the KV
//! bytes, the row split halves the Q-side ones (`tests/head_parallel.rs` checks these formulas).

use crate::error::PlanningError;
use crate::plan::Plan;
use crate::spec::{BatchSpec, Topology};

/// The `ulysses` planner.
pub fn plan_ulysses(batch: &BatchSpec, topo: &Topology) -> Result<Plan, PlanningError> {
    check_ulysses(batch, topo)?;
    crate::usp::plan_grid(batch, topo, topo.n_devices(), "ulysses".into())
}

/// The `ulysses-pp` planner: `ulysses` with each all-to-all in two phases of sequences, so that
/// one phase's transfer runs beside the other phase's attention (documents never attend each
/// other): Q/KV of phase 1 in; phase 2's in beside phase 1's attention; phase 1's O out beside
/// phase 2's attention; phase 2's out. The backward does the same with dO in and dQ / dKV out.
/// The same bytes as `ulysses`, in twice as many groups, with the same requirements and the same
/// KV-head replication; where nothing can overlap (one sequence whose first half attends its
/// second) the plan is `ulysses`'s.
pub fn plan_ulysses_pp(batch: &BatchSpec, topo: &Topology) -> Result<Plan, PlanningError> {
    check_ulysses(batch, topo)?;
    crate::usp::plan_grid_pp(batch, topo, topo.n_devices(), "ulysses-pp".into(), true)
}

/// Validates the batch and whether `ulysses` applies to its heads on `topo` (typed errors).
pub(crate) fn check_ulysses(batch: &BatchSpec, topo: &Topology) -> Result<(), PlanningError> {
    batch.validate()?;
    let n = topo.n_devices();
    let m = batch.model;
    if n > m.heads {
        return Err(PlanningError::Unsupported {
            planner: "ulysses",
            what: format!(
                "{n} devices with only {} query heads: Ulysses splits the heads over the devices, so it needs at most one device per query head (use usp or zigzag)",
                m.heads
            ),
        });
    }
    if !m.kv_heads.is_multiple_of(n) && !n.is_multiple_of(m.kv_heads) {
        return Err(PlanningError::Unsupported {
            planner: "ulysses",
            what: format!(
                "{n} devices with {} KV heads: the device count must divide the KV heads or be a multiple of them",
                m.kv_heads
            ),
        });
    }
    Ok(())
}
