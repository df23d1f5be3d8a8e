//! The paper's microbenchmark sweep (being built).
