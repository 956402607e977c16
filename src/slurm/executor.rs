//! Runs protocol jobs as Slurm batch jobs: submit (or re-attach to a job submitted by an earlier
//! coordinator), follow the job's events file, forward a stop request through the job folder, and
//! turn the job's end into the same outcome a local worker gives.

use super::client::{self, JobId};
use super::job_files::{JobFiles, LineFollower};
use super::monitor::{Monitor, Seen};
use super::settings::SlurmSettings;
use crate::executor::{JobFailure, JobOutcome};
use crate::fsutil::write_atomic;
use crate::protocol::{Command, Event, Job};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a job's events file is read while it runs (a local or shared file read; Slurm itself
/// is asked only by the [`Monitor`]).
const EVENTS_POLL: Duration = Duration::from_millis(200);

/// Written into the job folder when the coordinator itself cancels a job (Ctrl-C, a study that gives
/// up): the next coordinator then resubmits that trial instead of reporting it as failed.
pub const CANCELLED_BY_COORDINATOR: &str = "cancelled_by_coordinator";

/// The batch script: the command arrives as the script's arguments, so no value is ever parsed
/// by a shell.
const SCRIPT: &str = "#!/bin/sh\n# written by metricbench: runs its arguments (the job adapter and the worker argv)\nexec \"$@\"\n";

const TAIL_LINES: usize = 15;

/// A study's connection to Slurm: the resources every job asks for and the shared state poller.
pub struct SlurmExecutor {
    settings: SlurmSettings,
    monitor: Arc<Monitor>,
    /// This coordinator's executable, run inside each job as the adapter (`metricbench slurm-job`).
    adapter: PathBuf,
}

/// What to run: the job, its folder, the worker, a job name for `squeue`.
pub struct JobRequest {
    pub folder: PathBuf,
    pub job: Job,
    pub worker: Vec<String>,
    pub name: String,
}

/// Cancels the job if the future following it is dropped before the job ended (a trial timeout, a
/// study stopping): no Slurm job outlives the coordinator's interest in it.
struct CancelOnDrop {
    id: JobId,
    files: JobFiles,
    armed: bool,
    mark: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.mark {
            let _ = std::fs::write(self.files.dir.join(CANCELLED_BY_COORDINATOR), b"");
        }
        if let Ok(mut child) = std::process::Command::new("scancel")
            .arg(self.id.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            std::thread::spawn(move || child.wait());
        }
    }
}

fn tail(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines.len().saturating_sub(TAIL_LINES);
    Some(format!(
        "\nlast lines of {}:\n  {}",
        path.display(),
        lines[start..].join("\n  ")
    ))
}

