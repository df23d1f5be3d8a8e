//! Shared by the examples: the reference planner's JSON-lines records (`mem_diag`,
//! `planner_bench`) and `--name value` arguments (`planner_scale`, `validator_bench`,
//! `ring_shift_reuse`). Each example compiles this module and uses what it needs.
#![allow(dead_code)]

pub mod counters;

/// The records of a JSON-lines file (blank lines skipped); panics naming the file or the line.
pub fn records(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{path} line {}: {e}", i + 1))
        })
        .collect()
}

/// A record's sequence lengths (`seqlens`); panics naming the record when they are missing.
pub fn seqlens(r: &serde_json::Value) -> Vec<u32> {
    r["seqlens"]
        .as_array()
        .unwrap_or_else(|| panic!("record without a seqlens array: {r}"))
        .iter()
        .map(|x| {
            let v = x
                .as_u64()
                .unwrap_or_else(|| panic!("seqlens entry {x} of {r}"));
            u32::try_from(v).unwrap_or_else(|_| panic!("seqlens entry {v} exceeds u32"))
        })
        .collect()
}

/// The value after `name` in `args`, else `default`.
pub fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}
