//! The named regression corpus (`testdata/*.json`): small batches chosen for their edge cases
//! (length-1 sequences, odd lengths, many tiny documents, one long document, every mask kind,
//! user ranges, GQA/MQA shapes, more devices than blocks). Every planner's plan of every case
//! must pass the validator, the CPU reference executor must match dense attention, and planning
//! twice must give byte-identical plans. The random cases are in `differential.rs`.
//!
//! The case format is described at `dcp_core::check::corpus_case`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use dcp_core::check::{check_plan, corpus_dir};
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};

fn corpus() -> Vec<(String, dcp_core::spec::BatchSpec, dcp_core::spec::Topology)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    corpus_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_planner_on_the_corpus() {
    let cases = corpus();
    assert!(cases.len() >= 10, "corpus has {} cases", cases.len());
    // The corpus covers every mask kind.
    let kinds: BTreeSet<&str> = cases
        .iter()
        .flat_map(|(_, b, _)| b.seqs.iter().map(|s| s.mask.name()))
        .collect();
    for k in [
        "causal",
        "full",
        "sliding-window",
        "lambda",
        "shared-question",
        "causal-blockwise",
        "prefix-lm",
        "ranges",
    ] {
        assert!(kinds.contains(k), "no corpus case uses the {k} mask");
    }
    let opts = PlannerOptions::default();
    let planners = PLANNERS.iter().copied().chain(["dcp-only"]);
    for (i, (name, batch, topo)) in cases.iter().enumerate() {
        for p in planners.clone() {
            let plan =
                make_plan(p, batch, topo, &opts).unwrap_or_else(|e| panic!("{name}, {p}: {e}"));
            if let Err(e) = check_plan(&plan, i as u64) {
                panic!("{name} ({}), planner {p}: {e}", topo.n_devices());
            }
            let again = make_plan(p, batch, topo, &opts).unwrap();
            assert!(
                plan.to_bytes() == again.to_bytes(),
                "{name}, {p}: planning twice gave different plans"
            );
        }
    }
}

#[test]
fn bad_case_files_are_refused() {
    use dcp_core::check::corpus_case;
    let ok = r#"{"description": "d", "topology": "1x2", "block_size": 4,
        "model": {"heads": 2, "kv_heads": 1, "head_dim": 4}, "seqs": [{"len": 5, "mask": "causal"}]}"#;
    let (desc, batch, topo) = corpus_case(ok).unwrap();
    assert_eq!(
        (desc.as_str(), batch.seqs.len(), topo.n_devices()),
        ("d", 1, 2)
    );
    for (bad, says) in [
        (ok.replace("causal", "lambda:3"), "lambda takes"),
        (ok.replace("\"len\": 5", "\"len\": 0"), "length 0"),
        (ok.replace("1x2", "1x"), "topology"),
        (
            ok.replace("\"block_size\"", "\"blocksize\""),
            "unknown field",
        ),
        (ok.replace("\"d\"", "\"\""), "description"),
    ] {
        let e = corpus_case(&bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
