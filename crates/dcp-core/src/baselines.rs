//! The static planners under their historical path (`ring`, `zigzag`, `local`); they live in
//! [`crate::planners::ring`] and [`crate::planners::local`].

pub use crate::planners::local::{bytes_per_token, plan_local};
pub use crate::planners::ring::plan_ring;
