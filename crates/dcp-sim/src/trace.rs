//! Chrome / Perfetto trace of one simulated batch: a process per device, a `compute` track
//! (kernels and the waits that block them) and a `comm` track (grouped send/recv), forward then
//! backward on one time line. Open the file in <https://ui.perfetto.dev> or `chrome://tracing`.

use serde_json::{json, Value};

use crate::engine::{SimResult, Stream};

/// Gap between the forward and the backward pass on the time line, µs.
const PASS_GAP_US: f64 = 50.0;

/// The trace JSON of both passes of `r` (simulated with `SimOptions { trace: true }`).
pub fn chrome_trace(r: &SimResult, title: &str) -> Value {
    let n = r.forward.devices.len();
    let mut ev = Vec::new();
    for d in 0..n {
        ev.push(json!({"name": "process_name", "ph": "M", "pid": d, "args": {"name": format!("device {d}")}}));
        ev.push(
            json!({"name": "process_sort_index", "ph": "M", "pid": d, "args": {"sort_index": d}}),
        );
        ev.push(json!({"name": "thread_name", "ph": "M", "pid": d, "tid": 0, "args": {"name": "compute"}}));
        ev.push(
            json!({"name": "thread_name", "ph": "M", "pid": d, "tid": 1, "args": {"name": "comm"}}),
        );
    }
    let offset_bwd = r.forward.makespan_us + PASS_GAP_US;
    for (pass, res, off) in [
        ("forward", &r.forward, 0.0),
        ("backward", &r.backward, offset_bwd),
    ] {
        for s in &res.spans {
            let tid = match s.stream {
                Stream::Compute | Stream::Wait => 0,
                Stream::Comm => 1,
            };
            let cat = match s.stream {
                Stream::Compute => "compute",
                Stream::Wait => "wait",
                Stream::Comm => "comm",
            };
            ev.push(json!({
                "name": s.name, "cat": format!("{pass},{cat}"), "ph": "X",
                "ts": s.start_us + off, "dur": s.dur_us, "pid": s.device, "tid": tid,
                "args": {"pass": pass, "detail": s.detail},
            }));
        }
        ev.push(json!({
            "name": format!("{pass} end"), "ph": "i", "s": "g", "ts": res.makespan_us + off,
            "pid": 0, "tid": 0,
        }));
    }
    json!({
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "otherData": {"title": title, "forward_ms": r.forward.makespan_us / 1e3, "backward_ms": r.backward.makespan_us / 1e3},
    })
}
