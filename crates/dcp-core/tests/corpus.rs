//! The named regression corpus (`testdata/*.json`): small batches chosen for their edge cases
//! (length-1 sequences, odd lengths, many tiny documents, one long document, every mask kind,
//! user ranges, GQA/MQA shapes, more devices than blocks). Every planner's plan of every case
//! must pass the validator, the CPU reference executor must match dense attention, and planning
//! twice must give byte-identical plans. The random cases are in `differential.rs`.
//!
//! A case file: `{"description", "topology": "NxG", "block_size", "model": {"heads",
//! "kv_heads", "head_dim"}, "head_block"?, "seqs": [{"len", "mask"}]}`, where a mask is its CLI
//! form (`"lambda:4:16"`) or a `MaskSpec` in JSON (`{"ranges": {"rows": [...]}}`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use dcp_core::check::check_plan;
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions, PLANNERS};
use dcp_core::spec::{BatchSpec, DType, ModelShape, Sequence, Topology};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    topology: String,
    block_size: u32,
    model: Model,
    head_block: Option<u32>,
    seqs: Vec<Seq>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Seq {
    len: u32,
    mask: Mask,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Mask {
    Cli(String),
    Spec(MaskSpec),
}

fn corpus() -> Vec<(String, BatchSpec, Topology)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(f).unwrap();
            let c: Case = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!c.description.is_empty(), "{name}: no description");
            let seqs = c
                .seqs
                .into_iter()
                .map(|s| Sequence {
                    len: s.len,
                    mask: match s.mask {
                        Mask::Cli(m) => {
                            MaskSpec::parse(&m).unwrap_or_else(|e| panic!("{name}: {e}"))
                        }
                        Mask::Spec(m) => m,
                    },
                })
                .collect();
            let batch = BatchSpec {
                seqs,
                model: ModelShape {
                    heads: c.model.heads,
                    kv_heads: c.model.kv_heads,
                    head_dim: c.model.head_dim,
                    dtype: DType::Bf16,
                },
                block_size: c.block_size,
                head_block: c.head_block.unwrap_or(c.model.kv_heads),
            };
            batch.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let topo = Topology::parse(&c.topology).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, batch, topo)
        })
        .collect()
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
