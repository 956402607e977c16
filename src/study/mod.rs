//! Tuning studies (SPEC §5.2–§5.4): `metricbench tune`.
//!
//! The study folder `<root>/<name>/` holds the frozen configs, `study.db` (the single source of truth,
//! see [`storage`]), one experiment folder per trial (`<name><i>/`), `trials.csv`,
//! `best_parameters.yaml` and, after the search, `report.yaml` with the best trial's test accuracy
//! and its reproductions.
//!
//! Crash-proofing: a trial is recorded (with its parameters) before its folder is written or its
//! worker started, and every state change is a transaction. Re-running the same command continues:
//! finished trials are kept, trials that were queued or running are run again with the same
//! parameters (from their latest checkpoint when one exists), and the optimiser is rebuilt from the
//! store. Workers die with the coordinator (`PR_SET_PDEATHSIG`), and a lock file keeps two
//! coordinators off one study, so a killed coordinator never leaves an orphan writing into a trial
//! that its successor resumes.

pub mod plots;
pub mod pruner;
pub mod report;
pub mod sampler;
pub mod storage;

use crate::args::{as_string, CommonArgs};
use crate::cli_values::CliValue;
use crate::config::{self, Merged};
use crate::executor::{self, JobFailure, JobOutcome};
use crate::experiment;
use crate::fsutil::write_atomic;
use crate::protocol::{Action, Command, Event, Job, ResumeFrom, TrialInfo, PROTOCOL_VERSION};
use crate::search_space::SearchSpace;
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sampler::{to_json_map, Sampler};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use storage::{StudyStore, TrialEnd, TrialRecord, TrialState};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The command line of `tune`.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub experiment_name: String,
    pub root_experiment_folder: PathBuf,
    pub dataset_root: PathBuf,
    pub common: CommonArgs,
    /// Number of trials of the search (`--bayes_opt_iters`).
    pub iterations: u64,
    /// Workers kept busy at once (`--parallel`).
    pub parallel: usize,
    /// Retrainings of the best trial (`--reproductions`).
    pub reproductions: usize,
    /// `--prune median`.
    pub prune: bool,
    /// Evaluations a trial makes before it may be pruned (`--prune_warmup`).
    pub prune_warmup: usize,
    /// A trial running longer is killed and failed (`--trial_timeout SECS`).
    pub trial_timeout: Option<Duration>,
    /// `--executor local|slurm`; when absent, the config's `executor` key, else local.
    pub executor: Option<ExecutorKind>,
}

/// Where a study's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Worker processes on this machine (the default).
    Local,
    /// One Slurm batch job per trial, test evaluation and reproduction.
    Slurm,
}

impl ExecutorKind {
    fn parse(text: &str, origin: &str) -> Result<ExecutorKind> {
        match text {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            other => bail!("{origin} `{other}` is not an executor; use `local` or `slurm`"),
        }
    }
}

fn positive_int(cv: &CliValue) -> Result<u64> {
    match &cv.value {
        Value::Number(n) if n.as_u64().is_some_and(|x| x > 0) => Ok(n.as_u64().unwrap_or(1)),
        Value::String(s) if s.parse::<u64>().is_ok_and(|x| x > 0) => Ok(s.parse().unwrap_or(1)),
        other => bail!(
            "--{} expects a positive integer, got {}",
            cv.key,
            serde_yaml::to_string(other).unwrap_or_default().trim()
        ),
    }
}

fn non_negative_int(cv: &CliValue) -> Result<u64> {
    match &cv.value {
        Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0)),
        Value::String(s) if s.parse::<u64>().is_ok() => Ok(s.parse().unwrap_or(0)),
        other => bail!(
            "--{} expects a non-negative integer, got {}",
            cv.key,
            serde_yaml::to_string(other).unwrap_or_default().trim()
        ),
    }
}

