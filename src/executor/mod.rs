//! Where jobs run. A job is one worker invocation for one experiment or trial folder: the
//! coordinator hands it to an [`Executor`], which starts it and returns a [`JobHandle`] that yields
//! the worker's events as they arrive, then its outcome, and that can be asked to stop (gracefully,
//! at the worker's next evaluation) or be killed. `run`, `tune` and the study report drive jobs only
//! through this seam, so they do not know whether a job is a local process ([`local`]) or runs
//! elsewhere.
//!
//! An executor whose jobs outlive the coordinator (a batch scheduler) gives each job a persistent
//! id ([`JobHandle::job_id`]) that the study stores, and re-attaches to it after a restart
//! ([`Executor::reattach`]).
//!
//! Workers are started as argv lists (never shell strings, so config values cannot inject
//! commands).

pub mod handle;
pub mod local;
pub mod outcome;

pub use handle::{Control, JobChannel, JobControl, JobHandle};
pub use local::LocalExecutor;
pub use outcome::{EventReader, JobExit, JobFailure, JobOutcome};

use crate::protocol::Job;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;

/// One job to run: the job line the worker reads, and the folder it works in.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job: Job,
    /// The experiment (or trial) folder; the executor keeps its logs in its `logs/` subfolder.
    pub folder: PathBuf,
    /// How many jobs the caller runs at once on this machine (a local worker sizes how its idle
    /// threads wait by it, see [`openmp_policy`]).
    pub concurrent: usize,
}

impl JobSpec {
    /// Where the worker's stderr is appended.
    pub fn stderr_log(&self) -> PathBuf {
        self.folder.join("logs").join("worker_stderr.log")
    }
}

/// Starts jobs. Implementations: [`LocalExecutor`] (a worker process on this machine).
pub trait Executor: Send + Sync {
    /// Short name for messages (`local`).
    fn name(&self) -> &'static str;

    /// Starts `spec`'s job. Must be called inside the tokio runtime that will drive the handle. An
    /// error means the job never started.
    fn start(&self, spec: &JobSpec) -> std::result::Result<JobHandle, JobFailure>;

    /// Re-attaches to a job an earlier coordinator started, by the id it recorded. `Ok(None)`: the
    /// job is gone (or this executor's jobs never outlive their coordinator, as local processes
    /// die with it), so the caller starts it again.
    fn reattach(
        &self,
        _job_id: &str,
        _spec: &JobSpec,
    ) -> std::result::Result<Option<JobHandle>, JobFailure> {
        Ok(None)
    }

    /// Finds a job an earlier coordinator submitted for `spec.folder` but died before recording
    /// (killed between the scheduler's answer and the study's write of the id). `Ok(None)`: there
    /// is none (always so for executors whose jobs die with the coordinator). Following it instead
    /// of starting the trial again keeps two jobs from ever working in one folder.
    fn adopt_unrecorded(
        &self,
        _spec: &JobSpec,
    ) -> std::result::Result<Option<JobHandle>, JobFailure> {
        Ok(None)
    }
}

/// Name of the Rust worker binary, found next to the coordinator's own executable.
pub const WORKER_BINARY: &str = "metricbench-worker";

/// The worker to run: the Rust worker by default, or the `worker_command` argv list of the config.
pub fn worker_argv(worker_command: Option<&serde_yaml::Value>) -> Result<Vec<String>> {
    match worker_command {
        None | Some(serde_yaml::Value::Null) => Ok(vec![default_worker()?
            .to_string_lossy()
            .into_owned()]),
        Some(serde_yaml::Value::Sequence(items)) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                serde_yaml::Value::String(s) => Ok(s.clone()),
                serde_yaml::Value::Number(n) => Ok(n.to_string()),
                other => bail!(
                    "worker_command must be a list of strings (an argv list), but one element is {}",
                    crate::config::kind_name(other)
                ),
            })
            .collect(),
        Some(other) => bail!(
            "worker_command must be a non-empty list of strings (an argv list such as \
             [python3, scripts/examples/python_worker.py]), not {}; shell strings are not accepted",
            crate::config::kind_name(other)
        ),
    }
}

