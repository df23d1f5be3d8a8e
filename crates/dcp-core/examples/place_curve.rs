//! Bytes against compute imbalance of the `dcp` placement on the reference planner's 4x8 B1024
//! causal and lambda batches, by compute tolerance ε, against the reference's own point per set
//! (issue 15's quality goal: bytes ≤ the reference's at compute imbalance ≤ 1.10, resident
//! memory imbalance ≤ 1.20).
//!
//! Usage: `cargo run --release -p dcp-core --example place_curve -- REF_JSONL [--eps 0.02,0.05,...]
//! [--sets longalign:causal,...] [--initial auto|bisect|partition] [--head-blocks N]
//! [--preset fast|default|quality] [--factor F] [--fallback] [--baseline] [--validate] [-v]
//! [--plot FILE.svg]`.
//!
//! Without `--fallback` the static candidates are off (the placement itself is measured).
//! `--baseline` also runs the previous default (partition from scratch, the batch's head
//! block) and draws it dashed. Prints one markdown row per (configuration, set, ε): bytes / ref
//! (fwd + bwd, summed over the batches), mean and max compute imbalance, mean and max resident
//! memory imbalance, the cost model's predicted fwd + bwd time (mean per batch), planning CPU
//! ms per batch (this thread); `-v` adds a line per batch,
//! `--validate` runs the validator on every plan.
mod common;

use dcp_core::cost::{predict, CostModel};
use dcp_core::dcp::{plan_dcp, DcpOptions, Initial};
use dcp_core::mask::MaskSpec;
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

/// CPU time of this thread, ms (Linux schedstat; 0 elsewhere).
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

/// One point of a set's curve.
struct Point {
    bytes_ratio: f64,
    comp_mean: f64,
}