impl TuneArgs {
    pub fn from_tokens(tokens: &[String]) -> Result<TuneArgs> {
        let common = CommonArgs::from_tokens(tokens)?;
        let experiment_name = common.require_experiment_name()?.to_string();
        let mut iterations = None;
        let mut parallel = 1;
        let mut reproductions = 0;
        let mut prune = false;
        let mut prune_warmup = 1;
        let mut trial_timeout = None;
        let mut executor = None;
        for cv in &common.tool_flags {
            match cv.key.as_str() {
                "bayes_opt_iters" | "bayesian_optimization_n_iter" => {
                    iterations = Some(positive_int(cv)?)
                }
                "parallel" => parallel = positive_int(cv)? as usize,
                "reproductions" => reproductions = non_negative_int(cv)? as usize,
                "prune" => match as_string(cv)?.as_str() {
                    "median" => prune = true,
                    "none" => prune = false,
                    other => bail!("--prune expects `median` or `none`, got `{other}`"),
                },
                "prune_warmup" => prune_warmup = non_negative_int(cv)? as usize,
                "trial_timeout" => {
                    trial_timeout = Some(Duration::from_secs(positive_int(cv)?));
                }
                "executor" => executor = Some(ExecutorKind::parse(&as_string(cv)?, "--executor")?),
                other => bail!("--{other} cannot be used with `metricbench tune`"),
            }
        }
        let iterations = iterations
            .context("--bayes_opt_iters N is required: the number of trials of the search")?;
        Ok(TuneArgs {
            experiment_name,
            root_experiment_folder: common.root_experiment_folder.clone(),
            dataset_root: common.dataset_root.clone(),
            common,
            iterations,
            parallel,
            reproductions,
            prune,
            prune_warmup,
            trial_timeout,
            executor,
        })
    }
}

/// Trials failing one after another before any trial completed stop the study (a broken config
/// should not burn the whole budget); this many, or `--parallel` if larger.
const MIN_FAILURES_BEFORE_GIVING_UP: usize = 3;

/// Everything a running study needs.
struct Study {
    args: TuneArgs,
    folder: PathBuf,
    merged: Merged,
    space: SearchSpace,
    store: StudyStore,
    primary_metric: String,
    splits_to_eval: Vec<String>,
    worker: Vec<String>,
    /// The `slurm:` section when the study runs on Slurm; `None` runs workers locally.
    slurm: Option<crate::slurm::SlurmSettings>,
    /// Started inside the async runtime on first use (it owns the poller task).
    slurm_executor: std::sync::OnceLock<std::sync::Arc<crate::slurm::SlurmExecutor>>,
}

/// What `tune` returns (also printed).
#[derive(Debug, Clone)]
pub struct StudySummary {
    pub trials: Vec<TrialRecord>,
    pub best: Option<TrialRecord>,
    pub report: Option<report::TestReport>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// An exclusive lock on the study folder for the lifetime of the value.
struct StudyLock(#[allow(dead_code)] std::fs::File);

fn lock_study(folder: &Path) -> Result<StudyLock> {
    use std::os::fd::AsRawFd;
    let path = folder.join(".study.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another `metricbench tune` is running on {}; wait for it or stop it first",
            folder.display()
        );
    }
    Ok(StudyLock(file))
}

fn primary_metric(combined: &serde_yaml::Mapping) -> String {
    ["eval_metric_for_best_epoch", "eval_primary_metric"]
        .iter()
        .find_map(|k| combined.get(*k).and_then(Value::as_str))
        .unwrap_or("mean_average_precision_at_r")
        .to_string()
}

/// Applies command-line overrides to configs saved earlier (a resumed study): each override merges
/// into the categories that have its key, or is added to the last category.
fn apply_overrides(saved: &Merged, overrides: &[CliValue]) -> Result<Merged> {
    let mut categories = saved.categories.clone();
    for cv in overrides {
        let one = config::cli_mapping(std::slice::from_ref(cv));
        let key = Value::String(cv.key.clone());
        let mut applied = false;
        for (_, map) in categories.iter_mut() {
            if map.contains_key(&key) {
                *map = config::merge(map, &one, config::COMMAND_LINE)?;
                applied = true;
            }
        }
        if !applied {
            if let Some((_, last)) = categories.last_mut() {
                *last = config::merge(last, &one, config::COMMAND_LINE)?;
            }
        }
    }
    Ok(Merged { categories })
}

/// True when a trial folder holds a checkpoint to resume from (`<fold>/saved_models/*`).
fn has_checkpoint(trial_folder: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(trial_folder) else {
        return false;
    };
    entries.flatten().any(|fold| {
        std::fs::read_dir(fold.path().join("saved_models"))
            .map(|mut models| models.next().is_some())
            .unwrap_or(false)
    })
}

/// Removes what a crashed attempt left in a trial folder, keeping nothing: the trial is rewritten
/// from its recorded parameters. Only called on folders recorded in this study's store.
fn clear_trial_folder(folder: &Path) -> Result<()> {
    if folder.exists() {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("cannot clear {} to restart its trial", folder.display()))?;
    }
    Ok(())
}

