//! Running one job in a worker process (SPEC §6): spawn the worker as an argv list (never a shell
//! string, so config values cannot inject commands), send the job, stream events, collect the result.

use crate::protocol::{Command, ErrorKind, Event, FoldResult, Job, Objective};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command as Process;
use tokio::sync::mpsc;

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

/// What a finished job produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub objective: Objective,
    pub folds: Vec<FoldResult>,
}

/// Why a job did not produce a result.
#[derive(Debug)]
pub enum JobFailure {
    /// The worker reported an `error` event.
    Reported { kind: ErrorKind, message: String },
    /// The worker broke the protocol, crashed, or could not be started.
    Broken(String),
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFailure::Reported { kind, message } => {
                write!(f, "the worker reported a {kind} error: {message}")
            }
            JobFailure::Broken(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for JobFailure {}

const STDERR_TAIL_LINES: usize = 20;

/// Runs one job to completion. `on_event` sees every event as it arrives; `commands` (if given) lets
/// the caller send `stop` while the job runs. The worker's stderr is appended to `stderr_log`.
/// `concurrent`: how many workers the caller runs at once (for [`openmp_policy`]).
pub async fn run_job(
    argv: &[String],
    job: &Job,
    concurrent: usize,
    stderr_log: &Path,
    mut commands: Option<mpsc::Receiver<Command>>,
    mut on_event: impl FnMut(&Event),
) -> std::result::Result<JobOutcome, JobFailure> {
    let broken = |s: String| JobFailure::Broken(s);
    let shown = argv.join(" ");
    if let Some(parent) = stderr_log.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| broken(format!("cannot create {}: {e}", parent.display())))?;
    }
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)
        .map_err(|e| broken(format!("cannot open {}: {e}", stderr_log.display())))?;
    let mut command = Process::new(&argv[0]);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe. PR_SET_PDEATHSIG makes the kernel kill the worker when the coordinator
    // dies, even by SIGKILL, so a restarted coordinator never races an orphaned worker.
    #[cfg(target_os = "linux")]
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .args(&argv[1..])
        .envs(worker_environment(concurrent))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: a Ctrl-C in the terminal reaches only the coordinator, which turns
        // it into a graceful `stop` command instead of killing the worker mid-checkpoint.
        .process_group(0)
        .spawn()
        .map_err(|e| broken(format!("cannot start the worker `{shown}`: {e}")))?;

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");

    // Keep the last stderr lines for error messages while copying all of them to the log file.
    let stderr_task = tokio::spawn(async move {
        use std::io::Write;
        let mut log = log_file;
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log, "{line}");
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect::<Vec<_>>()
    });

    let mut job_line = job.to_line();
    job_line.push('\n');
    // A worker that dies before reading its job shows up below as an early exit, so a write error
    // here is not reported on its own.
    let _ = stdin.write_all(job_line.as_bytes()).await;
    let _ = stdin.flush().await;

    let mut lines = BufReader::new(stdout).lines();
    let mut outcome: Option<JobOutcome> = None;
    let mut reported: Option<JobFailure> = None;
    let mut protocol_error: Option<String> = None;
    loop {
        let next = tokio::select! {
            line = lines.next_line() => line,
            Some(cmd) = async {
                match commands.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let mut text = serde_json::to_string(&cmd).expect("commands serialise");
                text.push('\n');
                let _ = stdin.write_all(text.as_bytes()).await;
                let _ = stdin.flush().await;
                continue;
            }
        };
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                protocol_error = Some(format!("cannot read the worker's output: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match Event::parse_line(&line) {
            Ok(event) => {
                on_event(&event);
                match event {
                    Event::Result { objective, folds } => {
                        outcome = Some(JobOutcome { objective, folds })
                    }
                    Event::Error { kind, message } => {
                        reported = Some(JobFailure::Reported { kind, message })
                    }
                    _ => {}
                }
            }
            Err(malformed) => {
                protocol_error = Some(malformed.to_string());
                let _ = child.start_kill();
                break;
            }
        }
    }
    drop(stdin);
    let status = child.wait().await;
    let tail = stderr_task.await.unwrap_or_default();
    let tail_text = if tail.is_empty() {
        String::new()
    } else {
        format!(
            "\nlast lines of the worker's stderr (full log: {}):\n  {}",
            stderr_log.display(),
            tail.join("\n  ")
        )
    };
    if let Some(why) = protocol_error {
        return Err(broken(format!("worker `{shown}`: {why}{tail_text}")));
    }
    if let Some(failure) = reported {
        return Err(failure);
    }
    let status = status.map_err(|e| broken(format!("cannot wait for the worker: {e}")))?;
    match outcome {
        Some(outcome) if status.success() => Ok(outcome),
        Some(_) => Err(broken(format!(
            "worker `{shown}` sent its result but then exited with {status}{tail_text}"
        ))),
        None => Err(broken(format!(
            "worker `{shown}` exited ({status}) without sending a result event{tail_text}"
        ))),
    }
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
