//! One poller for all of a study's Slurm jobs: a single `squeue` call per poll whatever the number
//! of jobs, at an interval that backs off while nothing changes, so a study of many long jobs does
//! not load `slurmctld`.

use super::client::{self, JobId, QueueEntry};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Shortest and longest pause between two `squeue` calls. A change (a job started or ended) or a
/// new job brings the interval back to the shortest; each poll without a change stretches it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
pub const MAX_INTERVAL: Duration = Duration::from_secs(10);
const BACKOFF: f64 = 1.5;
/// `squeue` failing this many times in a row (Slurm unreachable) fails the jobs that wait on it.
const FAILURES_TOLERATED: u32 = 8;

/// What the monitor last learnt about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not polled yet since it was tracked.
    Unknown,
    InQueue(QueueEntry),
    /// `squeue` no longer lists it.
    Gone,
}

#[derive(Default)]
struct State {
    tracked: BTreeSet<JobId>,
    seen: HashMap<JobId, Seen>,
    /// The last `squeue` error once it failed too often in a row.
    broken: Option<String>,
    calls: u64,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    polled: watch::Sender<u64>,
    closed: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shared by every job task of a study (clone the `Arc`); its poller stops when it is dropped.
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl Monitor {
    /// Starts the polling task on the current tokio runtime; it ends when the monitor is dropped.
    pub fn start() -> Arc<Monitor> {
        let (polled, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            polled,
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let m = shared.clone();
        tokio::spawn(async move {
            let mut interval = MIN_INTERVAL;
            let mut failures = 0u32;
            loop {
                if m.closed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let ids: Vec<JobId> = m.lock().tracked.iter().copied().collect();
                if ids.is_empty() {
                    m.wake.notified().await;
                    interval = MIN_INTERVAL;
                    continue;
                }
                let answer = client::queue(&ids).await;
                let mut changed = false;
                {
                    let mut s = m.lock();
                    s.calls += 1;
                    match answer {
                        Ok(mut found) => {
                            failures = 0;
                            s.broken = None;
                            for id in &ids {
                                let now = match found.remove(id) {
                                    Some(e) => Seen::InQueue(e),
                                    None => Seen::Gone,
                                };
                                if s.seen.get(id) != Some(&now) {
                                    changed = true;
                                    s.seen.insert(*id, now);
                                }
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures >= FAILURES_TOLERATED {
                                s.broken = Some(e);
                                changed = true;
                            }
                        }
                    }
                }
                m.polled.send_modify(|n| *n += 1);
                interval = if changed {
                    MIN_INTERVAL
                } else {
                    interval.mul_f64(BACKOFF).min(MAX_INTERVAL)
                };
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = m.wake.notified() => interval = MIN_INTERVAL,
                }
            }
        });
        Arc::new(Monitor { shared })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Starts following a job; the next poll comes at once.
    pub fn track(&self, id: JobId) {
        {
            let mut s = self.lock();
            s.tracked.insert(id);
            s.seen.insert(id, Seen::Unknown);
        }
        self.poke();
    }

    pub fn untrack(&self, id: JobId) {
        let mut s = self.lock();
        s.tracked.remove(&id);
        s.seen.remove(&id);
    }

    /// Asks for a poll now (e.g. a job's worker just reported its result, so its end is near).
    pub fn poke(&self) {
        self.shared.wake.notify_one();
    }

    /// The job's latest state, or the reason Slurm cannot be asked.
    pub fn seen(&self, id: JobId) -> Result<Seen, String> {
        let s = self.lock();
        if let Some(e) = &s.broken {
            return Err(format!(
                "Slurm stopped answering ({FAILURES_TOLERATED} squeue calls in a row failed); the \
                 last error: {e}"
            ));
        }
        Ok(s.seen.get(&id).cloned().unwrap_or(Seen::Unknown))
    }

    /// A receiver that changes after every poll.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.polled.subscribe()
    }

    /// `squeue` calls made so far (for tests and the benchmark).
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }
}