impl Study {
    /// Opens an existing study (resume) or creates a new one.
    fn open(args: TuneArgs) -> Result<(Study, StudyLock)> {
        experiment::validate_name(&args.experiment_name)?;
        let root = &args.root_experiment_folder;
        if !root.is_dir() {
            let parent = root
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!(
                    "--root_experiment_folder {} does not exist, and neither does its parent {}",
                    root.display(),
                    parent.display()
                );
            }
            std::fs::create_dir_all(root)
                .with_context(|| format!("cannot create {}", root.display()))?;
        }
        let folder = root.join(&args.experiment_name);
        let db_path = folder.join("study.db");
        let resuming = db_path.is_file();
        if !resuming && folder.exists() {
            let foreign = std::fs::read_dir(&folder)
                .with_context(|| format!("cannot list {}", folder.display()))?
                .flatten()
                .any(|e| {
                    let n = e.file_name();
                    n != "configs" && n != ".study.lock"
                });
            if foreign {
                bail!(
                    "{} already exists and is not a study folder (it has no study.db); choose \
                     another --experiment_name",
                    folder.display()
                );
            }
        }
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let lock = lock_study(&folder)?;

        let (merged, store) = if resuming {
            let store = StudyStore::open(&db_path)?;
            if let Some(name) = store.get_meta("experiment_name")? {
                if name != args.experiment_name {
                    bail!(
                        "{} belongs to the study {name:?}, not {:?}",
                        folder.display(),
                        args.experiment_name
                    );
                }
            }
            let saved = experiment::load_saved_configs(&folder)?;
            let merged = apply_overrides(&saved, &args.common.overrides)?;
            let diffs = experiment::config_diffs(&saved, &merged);
            if !diffs.is_empty() {
                let n = store.trials()?.len();
                let diff_folder = folder
                    .join("configs")
                    .join(format!("resume_config_diffs_{n}"));
                for (category, map) in &diffs {
                    let text = serde_yaml::to_string(map)?;
                    write_atomic(
                        &diff_folder.join(format!("{category}.yaml")),
                        text.as_bytes(),
                    )?;
                }
                experiment::save_configs(&folder, &merged)?;
                eprintln!(
                    "note: the command line changed the study's configs; the changes are recorded in {}",
                    diff_folder.display()
                );
            }
            (merged, store)
        } else {
            let merged = args.common.load()?;
            config::check_object_specs(&merged, &args.common.selection)?;
            experiment::save_configs(&folder, &merged)?;
            let store = StudyStore::open(&db_path)?;
            store.set_meta("experiment_name", &args.experiment_name)?;
            store.set_meta("created_at", &storage::chrono_like_now())?;
            (merged, store)
        };
        let space = SearchSpace::from_merged(&merged)?;
        if space.is_empty() {
            bail!(
                "the config has no search parameters (keys ending in ~BAYESIAN~, ~LOG_BAYESIAN~, \
                 ~INT_BAYESIAN~ or ~CHOICE~), so there is nothing to tune; use `metricbench run`, \
                 or add e.g. --config_loss_and_miners default bayes_example"
            );
        }
        let names = serde_json::to_string(&space.names())?;
        match store.get_meta("parameters")? {
            Some(previous) if previous != names => bail!(
                "{} belongs to a different study: its parameters are {previous}, this command's are \
                 {names}; choose another --experiment_name",
                folder.display()
            ),
            Some(_) => {}
            None => store.set_meta("parameters", &names)?,
        }
        let combined = merged.combined();
        let worker = executor::worker_argv(combined.get("worker_command"))?;
        let kind = match (args.executor, combined.get("executor")) {
            (Some(kind), _) => kind,
            (None, None | Some(Value::Null)) => ExecutorKind::Local,
            (None, Some(Value::String(s))) => ExecutorKind::parse(s, "the config's executor")?,
            (None, Some(other)) => bail!(
                "the config's executor must be `local` or `slurm`, not {}",
                config::kind_name(other)
            ),
        };
        let slurm = match kind {
            ExecutorKind::Local => None,
            ExecutorKind::Slurm => Some(crate::slurm::SlurmSettings::from_config(
                combined.get("slurm"),
            )?),
        };
        let study = Study {
            primary_metric: primary_metric(&combined),
            splits_to_eval: crate::run::splits_to_eval(&combined)?,
            args,
            folder,
            merged,
            space,
            store,
            worker,
            slurm,
            slurm_executor: std::sync::OnceLock::new(),
        };
        Ok((study, lock))
    }

    /// The Slurm executor when the study runs on Slurm (call inside the runtime).
    fn slurm_executor(&self) -> Result<Option<std::sync::Arc<crate::slurm::SlurmExecutor>>> {
        let Some(settings) = &self.slurm else {
            return Ok(None);
        };
        if let Some(e) = self.slurm_executor.get() {
            return Ok(Some(e.clone()));
        }
        let e = std::sync::Arc::new(crate::slurm::SlurmExecutor::new(settings.clone())?);
        Ok(Some(self.slurm_executor.get_or_init(|| e).clone()))
    }

    fn trial_folder(&self, name: &str) -> PathBuf {
        self.folder.join(name)
    }

    fn seed(&self) -> u64 {
        self.merged
            .combined()
            .get("seed")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The job of one trial: its config with the trial's values, written into its folder.
    fn prepare_trial(&self, record: &TrialRecord, fresh: bool) -> Result<Job> {
        let folder = self.trial_folder(&record.name);
        let assignment: crate::search_space::Assignment = record
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let concrete = self.space.substitute_merged(&self.merged, &assignment)?;
        let resume = if !fresh && has_checkpoint(&folder) {
            Some(ResumeFrom::Latest)
        } else {
            clear_trial_folder(&folder)?;
            None
        };
        experiment::save_configs(&folder, &concrete)?;
        let params_yaml = serde_yaml::to_string(&config::json_to_yaml(
            &serde_json::Value::Object(record.parameters.clone()),
        ))?;
        write_atomic(
            &folder.join("trial_parameters.yaml"),
            params_yaml.as_bytes(),
        )?;
        self.job(
            &folder,
            &concrete,
            Action::Train,
            resume,
            self.splits_to_eval.clone(),
            Some(record),
        )
    }

    fn job(
        &self,
        folder: &Path,
        merged: &Merged,
        action: Action,
        resume: Option<ResumeFrom>,
        splits_to_eval: Vec<String>,
        trial: Option<&TrialRecord>,
    ) -> Result<Job> {
        let mut config_json = config::yaml_to_json(&Value::Mapping(merged.combined()))?;
        if let Some(obj) = config_json.as_object_mut() {
            obj.entry("dataset_root").or_insert_with(|| {
                serde_json::Value::String(self.args.dataset_root.to_string_lossy().into_owned())
            });
        }
        let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
        Ok(Job {
            protocol: PROTOCOL_VERSION,
            action,
            experiment_folder: absolute.to_string_lossy().into_owned(),
            config: config_json,
            resume,
            splits_to_eval,
            trial: trial.map(|t| TrialInfo {
                index: t.index,
                parameters: t.parameters.clone(),
            }),
        })
    }
}

