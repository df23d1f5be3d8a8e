//! `dcp dryrun`: the paper's CPU-only dry-run study. For `longalign` and `ldc` batches on 8×2 and
//! 4×8 topologies and the four masks: bytes moved (intra/inter node) by `dcp` against ring and
//! zigzag as the block size varies, planning time against block size, bytes against mask
//! sparsity, and compute imbalance against the inter-node weight. Writes PNG/SVG plots, a
//! markdown report and the raw JSON lines.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};
use dcp_core::dcp::{plan_dcp, DcpOptions};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;
use dcp_sim::plot::{write_figure, Panel};
use rayon::prelude::*;
use serde_json::json;

use crate::common::progress;

#[derive(Args, Debug)]
pub struct DryrunArgs {
    /// Batches per dataset.
    #[arg(long, default_value_t = 3)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder for plots, report and JSON.
    #[arg(long, default_value = "bench/results/dryrun")]
    pub out: PathBuf,
    /// Block sizes to sweep.
    #[arg(long, default_value = "512,1024,2048,4096")]
    pub block_sizes: String,
}

#[derive(Clone, Debug)]
struct Row {
    study: &'static str,
    dataset: &'static str,
    topo: &'static str,
    mask: String,
    x: String,
    planner: &'static str,
    intra: f64,
    inter: f64,
    plan_ms: f64,
    comp_imb: f64,
    sparsity: f64,
}

fn masks() -> Vec<(&'static str, MaskSpec)> {
    vec![
        ("causal", MaskSpec::Causal),
        ("lambda", MaskSpec::lambda()),
        ("shared-question", MaskSpec::shared_question()),
        ("causal-blockwise", MaskSpec::causal_blockwise()),
    ]
}

fn sparsity(b: &BatchSpec) -> f64 {
    let attended: u64 = b
        .seqs
        .iter()
        .map(|s| s.mask.compile(s.len).count_all())
        .sum();
    let causal: u64 = b
        .seqs
        .iter()
        .map(|s| s.len as u64 * (s.len as u64 + 1) / 2)
        .sum();
    attended as f64 / causal as f64
}