/// How OpenMP's idle threads wait in the workers the coordinator starts, unless the user chose
/// (`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` set: then nothing is added). libgomp reads this once,
/// when libtorch is loaded, so the worker cannot change it itself.
///
/// By default libgomp spins for a long time (300 000 iterations) after every parallel region.
/// When the workers' threads outnumber the cores, spinning threads take the cores other threads
/// need (two workers of 2 threads on 2 cores: 6 it/s each with libgomp's default, 17 with a spin
/// count of 30 000, 66-70 with 3 000, 129-141 sleeping at once): then `OMP_WAIT_POLICY=PASSIVE`.
/// When they fit, a short spin (`GOMP_SPINCOUNT=3000`, a few microseconds) catches the next
/// kernel of a training step without a futex wake-up and costs little if none comes (a lone
/// 2-thread worker on 2 cores: 150-198 it/s vs 135-142 sleeping).
///
/// `concurrent` is how many workers this coordinator runs at once on this machine; `threads`
/// each worker's intra-op threads (`OMP_NUM_THREADS`, else libtorch's default: one per core).
pub fn openmp_policy(
    user_env: impl Fn(&str) -> Option<String>,
    concurrent: usize,
    cores: usize,
) -> Vec<(&'static str, &'static str)> {
    if user_env("OMP_WAIT_POLICY").is_some() || user_env("GOMP_SPINCOUNT").is_some() {
        return Vec::new();
    }
    let threads = user_env("OMP_NUM_THREADS")
        .and_then(|v| v.split(',').next()?.trim().parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(cores);
    if concurrent.max(1) * threads <= cores {
        vec![("GOMP_SPINCOUNT", "3000")]
    } else {
        vec![("OMP_WAIT_POLICY", "PASSIVE")]
    }
}

/// [`openmp_policy`] for this process's environment and machine.
pub fn worker_environment(concurrent: usize) -> Vec<(&'static str, &'static str)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    openmp_policy(|name| std::env::var(name).ok(), concurrent, cores)
}

/// Path of `metricbench-worker` beside the running coordinator.
pub fn default_worker() -> Result<PathBuf> {
    let exe =
        std::env::current_exe().context("cannot locate the running metricbench executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the executable has no folder"))?;
    // Test binaries live one level deeper (target/<profile>/deps); the worker is in target/<profile>.
    for candidate in [dir.join(WORKER_BINARY), dir.join("..").join(WORKER_BINARY)] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the worker executable {WORKER_BINARY} was not found next to {} (build it with \
         scripts/build.sh), or set worker_command in the config to use another worker",
        exe.display()
    )
}

#[cfg(test)]
mod tests {
    use super::openmp_policy;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn openmp_policy_spins_briefly_only_when_the_workers_fit_the_cores() {
        let spin = vec![("GOMP_SPINCOUNT", "3000")];
        let sleep = vec![("OMP_WAIT_POLICY", "PASSIVE")];
        // One worker, one thread per core (libtorch's default): fits.
        assert_eq!(openmp_policy(env(&[]), 1, 2), spin);
        // Two such workers on 2 cores: oversubscribed.
        assert_eq!(openmp_policy(env(&[]), 2, 2), sleep);
        // Two workers of one thread each fit on 2 cores; three do not.
        assert_eq!(openmp_policy(env(&[("OMP_NUM_THREADS", "1")]), 2, 2), spin);
        assert_eq!(openmp_policy(env(&[("OMP_NUM_THREADS", "1")]), 3, 2), sleep);
        // Nested lists count their outer level; nonsense falls back to one thread per core.
        assert_eq!(
            openmp_policy(env(&[("OMP_NUM_THREADS", "4,2")]), 1, 2),
            sleep
        );
        assert_eq!(openmp_policy(env(&[("OMP_NUM_THREADS", "x")]), 1, 8), spin);
        // The user's own choice is left alone.
        assert!(openmp_policy(env(&[("OMP_WAIT_POLICY", "ACTIVE")]), 4, 2).is_empty());
        assert!(openmp_policy(env(&[("GOMP_SPINCOUNT", "0")]), 1, 2).is_empty());
    }
}
