//! The Slurm executor: each job is a Slurm batch job. Starting one writes its files into the job
//! folder and submits it with `sbatch`; its task follows the events file, forwards a stop through
//! the folder and a kill as `scancel`, and turns the job's end into the outcome a local worker
//! gives. Jobs outlive the coordinator: a restarted one re-attaches by the recorded job id.

use super::client::{self, JobId};
use super::job_files::{JobFiles, LineFollower};
use super::monitor::{Monitor, Seen};
use super::settings::SlurmSettings;
use crate::executor::{
    Control, EventReader, Executor, JobChannel, JobExit, JobFailure, JobHandle, JobOutcome, JobSpec,
};
use crate::fsutil::write_atomic;
use crate::protocol::Action;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often a job's events file is read while it runs (a local or shared file read; Slurm itself
/// is asked only by the [`Monitor`]).
const EVENTS_POLL: Duration = Duration::from_millis(200);

/// The batch script: the command arrives as the script's arguments, so no value is ever parsed
/// by a shell.
const SCRIPT: &str = "#!/bin/sh\n# written by metricbench: runs its arguments (the job adapter and the worker argv)\nexec \"$@\"\n";

const TAIL_LINES: usize = 15;

/// A study's connection to Slurm: the resources every job asks for, the worker, and the poller of
/// job states shared by all its jobs.
pub struct SlurmExecutor {
    settings: SlurmSettings,
    worker: Vec<String>,
    /// This coordinator's executable, run inside each job as the adapter (`metricbench slurm-job`).
    adapter: PathBuf,
    /// Started on first use, inside the runtime that drives the jobs.
    monitor: OnceLock<Arc<Monitor>>,
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

/// The job's name in `squeue`: a trial's training job is named after its folder (`study7`); other
/// jobs in a folder add their action (`study7-evaluate`), so they are told apart.
pub fn job_name(spec: &JobSpec) -> String {
    let folder = spec
        .folder
        .file_name()
        .map_or("metricbench".into(), |n| n.to_string_lossy().into_owned());
    match spec.job.action {
        Action::Train => folder,
        other => format!(
            "{folder}-{}",
            serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ),
    }
}

impl SlurmExecutor {
    pub fn new(settings: SlurmSettings, worker: Vec<String>) -> anyhow::Result<SlurmExecutor> {
        let exe = std::env::current_exe().map_err(|e| {
            anyhow::anyhow!("cannot locate the running metricbench executable: {e}")
        })?;
        // Test binaries live in target/<profile>/deps; the coordinator binary one level up.
        let adapter = match exe.parent() {
            Some(dir) if dir.file_name().is_some_and(|n| n == "deps") => dir
                .parent()
                .map(|p| p.join("metricbench"))
                .unwrap_or(exe.clone()),
            _ => exe,
        };
        Ok(SlurmExecutor {
            settings,
            worker,
            adapter,
            monitor: OnceLock::new(),
        })
    }

    fn monitor(&self) -> Arc<Monitor> {
        self.monitor.get_or_init(Monitor::start).clone()
    }

    /// The full `sbatch` argv (after `--parsable`) for a job.
    pub fn sbatch_args(&self, spec: &JobSpec, files: &JobFiles) -> Vec<String> {
        // Absolute, so the job's working directory in `squeue` identifies the folder exactly
        // (`adopt_unrecorded` compares them).
        let folder = std::path::absolute(&spec.folder).unwrap_or_else(|_| spec.folder.clone());
        let mut args = vec![
            format!("--job-name={}", job_name(spec)),
            format!("--output={}", files.output_pattern().display()),
            format!("--chdir={}", folder.display()),
        ];
        // The user's resources and extra arguments come last so they win over ours.
        args.extend(self.settings.sbatch_args());
        args.push(files.script().display().to_string());
        args.push(self.adapter.display().to_string());
        args.push("slurm-job".to_string());
        args.push(files.dir.display().to_string());
        args.push("--".to_string());
        args.extend(self.worker.iter().cloned());
        args
    }