/// A message from a running trial's task to the study loop.
enum Message {
    Event(u64, Event),
    /// The trial's Slurm job was submitted with this id.
    Submitted(u64, u64),
}

/// Runs a job under `--trial_timeout`; dropping the job's future on expiry kills its worker (or
/// cancels its Slurm job).
async fn with_timeout(
    timeout: Option<Duration>,
    run: impl std::future::Future<Output = Result<JobOutcome, JobFailure>>,
) -> Result<JobOutcome, String> {
    match timeout {
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(r) => r.map_err(|e| failure_text(&e)),
            Err(_) => Err(format!(
                "the trial exceeded --trial_timeout ({} s) and its worker was killed",
                limit.as_secs()
            )),
        },
        None => run.await.map_err(|e| failure_text(&e)),
    }
}

/// A trial whose worker is running.
struct Running {
    record: TrialRecord,
    started: Instant,
    stop: mpsc::Sender<Command>,
    prune_requested: bool,
    evaluations: usize,
    bar: ProgressBar,
    latest: String,
}

type TaskResult = (u64, Result<JobOutcome, String>, Option<String>);

/// `metricbench report PATH` for a study folder: rewrites `trials.csv`, `best_parameters.yaml`, the
/// plots and `report.html` from `study.db` (e.g. while the study runs, or after copying it).
pub fn report_command(path: &Path) -> Result<()> {
    let db = path.join("study.db");
    if !db.is_file() {
        bail!(
            "{} is not a study folder (it has no study.db); `metricbench report` reads the folder              of a `metricbench tune` study",
            path.display()
        );
    }
    let store = StudyStore::open(&db)?;
    let merged = experiment::load_saved_configs(path)?;
    let space = SearchSpace::from_merged(&merged)?;
    let combined = merged.combined();
    let metric = primary_metric(&combined);
    let trials = store.trials()?;
    report::write_trial_files(path, &space, &trials, &metric)?;
    let name = store.get_meta("experiment_name")?.unwrap_or_else(|| {
        path.file_name()
            .map_or("study".into(), |n| n.to_string_lossy().into_owned())
    });
    plots::write_html_report(path, &name, &space, &trials, &metric, None)?;
    println!(
        "{}
wrote {}",
        report::summary_table(&name, &trials, &metric, None),
        path.join("report.html").display()
    );
    Ok(())
}

