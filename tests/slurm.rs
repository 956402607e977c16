//! `metricbench tune --executor slurm` against real Slurm daemons (`scripts/slurm-local.sh up`
//! starts a one-node cluster with 2 CPUs and 2 fake GPUs; `.ci/run` does so before the tests).
//! Every test skips with a message when no Slurm cluster answers.
//!
//! The tests share the cluster's two CPU slots, so they run one at a time (a lock), and their
//! experiment names carry this process's id: Slurm remembers finished jobs for a few minutes and the
//! tests count jobs by name.

mod common;
use common::{fails, python_worker, succeeds, text};

use metricbench::study::storage::{StudyStore, TrialRecord, TrialState};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster lock when a Slurm cluster answers; `None` (after saying why) when there is none.
fn cluster(test: &str) -> Option<MutexGuard<'static, ()>> {
    let answer = Command::new("sinfo")
        .args(["--noheader", "--format=%T"])
        .output();
    let state = match answer {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).to_string(),
        Ok(out) => {
            eprintln!(
                "SKIPPED {test}: sinfo failed ({}): {} — start a cluster with scripts/slurm-local.sh up",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(_) => {
            eprintln!(
                "SKIPPED {test}: Slurm is not installed (no sinfo) — scripts/slurm-local.sh up \
                 installs and starts a one-node cluster"
            );
            return None;
        }
    };
    if !["idle", "mixed", "allocated", "completing"]
        .iter()
        .any(|s| state.contains(s))
    {
        eprintln!("SKIPPED {test}: the Slurm node is not usable (sinfo: {state:?})");
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|p| p.into_inner()))
}

fn unique(base: &str) -> String {
    format!("{base}{}x", std::process::id())
}

fn tune_command(root: &Path, name: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_metricbench"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tune", "--executor", "slurm", "--experiment_name", name])
        .arg("--root_experiment_folder")
        .arg(root)
        .args(["--worker_command", &python_worker()])
        .args([
            "--example_parameters",
            "{x~BAYESIAN~: [0, 1], y~BAYESIAN~: [0, 1]}",
            "--num_training_sets",
            "1",
        ])
        .args(extra);
    cmd
}

fn trials(study: &Path) -> Vec<TrialRecord> {
    StudyStore::open(&study.join("study.db"))
        .unwrap()
        .trials()
        .unwrap()
}

/// `squeue` lines `id|name|state` of every job Slurm remembers (finished ones for MinJobAge).
fn all_jobs() -> Vec<(u64, String, String)> {
    let out = Command::new("squeue")
        .args(["--noheader", "--states=all", "--format=%i|%j|%T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.trim().split('|');
            Some((
                p.next()?.parse().ok()?,
                p.next()?.to_string(),
                p.next()?.to_string(),
            ))
        })
        .collect()
}