/// A curve: configuration name, set, points, the reference's mean compute imbalance, dashed.
type Curve = (String, String, Vec<Point>, f64, bool);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .iter()
        .find(|a| a.ends_with(".jsonl"))
        .expect("usage: place_curve REF_JSONL [options] (see the file's doc)");
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| panic!("{flag} needs a value"))
                .clone()
        })
    };
    let flag = |f: &str| args.iter().any(|a| a == f);
    let eps: Vec<f64> = value("--eps")
        .unwrap_or_else(|| "0.08".into())
        .split(',')
        .map(|x| x.parse().expect("--eps: numbers"))
        .collect();
    let (verbose, check) = (flag("-v"), flag("--validate"));
    let base = DcpOptions {
        inter_node_factor: value("--factor").map(|v| v.parse().expect("--factor: an integer")),
        fallback_static: flag("--fallback"),
        preset: match value("--preset").as_deref() {
            None | Some("fast") => hypergraph::Preset::Fast,
            Some("default") => hypergraph::Preset::Default,
            Some("quality") => hypergraph::Preset::Quality,
            Some(p) => panic!("--preset: fast, default or quality (got {p})"),
        },
        initial: match value("--initial").as_deref() {
            None | Some("auto") => Initial::Auto,
            Some("bisect") => Initial::Bisect,
            Some("partition") => Initial::Partition,
            Some(p) => panic!("--initial: auto, bisect or partition (got {p})"),
        },
        head_blocks: value("--head-blocks").map_or(2, |v| v.parse().expect("--head-blocks")),
        ..DcpOptions::default()
    };
    let mut configs = vec![("dcp".to_string(), base.clone(), false)];
    if flag("--baseline") {
        let old = DcpOptions {
            initial: Initial::Partition,
            head_blocks: 1,
            ..base.clone()
        };
        configs.push(("partition, batch head block".into(), old, true));
    }
    let sets: Vec<String> = value("--sets")
        .unwrap_or_else(|| "longalign:causal,ldc:causal,longalign:lambda,ldc:lambda".into())
        .split(',')
        .map(String::from)
        .collect();
    let recs = common::records(path);
    let topo = Topology::parse("4x8").unwrap();
    let mut curves: Vec<Curve> = Vec::new();
    println!("| configuration | set | ε | bytes / ref | comp imb mean (max) | resident mem imb mean (max) | predicted fwd+bwd ms | CPU ms / batch |");
    println!("|---|---|---|---|---|---|---|---|");
    let cost = CostModel::default();
    for (cname, copts, dashed) in &configs {
        for set in &sets {
            let (ds, mask) = set.split_once(':').expect("--sets: DATASET:MASK,...");
            let sel: Vec<&serde_json::Value> = recs
                .iter()
                .filter(|r| {
                    r["dataset"] == ds
                        && r["mask"] == mask
                        && r["block_size"] == 1024
                        && r["n_nodes"] == 4
                        && r["n_devices_per_node"] == 8
                })
                .collect();
            assert!(!sel.is_empty(), "no reference records for {set}");
            let ref_bytes = |r: &serde_json::Value| {
                r["fw_bytes_total"].as_f64().unwrap() + r["bw_bytes_total"].as_f64().unwrap()
            };
            let ref_total: f64 = sel.iter().map(|r| ref_bytes(r)).sum();
            let ref_comp = sel
                .iter()
                .map(|r| r["comp_imbalance"].as_f64().unwrap())
                .sum::<f64>()
                / sel.len() as f64;
            let mut pts = Vec::new();
            for &e in &eps {
                let opts = DcpOptions {
                    comp_epsilon: e,
                    ..copts.clone()
                };
                let (mut by, mut cs, mut cx, mut ms, mut mx, mut t, mut pred) =
                    (0.0, 0.0, 0.0f64, 0.0, 0.0f64, 0.0, 0.0);
                for r in &sel {
                    let lens = common::seqlens(r);
                    let m = MaskSpec::parse(mask).unwrap();
                    let batch = BatchSpec::uniform(&lens, m, ModelShape::default(), 1024);
                    let c0 = thread_cpu_ms();
                    let plan = plan_dcp(&batch, &topo, &opts).expect("dcp plans");
                    t += thread_cpu_ms() - c0;
                    if check {
                        dcp_core::validate::validate(&plan).unwrap_or_else(|e| {
                            panic!("{set} batch {}: invalid plan: {e}", r["batch_idx"])
                        });
                    }
                    let pr = predict(&plan, &cost);
                    pred += pr.fwd_ms + pr.bwd_ms;
                    let s = plan_stats(&plan);
                    let b = (s.fwd_bytes_intra
                        + s.fwd_bytes_inter
                        + s.bwd_bytes_intra
                        + s.bwd_bytes_inter) as f64;
                    if verbose {
                        println!(
                            "  batch {} seqs {} longest {}: bytes {:.0} MB / ref {:.0} MB = {:.3}, inter {:.0} / ref {:.0}, comp {:.3} (ref {:.2}), mem {:.3}",
                            r["batch_idx"], lens.len(), lens.iter().max().unwrap(), b / 1e6,
                            ref_bytes(r) / 1e6, b / ref_bytes(r),
                            (s.fwd_bytes_inter + s.bwd_bytes_inter) as f64 / 1e6,
                            (r["fw_bytes_inter"].as_f64().unwrap() + r["bw_bytes_inter"].as_f64().unwrap()) / 1e6,
                            s.compute_imbalance, r["comp_imbalance"].as_f64().unwrap(), s.memory_imbalance
                        );
                    }
                    by += b;
                    cs += s.compute_imbalance;
                    cx = cx.max(s.compute_imbalance);
                    ms += s.memory_imbalance;
                    mx = mx.max(s.memory_imbalance);
                }
                let n = sel.len() as f64;
                let p = Point {
                    bytes_ratio: by / ref_total,
                    comp_mean: cs / n,
                };
                println!(
                    "| {cname} | {set} | {e:.2} | {:.3} | {:.3} ({cx:.3}) | {:.3} ({mx:.3}) | {:.2} | {:.1} |",
                    p.bytes_ratio,
                    p.comp_mean,
                    ms / n,
                    pred / n,
                    t / n
                );
                eprintln!(
                    "{}",
                    serde_json::json!({"configuration": cname, "set": set, "eps": e, "n": sel.len(),
                        "bytes_over_ref": p.bytes_ratio, "comp_imb_mean": p.comp_mean, "comp_imb_max": cx,
                        "mem_imb_mean": ms / n, "mem_imb_max": mx, "cpu_ms_per_batch": t / n, "predicted_fwd_bwd_ms": pred / n,
                        "ref_comp_imb_mean": ref_comp})
                );
                pts.push(p);
            }
            curves.push((cname.clone(), set.clone(), pts, ref_comp, *dashed));
        }
    }
    if let Some(path) = value("--plot") {
        draw(&path, &curves).expect("plot");
        eprintln!("wrote {path}");
    }
}