/// Runs `tune`: the search, then the best trial's test evaluation and reproductions.
pub fn tune(args: TuneArgs) -> Result<StudySummary> {
    let (study, _lock) = Study::open(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(search(&study))?;
    let trials = study.store.trials()?;
    report::write_trial_files(&study.folder, &study.space, &trials, &study.primary_metric)?;
    let best = report::best_trial(&trials);
    let Some(best) = best else {
        let first_error = trials
            .iter()
            .find_map(|t| t.error.clone())
            .unwrap_or_else(|| "no error text".to_string());
        bail!(
            "no trial of the study completed; the first error was:\n{first_error}\n(trial logs are \
             in {}/<trial>/logs)",
            study.folder.display()
        );
    };
    let test_report = runtime.block_on(report::test_best(&study, &best))?;
    plots::write_html_report(
        &study.folder,
        &study.args.experiment_name,
        &study.space,
        &trials,
        &study.primary_metric,
        Some(&test_report),
    )?;
    println!(
        "{}",
        report::summary_table(
            &study.args.experiment_name,
            &trials,
            &study.primary_metric,
            Some(&test_report)
        )
    );
    Ok(StudySummary {
        trials,
        best: Some(best),
        report: Some(test_report),
    })
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("valid template")
}

async fn search(study: &Study) -> Result<()> {
    let args = &study.args;
    let store = &study.store;
    let mut sampler = Sampler::new(&study.space, study.seed())?;
    let existing = store.trials()?;
    // Rebuild the optimiser's knowledge from the store, in trial order.
    let mut to_resume: Vec<TrialRecord> = Vec::new();
    for t in &existing {
        match t.state {
            TrialState::Completed | TrialState::Pruned => {
                sampler.observe(&t.parameters, t.objective_mean)
            }
            TrialState::Failed => sampler.observe(&t.parameters, None),
            TrialState::Queued | TrialState::Running => to_resume.push(t.clone()),
        }
    }
    if !existing.is_empty() {
        let done = existing.iter().filter(|t| t.state.is_finished()).count();
        eprintln!(
            "resuming study {}: {done} finished trial(s) kept, {} interrupted trial(s) continued",
            study.folder.display(),
            to_resume.len()
        );
    }
    let mut next_index = existing.iter().map(|t| t.index + 1).max().unwrap_or(0);
    let total = args.iterations.max(existing.len() as u64);

    let multi = MultiProgress::new();
    let overall = multi.add(ProgressBar::new(total));
    overall.set_style(bar_style(
        "{prefix} [{bar:25}] {pos}/{len} trials  eta {eta}  {msg}",
    ));
    overall.set_prefix(study.args.experiment_name.clone());
    overall.set_position(existing.iter().filter(|t| t.state.is_finished()).count() as u64);
    let say = |line: String| {
        if multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = multi.println(line);
        }
    };
    let mut best_so_far: Option<f64> = existing
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .filter_map(|t| t.objective_mean)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    let any_completed_at_start = best_so_far.is_some();
    let mut failures_in_a_row = 0usize;
    let mut first_failure: Option<String> = None;
    let give_up_after = args.parallel.max(MIN_FAILURES_BEFORE_GIVING_UP);

    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let mut tasks: JoinSet<TaskResult> = JoinSet::new();
    let mut running: BTreeMap<u64, Running> = BTreeMap::new();
    let host = hostname();
    let mut last_files_write = Instant::now() - Duration::from_secs(10);
    let slurm = study.slurm_executor()?;

    loop {
        // Keep the workers busy: interrupted trials first, then new suggestions. Trial indices are
        // contiguous, so `next_index` trials have been created so far.
        let mut free = args.parallel.saturating_sub(running.len());
        let mut starts: Vec<(TrialRecord, bool)> = Vec::new();
        while free > 0 && !to_resume.is_empty() {
            starts.push((to_resume.remove(0), false));
            free -= 1;
        }
        let remaining_new = total.saturating_sub(next_index);
        let want = (free as u64).min(remaining_new) as usize;
        if want > 0 {
            let pending: Vec<_> = running
                .values()
                .map(|r| r.record.parameters.clone())
                .chain(starts.iter().map(|(r, _)| r.parameters.clone()))
                .collect();
            let suggestions = sampler.suggest(want, &pending)?;
            for assignment in suggestions {
                let index = next_index;
                next_index += 1;
                let name = format!("{}{index}", args.experiment_name);
                let folder = study.trial_folder(&name);
                if folder.exists() {
                    bail!(
                        "{} exists but is not a trial recorded in this study's study.db; refusing \
                         to write into it (move it away and re-run)",
                        folder.display()
                    );
                }
                let parameters = to_json_map(&assignment);
                store.add_trial(index, &name, &parameters)?;
                let record = TrialRecord {
                    index,
                    name,
                    state: TrialState::Queued,
                    parameters,
                    objective_mean: None,
                    objective_sem: None,
                    fold_metrics: None,
                    started_at: None,
                    finished_at: None,
                    duration_s: None,
                    worker_host: None,
                    exit_status: None,
                    error: None,
                    attempts: 0,
                    job_id: None,
                };
                starts.push((record, true));
            }
        }
        for (record, fresh) in starts {
            // A trial whose Slurm job an earlier coordinator submitted: follow that job again
            // instead of submitting a duplicate (unless that coordinator cancelled it itself).
            let attach = match (&slurm, fresh, record.job_id.as_deref()) {
                (Some(_), false, Some(id)) => id.parse::<u64>().ok().filter(|_| {
                    !study
                        .trial_folder(&record.name)
                        .join("slurm")
                        .join(crate::slurm::executor::CANCELLED_BY_COORDINATOR)
                        .exists()
                }),
                _ => None,
            };
            if let Some(id) = attach {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(bar_style("  {prefix} {msg}"));
                bar.set_prefix(format!("trial {}", record.index));
                bar.set_message(format!("Slurm job {id}"));
                let (stop_tx, stop_rx) = mpsc::channel(4);
                let exec = slurm.clone().expect("attach only on Slurm");
                let folder = study.trial_folder(&record.name);
                let tx = tx.clone();
                let index = record.index;
                let timeout = args.trial_timeout;
                tasks.spawn(async move {
                    let run = exec.follow(id, &folder, Some(stop_rx), |event| {
                        let _ = tx.send(Message::Event(index, event.clone()));
                    });
                    (index, with_timeout(timeout, run).await, None)
                });
                say(format!(
                    "trial {} re-attached to Slurm job {id}",
                    record.index
                ));
                running.insert(
                    record.index,
                    Running {
                        record,
                        started: Instant::now(),
                        stop: stop_tx,
                        prune_requested: false,
                        evaluations: 0,
                        bar,
                        latest: String::new(),
                    },
                );
                continue;
            }
            let job = match study.prepare_trial(&record, fresh) {
                Ok(job) => job,
                Err(e) => {
                    let text = format!("{e:#}");
                    store.finish(
                        record.index,
                        &TrialEnd {
                            state: TrialState::Failed,
                            error: Some(&text),
                            ..Default::default()
                        },
                    )?;
                    sampler.observe(&record.parameters, None);
                    overall.inc(1);
                    say(format!(
                        "trial {} failed before starting: {text}",
                        record.index
                    ));
                    continue;
                }
            };
            store.mark_running(record.index, if slurm.is_some() { "slurm" } else { &host })?;
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(bar_style("  {prefix} {msg}"));
            bar.set_prefix(format!("trial {}", record.index));
            bar.set_message("starting");
            let (stop_tx, stop_rx) = mpsc::channel(4);
            let argv = study.worker.clone();
            let log = study
                .trial_folder(&record.name)
                .join("logs/worker_stderr.log");
            let tx = tx.clone();
            let index = record.index;
            let timeout = args.trial_timeout;
            let parallel = args.parallel;
            if let Some(exec) = slurm.clone() {
                let request = crate::slurm::JobRequest {
                    folder: study.trial_folder(&record.name),
                    job,
                    worker: argv,
                    name: record.name.clone(),
                };
                let db = study.folder.join("study.db");
                tasks.spawn(async move {
                    let id = match exec.submit(&request).await {
                        Ok(id) => id,
                        Err(e) => return (index, Err(failure_text(&e)), None),
                    };
                    // Recorded at once (its own connection: this task runs beside the loop), so a
                    // coordinator killed from now on re-attaches instead of submitting again.
                    let recorded = StudyStore::open(&db)
                        .and_then(|s| s.set_job_id(index, Some(&id.to_string())));
                    if let Err(e) = recorded {
                        let _ = crate::slurm::client::cancel(id, None).await;
                        return (
                            index,
                            Err(format!("cannot record Slurm job {id}: {e:#}")),
                            None,
                        );
                    }
                    let _ = tx.send(Message::Submitted(index, id));
                    let run = exec.follow(id, &request.folder, Some(stop_rx), |event| {
                        let _ = tx.send(Message::Event(index, event.clone()));
                    });
                    (index, with_timeout(timeout, run).await, None)
                });
            } else {
                tasks.spawn(async move {
                    let run =
                        executor::run_job(&argv, &job, parallel, &log, Some(stop_rx), |event| {
                            let _ = tx.send(Message::Event(index, event.clone()));
                        });
                    (index, with_timeout(timeout, run).await, None)
                });
            }
            say(format!(
                "trial {} started: {}",
                record.index,
                report::format_parameters(&record.parameters)
            ));
            running.insert(
                record.index,
                Running {
                    record,
                    started: Instant::now(),
                    stop: stop_tx,
                    prune_requested: false,
                    evaluations: 0,
                    bar,
                    latest: String::new(),
                },
            );
        }
        if running.is_empty() {
            break;
        }

        tokio::select! {
            Some(message) = rx.recv() => match message {
                Message::Event(index, event) => {
                    if let Some(r) = running.get_mut(&index) {
                        handle_event(study, r, &event)?;
                    }
                }
                Message::Submitted(index, id) => {
                    if let Some(r) = running.get_mut(&index) {
                        r.bar.set_message(format!("Slurm job {id} queued"));
                    }
                }
            },
            () = ctrl_c(slurm.is_some()) => {
                // Slurm jobs would outlive the coordinator: cancel them (dropping their tasks does,
                // and marks them so the next run resubmits those trials rather than failing them).
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                overall.finish_and_clear();
                bail!(
                    "interrupted: the running trials' Slurm jobs were cancelled; run the same command \
                     again to continue the study"
                );
            }
            Some(joined) = tasks.join_next() => {
                let (index, outcome, _) = joined.map_err(|e| anyhow!("a trial task failed: {e}"))?;
                // Events sent before the task ended are still queued: apply them first.
                while let Ok(message) = rx.try_recv() {
                    if let Message::Event(i, event) = message {
                        if let Some(r) = running.get_mut(&i) {
                            handle_event(study, r, &event)?;
                        }
                    }
                }
                let Some(r) = running.remove(&index) else { continue };
                r.bar.finish_and_clear();
                multi.remove(&r.bar);
                let duration = r.started.elapsed().as_secs_f64();
                overall.inc(1);
                match outcome {
                    Ok(outcome) => {
                        let mean = outcome.objective.mean.filter(|m| m.is_finite());
                        let folds = serde_json::to_value(&outcome.folds)?;
                        match mean {
                            Some(mean) => {
                                let state = if r.prune_requested { TrialState::Pruned } else { TrialState::Completed };
                                store.finish(index, &TrialEnd {
                                    state,
                                    mean: Some(mean),
                                    sem: outcome.objective.sem,
                                    folds: Some(&folds),
                                    duration_s: duration,
                                    exit_status: Some("0"),
                                    error: None,
                                })?;
                                sampler.observe(&r.record.parameters, Some(mean));
                                failures_in_a_row = 0;
                                if state == TrialState::Completed {
                                    best_so_far = Some(best_so_far.map_or(mean, |b| b.max(mean)));
                                }
                                say(format!(
                                    "trial {index} {}: {} = {mean:.4}{}",
                                    state.as_str(),
                                    study.primary_metric,
                                    outcome.objective.sem.map_or(String::new(), |s| format!(" ± {s:.4}"))
                                ));
                            }
                            None => {
                                let text = format!(
                                    "the objective {} is NaN or missing (the worker reported no finite best validation value)",
                                    outcome.objective.metric
                                );
                                store.finish(index, &TrialEnd {
                                    state: TrialState::Failed,
                                    folds: Some(&folds),
                                    duration_s: duration,
                                    exit_status: Some("0"),
                                    error: Some(&text),
                                    ..Default::default()
                                })?;
                                sampler.observe(&r.record.parameters, None);
                                failures_in_a_row += 1;
                                first_failure.get_or_insert(text.clone());
                                say(format!("trial {index} failed: {text}"));
                            }
                        }
                    }
                    Err(text) => {
                        store.finish(index, &TrialEnd {
                            state: TrialState::Failed,
                            duration_s: duration,
                            error: Some(&text),
                            ..Default::default()
                        })?;
                        sampler.observe(&r.record.parameters, None);
                        failures_in_a_row += 1;
                        first_failure.get_or_insert(text.clone());
                        say(format!("trial {index} failed: {text}"));
                    }
                }
                if let Some(b) = best_so_far {
                    overall.set_message(format!("best {} {b:.4}", study.primary_metric));
                }
                // trials.csv and best_parameters.yaml are views of study.db (rewritten in full at the
                // end); refreshing them at most once a second keeps fast trials from paying for it.
                if last_files_write.elapsed() >= Duration::from_secs(1) {
                    let trials = store.trials()?;
                    report::write_trial_files(&study.folder, &study.space, &trials, &study.primary_metric)?;
                    last_files_write = Instant::now();
                }
                if !any_completed_at_start && best_so_far.is_none() && failures_in_a_row >= give_up_after {
                    for r in running.values() {
                        let _ = r.stop.try_send(Command::Stop);
                    }
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    // The aborted trials stay `running` in the store and are resumed next time.
                    overall.finish_and_clear();
                    bail!(
                        "the first {failures_in_a_row} trials all failed, so the study stops here \
                         instead of spending its budget on a broken setup. The first error was:\n{}",
                        first_failure.unwrap_or_default()
                    );
                }
            }
        }
    }
    overall.finish_and_clear();
    Ok(())
}

