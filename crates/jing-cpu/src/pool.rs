//! A persistent compute pool: the threads are created once and woken once per graph; inside a
//! graph they meet at a spin barrier between nodes. Rayon-style fork-join per op is the known
//! decode bottleneck of CPU engines; this is the ggml design instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A job every thread runs once, with its thread index.
type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// The current job, lifetime-erased; valid while `Pool::run` is waiting for it.
    job: Mutex<Option<JobRef>>,
    generation: AtomicUsize,
    finished: AtomicUsize,
    wake: Condvar,
    shutdown: AtomicBool,
}

#[derive(Clone, Copy)]
struct JobRef(*const Job);

// SAFETY: the pointer is only dereferenced while `Pool::run` keeps the job alive, and the job
// is `Sync`, so calling it from several threads is sound.
unsafe impl Send for JobRef {}

/// Spin this many rounds before yielding the core (machines are shared, and tests run several
/// pools at once: pure spinning would starve the other threads).
const SPINS: usize = 2000;

fn spin_wait(mut done: impl FnMut() -> bool) {
    let mut spins = 0;
    while !done() {
        if spins < SPINS {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
}

/// The pool: `n` threads including the caller of [`Pool::run`].
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n: usize,
    /// Serialises `run` calls from different threads.
    running: Mutex<()>,
}

impl Pool {
    /// A pool of `n` threads (`n - 1` workers plus the caller).
    pub fn new(n: usize) -> Pool {
        let n = n.max(1);
        let shared = Arc::new(Shared {
            job: Mutex::new(None),
            generation: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let workers = (1..n)
            .map(|tid| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("jing-compute-{tid}"))
                    .spawn(move || worker(shared, tid))
                    .expect("spawn compute thread")
            })
            .collect();
        Pool {
            shared,
            workers,
            n,
            running: Mutex::new(()),
        }
    }

    pub fn threads(&self) -> usize {
        self.n
    }

    /// Run `job(tid)` on every thread (`tid` in `0..threads()`, 0 being the caller) and wait
    /// for all of them.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.n == 1 {
            job(0);
            return;
        }
        // SAFETY: only the lifetime is erased; this function does not return before every
        // worker has finished with the job (the `finished` count below).
        let ptr: *const Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job) };
        {
            let mut slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(JobRef(ptr));
            self.shared.finished.store(0, Ordering::SeqCst);
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.wake.notify_all();
        job(0);
        let others = self.n - 1;
        spin_wait(|| self.shared.finished.load(Ordering::Acquire) == others);
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn worker(shared: Arc<Shared>, tid: usize) {
    let mut seen = 0usize;
    loop {
        // Spin briefly for the next step (decode steps follow each other closely), then sleep.
        let mut spins = 0;
        let job = loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break *shared.job.lock().unwrap_or_else(|e| e.into_inner());
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let guard = shared.job.lock().unwrap_or_else(|e| e.into_inner());
                if shared.generation.load(Ordering::Acquire) == seen
                    && !shared.shutdown.load(Ordering::Acquire)
                {
                    let _g = shared
                        .wake
                        .wait_timeout(guard, std::time::Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        };
        if let Some(JobRef(ptr)) = job {
            // SAFETY: `Pool::run` keeps the job alive until `finished` reaches n - 1.
            let f = unsafe { &*ptr };
            f(tid);
        }
        shared.finished.fetch_add(1, Ordering::AcqRel);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _g = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A reusable barrier for the threads of one job (sense-reversing counter).
pub struct Barrier {
    n: usize,
    count: AtomicUsize,
    phase: AtomicUsize,
}

impl Barrier {
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n,
            count: AtomicUsize::new(0),
            phase: AtomicUsize::new(0),
        }
    }

    /// Wait until all `n` threads have arrived.
    pub fn wait(&self) {
        if self.n == 1 {
            return;
        }
        let phase = self.phase.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Release);
            self.phase.fetch_add(1, Ordering::AcqRel);
        } else {
            spin_wait(|| self.phase.load(Ordering::Acquire) != phase);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_every_job_and_barriers_order_phases() {
        let pool = Pool::new(3);
        for _ in 0..100 {
            let hits = AtomicUsize::new(0);
            let barrier = Barrier::new(3);
            let phase_two = AtomicUsize::new(0);
            pool.run(&|_tid| {
                hits.fetch_add(1, Ordering::SeqCst);
                barrier.wait();
                assert_eq!(hits.load(Ordering::SeqCst), 3);
                phase_two.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(phase_two.load(Ordering::SeqCst), 3);
        }
    }
}
