//! Planner scaling benchmark: planning time and bytes moved against tokens × devices.
//!
//! Usage: `cargo run --release -p dcp-core --example planner_scale -- [--sizes 131072:4x8,...]
//! [--datasets longalign,ldc] [--masks causal,lambda] [--count 5] [--planners dcp]`
//! Each size plans `count` batches of the dataset (`--lengths fixed`: the dataset's lengths, more
//! sequences per batch; `scaled`: lengths × tokens / 131 072), on one thread, and prints one JSON line per plan and a
//! markdown table (median / max planning ms, bytes moved fwd+bwd) per configuration;
//! `--threads N` builds ring/zigzag programs on N threads (the reported CPU time is then the
//! calling thread's only: use wall time); `--plot FILE.png` draws planning time and bytes moved against tokens × devices.

mod common;
use common::arg;

use std::time::Instant;

use dcp_core::datasets::{make_batches, Dataset, DEFAULT_BUDGET};
use dcp_core::mask::MaskSpec;
use dcp_core::planners::{make_plan, PlannerOptions};
use dcp_core::spec::{BatchSpec, ModelShape, Topology};
use dcp_core::stats::plan_stats;

/// CPU time of this thread, ms (Linux schedstat; 0 elsewhere): planning times on a shared machine
/// are reported as CPU time, wall time alongside.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = arg(
        &args,
        "--sizes",
        "131072:4x8,262144:8x8,524288:16x8,1048576:32x8",
    );
    let datasets = arg(&args, "--datasets", "longalign,ldc");
    let masks = arg(&args, "--masks", "causal,lambda");
    let planners = arg(&args, "--planners", "dcp");
    let count: usize = arg(&args, "--count", "5").parse().expect("--count");
    // `fixed`: the dataset's own lengths, more sequences per batch as tokens grow (like
    // `dcp plan --budget`); `scaled`: lengths × tokens / 131 072 (the same number of sequences).
    let lengths = arg(&args, "--lengths", "fixed");
    let plot = args
        .iter()
        .position(|a| a == "--plot")
        .and_then(|i| args.get(i + 1).cloned());
    let mut series: Vec<Series> = Vec::new();
    // Threads for ring/zigzag emission (`--threads`, default 1: the one-core numbers).
    let opts = PlannerOptions {
        threads: arg(&args, "--threads", "1").parse().expect("--threads"),
        ..Default::default()
    };
    let model = ModelShape::default();
    println!("| dataset | mask | tokens | topology | planner | plans | plan CPU ms median | max | GB moved (mean) | winners |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for size in sizes.split(',') {
        let (tok, topo_s) = size.split_once(':').expect("--sizes TOKENS:NxG,...");
        let tokens: u64 = tok.parse().expect("tokens");
        let topo = Topology::parse(topo_s).expect("topology");
        let scale = match lengths.as_str() {
            "fixed" => 1.0,
            "scaled" => tokens as f64 / DEFAULT_BUDGET as f64,
            o => panic!("--lengths must be fixed or scaled (got {o})"),
        };
        for ds in datasets.split(',') {
            let dset = Dataset::parse(ds).expect("dataset");
            let lens = make_batches(dset, scale, count, tokens, 0);
            for m in masks.split(',') {
                let mask = MaskSpec::parse(m).expect("mask");
                for p in planners.split(',') {
                    let mut ms = Vec::new();
                    let mut gb = 0.0;
                    let mut winners: Vec<String> = Vec::new();
                    for (bi, l) in lens.iter().enumerate() {
                        let b = BatchSpec::uniform(l, mask.clone(), model, 1024);
                        let (t0, c0) = (Instant::now(), thread_cpu_ms());
                        let plan = make_plan(p, &b, &topo, &opts).expect("plan");
                        let wall = t0.elapsed().as_secs_f64() * 1e3;
                        let dt = thread_cpu_ms() - c0;
                        let s = plan_stats(&plan);
                        let bytes = s.fwd_bytes_intra
                            + s.fwd_bytes_inter
                            + s.bwd_bytes_intra
                            + s.bwd_bytes_inter;
                        println!(
                            "{}",
                            serde_json::json!({"dataset": ds, "mask": m, "tokens": s.tokens,
                                "topology": topo_s, "devices": topo.n_devices(), "planner": p,
                                "plan": plan.label(), "batch": bi, "seqs": l.len(),
                                "plan_cpu_ms": dt, "plan_wall_ms": wall, "bytes": bytes})
                        );
                        ms.push(dt);
                        gb += bytes as f64 / 1e9;
                        winners.push(plan.label());
                    }
                    ms.sort_by(|a, b| a.total_cmp(b));
                    let name = format!("{ds} {m} {p}");
                    let point = (
                        (tokens * topo.n_devices() as u64) as f64,
                        ms[ms.len() / 2],
                        ms[ms.len() - 1],
                        gb / ms.len() as f64,
                    );
                    match series.iter_mut().find(|s| s.0 == name) {
                        Some(s) => s.1.push(point),
                        None => series.push((name, vec![point])),
                    }
                    winners.sort();
                    winners.dedup();
                    println!(
                        "| {ds} | {m} | {tokens} | {topo_s} | {p} | {} | {:.1} | {:.1} | {:.2} | {} |",
                        ms.len(),
                        ms[ms.len() / 2],
                        ms[ms.len() - 1],
                        gb / ms.len() as f64,
                        winners.join(" ")
                    );
                }
            }
        }
    }
    if let Some(path) = plot {
        draw(&path, &series).expect("plot");
        eprintln!("wrote {path}");
    }
}

