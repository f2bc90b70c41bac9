//! The scheduler: runs the steps of a DAG on a bounded pool of worker threads, each step as
//! soon as all its dependencies are done. Steps are blocking work (mounts, containers, file
//! copies, hashing), so plain threads fit better than an async runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// Why [`run_dag`] did not finish. On a step failure, steps that were running at the time
/// finish (they should watch the cancel flag); no new step starts.
#[derive(Debug, PartialEq, Eq)]
pub enum DagError<E> {
    Step {
        step: usize,
        error: E,
    },
    /// The caller set the cancel flag (e.g. Ctrl-C) before every step ran.
    Cancelled,
}

struct State<T> {
    remaining_deps: Vec<usize>,
    ready: Vec<usize>,
    results: Vec<Option<T>>,
    running: usize,
    done: usize,
    failed: bool,
}

impl<T> State<T> {
    /// The state before any step ran, and each step's dependents.
    fn new(deps: &[Vec<usize>]) -> (Vec<Vec<usize>>, Self) {
        let n = deps.len();
        let mut dependents = vec![Vec::new(); n];
        let mut remaining = vec![0usize; n];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                debug_assert!(d < n && d != i, "bad dependency {d} of step {i}");
                dependents[d].push(i);
                remaining[i] += 1;
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        ready.reverse(); // pop() takes the lowest index first
        let state = State {
            remaining_deps: remaining,
            ready,
            results: (0..n).map(|_| None).collect(),
            running: 0,
            done: 0,
            failed: false,
        };
        (dependents, state)
    }

    /// Step `i` finished with `v`: the dependents it was the last dependency of are ready.
    fn complete(&mut self, i: usize, v: T, dependents: &[usize]) {
        self.results[i] = Some(v);
        self.done += 1;
        for &d in dependents {
            self.remaining_deps[d] -= 1;
            if self.remaining_deps[d] == 0 {
                self.ready.push(d);
            }
        }
        self.ready.sort_unstable_by(|a, b| b.cmp(a));
    }
}

/// The next ready step (the lowest index), waiting while others run; None when the worker
/// should stop (all done, a failure, a cancel).
fn take_next<T>(state: &Mutex<State<T>>, cv: &Condvar, cancel: &AtomicBool) -> Option<usize> {
    let mut st = state.lock().unwrap();
    let n = st.results.len();
    loop {
        if st.failed || cancel.load(Ordering::Relaxed) || st.done == n {
            cv.notify_all();
            return None;
        }
        if let Some(i) = st.ready.pop() {
            st.running += 1;
            return Some(i);
        }
        if st.running == 0 {
            // Nothing running and nothing ready: a cycle. Cannot happen for
            // a planned graph; treat as done to avoid hanging.
            st.done = n;
            cv.notify_all();
            return None;
        }
        st = cv.wait(st).unwrap();
    }
}

/// Runs `work(i)` for every node `i` of the DAG given by `deps` (node → its dependencies) with at
/// most `jobs` at once. `work` for a node runs only after `work` of all its dependencies
/// succeeded. Ready nodes start in index order, so `jobs = 1` is a deterministic topological run.
/// `cancel` is set when a step fails (or may be set by the caller, e.g. on Ctrl-C).
pub fn run_dag<T, E, F>(
    deps: &[Vec<usize>],
    jobs: usize,
    cancel: &AtomicBool,
    work: F,
) -> Result<Vec<T>, DagError<E>>
where
    T: Send,
    E: Send,
    F: Fn(usize) -> Result<T, E> + Sync,
{
    let n = deps.len();
    let (dependents, state) = State::new(deps);
    let state = Mutex::new(state);
    let cv = Condvar::new();
    let first_error: Mutex<Option<DagError<E>>> = Mutex::new(None);
    let jobs = jobs.max(1).min(n.max(1));

    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let Some(next) = take_next(&state, &cv, cancel) else {
                        return;
                    };
                    let out = work(next);
                    let mut st = state.lock().unwrap();
                    st.running -= 1;
                    match out {
                        Ok(v) => st.complete(next, v, &dependents[next]),
                        Err(e) => {
                            st.failed = true;
                            cancel.store(true, Ordering::Relaxed);
                            let mut fe = first_error.lock().unwrap();
                            if fe.is_none() {
                                *fe = Some(DagError::Step {
                                    step: next,
                                    error: e,
                                });
                            }
                        }
                    }
                    cv.notify_all();
                }
            });
        }
    });

    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    let st = state.into_inner().unwrap();
    if st.results.iter().any(|r| r.is_none()) {
        return Err(DagError::Cancelled);
    }
    Ok(st.results.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_in_dependency_order() {
        // 0 → 1 → 3, 0 → 2 → 3
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let order = Mutex::new(Vec::new());
        let cancel = AtomicBool::new(false);
        let out = run_dag(&deps, 4, &cancel, |i| -> Result<usize, ()> {
            order.lock().unwrap().push(i);
            Ok(i * 10)
        })
        .unwrap();
        assert_eq!(out, vec![0, 10, 20, 30]);
        let order = order.into_inner().unwrap();
        let pos = |x| order.iter().position(|&y| y == x).unwrap();
        assert!(pos(0) < pos(1) && pos(0) < pos(2) && pos(1) < pos(3) && pos(2) < pos(3));
    }

    #[test]
    fn independent_steps_overlap() {
        let deps = vec![vec![], vec![]];
        let cancel = AtomicBool::new(false);
        let t = Instant::now();
        run_dag(&deps, 2, &cancel, |_| -> Result<(), ()> {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        })
        .unwrap();
        // Two 200 ms steps in parallel take well under 400 ms.
        assert!(
            t.elapsed() < Duration::from_millis(390),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn jobs_one_is_sequential_in_index_order() {
        let deps = vec![vec![], vec![], vec![0], vec![]];
        let order = Mutex::new(Vec::new());
        let cancel = AtomicBool::new(false);
        run_dag(&deps, 1, &cancel, |i| -> Result<(), ()> {
            order.lock().unwrap().push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(order.into_inner().unwrap(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn failure_stops_dependents() {
        let deps = vec![vec![], vec![0], vec![1]];
        let ran = AtomicUsize::new(0);
        let cancel = AtomicBool::new(false);
        let err = run_dag(&deps, 2, &cancel, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            if i == 1 { Err("boom") } else { Ok(()) }
        })
        .unwrap_err();
        assert_eq!(
            err,
            DagError::Step {
                step: 1,
                error: "boom"
            }
        );
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert!(cancel.load(Ordering::SeqCst));
    }
}
