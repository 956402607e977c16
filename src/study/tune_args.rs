//! The command line of `metricbench tune`: the study's own flags, beside the flags and config
//! overrides it shares with `run`.

use super::best::BestTrialRule;
use crate::args::{as_string, CommonArgs};
use crate::cli_values::CliValue;
use anyhow::{bail, Context, Result};
use serde_yaml::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The command line of `tune`.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub experiment_name: String,
    pub root_experiment_folder: PathBuf,
    pub dataset_root: PathBuf,
    pub common: CommonArgs,
    /// Number of trials of the search (`--bayes_opt_iters`); `None` when not given, then a resumed
    /// study keeps the count it was started with.
    pub iterations: Option<u64>,
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
    /// The study's flags as given (aliases under their main name, `--dataset_root` included when
    /// given), in order: what a study saves, and what a resumed study's saved flags are merged with.
    pub flags: Vec<CliValue>,
    /// How the best trial is chosen (`--best_trial_by model|observed`); `None`: `model` when any
    /// completed trial reported an SEM, else `observed`.
    pub best_trial_by: Option<BestTrialRule>,
    /// Successful trials from the Sobol design before the model proposes (`--initial_trials N`);
    /// `None`: max(5, number of parameters).
    pub initial_trials: Option<usize>,
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
    pub fn parse(text: &str, origin: &str) -> Result<ExecutorKind> {
        match text {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            other => bail!("{origin} `{other}` is not an executor; use `local` or `slurm`"),
        }
    }
}

/// The main name of a flag with an alias.
fn main_name(key: &str) -> &str {
    match key {
        "bayesian_optimization_n_iter" => "bayes_opt_iters",
        other => other,
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
        let mut flags: Vec<CliValue> = common
            .tool_flags
            .iter()
            .map(|cv| CliValue {
                key: main_name(&cv.key).to_string(),
                value: cv.value.clone(),
            })
            .collect();
        if tokens.iter().any(|t| t == "--dataset_root") {
            flags.push(CliValue {
                key: "dataset_root".into(),
                value: Value::String(common.dataset_root.to_string_lossy().into_owned()),
            });
        }
        TuneArgs::with_flags(common, flags)
    }

    /// The command line `common` with the study flags `flags` (a later flag wins over an earlier
    /// one of the same name).
    pub fn with_flags(common: CommonArgs, flags: Vec<CliValue>) -> Result<TuneArgs> {
        let experiment_name = common.require_experiment_name()?.to_string();
        let mut dataset_root = common.dataset_root.clone();
        let mut iterations = None;
        let mut parallel = 1;
        let mut reproductions = 0;
        let mut prune = false;
        let mut prune_warmup = 1;
        let mut trial_timeout = None;
        let mut best_trial_by = None;
        let mut initial_trials = None;
        let mut executor = None;
        for cv in &flags {
            match cv.key.as_str() {
                "bayes_opt_iters" => iterations = Some(positive_int(cv)?),
                "dataset_root" => dataset_root = as_string(cv)?.into(),
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
                "best_trial_by" => best_trial_by = Some(BestTrialRule::parse(&as_string(cv)?)?),
                "initial_trials" => initial_trials = Some(positive_int(cv)? as usize),
                "executor" => executor = Some(ExecutorKind::parse(&as_string(cv)?, "--executor")?),
                other => bail!("--{other} cannot be used with `metricbench tune`"),
            }
        }
        Ok(TuneArgs {
            experiment_name,
            root_experiment_folder: common.root_experiment_folder.clone(),
            dataset_root,
            common,
            iterations,
            parallel,
            reproductions,
            prune,
            prune_warmup,
            trial_timeout,
            flags,
            best_trial_by,
            initial_trials,
            executor,
        })
    }

    /// `--bayes_opt_iters`, which a new study needs.
    pub fn require_iterations(&self) -> Result<u64> {
        self.iterations
            .context("--bayes_opt_iters N is required: the number of trials of the search")
    }
}

/// `--KEY VALUE` as typed (a string as is, anything else as YAML flow), for messages.
pub fn show_flag(cv: &CliValue) -> String {
    let value = match &cv.value {
        Value::String(s) => s.clone(),
        other => crate::config::yaml_to_json(other)
            .map(|j| j.to_string())
            .unwrap_or_else(|_| format!("{other:?}")),
    };
    format!("--{} {value}", cv.key)
}
