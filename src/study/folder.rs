//! The study folder `<root>/<name>/`: opening it (new or resumed, under an exclusive lock), its
//! frozen configs and store, and the preparation of each trial's folder and job.

use super::storage::{self, StudyStore, TrialRecord};
use super::tune_args::{show_flag, ExecutorKind, TuneArgs};
use crate::cli_values::CliValue;
use crate::config::{self, Merged};
use crate::executor::{self, Executor, JobSpec, LocalExecutor};
use crate::experiment;
use crate::fsutil::write_atomic;
use crate::protocol::{Action, Job, ResumeFrom, TrialInfo, PROTOCOL_VERSION};
use crate::search_space::SearchSpace;
use anyhow::{bail, Context, Result};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Everything a running study needs.
pub struct Study {
    pub args: TuneArgs,
    /// Trials the study runs in all (`--bayes_opt_iters`, or the count it was saved with).
    pub iterations: u64,
    /// `<root_experiment_folder>/<experiment_name>`.
    pub folder: PathBuf,
    /// The study's configs, with the search parameters still unresolved.
    pub merged: Merged,
    pub space: SearchSpace,
    pub store: StudyStore,
    /// The validation metric the optimiser maximises (until a worker reports its own name).
    pub primary_metric: String,
    pub splits_to_eval: Vec<String>,
    /// Where the trials' jobs run.
    pub executor: Box<dyn Executor>,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// An exclusive lock on the study folder for the lifetime of the value.
pub struct StudyLock(#[allow(dead_code)] std::fs::File);

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

pub fn primary_metric(combined: &serde_yaml::Mapping) -> String {
    ["eval_metric_for_best_epoch", "eval_primary_metric"]
        .iter()
        .find_map(|k| combined.get(*k).and_then(Value::as_str))
        .map_or_else(
            || "mean_average_precision_at_r".to_string(),
            crate::protocol::current_metric_name,
        )
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
pub fn has_checkpoint(trial_folder: &Path) -> bool {
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
pub fn clear_trial_folder(folder: &Path) -> Result<()> {
    if folder.exists() {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("cannot clear {} to restart its trial", folder.display()))?;
    }
    Ok(())
}

/// The store's key for the objective's name as the workers reported it (`objective.metric`).
pub const REPORTED_METRIC: &str = "objective_metric";

/// The name of the study's objective: what the workers reported, else the config's metric.
pub fn objective_metric(store: &StudyStore, config_metric: &str) -> Result<String> {
    Ok(store
        .get_meta(REPORTED_METRIC)?
        .unwrap_or_else(|| config_metric.to_string()))
}

/// The store's key for the study's flags (JSON object: flag name -> value as given).
const SAVED_FLAGS: &str = "tune_flags";

/// Saves the study flags in effect (the last value of each), for a resume by folder.
fn save_flags(store: &StudyStore, flags: &[CliValue]) -> Result<()> {
    let mut saved = serde_json::Map::new();
    for cv in flags {
        saved.insert(cv.key.clone(), config::yaml_to_json(&cv.value)?);
    }
    store.set_meta(SAVED_FLAGS, &serde_json::to_string(&saved)?)
}

/// A resumed study's flags: the saved ones, except those the command line gives again. Checks a
/// new `--bayes_opt_iters` against the trials that exist, and says where each flag came from.
fn with_saved_flags(args: TuneArgs, store: &StudyStore, folder: &Path) -> Result<TuneArgs> {
    let saved: Vec<CliValue> = match store.get_meta(SAVED_FLAGS)? {
        Some(text) => {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
                .with_context(|| {
                    format!(
                        "{}: the saved flags are not a JSON object",
                        folder.display()
                    )
                })?;
            map.into_iter()
                .map(|(key, value)| CliValue {
                    key,
                    value: config::json_to_yaml(&value),
                })
                .collect()
        }
        // A study made before flags were saved: the command line must say everything.
        None => Vec::new(),
    };
    let given: Vec<&str> = args.flags.iter().map(|cv| cv.key.as_str()).collect();
    let kept: Vec<CliValue> = saved
        .iter()
        .filter(|cv| !given.contains(&cv.key.as_str()))
        .cloned()
        .collect();
    let stored_iterations = saved
        .iter()
        .find(|cv| cv.key == "bayes_opt_iters")
        .and_then(|cv| cv.value.as_u64());
    let trials = store.trials()?.len() as u64;
    let mut notes = Vec::new();
    if let Some(n) = args.iterations {
        if n < trials {
            bail!(
                "--bayes_opt_iters {n} is smaller than the {trials} trials this study already has \
                 in {}; give at least {trials}, or leave it out to keep the study's {}",
                folder.display(),
                stored_iterations.map_or("count".to_string(), |s| s.to_string())
            );
        }
        match stored_iterations {
            Some(stored) if n > stored => {
                notes.push(format!("extending the study from {stored} to {n} trials"))
            }
            Some(stored) if n < stored => notes.push(format!(
                "the study now ends after {n} trials instead of {stored}"
            )),
            _ => {}
        }
    }
    let from_saved: Vec<String> = kept.iter().map(show_flag).collect();
    let from_command_line: Vec<String> = args
        .flags
        .iter()
        .chain(&args.common.overrides)
        .map(show_flag)
        .collect();
    let list = |flags: &[String]| {
        if flags.is_empty() {
            "(none)".to_string()
        } else {
            flags.join(" ")
        }
    };
    eprintln!(
        "resuming the study in {}\n  flags from the saved study: {}\n  flags from the command \
         line: {}",
        folder.display(),
        list(&from_saved),
        list(&from_command_line)
    );
    for note in notes {
        eprintln!("  {note}");
    }
    let mut flags = kept;
    flags.extend(args.flags.iter().cloned());
    TuneArgs::with_flags(args.common, flags)
}

impl Study {
    /// Opens an existing study (resume) or creates a new one.
    pub fn open(mut args: TuneArgs) -> Result<(Study, StudyLock)> {
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
        if !resuming {
            args.require_iterations()?;
        }
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
            args = with_saved_flags(args, &store, &folder)?;
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
                 ~INT_BAYESIAN~, ~LOG_INT_BAYESIAN~ or ~CHOICE~), so there is nothing to tune; \
                 use `metricbench run`, or add e.g. --config_loss_and_miners default bayes_example"
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
        save_flags(&store, &args.flags)?;
        let iterations = args.require_iterations()?;
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
        let executor: Box<dyn Executor> = match kind {
            ExecutorKind::Local => Box::new(LocalExecutor::new(worker)),
            ExecutorKind::Slurm => Box::new(crate::slurm::SlurmExecutor::new(
                crate::slurm::SlurmSettings::from_config(combined.get("slurm"))?,
                worker,
            )?),
        };
        let study = Study {
            primary_metric: primary_metric(&combined),
            splits_to_eval: crate::run::splits_to_eval(&combined)?,
            args,
            iterations,
            folder,
            merged,
            space,
            store,
            executor,
        };
        Ok((study, lock))
    }

    /// The objective's name for tables and reports (see [`objective_metric`]).
    pub fn objective_metric(&self) -> Result<String> {
        objective_metric(&self.store, &self.primary_metric)
    }

    pub fn trial_folder(&self, name: &str) -> PathBuf {
        self.folder.join(name)
    }

    pub fn seed(&self) -> u64 {
        self.merged
            .combined()
            .get("seed")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// The job of one trial: its config with the trial's values, written into its folder.
    pub fn prepare_trial(&self, record: &TrialRecord, fresh: bool) -> Result<Job> {
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

    pub fn job(
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

    /// A job ready for the executor; `concurrent`: how many jobs run beside it.
    pub fn spec(&self, folder: &Path, job: Job, concurrent: usize) -> JobSpec {
        JobSpec {
            job,
            folder: folder.to_path_buf(),
            concurrent,
        }
    }
}