/// Jobs of a study's trials (named `<study><index>`), in id order.
fn trial_jobs(name: &str) -> Vec<(u64, String, String)> {
    let mut jobs: Vec<_> = all_jobs()
        .into_iter()
        .filter(|(_, job, _)| {
            job.strip_prefix(name)
                .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    jobs.sort();
    jobs
}

fn trials_csv(study: &Path) -> Vec<BTreeMap<String, String>> {
    metricbench::study::report::read_csv_rows(&study.join("trials.csv")).unwrap()
}

/// Watches the queue in the background: the most jobs of `name` seen RUNNING at once.
struct Watcher {
    stop: Arc<AtomicBool>,
    max_running: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(name: &str) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let max_running = Arc::new(AtomicUsize::new(0));
        let (s, m, n) = (stop.clone(), max_running.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let running = trial_jobs(&n)
                    .iter()
                    .filter(|(_, _, state)| state == "RUNNING")
                    .count();
                m.fetch_max(running, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        Watcher {
            stop,
            max_running,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.max_running.load(Ordering::Relaxed)
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_six_trial_study_runs_two_jobs_at_a_time_and_records_their_ids() {
    let Some(_cluster) = cluster("a_six_trial_study_runs_two_jobs_at_a_time") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("six");
    let watcher = Watcher::start(&name);
    let all = succeeds(&mut tune_command(
        dir.path(),
        &name,
        &[
            "--bayes_opt_iters",
            "6",
            "--parallel",
            "2",
            "--num_epochs_train",
            "2",
            "--example_seconds_per_epoch",
            "1",
        ],
    ));
    let max_running = watcher.finish();
    assert_eq!(max_running, 2, "two trial jobs should run at once\n{all}");
    let study = dir.path().join(&name);
    let trials = trials(&study);
    assert_eq!(trials.len(), 6);
    // Each trial ran as exactly one Slurm job, whose id study.db and trials.csv both hold.
    let jobs = trial_jobs(&name);
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    let csv = trials_csv(&study);
    for t in &trials {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        let id = t.job_id.clone().expect("a job id");
        let job = jobs.iter().find(|(i, _, _)| i.to_string() == id).unwrap();
        assert_eq!(job.1, t.name);
        assert_eq!(job.2, "COMPLETED");
        assert_eq!(csv[t.index as usize]["job_id"], id);
        // The job's events reached the coordinator through the trial folder.
        let events =
            std::fs::read_to_string(study.join(&t.name).join("slurm/events.jsonl")).unwrap();
        assert!(events.contains("\"event\": \"result\""), "{events}");
    }
    let ids: BTreeSet<_> = trials.iter().map(|t| t.job_id.clone()).collect();
    assert_eq!(ids.len(), 6);
    // The best trial's test evaluation and its ensemble ran as their own jobs.
    assert!(study.join("report.yaml").is_file());
    let best = all_jobs()
        .into_iter()
        .filter(|(_, job, _)| job.starts_with(&name) && job.ends_with("-evaluate"))
        .count();
    assert_eq!(best, 1, "{:?}", all_jobs());
}

#[test]
fn a_job_cancelled_from_outside_fails_its_trial_and_the_study_goes_on() {
    let Some(_cluster) = cluster("a_job_cancelled_from_outside_fails_its_trial") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("cancel");
    let child = tune_command(
        dir.path(),
        &name,
        &[
            "--bayes_opt_iters",
            "3",
            "--num_epochs_train",
            "3",
            "--example_seconds_per_epoch",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Cancel trial 1's job once it runs.
    let target = format!("{name}1");
    let mut cancelled = None;
    wait_for("trial 1's job to run", Duration::from_secs(120), || {
        if let Some((id, _, _)) = trial_jobs(&name)
            .into_iter()
            .find(|(_, job, state)| *job == target && state == "RUNNING")
        {
            let ok = Command::new("scancel")
                .arg(id.to_string())
                .status()
                .unwrap();
            assert!(ok.success());
            cancelled = Some(id);
            return true;
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let trials = trials(&dir.path().join(&name));
    assert_eq!(trials.len(), 3);
    let failed = &trials[1];
    assert_eq!(failed.state, TrialState::Failed, "{failed:?}");
    assert_eq!(failed.job_id, cancelled.map(|i| i.to_string()));
    let error = failed.error.clone().unwrap();
    assert!(error.contains("CANCELLED"), "{error}");
    assert!(
        error.contains(&format!("Slurm job {}", cancelled.unwrap())),
        "{error}"
    );
    assert_eq!(trials[0].state, TrialState::Completed);
    assert_eq!(trials[2].state, TrialState::Completed);
    assert_eq!(trial_jobs(&name).len(), 3);
}

#[test]
fn a_killed_coordinator_re_attaches_to_its_jobs_instead_of_submitting_again() {
    let Some(_cluster) = cluster("a_killed_coordinator_re_attaches") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("reattach");
    let extra = [
        "--bayes_opt_iters",
        "4",
        "--parallel",
        "2",
        "--num_epochs_train",
        "3",
        "--example_seconds_per_epoch",
        "1",
    ];
    let study = dir.path().join(&name);
    let mut child = tune_command(dir.path(), &name, &extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill -9 once both first trials' jobs run and their ids are in study.db.
    wait_for("two running jobs", Duration::from_secs(120), || {
        let running = trial_jobs(&name)
            .iter()
            .filter(|(_, _, s)| s == "RUNNING")
            .count();
        running == 2
            && study.join("study.db").is_file()
            && trials(&study).iter().filter(|t| t.job_id.is_some()).count() == 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before: BTreeMap<u64, Option<String>> = trials(&study)
        .iter()
        .map(|t| (t.index, t.job_id.clone()))
        .collect();
    // Those jobs keep running without the coordinator.
    assert_eq!(
        trial_jobs(&name)
            .iter()
            .filter(|(_, _, s)| s == "RUNNING")
            .count(),
        2
    );

    let all = succeeds(&mut tune_command(dir.path(), &name, &extra));
    assert!(all.contains("re-attached to slurm job"), "{all}");
    let after = trials(&study);
    assert_eq!(after.len(), 4);
    for t in &after {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        if let Some(Some(id)) = before.get(&t.index) {
            assert_eq!(
                t.job_id.as_ref(),
                Some(id),
                "trial {} was resubmitted",
                t.index
            );
        }
        // Attaching is not a new attempt.
        assert_eq!(t.attempts, 1, "{t:?}");
    }
    // Four trial jobs in all: none submitted twice.
    let jobs = trial_jobs(&name);
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let names: BTreeSet<_> = jobs.iter().map(|(_, n, _)| n.clone()).collect();
    assert_eq!(names.len(), 4, "{jobs:?}");
}

#[test]
fn a_coordinator_killed_before_recording_a_job_id_adopts_that_job() {
    let Some(_cluster) = cluster("a_coordinator_killed_before_recording_a_job_id") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("window");
    let extra = [
        "--bayes_opt_iters",
        "2",
        "--num_epochs_train",
        "4",
        "--example_seconds_per_epoch",
        "1",
    ];
    let study = dir.path().join(&name);
    // Dies right after sbatch answered, before the id reaches study.db (the narrowest window).
    let all = fails(
        tune_command(dir.path(), &name, &extra).env("METRICBENCH_TEST_ABORT_AFTER_SBATCH", "1"),
    );
    assert!(all.contains("aborting after submitting job"), "{all}");
    let before = trials(&study);
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].state, TrialState::Running);
    assert!(before[0].job_id.is_none(), "{before:?}");
    let orphan = trial_jobs(&name);
    assert_eq!(orphan.len(), 1, "{orphan:?}");

    let all = succeeds(&mut tune_command(dir.path(), &name, &extra));
    assert!(
        all.contains(&format!("re-attached to slurm job {}", orphan[0].0)),
        "{all}"
    );
    let after = trials(&study);
    assert_eq!(after.len(), 2);
    for t in &after {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        assert_eq!(t.attempts, 1, "{t:?}");
    }
    assert_eq!(after[0].job_id, Some(orphan[0].0.to_string()));
    // The orphan was followed, not joined by a second job in its folder.
    let jobs = trial_jobs(&name);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
}

#[test]
fn a_job_over_its_memory_is_killed_and_its_trial_fails_saying_so() {
    let Some(_cluster) = cluster("a_job_over_its_memory_is_killed") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("oom");
    let all = succeeds(&mut tune_command(
        dir.path(),
        &name,
        &[
            "--bayes_opt_iters",
            "2",
            "--num_epochs_train",
            "1",
            "--example_behaviour_by_trial",
            "{0: oom}",
            "--slurm",
            "{mem: 300M}",
        ],
    ));
    let t = trials(&dir.path().join(&name));
    assert_eq!(t.len(), 2, "{all}");
    assert_eq!(t[0].state, TrialState::Failed, "{all}");
    let e = t[0].error.clone().unwrap();
    assert!(
        e.contains("out of memory, the job used more than its `mem`"),
        "{e}"
    );
    assert!(e.contains("xceeded job memory limit"), "{e}");
    assert_eq!(t[0].attempts, 1);
    assert_eq!(t[1].state, TrialState::Completed, "{all}");
}

#[test]
fn gpu_jobs_see_their_cuda_visible_devices() {
    let Some(_cluster) = cluster("gpu_jobs_see_their_cuda_visible_devices") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("gres");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/examples/python_worker.py");
    // A worker command that records the variable before starting the example worker.
    let worker = format!(
        "[sh, -c, 'echo CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES >&2; exec python3 {}']",
        script.display()
    );
    succeeds(
        tune_command(
            dir.path(),
            &name,
            &[
                "--bayes_opt_iters",
                "2",
                "--parallel",
                "2",
                "--num_epochs_train",
                "1",
                "--example_seconds_per_epoch",
                "1",
                "--slurm",
                "{gres: 'gpu:1', cpus_per_task: 1, time: 10}",
            ],
        )
        .args(["--worker_command", &worker]),
    );
    let study = dir.path().join(&name);
    let mut seen = BTreeSet::new();
    for t in trials(&study) {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        let log =
            std::fs::read_to_string(study.join(&t.name).join("logs/worker_stderr.log")).unwrap();
        let line = log
            .lines()
            .find(|l| l.starts_with("CUDA_VISIBLE_DEVICES="))
            .unwrap_or_else(|| panic!("no CUDA_VISIBLE_DEVICES line in {log}"))
            .to_string();
        seen.insert(line);
    }
    // Each job got one of the node's two (fake) GPUs.
    assert!(
        seen.iter()
            .all(|l| l == "CUDA_VISIBLE_DEVICES=0" || l == "CUDA_VISIBLE_DEVICES=1"),
        "{seen:?}"
    );
}

#[test]
fn the_real_worker_trains_as_a_slurm_job() {
    let Some(_cluster) = cluster("the_real_worker_trains_as_a_slurm_job") else {
        return;
    };
    let worker = Path::new(env!("CARGO_BIN_EXE_metricbench")).with_file_name("metricbench-worker");
    if !worker.is_file() {
        eprintln!(
            "SKIPPED the_real_worker_trains_as_a_slurm_job: {} is not built (cargo build --workspace)",
            worker.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let name = unique("real");
    let all = succeeds(
        Command::new(env!("CARGO_BIN_EXE_metricbench"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["tune", "--executor", "slurm", "--experiment_name", &name])
            .arg("--root_experiment_folder")
            .arg(dir.path())
            .args([
                "--bayes_opt_iters",
                "1",
                "--dataset",
                "{Synthetic: {num_classes: 24, samples_per_class: 8, input_dim: 16}}",
                "--models",
                "{trunk: {MLP: {layer_sizes: [16]}}, embedder: {MLP: {layer_sizes: [8]}}}",
                "--batch_size",
                "16",
                "--num_epochs_train",
                "1",
                "--iterations_per_epoch",
                "3",
                "--num_training_sets",
                "1",
                "--check_untrained_accuracy",
                "false",
                "--device",
                "cpu",
                "--optimizers",
                "{trunk_optimizer: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.01]}}, \
                 embedder_optimizer: {Adam: {lr: 0.001}}}",
                // A libtorch worker holds about 430 MB once the library is loaded, above the local
                // cluster's default of 256 MB per CPU; memory is sampled every second, so without
                // an explicit `mem` the job lived or was killed depending on timing.
                "--slurm",
                "{cpus_per_task: 1, mem: 2G}",
            ]),
    );
    let study = dir.path().join(&name);
    let trials = trials(&study);
    assert_eq!(trials.len(), 1);
    let t = &trials[0];
    assert_eq!(t.state, TrialState::Completed, "{t:?}\n{all}");
    assert!(t.objective_mean.is_some_and(|m| (0.0..=1.0).contains(&m)));
    let events = std::fs::read_to_string(study.join(&t.name).join("slurm/events.jsonl")).unwrap();
    assert!(
        events.contains("\"name\":\"metricbench-worker\""),
        "{events}"
    );
    // The trial was that Slurm job, and Slurm saw it complete.
    let id = t.job_id.clone().unwrap();
    assert!(trial_jobs(&name)
        .iter()
        .any(|(i, _, s)| i.to_string() == id && s == "COMPLETED"));
}

#[test]
fn slurm_refusals_and_lost_jobs_become_clear_failed_trials() {
    let Some(_cluster) = cluster("slurm_refusals_and_lost_jobs_become_clear_failed_trials") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let few = ["--bayes_opt_iters", "3", "--num_epochs_train", "1"];

    // A partition that does not exist: sbatch refuses, and its own message is quoted.
    let name = unique("nopart");
    let all = fails(
        tune_command(dir.path(), &name, &few).args(["--slurm", "{partition: nosuchpartition}"]),
    );
    assert!(all.contains("Invalid partition name specified"), "{all}");
    assert!(all.contains("the first 3 trials all failed"), "{all}");
    for t in trials(&dir.path().join(&name)) {
        assert_eq!(t.state, TrialState::Failed);
        assert!(t.job_id.is_none());
        assert!(t.error.unwrap().contains("--partition=nosuchpartition"));
    }

    // No sbatch on PATH (not a login node).
    let name = unique("nosbatch");
    let all = fails(tune_command(dir.path(), &name, &few).env("PATH", "/nonexistent"));
    assert!(
        all.contains("`sbatch` was not found on PATH") && all.contains("slurm-local.sh"),
        "{all}"
    );

    // Extra sbatch arguments must be an argv list, never a shell string.
    let name = unique("shell");
    let all = fails(
        tune_command(dir.path(), &name, &few).args(["--slurm", "{sbatch: '--exclusive --mem=1G'}"]),
    );
    assert!(all.contains("slurm.sbatch must be a list"), "{all}");

    // A study folder the job cannot see (here: the job runs as `nobody`, and the folder is
    // private to root, as a folder on a disk the node lacks would be): failed trials saying so.
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        private.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let name = unique("invisible");
    let all = fails(
        tune_command(private.path(), &name, &few).args(["--slurm", "{sbatch: [--uid=nobody]}"]),
    );
    assert!(all.contains("filesystem the compute nodes share"), "{all}");
    let trials_invisible = trials(&private.path().join(&name));
    assert_eq!(trials_invisible.len(), 3);
    for t in &trials_invisible {
        assert_eq!(t.state, TrialState::Failed);
        let e = t.error.clone().unwrap();
        assert!(e.contains("ended before its worker finished"), "{e}");
    }

    // A worker killed on the node, one that hangs past --trial_timeout: failed, each counted
    // once, and the study continues with the other trials.
    let name = unique("killed");
    succeeds(&mut tune_command(
        dir.path(),
        &name,
        &[
            "--bayes_opt_iters",
            "4",
            "--num_epochs_train",
            "1",
            "--trial_timeout",
            "8",
            "--example_behaviour_by_trial",
            "{1: crash, 2: hang}",
        ],
    ));
    let study = dir.path().join(&name);
    let t = trials(&study);
    assert_eq!(t.len(), 4);
    assert_eq!(t[0].state, TrialState::Completed);
    assert_eq!(t[1].state, TrialState::Failed);
    assert!(
        t[1].error
            .as_deref()
            .unwrap()
            .contains("exited (3) without sending a result"),
        "{:?}",
        t[1].error
    );
    assert_eq!(t[2].state, TrialState::Failed);
    assert!(t[2].error.as_deref().unwrap().contains("--trial_timeout"));
    assert_eq!(t[3].state, TrialState::Completed);
    // The hung trial's job was cancelled, not left running.
    let jobs = trial_jobs(&name);
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let hung = jobs
        .iter()
        .find(|(_, n, _)| *n == format!("{name}2"))
        .unwrap();
    wait_for(
        "the hung job to be cancelled",
        Duration::from_secs(30),
        || {
            trial_jobs(&name)
                .iter()
                .any(|(i, _, s)| *i == hung.0 && s == "CANCELLED")
        },
    );
}

#[test]
fn ctrl_c_cancels_the_running_jobs_and_the_next_run_resubmits_them() {
    let Some(_cluster) = cluster("ctrl_c_cancels_the_running_jobs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("ctrlc");
    let extra = [
        "--bayes_opt_iters",
        "2",
        "--parallel",
        "2",
        "--num_epochs_train",
        "3",
        "--example_seconds_per_epoch",
        "1",
    ];
    let study = dir.path().join(&name);
    let child = tune_command(dir.path(), &name, &extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("two running jobs", Duration::from_secs(120), || {
        trial_jobs(&name)
            .iter()
            .filter(|(_, _, s)| s == "RUNNING")
            .count()
            == 2
    });
    // SAFETY: kill(2) on the child's pid, which it still is (not yet waited for).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("interrupted: the running trials' slurm jobs were cancelled"),
        "{all}"
    );
    wait_for("both jobs cancelled", Duration::from_secs(30), || {
        trial_jobs(&name)
            .iter()
            .filter(|(_, _, s)| s == "CANCELLED")
            .count()
            == 2
    });
    // The trials are not failed: the next run submits them again.
    for t in trials(&study) {
        assert_eq!(t.state, TrialState::Running, "{t:?}");
        assert!(t.job_id.is_none(), "{t:?}");
    }
    succeeds(&mut tune_command(dir.path(), &name, &extra));
    let after = trials(&study);
    assert_eq!(after.len(), 2);
    for t in &after {
        assert_eq!(t.state, TrialState::Completed, "{t:?}");
        assert_eq!(t.attempts, 2, "{t:?}");
    }
    assert_eq!(trial_jobs(&name).len(), 4);
}
