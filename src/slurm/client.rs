//! The Slurm commands metricbench uses, each run as an argv list (never through a shell):
//! `sbatch --parsable` to submit, one `squeue` per poll for every job at once, `scontrol show job`
//! for a finished job's exit code and reason, and `scancel`. None of them needs Slurm's accounting
//! database (`sacct`/slurmdbd), which many clusters and every test cluster lack.

use std::collections::HashMap;
use std::process::Output;
use tokio::process::Command;

/// A Slurm job id as `sbatch --parsable` prints it (without a `;cluster` suffix).
pub type JobId = u64;

/// Runs one Slurm command; a missing program or a non-zero exit becomes a message that quotes
/// Slurm's own words.
async fn run(program: &str, args: &[String]) -> Result<Output, String> {
    let out = Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| not_started(program, e))?;
    Ok(out)
}

fn not_started(program: &str, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "`{program}` was not found on PATH: --executor slurm needs the Slurm client commands \
             (run metricbench on a login node of the cluster, or start the local test cluster \
             with scripts/slurm-local.sh up)"
        )
    } else {
        format!("cannot run `{program}`: {e}")
    }
}

fn quoted_failure(program: &str, args: &[String], out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = if stderr.trim().is_empty() {
        stdout.trim().to_string()
    } else {
        stderr.trim().to_string()
    };
    format!(
        "`{program} {}` failed ({}): {said}",
        args.join(" "),
        out.status
    )
}

/// Submits a batch job; `args` are sbatch's options, the script and the script's arguments.
/// Returns the job id, or Slurm's refusal quoted.
/// Blocking: `sbatch` answers at once (it only queues the job).
pub fn submit(args: &[String]) -> Result<JobId, String> {
    let mut full = vec!["--parsable".to_string()];
    full.extend(args.iter().cloned());
    let out = std::process::Command::new("sbatch")
        .args(&full)
        .output()
        .map_err(|e| not_started("sbatch", e))?;
    if !out.status.success() {
        return Err(quoted_failure("sbatch", &full, &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_parsable(&text).ok_or_else(|| {
        format!(
            "sbatch accepted the job but printed no job id (expected `ID` or `ID;CLUSTER`): {:?}",
            text.trim()
        )
    })
}

/// `sbatch --parsable` prints `ID` or `ID;CLUSTER` (possibly after warnings on other lines).
pub fn parse_parsable(text: &str) -> Option<JobId> {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A job's state as `squeue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Slurm's state name: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT,
    /// OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, ...
    pub state: String,
    /// Why it is pending or why it ended (`Resources`, `Priority`, `JobLaunchFailure`, `None`).
    pub reason: String,
}

impl QueueEntry {
    /// Pending, configuring or running: the job may still write events.
    pub fn is_active(&self) -> bool {
        is_active_state(&self.state)
    }
}

/// States in which a job has not ended yet.
pub fn is_active_state(state: &str) -> bool {
    matches!(
        state,
        "PENDING"
            | "CONFIGURING"
            | "RUNNING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
    )
}

const QUEUE_FORMAT: &str = "%i|%T|%r";

/// States of the given jobs with ONE `squeue` call, however many there are. A job missing from the
/// answer has left Slurm's memory (finished longer ago than the cluster's MinJobAge, or never
/// existed).
pub async fn queue(ids: &[JobId]) -> Result<HashMap<JobId, QueueEntry>, String> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let args = vec![
        "--noheader".to_string(),
        "--states=all".to_string(),
        format!("--jobs={list}"),
        format!("--format={QUEUE_FORMAT}"),
    ];
    let out = run("squeue", &args).await?;
    if !out.status.success() {
        // squeue refuses the whole list when none of its ids is known any more.
        if String::from_utf8_lossy(&out.stderr).contains("Invalid job id") {
            return Ok(HashMap::new());
        }
        return Err(quoted_failure("squeue", &args, &out));
    }
    Ok(parse_queue(&String::from_utf8_lossy(&out.stdout)))
}

/// Lines `ID|STATE|REASON` (array and het-job ids such as `12_3` are not ours and are skipped).
pub fn parse_queue(text: &str) -> HashMap<JobId, QueueEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim().parse().ok()?;
            let state = parts.next()?.trim().to_string();
            let reason = parts.next().unwrap_or("").trim().to_string();
            Some((id, QueueEntry { state, reason }))
        })
        .collect()
}

/// A job found by name: its id, state and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedJob {
    pub id: JobId,
    pub state: String,
    pub work_dir: String,
}

/// Every job Slurm still knows under `name` (any user's, any state), with ONE `squeue` call.
/// Blocking: asked once per interrupted trial when a study resumes.
pub fn jobs_named(name: &str) -> Result<Vec<NamedJob>, String> {
    let args = vec![
        "--noheader".to_string(),
        "--states=all".to_string(),
        format!("--name={name}"),
        "--format=%i|%T|%Z".to_string(),
    ];
    let out = std::process::Command::new("squeue")
        .args(&args)
        .output()
        .map_err(|e| not_started("squeue", e))?;
    if !out.status.success() {
        return Err(quoted_failure("squeue", &args, &out));
    }
    Ok(parse_named(&String::from_utf8_lossy(&out.stdout)))
}

