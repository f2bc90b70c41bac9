//! The scheduler: runs the steps of a DAG on a bounded pool of worker threads, each step as
//! soon as all its dependencies are done. Steps are blocking work (mounts, containers, file
//! copies, hashing), so plain threads fit better than an async runtime. The pool grows on
//! demand: a step says when it is about to block ([`Pool::blocking`]), so cache hits run on
//! the calling thread alone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Handed to each `work` call: [`Pool::blocking`] says the step is about to do slow work
/// (run a process, unpack a layer), so the other ready steps should not wait for it.
pub struct Pool<'a> {
    grow: &'a (dyn Fn() + Sync),
}

impl Pool<'_> {
    /// The calling step is about to block for a while: start one more worker thread, unless
    /// `jobs` run already. Cheap when they do.
    pub fn blocking(&self) {
        (self.grow)()
    }
}

/// What the workers share.
struct Shared<'a, T, E, F> {
    dependents: Vec<Vec<usize>>,
    state: Mutex<State<T>>,
    cv: Condvar,
    first_error: Mutex<Option<DagError<E>>>,
    cancel: &'a AtomicBool,
    work: F,
    jobs: usize,
    /// Workers started, the calling thread included.
    workers: AtomicUsize,
}

/// Runs `work(i, pool)` for every node `i` of the DAG given by `deps` (node → its
/// dependencies) with at most `jobs` at once. `work` for a node runs only after `work` of all
/// its dependencies succeeded. Ready nodes start in index order, so `jobs = 1` is a
/// deterministic topological run. `cancel` is set when a step fails (or may be set by the
/// caller, e.g. on Ctrl-C).
///
/// The calling thread is the first worker; more start only when a step calls
/// [`Pool::blocking`] (one per call, up to `jobs`). A build whose steps all come from the cache
/// (a no-op rebuild: a few hundred microseconds of lookups) then runs on one thread, without
/// spawning threads or handing steps between them.
pub fn run_dag<T, E, F>(
    deps: &[Vec<usize>],
    jobs: usize,
    cancel: &AtomicBool,
    work: F,
) -> Result<Vec<T>, DagError<E>>
where
    T: Send,
    E: Send,
    F: Fn(usize, &Pool<'_>) -> Result<T, E> + Sync,
{
    let n = deps.len();
    let (dependents, state) = State::new(deps);
    let sh = Shared {
        dependents,
        state: Mutex::new(state),
        cv: Condvar::new(),
        first_error: Mutex::new(None),
        cancel,
        work,
        jobs: jobs.max(1).min(n.max(1)),
        workers: AtomicUsize::new(1),
    };
    std::thread::scope(|s| worker(&sh, s));

    if let Some(e) = sh.first_error.into_inner().unwrap() {
        return Err(e);
    }
    let st = sh.state.into_inner().unwrap();
    if st.results.iter().any(|r| r.is_none()) {
        return Err(DagError::Cancelled);
    }
    Ok(st.results.into_iter().flatten().collect())
}

/// One worker: takes ready steps until none is left (or a step failed, or cancel).
fn worker<'scope, 'env, T, E, F>(
    sh: &'env Shared<'env, T, E, F>,
    scope: &'scope std::thread::Scope<'scope, 'env>,
) where
    T: Send,
    E: Send,
    F: Fn(usize, &Pool<'_>) -> Result<T, E> + Sync,
{
    let grow = || {
        let more = sh
            .workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w < sh.jobs).then_some(w + 1)
            })
            .is_ok();
        if more {
            scope.spawn(move || worker(sh, scope));
        }
    };
    let pool = Pool { grow: &grow };
    loop {
        let Some(next) = take_next(&sh.state, &sh.cv, sh.cancel) else {
            return;
        };
        let out = (sh.work)(next, &pool);
        let mut st = sh.state.lock().unwrap();
        st.running -= 1;
        match out {
            Ok(v) => st.complete(next, v, &sh.dependents[next]),
            Err(e) => {
                st.failed = true;
                sh.cancel.store(true, Ordering::Relaxed);
                let mut fe = sh.first_error.lock().unwrap();
                if fe.is_none() {
                    *fe = Some(DagError::Step {
                        step: next,
                        error: e,
                    });
                }
            }
        }
        sh.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn runs_in_dependency_order() {
        // 0 → 1 → 3, 0 → 2 → 3
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let order = Mutex::new(Vec::new());
        let cancel = AtomicBool::new(false);
        let out = run_dag(&deps, 4, &cancel, |i, _| -> Result<usize, ()> {
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
        run_dag(&deps, 2, &cancel, |_, pool| -> Result<(), ()> {
            pool.blocking();
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
        run_dag(&deps, 1, &cancel, |i, pool| -> Result<(), ()> {
            pool.blocking(); // jobs = 1: no second worker
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
        let err = run_dag(&deps, 2, &cancel, |i, pool| {
            pool.blocking();
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

    #[test]
    fn steps_that_never_block_run_on_the_calling_thread() {
        let deps = vec![vec![], vec![], vec![0, 1], vec![]];
        let me = std::thread::current().id();
        let threads = Mutex::new(Vec::new());
        let cancel = AtomicBool::new(false);
        run_dag(&deps, 4, &cancel, |_, _| -> Result<(), ()> {
            threads.lock().unwrap().push(std::thread::current().id());
            Ok(())
        })
        .unwrap();
        let threads = threads.into_inner().unwrap();
        assert_eq!(threads.len(), 4);
        assert!(threads.iter().all(|t| *t == me), "{threads:?}");
    }

    #[test]
    fn blocking_steps_grow_the_pool_up_to_jobs() {
        // Six independent 50 ms steps that block, at most three at once: two rounds.
        let deps = vec![vec![]; 6];
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let threads = Mutex::new(std::collections::HashSet::new());
        let cancel = AtomicBool::new(false);
        let t = Instant::now();
        run_dag(&deps, 3, &cancel, |_, pool| -> Result<(), ()> {
            pool.blocking();
            threads.lock().unwrap().insert(std::thread::current().id());
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(threads.into_inner().unwrap().len(), 3);
        assert!(
            t.elapsed() < Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
    }
}