impl SlurmExecutor {
    /// Must be called inside the tokio runtime (it starts the poller).
    pub fn new(settings: SlurmSettings) -> anyhow::Result<SlurmExecutor> {
        let adapter = std::env::current_exe().map_err(|e| {
            anyhow::anyhow!("cannot locate the running metricbench executable: {e}")
        })?;
        // Test binaries live in target/<profile>/deps; the coordinator binary one level up.
        let adapter = if adapter
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "deps")
        {
            adapter
                .parent()
                .and_then(Path::parent)
                .map(|p| p.join("metricbench"))
                .unwrap_or(adapter)
        } else {
            adapter
        };
        Ok(SlurmExecutor {
            settings,
            monitor: Monitor::start(),
            adapter,
        })
    }

    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }

    /// The full `sbatch` argv (after `--parsable`) for a job.
    pub fn sbatch_args(&self, request: &JobRequest, files: &JobFiles) -> Vec<String> {
        let mut args = vec![
            format!("--job-name={}", request.name),
            format!("--output={}", files.output_pattern().display()),
            format!("--chdir={}", request.folder.display()),
        ];
        // The user's resources and extra arguments come last so they win over ours.
        args.extend(self.settings.sbatch_args());
        args.push(files.script().display().to_string());
        args.push(self.adapter.display().to_string());
        args.push("slurm-job".to_string());
        args.push(files.dir.display().to_string());
        args.push("--".to_string());
        args.extend(request.worker.iter().cloned());
        args
    }

    /// Writes the job files and submits; returns the job id.
    pub async fn submit(&self, request: &JobRequest) -> Result<JobId, JobFailure> {
        let broken = JobFailure::Broken;
        let files = JobFiles::of_experiment(&request.folder);
        std::fs::create_dir_all(&files.dir)
            .map_err(|e| broken(format!("cannot create {}: {e}", files.dir.display())))?;
        files
            .clear_previous()
            .map_err(|e| broken(format!("cannot clear {}: {e}", files.dir.display())))?;
        let _ = std::fs::remove_file(files.dir.join(CANCELLED_BY_COORDINATOR));
        write_atomic(
            &files.job(),
            format!("{}\n", request.job.to_line()).as_bytes(),
        )
        .and_then(|()| write_atomic(&files.script(), SCRIPT.as_bytes()))
        .map_err(|e| broken(format!("{e:#}")))?;
        let args = self.sbatch_args(request, &files);
        let id = client::submit(&args).await.map_err(broken)?;
        Ok(id)
    }

    /// Follows job `id` (just submitted, or re-attached after a restart) to its end. `commands`
    /// carries stop requests; `on_event` sees every event the worker wrote.
    pub async fn follow(
        &self,
        id: JobId,
        folder: &Path,
        mut commands: Option<mpsc::Receiver<Command>>,
        mut on_event: impl FnMut(&Event),
    ) -> Result<JobOutcome, JobFailure> {
        let files = JobFiles::of_experiment(folder);
        let mut guard = CancelOnDrop {
            id,
            files: files.clone(),
            armed: true,
            mark: true,
        };
        self.monitor.track(id);
        let result = self
            .follow_inner(id, &files, &mut commands, &mut on_event, &mut guard)
            .await;
        guard.armed = false;
        self.monitor.untrack(id);
        result
    }

    async fn follow_inner(
        &self,
        id: JobId,
        files: &JobFiles,
        commands: &mut Option<mpsc::Receiver<Command>>,
        on_event: &mut impl FnMut(&Event),
        guard: &mut CancelOnDrop,
    ) -> Result<JobOutcome, JobFailure> {
        let mut follower = LineFollower::new(files.events());
        let mut polled = self.monitor.subscribe();
        let mut outcome: Option<JobOutcome> = None;
        let mut reported: Option<JobFailure> = None;
        let mut poked = false;
        let events_path = files.events();
        let read = |follower: &mut LineFollower,
                    outcome: &mut Option<JobOutcome>,
                    reported: &mut Option<JobFailure>,
                    on_event: &mut dyn FnMut(&Event)|
         -> Result<(), String> {
            let lines = follower
                .poll()
                .map_err(|e| format!("cannot read {}: {e}", events_path.display()))?;
            for line in lines {
                if line.trim().is_empty() {
                    continue;
                }
                let event = Event::parse_line(&line)
                    .map_err(|m| format!("{} (in {})", m, events_path.display()))?;
                on_event(&event);
                match event {
                    Event::Result { objective, folds } => {
                        *outcome = Some(JobOutcome { objective, folds })
                    }
                    Event::Error { kind, message } => {
                        *reported = Some(JobFailure::Reported { kind, message })
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        loop {
            if let Err(why) = read(&mut follower, &mut outcome, &mut reported, on_event) {
                // A worker breaking the protocol is stopped, as a local one would be.
                guard.mark = false;
                let _ = client::cancel(id, None).await;
                guard.armed = false;
                return Err(JobFailure::Broken(format!("Slurm job {id}: {why}")));
            }
            if (outcome.is_some() || reported.is_some()) && !poked {
                self.monitor.poke();
                poked = true;
            }
            if let Some(exit) = files.read_exit_status() {
                // The worker has exited: whatever it wrote before is complete.
                let _ = read(&mut follower, &mut outcome, &mut reported, on_event);
                return self.finish(id, files, Some(exit), outcome, reported, None);
            }
            let seen = self.monitor.seen(id).map_err(JobFailure::Broken)?;
            let ended = match &seen {
                Seen::Unknown => false,
                Seen::InQueue(e) => !e.is_active(),
                Seen::Gone => true,
            };
            if ended {
                // The adapter writes the exit status just before the job ends; give a shared
                // filesystem a moment to show it and the last events.
                tokio::time::sleep(EVENTS_POLL).await;
                let _ = read(&mut follower, &mut outcome, &mut reported, on_event);
                let exit = files.read_exit_status();
                let details = client::details(id).await.ok().flatten();
                return self.finish(id, files, exit, outcome, reported, details);
            }
            tokio::select! {
                _ = tokio::time::sleep(EVENTS_POLL) => {}
                _ = polled.changed() => {}
                Some(cmd) = async {
                    match commands.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if matches!(cmd, Command::Stop) {
                        if let Err(e) = write_atomic(&files.stop(), b"stop\n") {
                            eprintln!("warning: cannot ask Slurm job {id} to stop: {e:#}");
                        }
                    }
                }
            }
        }
    }

    fn finish(
        &self,
        id: JobId,
        files: &JobFiles,
        exit: Option<String>,
        outcome: Option<JobOutcome>,
        reported: Option<JobFailure>,
        details: Option<client::JobDetails>,
    ) -> Result<JobOutcome, JobFailure> {
        if let Some(failure) = reported {
            return Err(failure);
        }
        let stderr_log = files.dir.parent().map(|p| p.join("logs/worker_stderr.log"));
        let tails = || {
            let mut t = String::new();
            if let Some(s) = tail(&files.output(id)) {
                t.push_str(&s);
            }
            if let Some(s) = stderr_log.as_deref().and_then(tail) {
                t.push_str(&s);
            }
            t
        };
        match (exit.as_deref(), outcome) {
            (Some("0"), Some(outcome)) => Ok(outcome),
            (Some(code), Some(_)) => Err(JobFailure::Broken(format!(
                "Slurm job {id}: the worker sent its result but then exited with {code}{}",
                tails()
            ))),
            (Some(code), None) => Err(JobFailure::Broken(format!(
                "Slurm job {id}: the worker exited ({code}) without sending a result event{}",
                tails()
            ))),
            (None, _) => {
                let slurm = match details {
                    Some(d) => d.describe(),
                    None => "Slurm no longer knows the job (squeue and scontrol)".to_string(),
                };
                let hint = if files.events().exists() {
                    String::new()
                } else {
                    format!(
                        "; the job never wrote {}: is the study folder on a filesystem the \
                         compute nodes share, at the same path?",
                        files.events().display()
                    )
                };
                Err(JobFailure::Broken(format!(
                    "Slurm job {id} ended before its worker finished ({slurm}){hint}{}",
                    tails()
                )))
            }
        }
    }
}