const FONT: &[u8] = include_bytes!("../../dcp-sim/assets/DejaVuSans.ttf");

/// Bytes / reference against mean compute imbalance, one line per set and configuration (by
/// ε; dashed: the baseline) and one cross per set at the reference's mean compute imbalance
/// (bytes / ref = 1 by definition).
fn draw(path: &str, curves: &[Curve]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    if path.ends_with(".svg") {
        draw_on(
            SVGBackend::new(path, (1000, 640)).into_drawing_area(),
            curves,
        )
    } else {
        draw_on(
            BitMapBackend::new(path, (1000, 640)).into_drawing_area(),
            curves,
        )
    }
}

fn draw_on<DB: plotters::prelude::DrawingBackend>(
    root: plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    curves: &[Curve],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    use plotters::prelude::*;
    root.fill(&WHITE)?;
    let xmax = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.comp_mean).chain([c.3]))
        .fold(1.0f64, f64::max)
        + 0.05;
    let ymax = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.bytes_ratio))
        .fold(1.0f64, f64::max)
        + 0.1;
    let mut ch = ChartBuilder::on(&root)
        .caption(
            "dcp placement vs the reference planner (4x8, B 1024): bytes against compute imbalance",
            ("sans-serif", 19),
        )
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..xmax, 0.5..ymax)?;
    ch.configure_mesh()
        .x_desc("compute imbalance (max / mean), mean over the batches")
        .y_desc("bytes / reference's bytes (fwd + bwd)")
        .label_style(("sans-serif", 13))
        .draw()?;
    ch.draw_series(DashedLineSeries::new(
        [(1.10, 0.5), (1.10, ymax)],
        8,
        5,
        BLACK.stroke_width(2),
    ))?
    .label("compute imbalance 1.10 (goal)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    ch.draw_series(LineSeries::new(
        [(1.0, 1.0), (xmax, 1.0)],
        BLACK.mix(0.5).stroke_width(1),
    ))?;
    let sets: Vec<&String> = {
        let mut v: Vec<&String> = curves.iter().map(|c| &c.1).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    for (cname, set, pts, rc, dashed) in curves {
        let si = sets.iter().position(|s| *s == set).unwrap_or(0);
        let c = Palette99::pick(si).to_rgba();
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.comp_mean, p.bytes_ratio)).collect();
        if *dashed {
            ch.draw_series(DashedLineSeries::new(line, 6, 4, c.stroke_width(1)))?
                .label(format!("{set}: {cname}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1))
                });
        } else {
            ch.draw_series(LineSeries::new(line, c.stroke_width(2)))?
                .label(format!("{set}: {cname} by ε; × reference"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            ch.draw_series([Cross::new((*rc, 1.0), 7, c.stroke_width(2))])?;
        }
        ch.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.comp_mean, p.bytes_ratio), 3, c.filled())),
        )?;
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
