//! The committed batch file of the 4-GPU matrix (`bench/gpu/x4_batches.json`) is exactly what its
//! generator (`examples/x4_batches.rs`) writes, and parses as a batch file: the GPU machine has
//! no Rust toolchain, so the file travels with the tree and must not go stale.

#[path = "../examples/x4_batches.rs"]
mod x4_batches;

#[test]
fn x4_batch_file_is_current() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/gpu/x4_batches.json"
    );
    let committed = std::fs::read_to_string(path).expect("bench/gpu/x4_batches.json exists");
    let want = x4_batches::batch_file();
    assert!(
        committed == want,
        "bench/gpu/x4_batches.json is stale: regenerate it with \
         `cargo run --release -p dcp-core --example x4_batches > bench/gpu/x4_batches.json`"
    );
    let batches = dcp_core::datasets::parse_batch_file(&committed).unwrap();
    let n = x4_batches::DATASETS.len() * x4_batches::SCALES.len() * x4_batches::COUNT;
    assert_eq!(batches.len(), n);
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(v["labels"].as_array().unwrap().len(), n);
    for b in &batches {
        let t: u64 = b.iter().map(|&l| l as u64).sum();
        assert!(
            t * 4 >= 3 * dcp_core::datasets::DEFAULT_BUDGET
                && t <= dcp_core::datasets::DEFAULT_BUDGET
        );
    }
}
