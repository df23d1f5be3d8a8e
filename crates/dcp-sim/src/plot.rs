//! Bar charts (being built).