/// (name, points of (tokens × devices, median ms, max ms, GB moved)).
type Series = (String, Vec<(f64, f64, f64, f64)>);

const FONT: &[u8] = include_bytes!("../../dcp-sim/assets/DejaVuSans.ttf");

/// Two log-log panels: planning CPU time (median, and max dashed) and GB moved against
/// tokens × devices, one line per dataset / mask / planner, with a linear-growth guide.
fn draw(path: &str, series: &[Series]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::MAX, f64::min) / 1.5,
        xs.iter().copied().fold(0.0, f64::max) * 1.5,
    );
    for (pi, panel) in panels.iter().enumerate() {
        let val = |p: &(f64, f64, f64, f64)| if pi == 0 { p.1 } else { p.3 };
        let ys: Vec<f64> = series
            .iter()
            .flat_map(|s| s.1.iter().flat_map(|p| [val(p), p.2]))
            .filter(|v| *v > 0.0)
            .collect();
        let (y0, y1) = (
            ys.iter().copied().fold(f64::MAX, f64::min) / 2.0,
            ys.iter().copied().fold(0.0, f64::max) * 2.0,
        );
        let (title, ylab) = if pi == 0 {
            ("planning time, one core (median; max dashed)", "CPU ms")
        } else {
            ("bytes moved per batch, fwd + bwd", "GB")
        };
        let mut ch = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        ch.configure_mesh()
            .x_desc("tokens × devices")
            .y_desc(ylab)
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_label_formatter(&|y| format!("{y}"))
            .label_style(("sans-serif", 13))
            .draw()?;
        for (si, (name, pts)) in series.iter().enumerate() {
            let c = Palette99::pick(si).to_rgba();
            ch.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, val(p))),
                c.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            ch.draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.0, val(p)), 3, c.filled())),
            )?;
            if pi == 0 {
                for w in pts.windows(2) {
                    ch.draw_series(DashedLineSeries::new(
                        [(w[0].0, w[0].2), (w[1].0, w[1].2)],
                        5,
                        4,
                        c.stroke_width(1),
                    ))?;
                }
            }
        }
        if pi == 0 {
            // Linear growth in tokens × devices through the smallest median.
            if let Some(first) = series.first().and_then(|s| s.1.first()) {
                let k = first.1 / first.0;
                ch.draw_series(LineSeries::new(
                    [(x0, k * x0), (x1, k * x1)],
                    BLACK.mix(0.3).stroke_width(1),
                ))?
                .label("linear growth")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.3)));
            }
        }
        ch.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