    fn handle(&self, id: JobId, spec: &JobSpec) -> JobHandle {
        let monitor = self.monitor();
        let files = JobFiles::of_experiment(&spec.folder);
        let who = format!("Slurm job {id} (worker `{}`)", self.worker.join(" "));
        JobHandle::spawn(Some(id.to_string()), move |channel| {
            follow(monitor, id, files, who, channel)
        })
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    /// Writes the job files and submits the job (`sbatch` answers at once; the job may wait in
    /// the queue).
    fn start(&self, spec: &JobSpec) -> Result<JobHandle, JobFailure> {
        let broken = JobFailure::Broken;
        let files = JobFiles::of_experiment(&spec.folder);
        std::fs::create_dir_all(&files.dir)
            .map_err(|e| broken(format!("cannot create {}: {e}", files.dir.display())))?;
        files
            .clear_previous()
            .map_err(|e| broken(format!("cannot clear {}: {e}", files.dir.display())))?;
        write_atomic(&files.job(), format!("{}\n", spec.job.to_line()).as_bytes())
            .and_then(|()| write_atomic(&files.script(), SCRIPT.as_bytes()))
            .map_err(|e| broken(format!("{e:#}")))?;
        let id = client::submit(&self.sbatch_args(spec, &files)).map_err(broken)?;
        // Fault injection for the test suite: dies like `kill -9` in the window between Slurm's
        // answer and the study's record of the id, which `adopt_unrecorded` must cover.
        if std::env::var_os("METRICBENCH_TEST_ABORT_AFTER_SBATCH").is_some() {
            eprintln!("METRICBENCH_TEST_ABORT_AFTER_SBATCH: aborting after submitting job {id}");
            std::process::abort();
        }
        Ok(self.handle(id, spec))
    }

    /// Follows the job again; only `spec.folder` is used (the job already has its files).
    fn reattach(&self, job_id: &str, spec: &JobSpec) -> Result<Option<JobHandle>, JobFailure> {
        match job_id.parse::<JobId>() {
            Ok(id) => Ok(Some(self.handle(id, spec))),
            Err(_) => Ok(None),
        }
    }

    /// Asks Slurm for jobs named after the folder's job and working in that folder. One still
    /// queued or running is followed (its files are the ones the dead coordinator wrote); any
    /// further such job is cancelled, so the folder has one writer.
    fn adopt_unrecorded(&self, spec: &JobSpec) -> Result<Option<JobHandle>, JobFailure> {
        let folder = std::path::absolute(&spec.folder).unwrap_or_else(|_| spec.folder.clone());
        let name = job_name(spec);
        let found = client::jobs_named(&name).map_err(JobFailure::Broken)?;
        let mut live: Vec<JobId> = found
            .iter()
            // Not COMPLETING: a job on its way out (cancelled by a Ctrl-C'd coordinator, or whose
            // worker has exited) is not worth following; the trial starts again instead.
            .filter(|j| matches!(j.state.as_str(), "PENDING" | "CONFIGURING" | "RUNNING"))
            .filter(|j| Path::new(&j.work_dir) == folder)
            .map(|j| j.id)
            .collect();
        live.sort_unstable();
        let Some(newest) = live.pop() else {
            return Ok(None);
        };
        for extra in live {
            client::cancel_now(extra).map_err(JobFailure::Broken)?;
        }
        Ok(Some(self.handle(newest, spec)))
    }
}

/// The job's task: reads the events file as it grows, answers controls, and ends when the worker
/// wrote its exit status or Slurm says the job ended.
async fn follow(
    monitor: Arc<Monitor>,
    id: JobId,
    files: JobFiles,
    who: String,
    mut channel: JobChannel,
) -> Result<JobOutcome, JobFailure> {
    monitor.track(id);
    let result = follow_until_end(&monitor, id, &files, &who, &mut channel).await;
    monitor.untrack(id);
    result
}

/// Passes the events completed since the last call on; `Err` for a line breaking the protocol.
fn read_events(
    follower: &mut LineFollower,
    reader: &mut EventReader,
    channel: &JobChannel,
    path: &Path,
) -> Result<bool, String> {
    let lines = follower
        .poll()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut ended = false;
    for line in lines {
        if let Some(event) = reader
            .line(&line)
            .map_err(|why| format!("{why} (in {})", path.display()))?
        {
            ended |= matches!(
                event,
                crate::protocol::Event::Result { .. } | crate::protocol::Event::Error { .. }
            );
            channel.event(event);
        }
    }
    Ok(ended)
}

async fn follow_until_end(
    monitor: &Monitor,
    id: JobId,
    files: &JobFiles,
    who: &str,
    channel: &mut JobChannel,
) -> Result<JobOutcome, JobFailure> {
    let events = files.events();
    let mut follower = LineFollower::new(events.clone());
    let mut reader = EventReader::default();
    let mut polled = monitor.subscribe();
    loop {
        match read_events(&mut follower, &mut reader, channel, &events) {
            // The worker is near its end: ask Slurm soon rather than after a backed-off pause.
            Ok(true) => monitor.poke(),
            Ok(false) => {}
            Err(_) => {
                // A worker breaking the protocol is stopped, as a local one would be.
                let _ = client::cancel(id, None).await;
                return reader.finish(who, JobExit::Unknown(String::new()), "");
            }
        }
        if let Some(status) = files.read_exit_status() {
            // The worker has exited: whatever it wrote before is complete.
            let _ = read_events(&mut follower, &mut reader, channel, &events);
            let tails = tails(id, files);
            return reader.finish(
                who,
                JobExit::Exited {
                    success: status == "0",
                    status,
                },
                &tails,
            );
        }
        let seen = monitor.seen(id).map_err(JobFailure::Broken)?;
        let ended = match &seen {
            Seen::Unknown => false,
            Seen::InQueue(e) => !e.is_active(),
            Seen::Gone => true,
        };
        if ended {
            // The adapter writes the exit status just before the job ends; give a shared
            // filesystem a moment to show it and the last events.
            tokio::time::sleep(EVENTS_POLL).await;
            let _ = read_events(&mut follower, &mut reader, channel, &events);
            if let Some(status) = files.read_exit_status() {
                return reader.finish(
                    who,
                    JobExit::Exited {
                        success: status == "0",
                        status,
                    },
                    &tails(id, files),
                );
            }
            let slurm = match client::details(id).await {
                Ok(Some(d)) => d.describe(),
                Ok(None) => "Slurm no longer knows the job (squeue and scontrol)".to_string(),
                Err(e) => format!("its state could not be read: {e}"),
            };
            let hint = if events.exists() {
                String::new()
            } else {
                format!(
                    "; the job never wrote {}: is the study folder on a filesystem the compute \
                     nodes share, at the same path?",
                    events.display()
                )
            };
            let tails = tails(id, files);
            let why = format!(
                "Slurm job {id} ended before its worker finished ({slurm}){}{hint}{tails}",
                out_of_memory_note(&slurm, &tails)
            );
            return reader.finish(who, JobExit::Unknown(why), "");
        }
        tokio::select! {
            _ = tokio::time::sleep(EVENTS_POLL) => {}
            _ = polled.changed() => {}
            control = channel.control() => match control {
                Control::Stop => {
                    if let Err(e) = write_atomic(&files.stop(), b"stop\n") {
                        eprintln!("warning: cannot ask Slurm job {id} to stop: {e:#}");
                    }
                }
                Control::Kill => {
                    if let Err(e) = client::cancel(id, None).await {
                        eprintln!("warning: cannot cancel Slurm job {id}: {e}");
                    }
                    monitor.poke();
                }
            },
        }
    }
}

/// Says plainly when Slurm killed the job for its memory: with cgroups the state is
/// OUT_OF_MEMORY; with memory sampling (`OverMemoryKill`) the state is only FAILED or CANCELLED and
/// slurmstepd's words in the job's output are the evidence.
fn out_of_memory_note(slurm: &str, tails: &str) -> &'static str {
    let lower = tails.to_ascii_lowercase();
    if slurm.contains("OUT_OF_MEMORY")
        || lower.contains("exceeded job memory limit")
        || lower.contains("exceeded memory limit")
        || lower.contains("oom-kill")
    {
        ": out of memory, the job used more than its `mem` (raise slurm.mem or lower the batch size)"
    } else {
        ""
    }
}

/// The last lines of the job's Slurm output and of the worker's stderr, for failure messages.
fn tails(id: JobId, files: &JobFiles) -> String {
    let mut t = String::new();
    if let Some(s) = tail(&files.output(id)) {
        t.push_str(&s);
    }
    if let Some(s) = files
        .dir
        .parent()
        .and_then(|p| tail(&p.join("logs/worker_stderr.log")))
    {
        t.push_str(&s);
    }
    t
}
