//! Planning ahead for the data loader: background Rust threads plan batch i+1, i+2, ... while
//! the training step works on batch i (no GIL held while planning or waiting), results come back
//! in batch order, and the consumer's wait time is measured.
//!
//! Also the batch-forming rule of the paper for user datasets ([`form_batches`]) and the built-in
//! length generators ([`generate_batches`], dcp-core's `datasets`).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use dcp_core::datasets::{make_batches, Dataset};
use dcp_core::error::PlanningError;
use dcp_core::mask::MaskSpec;
use pyo3::prelude::*;

use crate::errors::{planning_err, spec_err, BadLengthsError, InvalidSpecError};
use crate::plan::{parse_masks, PyPlan, PyPlanner};

/// The paper's batching rule over given lengths, in order: drop any sequence longer than
/// `budget`, append greedily until the next would overflow, keep a batch only if it holds at
/// least `min_fill` of the budget. Returns the sequence indices of each kept batch.
pub fn form_batch_indices(lengths: &[u64], budget: u64, min_fill: f64) -> Vec<Vec<usize>> {
    let need = (min_fill * budget as f64).ceil() as u64;
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut total = 0u64;
    for (i, &len) in lengths.iter().enumerate() {
        if len == 0 || len > budget {
            continue;
        }
        if total + len > budget {
            if total >= need {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.clear();
            }
            total = 0;
        }
        cur.push(i);
        total += len;
    }
    if total >= need && !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `form_batches(lengths, budget=131072, min_fill=0.75)` → list of lists of sequence indices.
#[pyfunction]
#[pyo3(signature = (lengths, budget=131072, min_fill=0.75))]
pub fn form_batches(lengths: Vec<u64>, budget: u64, min_fill: f64) -> PyResult<Vec<Vec<usize>>> {
    if budget == 0 || !(0.0..=1.0).contains(&min_fill) {
        return Err(InvalidSpecError::new_err(format!(
            "budget must be positive and min_fill in [0, 1] (got {budget}, {min_fill})"
        )));
    }
    Ok(form_batch_indices(&lengths, budget, min_fill))
}

/// `generate_batches(dataset, count, scale=1.0, budget=131072, seed=0)`: lengths of `count`
/// batches of the built-in `longalign` or `ldc` distributions (the CLI's generator).
#[pyfunction]
#[pyo3(signature = (dataset, count, scale=1.0, budget=131072, seed=0))]
pub fn generate_batches(
    dataset: &str,
    count: usize,
    scale: f64,
    budget: u64,
    seed: u64,
) -> PyResult<Vec<Vec<u32>>> {
    let ds = Dataset::parse(dataset).map_err(spec_err)?;
    if !(scale > 0.0 && scale.is_finite()) || budget == 0 {
        return Err(InvalidSpecError::new_err(format!(
            "scale must be a positive number and budget positive (got {scale}, {budget})"
        )));
    }
    let b = make_batches(ds, scale, count, budget, seed);
    if b.len() < count {
        return Err(BadLengthsError::new_err(format!(
            "only {} of {count} batches could be formed from {dataset} at scale {scale} with a budget of {budget} tokens",
            b.len()
        )));
    }
    Ok(b)
}

struct State {
    next_to_plan: usize,
    consumed: usize,
    ready: BTreeMap<usize, Result<dcp_core::validate::ValidatedPlan, PlanningError>>,
    stop: bool,
}

struct Shared {
    planner: crate::plan::PlannerConfig,
    batches: Vec<Vec<u32>>,
    masks: Option<Vec<MaskSpec>>,
    ahead: usize,
    state: Mutex<State>,
    /// Workers wait here for room ahead of the consumer.
    work_cv: Condvar,
    /// The consumer waits here for its batch's plan.
    ready_cv: Condvar,
}

impl Shared {
    fn worker(&self) {
        loop {
            let idx = {
                let mut s = self.state.lock().expect("loader lock");
                loop {
                    if s.stop || s.next_to_plan >= self.batches.len() {
                        return;
                    }
                    if s.next_to_plan < s.consumed + self.ahead {
                        break;
                    }
                    s = self.work_cv.wait(s).expect("loader lock");
                }
                s.next_to_plan += 1;
                s.next_to_plan - 1
            };
            let lens = &self.batches[idx];
            let masks = self.masks.as_ref().map(|m| {
                if m.len() == 1 {
                    vec![m[0].clone(); lens.len()]
                } else {
                    m.clone()
                }
            });
            let r = self.planner.plan(lens, masks.as_deref());
            let mut s = self.state.lock().expect("loader lock");
            s.ready.insert(idx, r);
            self.ready_cv.notify_all();
        }
    }
}

/// Plans a fixed list of batches (lengths) ahead of the consumer in background threads.
/// Python: `dcp._native.PlanningQueue(planner, batches, ahead=2, threads=2, mask=None)`.
#[pyclass(name = "PlanningQueue", module = "dcp._native")]
pub struct PyPlanningQueue {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// Seconds the consumer spent waiting for plans, in total.
    waited: f64,
}

#[pymethods]
impl PyPlanningQueue {
    #[new]
    #[pyo3(signature = (planner, batches, ahead=2, threads=2, mask=None))]
    fn new(
        planner: &PyPlanner,
        batches: Vec<Vec<u32>>,
        ahead: usize,
        threads: usize,
        mask: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if ahead == 0 || threads == 0 {
            return Err(InvalidSpecError::new_err(format!(
                "ahead and threads must be at least 1 (got {ahead}, {threads})"
            )));
        }
        let masks = parse_masks(mask)?;
        let shared = Arc::new(Shared {
            planner: planner.cfg.clone(),
            batches,
            masks,
            ahead,
            state: Mutex::new(State {
                next_to_plan: 0,
                consumed: 0,
                ready: BTreeMap::new(),
                stop: false,
            }),
            work_cv: Condvar::new(),
            ready_cv: Condvar::new(),
        });
        let threads = (0..threads)
            .map(|i| {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name(format!("dcp-plan-{i}"))
                    .spawn(move || sh.worker())
                    .map_err(|e| {
                        InvalidSpecError::new_err(format!("spawning a planning thread: {e}"))
                    })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyPlanningQueue {
            shared,
            threads,
            waited: 0.0,
        })
    }

    fn __len__(&self) -> usize {
        self.shared.batches.len()
    }

    /// The next batch's (index, plan, seconds waited for it), or None after the last. Waits
    /// without the GIL; a planning failure raises the typed error of that batch.
    fn next_plan(&mut self, py: Python<'_>) -> PyResult<Option<(usize, PyPlan, f64)>> {
        let sh = self.shared.clone();
        let t0 = Instant::now();
        let got = py.detach(move || {
            let mut s = sh.state.lock().expect("loader lock");
            let idx = s.consumed;
            if idx >= sh.batches.len() {
                return None;
            }
            loop {
                if let Some(r) = s.ready.remove(&idx) {
                    s.consumed += 1;
                    // One more batch may be planned now: wake one worker.
                    sh.work_cv.notify_one();
                    return Some((idx, Some(r)));
                }
                if s.stop {
                    return Some((idx, None));
                }
                s = sh.ready_cv.wait(s).expect("loader lock");
            }
        });
        let wait = t0.elapsed().as_secs_f64();
        self.waited += wait;
        match got {
            None => Ok(None),
            Some((idx, None)) => Err(InvalidSpecError::new_err(format!(
                "the loader was closed before batch {idx} was planned"
            ))),
            Some((idx, Some(Ok(plan)))) => Ok(Some((idx, PyPlan::new(plan), wait))),
            Some((idx, Some(Err(e)))) => {
                let err = planning_err(e);
                let msg = format!("batch {idx}: {}", err.value(py));
                Err(PyErr::from_type(err.get_type(py), msg))
            }
        }
    }

    /// Total seconds the consumer waited for plans.
    #[getter]
    fn waited_s(&self) -> f64 {
        self.waited
    }

    /// Stops the planning threads (also on drop).
    fn close(&mut self, py: Python<'_>) {
        self.stop(py);
    }
}

impl PyPlanningQueue {
    fn stop(&mut self, py: Python<'_>) {
        {
            let mut s = self.shared.state.lock().expect("loader lock");
            s.stop = true;
            self.shared.work_cv.notify_all();
            self.shared.ready_cv.notify_all();
        }
        let threads = std::mem::take(&mut self.threads);
        py.detach(move || {
            for t in threads {
                let _ = t.join();
            }
        });
    }
}

impl Drop for PyPlanningQueue {
    fn drop(&mut self) {
        {
            let mut s = self.shared.state.lock().expect("loader lock");
            s.stop = true;
            self.shared.work_cv.notify_all();
            self.shared.ready_cv.notify_all();
        }
        // Threads finish their current plan and exit; they hold no Python objects.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_rule() {
        // budget 10, need 8: [3,4] ok... then 5 overflows -> keep [3,4]? 7 < 8 -> dropped.
        let b = form_batch_indices(&[3, 4, 5, 5, 11, 2, 6, 4], 10, 0.75);
        // [3,4]=7 dropped at 5; [5,5]=10 kept at 11 (skipped, too long) ... 2 overflows -> keep.
        assert_eq!(b, vec![vec![2, 3], vec![5, 6]]);
        assert!(form_batch_indices(&[], 10, 0.75).is_empty());
        assert_eq!(
            form_batch_indices(&[10, 10], 10, 1.0),
            vec![vec![0], vec![1]]
        );
    }
}