pub fn dryrun(a: DryrunArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out)?;
    let model = ModelShape::default();
    let block_sizes: Vec<u32> = a
        .block_sizes
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()?;
    let datasets = [(Dataset::LongAlign, "longalign"), (Dataset::Ldc, "ldc")];
    let topos = [("8x2", Topology::new(8, 2)), ("4x8", Topology::new(4, 8))];
    // Jobs: (study, dataset, topo, mask name, mask, x label, block, inter factor, planners)
    type Job = (
        &'static str,
        &'static str,
        &'static str,
        Topology,
        String,
        MaskSpec,
        String,
        u32,
        u64,
        Vec<&'static str>,
    );
    let mut jobs: Vec<(Job, Vec<u32>)> = Vec::new();
    for (ds, dname) in datasets {
        let lens = make_batches(ds, 1.0, a.count, DEFAULT_BUDGET, a.seed);
        for batch_lens in lens {
            for (tname, topo) in topos {
                for (mname, m) in masks() {
                    for &bs in &block_sizes {
                        jobs.push((
                            (
                                "block-size",
                                dname,
                                tname,
                                topo,
                                mname.to_string(),
                                m.clone(),
                                bs.to_string(),
                                bs,
                                4,
                                vec!["dcp", "ring", "zigzag"],
                            ),
                            batch_lens.clone(),
                        ));
                    }
                    for f in [1u64, 2, 4, 8, 16] {
                        jobs.push((
                            (
                                "inter-factor",
                                dname,
                                tname,
                                topo,
                                mname.to_string(),
                                m.clone(),
                                f.to_string(),
                                1024,
                                f,
                                vec!["dcp"],
                            ),
                            batch_lens.clone(),
                        ));
                    }
                }
                let sweeps: Vec<(String, MaskSpec, String)> = [512u32, 1024, 2048, 4096, 8192]
                    .iter()
                    .map(|&w| {
                        (
                            "lambda".to_string(),
                            MaskSpec::Lambda {
                                sink: 64,
                                window: w,
                            },
                            format!("window {w}"),
                        )
                    })
                    .chain([1u32, 2, 4, 8, 16].iter().map(|&n| {
                        (
                            "shared-question".to_string(),
                            MaskSpec::SharedQuestion {
                                question_frac: 0.2,
                                answers: n,
                            },
                            format!("{n} answers"),
                        )
                    }))
                    .chain([1u32, 2, 4, 8, 16].iter().map(|&k| {
                        (
                            "causal-blockwise".to_string(),
                            MaskSpec::CausalBlockwise {
                                block: 256,
                                local: k,
                            },
                            format!("k_local {k}"),
                        )
                    }))
                    .collect();
                for (mname, m, x) in sweeps {
                    jobs.push((
                        (
                            "sparsity",
                            dname,
                            tname,
                            topo,
                            mname,
                            m,
                            x,
                            1024,
                            4,
                            vec!["dcp", "zigzag"],
                        ),
                        batch_lens.clone(),
                    ));
                }
            }
        }
    }
    let pb = progress(jobs.len() as u64, "dryrun");
    let rows: Vec<Row> = jobs
        .par_iter()
        .flat_map_iter(
            |((study, dname, tname, topo, mname, m, x, bs, f, planners), lens)| {
                let batch = BatchSpec::uniform(lens, m.clone(), model, *bs);
                let sp = sparsity(&batch);
                let out: Vec<Row> = planners
                    .iter()
                    .map(|&p| {
                        let t0 = Instant::now();
                        let plan = if p == "dcp" {
                            // The placement itself is studied: no static fallback.
                            let o = DcpOptions {
                                inter_node_factor: Some(*f),
                                fallback_static: false,
                                ..DcpOptions::default()
                            };
                            plan_dcp(&batch, topo, &o)
                        } else {
                            make_plan(p, &batch, topo, &PlannerOptions::default())
                        }
                        .expect("planning the dry-run batches");
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        let s = plan_stats(&plan);
                        Row {
                            study,
                            dataset: dname,
                            topo: tname,
                            mask: mname.clone(),
                            x: x.clone(),
                            planner: p,
                            intra: (s.fwd_bytes_intra + s.bwd_bytes_intra) as f64 / 1e9,
                            inter: (s.fwd_bytes_inter + s.bwd_bytes_inter) as f64 / 1e9,
                            plan_ms: ms,
                            comp_imb: s.compute_imbalance,
                            sparsity: sp,
                        }
                    })
                    .collect();
                pb.inc(1);
                out
            },
        )
        .collect();
    pb.finish_and_clear();

    // Raw rows.
    let mut raw = String::new();
    for r in &rows {
        raw.push_str(
            &json!({"study": r.study, "dataset": r.dataset, "topology": r.topo, "mask": r.mask, "x": r.x, "planner": r.planner,
                "bytes_intra_gb": r.intra, "bytes_inter_gb": r.inter, "plan_ms": r.plan_ms, "compute_imbalance": r.comp_imb, "sparsity": r.sparsity})
            .to_string(),
        );
        raw.push('\n');
    }
    std::fs::write(a.out.join("dryrun.jsonl"), raw)?;

    // Mean over batches of a metric for (study, dataset, topo, mask, x, planner).
    let mean = |study: &str,
                ds: &str,
                topo: &str,
                mask: &str,
                x: &str,
                p: &str,
                f: &dyn Fn(&Row) -> f64|
     -> f64 {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.study == study
                    && r.dataset == ds
                    && r.topo == topo
                    && r.mask == mask
                    && r.x == x
                    && r.planner == p
            })
            .map(f)
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut report = String::from("# Dry run: DCP placement against static CP on CPU\n\n");
    report.push_str(&format!(
        "Generated by `dcp dryrun --count {} --seed {}` on this machine ({}), {} batches per dataset of 131072-token budget, model 8 query / 2 KV heads, D 128, bf16. Bytes are forward + backward, summed over devices; the `dcp` rows use the placement alone (no static fallback).\n\n",
        a.count,
        a.seed,
        std::env::consts::ARCH,
        a.count
    ));
    let xs_bs: Vec<String> = block_sizes.iter().map(|b| b.to_string()).collect();
    for (dname, _) in [("longalign", 0), ("ldc", 1)] {
        for (tname, _) in topos {
            let mut panels = Vec::new();
            report.push_str(&format!("## {dname}, {tname}: bytes moved vs block size (GB, fwd+bwd: intra / inter)\n\n| mask | planner | {} |\n|---|---|{}\n", xs_bs.join(" | "), "---|".repeat(xs_bs.len())));
            for (mname, _) in masks() {
                let mut series = Vec::new();
                for p in ["dcp", "ring", "zigzag"] {
                    let cells: Vec<String> = xs_bs
                        .iter()
                        .map(|x| {
                            format!(
                                "{:.2} / {:.2}",
                                mean("block-size", dname, tname, mname, x, p, &|r| r.intra),
                                mean("block-size", dname, tname, mname, x, p, &|r| r.inter)
                            )
                        })
                        .collect();
                    report.push_str(&format!("| {mname} | {p} | {} |\n", cells.join(" | ")));
                    series.push((
                        format!("{p} inter"),
                        xs_bs
                            .iter()
                            .map(|x| mean("block-size", dname, tname, mname, x, p, &|r| r.inter))
                            .collect(),
                    ));
                    if p == "dcp" {
                        series.push((
                            "dcp intra".to_string(),
                            xs_bs
                                .iter()
                                .map(|x| {
                                    mean("block-size", dname, tname, mname, x, p, &|r| r.intra)
                                })
                                .collect(),
                        ));
                    }
                }
                panels.push(Panel {
                    title: format!("{mname}: bytes (GB)"),
                    y_label: "GB".into(),
                    groups: xs_bs.iter().map(|x| format!("B={x}")).collect(),
                    series,
                    reference: None,
                });
            }
            report.push('\n');
            // Planning time vs block size.
            let series: Vec<(String, Vec<f64>)> = masks()
                .iter()
                .map(|(m, _)| {
                    (
                        m.to_string(),
                        xs_bs
                            .iter()
                            .map(|x| mean("block-size", dname, tname, m, x, "dcp", &|r| r.plan_ms))
                            .collect(),
                    )
                })
                .collect();
            report.push_str(&format!(
                "Planning time of `dcp` (ms, mean): {}\n\n",
                series
                    .iter()
                    .map(|(m, v)| format!(
                        "{m}: {}",
                        v.iter()
                            .map(|x| format!("{x:.1}"))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
            panels.push(Panel {
                title: "dcp planning time (ms)".into(),
                y_label: "ms".into(),
                groups: xs_bs.iter().map(|x| format!("B={x}")).collect(),
                series,
                reference: None,
            });
            // Sparsity.
            for mname in ["lambda", "shared-question", "causal-blockwise"] {
                let xs: Vec<String> = {
                    let mut v: Vec<String> = rows
                        .iter()
                        .filter(|r| r.study == "sparsity" && r.mask == mname)
                        .map(|r| r.x.clone())
                        .collect();
                    v.dedup();
                    let mut seen = Vec::new();
                    v.retain(|x| {
                        if seen.contains(x) {
                            false
                        } else {
                            seen.push(x.clone());
                            true
                        }
                    });
                    v
                };
                let series: Vec<(String, Vec<f64>)> = ["dcp", "zigzag"]
                    .iter()
                    .map(|p| {
                        (
                            p.to_string(),
                            xs.iter()
                                .map(|x| {
                                    mean("sparsity", dname, tname, mname, x, p, &|r| {
                                        r.intra + r.inter
                                    })
                                })
                                .collect(),
                        )
                    })
                    .collect();
                let sp: Vec<String> = xs
                    .iter()
                    .map(|x| {
                        format!(
                            "{x} (density {:.3})",
                            mean("sparsity", dname, tname, mname, x, "dcp", &|r| r.sparsity)
                        )
                    })
                    .collect();
                report.push_str(&format!(
                    "Sparsity, {mname}: {} → dcp GB {}, zigzag GB {}\n\n",
                    sp.join(", "),
                    series[0]
                        .1
                        .iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    series[1]
                        .1
                        .iter()
                        .map(|x| format!("{x:.2}"))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ));
                panels.push(Panel {
                    title: format!("{mname}: bytes vs sparsity (GB)"),
                    y_label: "GB".into(),
                    groups: xs.clone(),
                    series,
                    reference: None,
                });
            }
            // Inter-node factor.
            let fs: Vec<String> = [1, 2, 4, 8, 16]
                .iter()
                .map(|f: &i32| f.to_string())
                .collect();
            let series: Vec<(String, Vec<f64>)> = masks()
                .iter()
                .map(|(m, _)| {
                    (
                        m.to_string(),
                        fs.iter()
                            .map(|x| {
                                mean("inter-factor", dname, tname, m, x, "dcp", &|r| r.comp_imb)
                            })
                            .collect(),
                    )
                })
                .collect();
            let inter: Vec<(String, Vec<f64>)> = masks()
                .iter()
                .map(|(m, _)| {
                    (
                        m.to_string(),
                        fs.iter()
                            .map(|x| mean("inter-factor", dname, tname, m, x, "dcp", &|r| r.inter))
                            .collect(),
                    )
                })
                .collect();
            report.push_str("Compute imbalance / inter-node GB of `dcp` vs the inter-node weight (1, 2, 4, 8, 16): ");
            report.push_str(
                &series
                    .iter()
                    .zip(&inter)
                    .map(|((m, v), (_, w))| {
                        format!(
                            "{m}: {}",
                            v.iter()
                                .zip(w)
                                .map(|(a, b)| format!("{a:.3}/{b:.2}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            report.push_str("\n\n");
            panels.push(Panel {
                title: "dcp compute imbalance vs inter-node weight".into(),
                y_label: "max/mean".into(),
                groups: fs.iter().map(|f| format!("x{f}")).collect(),
                series,
                reference: Some(1.0),
            });
            let stem = a.out.join(format!("dryrun_{dname}_{tname}"));
            write_figure(&stem, &format!("DCP dry run: {dname}, {tname}"), &panels, 3)
                .map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
            report.push_str(&format!(
                "![{dname} {tname}](dryrun_{dname}_{tname}.png)\n\n"
            ));
        }
    }
    std::fs::write(a.out.join("README.md"), &report)?;
    println!("{report}");
    println!("wrote {}", a.out.display());
    Ok(())
}
