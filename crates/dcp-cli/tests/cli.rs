//! The `dcp` binary as a user runs it: bad inputs give one `error:` line that names the bad item
//! and a non-zero exit, never a panic; report commands write to a fresh folder by default.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dcp_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcp"));
    c.args(args).env("RUST_BACKTRACE", "0");
    if let Some(d) = dir {
        c.current_dir(d);
    }
    c.output().expect("running dcp")
}

fn dcp(args: &[&str]) -> Output {
    dcp_in(None, args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dcp-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `args`, expects failure with exactly one `error:` line containing every needle, and no
/// panic or multi-line cause chain.
fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let o = dcp(args);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        !err.contains("Caused by"),
        "{args:?}: multi-line error: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line: {err}");
    for n in needles {
        assert!(
            lines[0].contains(n),
            "{args:?}: `{n}` not in `{}`",
            lines[0]
        );
    }
    lines[0].to_string()
}

/// Runs `base` followed by `extra`, expects success, and returns stdout's JSON lines.
fn json_lines(base: &[&str], extra: &[&str]) -> Vec<serde_json::Value> {
    let args: Vec<&str> = base.iter().chain(extra).copied().collect();
    let o = dcp(&args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Writes `{"batches": BATCHES}` to DIR/NAME and returns its path.
fn batch_file(dir: &Path, name: &str, batches: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!(r#"{{"batches": {batches}}}"#)).unwrap();
    p.display().to_string()
}

fn tiny_batches(dir: &Path) -> String {
    batch_file(dir, "tiny.json", "[[300, 17, 1]]")
}

#[test]
fn simulate_runs_and_lists_each_flag_once() {
    let o = dcp(&["simulate", "--help"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let help = text(&o.stdout);
    assert_eq!(help.matches("--nics-per-node").count(), 1, "{help}");
    let d = scratch("simulate");
    let b = tiny_batches(&d);
    let o = dcp(&[
        "simulate",
        "--batches",
        &b,
        "--topology",
        "1x2",
        "--planners",
        "ring,dcp",
        "--block-sizes",
        "64",
        "--nics-per-node",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("ring"));
}

#[test]
fn demo_compares_dcp_with_every_static_planner() {
    // 2x2: Ulysses can split 8 query heads over 4 devices; 1x16: it cannot, and says so.
    for (topo, ulysses_plans) in [("2x2", true), ("1x16", false)] {
        let o = dcp(&["demo", "--count", "1", "--topology", topo]);
        let out = text(&o.stdout);
        assert!(o.status.success(), "{topo}: {}", text(&o.stderr));
        for p in ["ring", "zigzag", "local", "ulysses", "usp", "dcp"] {
            let rows = out
                .lines()
                .filter(|l| l.split_whitespace().nth(2) == Some(p))
                .count();
            assert_eq!(rows, 2, "{topo}: {p}: one row per mask expected:\n{out}");
            assert!(
                out.lines().any(|l| l
                    .trim_start()
                    .starts_with(&format!("{p}: valid, max |error|"))),
                "{topo}: {p} missing from the CPU reference part:\n{out}"
            );
        }
        let refused =
            out.contains("ulysses refused this shape: planner `ulysses` does not support");
        assert_eq!(refused, !ulysses_plans, "{topo}:\n{out}");
        for mask in ["causal", "lambda"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(&format!("{mask}: dcp is predicted")))
                .unwrap_or_else(|| panic!("{topo}: no {mask} summary:\n{out}"));
            let best = line
                .split("best static planner (")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .unwrap_or_else(|| panic!("{topo}: no planner named in `{line}`"));
            assert!(
                ["ring", "zigzag", "ulysses", "usp"].contains(&best),
                "{topo}: `{best}` is not a static planner: {line}"
            );
            assert!(ulysses_plans || best != "ulysses", "{topo}: {line}");
        }
        assert!(
            !out.contains(" false "),
            "{topo}: a plan failed validation:\n{out}"
        );
    }
}

#[test]
fn bad_mask_parameters_say_what_is_wrong() {
    let d = scratch("masks");
    let b = tiny_batches(&d);
    for (mask, says) in [
        ("sliding-window:abc", "window `abc` is not a whole number"),
        ("lambda:64", "lambda takes no parameters"),
        ("prefix-lm", "prefix-lm takes one parameter"),
    ] {
        let line = fails_with(
            &["plan", "--batches", &b, "--mask", mask],
            &[mask, says, "accepted forms", "sliding-window:W"],
        );
        assert!(!line.contains("unknown mask kind"), "{line}");
    }
    fails_with(
        &["plan", "--batches", &b, "--mask", "nope"],
        &["unknown mask kind `nope`"],
    );
}

#[test]
fn unknown_planner_lists_the_allowed_ones() {
    let d = scratch("planner");
    let b = tiny_batches(&d);
    let allowed = ["`foo`", "ring, zigzag, local, dcp", "dcp-only ("];
    fails_with(&["plan", "--batches", &b, "--planner", "foo"], &allowed);
    fails_with(
        &["check", "--cases", "1", "--planners", "ring,foo"],
        &allowed,
    );
    fails_with(
        &["simulate", "--batches", &b, "--planners", "foo"],
        &allowed,
    );
    // dcp-only is accepted and documented.
    let o = dcp(&[
        "plan",
        "--batches",
        &b,
        "--topology",
        "1x2",
        "--block-size",
        "64",
        "--planner",
        "dcp-only",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&dcp(&["plan", "--help"]).stdout).contains("dcp-only"));
}

#[test]
fn bad_numbers_are_refused_with_the_flag_named() {
    fails_with(&["plan", "--scale", "-1"], &["--scale", "positive"]);
    fails_with(&["plan", "--scale", "nan"], &["--scale", "positive"]);
    fails_with(&["demo", "--count", "0"], &["--count", "at least 1"]);
    fails_with(&["plan", "--count", "0"], &["--count", "at least 1"]);
    fails_with(&["check", "--cases", "0"], &["--cases 0", "--corpus"]);
    fails_with(&["partition", "x.hgr", "--parts", "0"], &["--parts"]);
    fails_with(
        &["plan", "--comp-epsilon", "-1"],
        &["--comp-epsilon", "≥ 0"],
    );
    fails_with(
        &["plan", "--inter-gbps", "0"],
        &["--inter-gbps", "positive"],
    );
    fails_with(&["plan", "--stages", "0"], &["--stages"]);
}

#[test]
fn missing_files_are_named() {
    fails_with(
        &["partition", "missing.hgr", "--parts", "2"],
        &["missing.hgr"],
    );
    fails_with(&["plan", "--batches", "missing.json"], &["missing.json"]);
    fails_with(
        &["plan", "--cost-model", "missing-cost.json"],
        &["missing-cost.json"],
    );
}

#[test]
fn oversized_batches_are_refused_up_front() {
    let d = scratch("huge");
    let ps = batch_file(&d, "huge.json", "[[1000], [4000000000]]");
    fails_with(
        &["plan", "--batches", &ps],
        &["huge.json", "batch 1", "4000000000", "--max-batch-tokens"],
    );
    let p = batch_file(&d, "over.json", "[[5000000000]]");
    fails_with(&["plan", "--batches", &p], &["over.json", "5000000000"]);
}

#[test]
fn partition_of_a_dumped_instance() {
    let d = scratch("partition");
    let dump = d.join("hg");
    let o = dcp(&[
        "plan",
        "--count",
        "1",
        "--dump-hgr",
        &dump.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let hgr = dump.join("batch0.hgr").display().to_string();
    // The default epsilon cannot spread the coarse data-block weights: the error names the
    // dimension, and the epsilon it suggests works.
    let line = fails_with(
        &["partition", &hgr, "--parts", "32"],
        &["batch0.hgr", "dimension 1", "heaviest vertex", "--epsilon "],
    );
    let eps = line
        .split("--epsilon ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("a suggested epsilon");
    let o = dcp(&["partition", &hgr, "--parts", "32", "--epsilon", eps]);
    assert!(o.status.success(), "{eps}: {}", text(&o.stderr));
    // The planner's own capacities from the dump work as they are.
    let caps = dump.join("batch0.json").display().to_string();
    let o = dcp(&["partition", &hgr, "--parts", "32", "--capacities", &caps]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["k"], 32);
}

#[test]
fn compare_writes_a_fresh_folder_by_default() {
    let d = scratch("compare");
    let args = [
        "compare",
        "--datasets",
        "longalign",
        "--scales",
        "0.05",
        "--masks",
        "causal",
        "--planners",
        "ring,zigzag",
        "--topologies",
        "1x2",
        "--count",
        "1",
        "--no-plots",
    ];
    let o = dcp_in(Some(&d), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("simulations"), "says what it does: {err}");
    let runs: Vec<_> = std::fs::read_dir(d.join("dcp-out"))
        .expect("dcp-out/ created")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].starts_with("compare-"), "{runs:?}");
    assert!(d.join("dcp-out").join(&runs[0]).join("report.md").exists());
    assert!(!d.join("bench").exists());
    // A second run gets its own folder.
    let o = dcp_in(Some(&d), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_dir(d.join("dcp-out")).unwrap().count(), 2);
    fails_with(&["compare", "--scales", "-1"], &["scale"]);
}

#[test]
fn check_says_what_takes_time() {
    let o = dcp(&["check", "--cases", "2", "--max-len", "40"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("checking 2 random cases"), "{err}");
    assert!(text(&o.stdout).contains("2 passed, 0 failed"));
}

#[test]
fn check_counts_the_same_on_any_number_of_threads() {
    // The random cases run in parallel (`--threads`, 0 = one per core); each is seeded on its
    // own, so the summary line must not depend on the thread count.
    let args = ["check", "--cases", "4", "--max-len", "40", "--seed", "11"];
    let one = dcp(&[&args[..], &["--threads", "1"]].concat());
    let two = dcp(&[&args[..], &["--threads", "2"]].concat());
    assert!(one.status.success(), "{}", text(&one.stderr));
    assert!(two.status.success(), "{}", text(&two.stderr));
    assert!(
        text(&two.stderr).contains("planners on 2 threads"),
        "{}",
        text(&two.stderr)
    );
    assert!(
        text(&one.stdout).contains("4 passed, 0 failed"),
        "{}",
        text(&one.stdout)
    );
    assert_eq!(text(&one.stdout), text(&two.stdout));
}

#[test]
fn check_runs_the_corpus() {
    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");
    let o = dcp(&[
        "check",
        "--cases",
        "0",
        "--planners",
        "ring,dcp",
        "--corpus",
        corpus,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains("corpus: ") && out.contains("× 2 planners, 0 failed"),
        "{out}"
    );
    fails_with(&["check", "--corpus", "no-such-dir"], &["no-such-dir"]);
}

#[test]
fn bench_gpu_runs_dcp_by_default() {
    let o = dcp(&["bench-gpu", "--help"]);
    assert!(o.status.success());
    assert!(
        text(&o.stdout).contains("[default: ring,zigzag,local,dcp]"),
        "{}",
        text(&o.stdout)
    );
    // A bad planner is refused before any GPU is touched.
    fails_with(&["bench-gpu", "--planners", "ring,foo"], &["`foo`"]);
}

#[test]
fn bench_gpu_host_side_runs_without_a_gpu() {
    let d = scratch("host-only");
    let b = tiny_batches(&d);
    let j = d.join("host.jsonl");
    let o = dcp(&[
        "bench-gpu",
        "--batches",
        &b,
        "--masks",
        "causal,lambda",
        "--planners",
        "zigzag,dcp@64+128,dcp-only@64",
        "--check",
        "--host-only",
        "--host-threads",
        "1",
        "--json",
        j.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rec: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&j).unwrap().trim()).unwrap();
    // 2 masks × 1 batch; per batch zigzag once (default block), dcp twice, dcp-only once.
    assert_eq!(rec["groups"], 2);
    assert_eq!(rec["plan_runs"], 8);
    assert!(rec["cpu_s"]["checks"].as_f64().unwrap() >= 0.0);
    // Bad block lists name the item.
    fails_with(
        &["bench-gpu", "--planners", "dcp@1024+x", "--host-only"],
        &["dcp@1024+x", "`x`"],
    );
    fails_with(
        &["bench-gpu", "--planners", "dcp@0", "--host-only"],
        &["dcp@0"],
    );
    // Two nodes of 2: planned as 2x2; a world that does not split is refused.
    let o = dcp(&[
        "bench-gpu",
        "--batches",
        &b,
        "--planners",
        "ring",
        "--host-only",
        "--host-world",
        "4",
        "--host-nodes",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("planned for 4 devices (2x2)"));
    fails_with(
        &[
            "bench-gpu",
            "--host-only",
            "--host-world",
            "4",
            "--host-nodes",
            "3",
        ],
        &["--host-world 4", "--host-nodes 3"],
    );
}

#[test]
fn multi_node_launch_needs_its_rendezvous_named() {
    fails_with(
        &["launch", "-n", "2", "--nnodes", "2", "--", "bench-gpu"],
        &["--nnodes 2 needs --port and --master-addr"],
    );
    fails_with(
        &[
            "launch",
            "--nnodes",
            "2",
            "--node-rank",
            "2",
            "--port",
            "1",
            "--master-addr",
            "a",
            "--",
            "bench-gpu",
        ],
        &["--node-rank 2 must be below --nnodes 2"],
    );
}

#[test]
fn planner_profile_feeds_dcp_and_a_bad_one_is_named() {
    let d = scratch("planner-profile");
    let b = tiny_batches(&d);
    let prof = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/results/gpu-2026-11-25b/profile_x2.json"
    );
    let o = dcp(&[
        "plan",
        "--batches",
        &b,
        "--topology",
        "1x4",
        "--planner",
        "dcp",
        "--planner-profile",
        prof,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let bad = d.join("bad.json");
    std::fs::write(&bad, "{\"mem_gbps\": -1}").unwrap();
    fails_with(
        &[
            "plan",
            "--batches",
            &b,
            "--planner-profile",
            bad.to_str().unwrap(),
        ],
        &["bad.json", "mem_gbps"],
    );
    fails_with(
        &[
            "plan",
            "--batches",
            &b,
            "--planner-profile",
            prof,
            "--cost-model",
            prof,
        ],
        &["--planner-profile or --cost-model"],
    );
}

/// `simulate --cost-model` weighs dcp's candidates with the given model while the profile times
/// the plans: on one 103 537-token lambda sequence over 2 GPUs the default model keeps dcp's own
/// placement; with attention a million times slower only compute balance counts, and the
/// Ulysses candidate's exact balance wins. Giving it with --planner-profile, or a missing file,
/// is an error naming it.
#[test]
fn simulate_weighs_dcp_with_the_given_cost_model() {
    let d = scratch("sim-cost-model");
    let b = batch_file(&d, "one.json", "[[103537]]");
    let prof = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../bench/results/gpu-x2-2026-11-30s25/matrix/profile_x4.json"
    );
    let slow = d.join("slow.json");
    std::fs::write(&slow, r#"{"attn_fwd_tflops": 1, "attn_bwd_tflops": 1}"#).unwrap();
    let slow = slow.display().to_string();
    let base = [
        "simulate",
        "--batches",
        &b,
        "--topology",
        "1x2",
        "--profile",
        prof,
        "--mask",
        "lambda",
        "--block-sizes",
        "1024",
        "--planners",
        "dcp",
        "--json",
        "-",
    ];
    let kind = |extra: &[&str]| -> String {
        let rows = json_lines(&base, extra);
        assert_eq!(rows.len(), 1, "{extra:?}");
        rows[0]["plan_kind"].as_str().unwrap().to_string()
    };
    assert_eq!(kind(&[]), "dcp");
    assert_eq!(kind(&["--cost-model", &slow]), "dcp:ulysses");
    fails_with(
        &[
            "simulate",
            "--batches",
            &b,
            "--planner-profile",
            prof,
            "--cost-model",
            &slow,
        ],
        &["--planner-profile or --cost-model"],
    );
    fails_with(
        &[
            "simulate",
            "--batches",
            &b,
            "--cost-model",
            "missing-cost.json",
        ],
        &["missing-cost.json"],
    );
}

/// `--cost-model` is one flag of the batch options: `plan`, `simulate` and `bench-gpu` list it
/// once each, and `bench-gpu` refuses a missing file or the flag beside --planner-profile before
/// it looks for a GPU.
#[test]
fn cost_model_is_a_flag_of_plan_simulate_and_bench_gpu() {
    for cmd in ["plan", "simulate", "bench-gpu"] {
        let help = text(&dcp(&[cmd, "--help"]).stdout);
        assert_eq!(help.matches("--cost-model").count(), 1, "{cmd}: {help}");
    }
    let d = scratch("bench-cost-model");
    let b = tiny_batches(&d);
    fails_with(
        &[
            "bench-gpu",
            "--batches",
            &b,
            "--cost-model",
            "missing-cost.json",
        ],
        &["missing-cost.json"],
    );
    fails_with(
        &[
            "bench-gpu",
            "--batches",
            &b,
            "--cost-model",
            "a.json",
            "--planner-profile",
            "b.json",
        ],
        &["--planner-profile or --cost-model"],
    );
}

/// `--no-saved-kv` makes dcp's own plans fetch remote KV again in the backward: the same forward
/// bytes, more backward bytes than the default (which reads them from the forward's slots).
#[test]
fn no_saved_kv_switches_dcp_back_to_fetching_kv() {
    let dir = scratch("saved-kv");
    let batches = batch_file(&dir, "b.json", "[[3072]]");
    let base = [
        "plan",
        "--batches",
        &batches,
        "--topology",
        "2x4",
        "--planner",
        "dcp",
        "--block-size",
        "64",
        "--no-static-fallback",
    ];
    let bytes = |extra: &[&str]| -> (u64, u64) {
        let v = &json_lines(&base, extra)[0];
        let get = |k: &str| v[k].as_u64().unwrap();
        (
            get("fwd_bytes_intra") + get("fwd_bytes_inter"),
            get("bwd_bytes_intra") + get("bwd_bytes_inter"),
        )
    };
    let (f_on, b_on) = bytes(&[]);
    let (f_off, b_off) = bytes(&["--no-saved-kv"]);
    assert_eq!(f_on, f_off);
    assert!(b_on < b_off, "backward bytes {b_on} (saved KV) vs {b_off}");
    let _ = std::fs::remove_dir_all(&dir);
}
