//! `metricbench slurm-job DIR -- WORKER...`: what runs inside a Slurm job. Under `sbatch` the worker
//! has no pipe to the coordinator, so this adapter gives it one: it feeds the job from
//! `DIR/job.json` to the worker's stdin, appends each line the worker prints to `DIR/events.jsonl`,
//! turns the appearance of `DIR/stop` into a `stop` command, and finally writes the worker's exit
//! status to `DIR/exit_status`. Plugin workers therefore need no change to run on Slurm.

use super::job_files::JobFiles;
use crate::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the job looks for the stop file (a shared filesystem may be slow to show it anyway).
const STOP_POLL: Duration = Duration::from_millis(250);

/// Parses `DIR -- WORKER...`.
pub fn parse_args(args: &[String]) -> Result<(PathBuf, Vec<String>)> {
    match args {
        [dir, sep, worker @ ..] if sep == "--" && !worker.is_empty() => {
            Ok((PathBuf::from(dir), worker.to_vec()))
        }
        _ => bail!(
            "usage: metricbench slurm-job JOB_DIR -- WORKER [ARGS...] (run by the Slurm executor \
             inside each job; not meant to be typed)"
        ),
    }
}

/// Sets `OMP_NUM_THREADS` to the CPUs Slurm gave the job (unless the user chose), since without
/// CPU binding libtorch would start one thread per core of the whole node.
fn thread_environment() -> Vec<(String, String)> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return Vec::new();
    }
    match std::env::var("SLURM_CPUS_PER_TASK") {
        Ok(c) if c.parse::<u32>().is_ok_and(|c| c > 0) => {
            vec![("OMP_NUM_THREADS".to_string(), c)]
        }
        _ => Vec::new(),
    }
}

/// The job's entry point: runs the worker and exits with its status. When the adapter itself fails
/// (no job file, no worker), it says so on stderr (Slurm's output file) and, where the folder is
/// writable, as an `error` event plus an exit status, so the coordinator reports the reason.
pub fn main(args: &[String]) -> std::process::ExitCode {
    match run(args) {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            if let Ok((dir, _)) = parse_args(args) {
                let files = JobFiles { dir };
                let event = crate::protocol::Event::Error {
                    kind: crate::protocol::ErrorKind::Internal,
                    message,
                };
                let appended = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(files.events())
                    .and_then(|mut f| f.write_all(format!("{}\n", event.to_line()).as_bytes()));
                if appended.is_ok() {
                    let _ = write_atomic(&files.exit_status(), b"1");
                }
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the worker; returns the exit code the job should end with.
pub fn run(args: &[String]) -> Result<i32> {
    let (dir, worker) = parse_args(args)?;
    let files = JobFiles { dir };
    let job_path = files.job();
    let job_line = std::fs::read_to_string(&job_path).with_context(|| {
        format!(
            "cannot read the job file {} on node {}: the study folder must be on a filesystem \
             shared with the compute nodes, at the same path",
            job_path.display(),
            super::node_name()
        )
    })?;
    let job: crate::protocol::Job = crate::protocol::Job::parse_line(job_line.trim_end())
        .map_err(|e| anyhow::anyhow!("{}: {e}", job_path.display()))?;
    let log_path = PathBuf::from(&job.experiment_folder).join("logs/worker_stderr.log");
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.events())
        .with_context(|| format!("cannot open {}", files.events().display()))?;

    let mut command = Command::new(&worker[0]);
    // SAFETY: prctl in the forked child before exec is async-signal-safe; the worker then dies
    // with this adapter (e.g. when Slurm kills the job), never running on unsupervised.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command
        .args(&worker[1..])
        .envs(thread_environment())
        .envs(crate::executor::worker_environment(1))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| {
            format!(
                "cannot start the worker `{}` on node {}",
                worker.join(" "),
                super::node_name()
            )
        })?;
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    let stdout = child
        .stdout
        .take()
        .context("the worker's stdout is piped")?;
    if let Some(w) = stdin.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        // A worker dying before it reads its job shows up in its exit status.
        let _ = w.write_all(format!("{}\n", job_line.trim_end()).as_bytes());
        let _ = w.flush();
    }

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stdin, done, stop) = (stdin.clone(), done.clone(), files.stop());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if stop.exists() {
                    if let Some(w) = stdin.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        let _ = w.write_all(b"{\"command\":\"stop\"}\n");
                        let _ = w.flush();
                    }
                    return;
                }
                std::thread::sleep(STOP_POLL);
            }
        })
    };

    // Each line goes to the file in one append (O_APPEND), newline included, so a reader sees
    // whole lines; a line cut short by a crash never gets its newline and is never read as an event.
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .context("cannot read the worker's output")?;
        if n == 0 {
            break;
        }
        events
            .write_all(&line)
            .and_then(|()| events.flush())
            .with_context(|| format!("cannot append to {}", files.events().display()))?;
    }
    let status = child.wait().context("cannot wait for the worker")?;
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    use std::os::unix::process::ExitStatusExt;
    let (text, code) = match (status.code(), status.signal()) {
        (Some(c), _) => (c.to_string(), c),
        (None, Some(s)) => (format!("signal {s}"), 128 + s),
        (None, None) => ("unknown".to_string(), 1),
    };
    write_atomic(&files.exit_status(), text.as_bytes())?;
    Ok(code)
}
