//! Where a program's preparation spends its host time (`DCP_CUDA_PREPARE_PROFILE=1`): each
//! [`crate::exec::Prepared::new`] prints one line to stderr with its phases and, per plan
//! instruction kind, the time lowering those instructions took. Off by default: the clock
//! reads cost nothing then.

use std::time::{Duration, Instant};

use crate::error::{CudaError, Result};

fn enabled_from(v: Option<&str>) -> Result<bool> {
    crate::switch::parse("DCP_CUDA_PREPARE_PROFILE", v, false).map_err(CudaError::Unsupported)
}

/// Laps of one program's preparation, summed by name in first-seen order.
pub(crate) struct PrepClock {
    last: Option<Instant>,
    start: Option<Instant>,
    parts: Vec<(&'static str, Duration, u32)>,
}

impl PrepClock {
    /// A running clock when `DCP_CUDA_PREPARE_PROFILE=1`, a stopped one otherwise.
    pub(crate) fn from_env() -> Result<Self> {
        let on = enabled_from(std::env::var("DCP_CUDA_PREPARE_PROFILE").ok().as_deref())?;
        Ok(Self::new(on))
    }

    fn new(on: bool) -> Self {
        let now = on.then(Instant::now);
        PrepClock {
            last: now,
            start: now,
            parts: Vec::new(),
        }
    }

    /// Charges the time since the previous lap to `name`.
    pub(crate) fn lap(&mut self, name: &'static str) {
        let Some(last) = self.last else { return };
        let now = Instant::now();
        let d = now - last;
        self.last = Some(now);
        match self.parts.iter_mut().find(|p| p.0 == name) {
            Some(p) => {
                p.1 += d;
                p.2 += 1;
            }
            None => self.parts.push((name, d, 1)),
        }
    }

    /// One line: total and each part in ms (with counts where a part was charged more than once).
    pub(crate) fn line(&self, what: &str) -> Option<String> {
        let start = self.start?;
        let total = self.last.unwrap_or(start) - start;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|(n, d, c)| match c {
                1 => format!("{n} {:.2}", ms(*d)),
                _ => format!("{n} {:.2} ({c})", ms(*d)),
            })
            .collect();
        Some(format!(
            "dcp-cuda prepare {what}: {:.2} ms = {}",
            ms(total),
            parts.join(", ")
        ))
    }

    /// Prints [`PrepClock::line`] to stderr when the clock runs.
    pub(crate) fn report(&self, what: &str) {
        if let Some(l) = self.line(what) {
            eprintln!("{l}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_takes_0_or_1_and_names_a_bad_value() {
        assert!(!enabled_from(None).unwrap());
        assert!(!enabled_from(Some("0")).unwrap());
        assert!(enabled_from(Some("1")).unwrap());
        let e = enabled_from(Some("yes")).unwrap_err().to_string();
        assert!(e.contains("DCP_CUDA_PREPARE_PROFILE=yes"), "{e}");
    }

    #[test]
    fn laps_sum_by_name_and_a_stopped_clock_says_nothing() {
        let mut c = PrepClock::new(true);
        c.lap("buffers");
        c.lap("attn");
        c.lap("attn");
        let l = c.line("fwd").unwrap();
        assert!(l.starts_with("dcp-cuda prepare fwd: "), "{l}");
        assert!(
            l.contains("buffers ") && l.contains("attn ") && l.contains("(2)"),
            "{l}"
        );
        let mut off = PrepClock::new(false);
        off.lap("attn");
        assert!(off.line("fwd").is_none());
    }
}
