//! The real binary under torchrun-style variables set by hand, on machines without a GPU: the
//! rendezvous deadline holds (a rank whose rank 0 never comes exits with status 3 and one line
//! naming the step and the peer), and bad fault specs or timeouts are one-line errors.

use std::process::Command;
use std::time::{Duration, Instant};

fn dcp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcp"));
    c.env_remove("RUST_BACKTRACE").env_remove("DCP_FAULT");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn rank_without_rank_0_exits_3_within_the_deadline() {
    let t0 = Instant::now();
    let out = dcp()
        .args(["bench-gpu", "--selftest", "1", "--timeout-s", "1"])
        .env("RANK", "2")
        .env("WORLD_SIZE", "4")
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", free_port().to_string())
        .output()
        .unwrap();
    let el = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(el < Duration::from_secs(8), "took {el:?}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines,
        vec!["dcp: rank 2: step `rendezvous` timed out after 1.0 s waiting for rank 0"]
    );
}

#[test]
fn bad_fault_specs_and_timeouts_are_one_line_errors() {
    for (env, args, want) in [
        (
            "rank:1,kind:boom",
            vec!["bench-gpu", "--selftest", "1"],
            "unknown kind `boom`",
        ),
        (
            "rank:3,kind:exit",
            vec!["bench-gpu", "--selftest", "1"],
            "rank 3 does not exist in a world of 1",
        ),
        (
            "",
            vec!["calibrate", "--timeout-s=-1"],
            "--timeout-s must be a positive number",
        ),
    ] {
        let out = dcp().args(&args).env("DCP_FAULT", env).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(
            err.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{err}"
        );
    }
}
