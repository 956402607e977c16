//! The local executor: each job is a worker process on this machine. The job line goes to the
//! worker's stdin, its events come from its stdout, its stderr is appended to the folder's
//! `logs/worker_stderr.log` (the last lines are kept for error messages), and a stop is written to
//! its stdin as the protocol's `stop` command.

use super::handle::{Control, JobChannel, JobHandle};
use super::outcome::{EventReader, JobExit, JobFailure, JobOutcome};
use super::{worker_environment, Executor, JobSpec};
use crate::protocol::Command;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Process};

/// Runs jobs as child processes of the coordinator, started from an argv list.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    argv: Vec<String>,
}

impl LocalExecutor {
    /// `argv`: the worker command (see [`super::worker_argv`]); must not be empty.
    pub fn new(argv: Vec<String>) -> LocalExecutor {
        LocalExecutor { argv }
    }
}

const STDERR_TAIL_LINES: usize = 20;

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn start(&self, spec: &JobSpec) -> Result<JobHandle, JobFailure> {
        let broken = JobFailure::Broken;
        let shown = self.argv.join(" ");
        let Some(program) = self.argv.first() else {
            return Err(broken("the worker command is empty".into()));
        };
        let stderr_log = spec.stderr_log();
        if let Some(parent) = stderr_log.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| broken(format!("cannot create {}: {e}", parent.display())))?;
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_log)
            .map_err(|e| broken(format!("cannot open {}: {e}", stderr_log.display())))?;
        let mut command = Process::new(program);
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
        let child = command
            .args(&self.argv[1..])
            .envs(worker_environment(spec.concurrent))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C in the terminal reaches only the coordinator, which
            // turns it into a graceful `stop` command instead of killing the worker mid-checkpoint.
            .process_group(0)
            .spawn()
            .map_err(|e| broken(format!("cannot start the worker `{shown}`: {e}")))?;
        let mut job_line = spec.job.to_line();
        job_line.push('\n');
        let process = WorkerProcess {
            child,
            who: format!("worker `{shown}`"),
            stderr_log,
            log_file,
            job_line,
        };
        Ok(JobHandle::spawn(None, move |channel| {
            process.supervise(channel)
        }))
    }
}

/// A started worker process and what its supervision needs.
struct WorkerProcess {
    child: Child,
    who: String,
    stderr_log: PathBuf,
    log_file: std::fs::File,
    job_line: String,
}

async fn send_line(stdin: &mut ChildStdin, line: &str) {
    // A worker that died shows up as an early exit, so a write error is not reported on its own.
    let _ = stdin.write_all(line.as_bytes()).await;
    let _ = stdin.flush().await;
}

impl WorkerProcess {
    async fn supervise(self, mut channel: JobChannel) -> Result<JobOutcome, JobFailure> {
        let WorkerProcess {
            mut child,
            who,
            stderr_log,
            log_file,
            job_line,
        } = self;
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

        send_line(&mut stdin, &job_line).await;

        let mut lines = BufReader::new(stdout).lines();
        let mut reader = EventReader::default();
        loop {
            let next = tokio::select! {
                line = lines.next_line() => line,
                control = channel.control() => {
                    match control {
                        Control::Stop => {
                            let mut text =
                                serde_json::to_string(&Command::Stop).expect("commands serialise");
                            text.push('\n');
                            send_line(&mut stdin, &text).await;
                        }
                        // Its stdout closes when it dies, which ends this loop.
                        Control::Kill => {
                            let _ = child.start_kill();
                        }
                    }
                    continue;
                }
            };
            let line = match next {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    reader.unreadable(format!("cannot read the worker's output: {e}"));
                    break;
                }
            };
            match reader.line(&line) {
                Ok(Some(event)) => channel.event(event),
                Ok(None) => {}
                Err(_) => {
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
        let exit = match status {
            Ok(status) => JobExit::Exited {
                success: status.success(),
                status: status.to_string(),
            },
            Err(e) => JobExit::Unknown(format!("cannot wait for the worker: {e}")),
        };
        reader.finish(&who, exit, &tail_text)
    }
}