/// Resolves on Ctrl-C when `enabled` (a Slurm study, whose jobs must be cancelled); never otherwise,
/// so a local study keeps the default behaviour (its workers die with the coordinator).
async fn ctrl_c(enabled: bool) {
    if !enabled || tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn failure_text(failure: &JobFailure) -> String {
    failure.to_string()
}

/// Records an event of a running trial, updates its display line, and applies the pruning rule.
fn handle_event(study: &Study, r: &mut Running, event: &Event) -> Result<()> {
    match event {
        Event::Progress { fold, epoch, .. } => {
            r.bar
                .set_message(format!("{fold} epoch {epoch}{}", r.latest));
        }
        Event::Evaluation {
            fold,
            epoch,
            split,
            metrics,
            ..
        } if split == "val" => {
            let Some(value) = metrics.get(&study.primary_metric).and_then(|v| v.as_f64()) else {
                return Ok(());
            };
            study
                .store
                .record_intermediate(r.record.index, fold, *epoch, value)?;
            r.latest = format!(" val {}={value:.4}", study.primary_metric);
            r.bar
                .set_message(format!("{fold} epoch {epoch}{}", r.latest));
            if *epoch > 0 {
                r.evaluations += 1;
            }
            if study.args.prune
                && !r.prune_requested
                && *epoch > 0
                && r.evaluations > study.args.prune_warmup
            {
                let others = study.store.completed_values_at(fold, *epoch)?;
                if pruner::should_prune(value, &others) {
                    r.prune_requested = true;
                    let _ = r.stop.try_send(Command::Stop);
                    r.bar
                        .set_message(format!("{fold} epoch {epoch}{} (pruning)", r.latest));
                }
            }
        }
        _ => {}
    }
    Ok(())
}