/// Lines `ID|STATE|WORKDIR` (a work dir may itself contain `|`; array ids are skipped).
pub fn parse_named(text: &str) -> Vec<NamedJob> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim().parse().ok()?;
            let state = parts.next()?.trim().to_string();
            let work_dir = parts.next().unwrap_or("").trim().to_string();
            Some(NamedJob {
                id,
                state,
                work_dir,
            })
        })
        .collect()
}

/// What `scontrol show job` says about a job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobDetails {
    pub state: String,
    pub reason: String,
    /// `EXIT:SIGNAL`, e.g. `0:0`, `1:0`, `0:9`.
    pub exit_code: String,
}

impl JobDetails {
    pub fn describe(&self) -> String {
        let mut s = format!("Slurm state {}", self.state);
        if !self.reason.is_empty() && self.reason != "None" {
            s.push_str(&format!(", reason {}", self.reason));
        }
        if !self.exit_code.is_empty() {
            s.push_str(&format!(", exit code {}", self.exit_code));
        }
        s
    }
}

/// `scontrol show job -o ID`; `None` when Slurm no longer knows the job.
pub async fn details(id: JobId) -> Result<Option<JobDetails>, String> {
    let args = vec![
        "show".to_string(),
        "job".to_string(),
        "-o".to_string(),
        id.to_string(),
    ];
    let out = run("scontrol", &args).await?;
    if !out.status.success() {
        if String::from_utf8_lossy(&out.stderr).contains("Invalid job id") {
            return Ok(None);
        }
        return Err(quoted_failure("scontrol", &args, &out));
    }
    Ok(Some(parse_details(&String::from_utf8_lossy(&out.stdout))))
}

/// Picks `JobState=`, `Reason=` and `ExitCode=` out of `scontrol show job -o` output.
pub fn parse_details(text: &str) -> JobDetails {
    let mut d = JobDetails::default();
    for word in text.split_whitespace() {
        if let Some(v) = word.strip_prefix("JobState=") {
            d.state = v.to_string();
        } else if let Some(v) = word.strip_prefix("Reason=") {
            d.reason = v.to_string();
        } else if let Some(v) = word.strip_prefix("ExitCode=") {
            d.exit_code = v.to_string();
        }
    }
    d
}

/// `scancel ID`, blocking (for the executor's synchronous calls).
pub fn cancel_now(id: JobId) -> Result<(), String> {
    let args = vec![id.to_string()];
    let out = std::process::Command::new("scancel")
        .args(&args)
        .output()
        .map_err(|e| not_started("scancel", e))?;
    if !out.status.success() {
        return Err(quoted_failure("scancel", &args, &out));
    }
    Ok(())
}

/// `scancel ID` (SIGKILL after Slurm's grace period) or, with `signal`, `scancel --signal=SIG ID`
/// (the job keeps running unless the signal ends it).
pub async fn cancel(id: JobId, signal: Option<&str>) -> Result<(), String> {
    let mut args = Vec::new();
    if let Some(sig) = signal {
        args.push(format!("--signal={sig}"));
    }
    args.push(id.to_string());
    let out = run("scancel", &args).await?;
    if !out.status.success() {
        return Err(quoted_failure("scancel", &args, &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_ids_and_queue_lines_are_read() {
        assert_eq!(parse_parsable("1234\n"), Some(1234));
        assert_eq!(parse_parsable("77;cluster2\n"), Some(77));
        assert_eq!(parse_parsable("sbatch: warning: something\n42\n"), Some(42));
        assert_eq!(parse_parsable("Submitted batch job 5\n"), None);
        let q = parse_queue("5|RUNNING|None\n6|PENDING|Resources\n7_1|RUNNING|None\n");
        assert_eq!(q.len(), 2);
        assert!(q[&5].is_active());
        assert_eq!(q[&6].reason, "Resources");
        assert!(!is_active_state("CANCELLED"));
        assert!(!is_active_state("OUT_OF_MEMORY"));
        let named = parse_named("9|RUNNING|/s/study0\n10|CANCELLED|/a|b\n3_1|RUNNING|/x\n");
        assert_eq!(named.len(), 2);
        assert_eq!(named[1].work_dir, "/a|b");
        assert_eq!(named[0].id, 9);
    }

    #[test]
    fn scontrol_fields_are_picked() {
        let d = parse_details(
            "JobId=2 JobName=x UserId=nobody(65534) JobState=FAILED Reason=JobLaunchFailure \
             Dependency=(null) ExitCode=0:53 RunTime=00:00:00",
        );
        assert_eq!(d.state, "FAILED");
        assert_eq!(d.reason, "JobLaunchFailure");
        assert_eq!(d.exit_code, "0:53");
        assert_eq!(
            d.describe(),
            "Slurm state FAILED, reason JobLaunchFailure, exit code 0:53"
        );
    }
}
