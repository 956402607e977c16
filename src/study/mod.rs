//! Tuning studies: `metricbench tune` (see docs/tuning.md).
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

//!
//! The pieces: [`tune_args`] (the command line), [`folder`] (opening the study folder, preparing
//! trials), [`search`] (the loop, driving jobs through an [`crate::executor::Executor`]) with
//! [`schedule`], [`events`], [`pruner`] and [`bookkeeping`], then [`report`] and [`plots`] for the
//! outputs, all on top of [`storage`].

pub mod best;
pub mod bookkeeping;
pub mod events;
pub mod folder;
pub mod insights;
pub mod plots;
pub mod progress;
pub mod pruner;
pub mod report;
pub mod sampler;
pub mod schedule;
pub mod search;
pub mod storage;
pub mod tensorboard_export;
pub mod tune_args;

pub use tune_args::TuneArgs;

use crate::experiment;
use crate::search_space::SearchSpace;
use anyhow::{bail, Context, Result};
use folder::{objective_metric, primary_metric, Study};
use std::path::Path;
use storage::{StudyStore, TrialRecord};

/// What `tune` returns (also printed).
#[derive(Debug, Clone)]
pub struct StudySummary {
    pub trials: Vec<TrialRecord>,
    pub best: Option<best::BestChoice>,
    pub report: Option<report::TestReport>,
}

/// `metricbench report PATH` for a study folder: rewrites `trials.csv`, `best_parameters.yaml`, the
/// plots and `report.html` from `study.db` (e.g. while the study runs, or after copying it).
pub fn report_command(path: &Path) -> Result<()> {
    let db = path.join("study.db");
    if !db.is_file() {
        bail!(
            "{} is not a study folder (it has no study.db); `metricbench report` reads the folder \
             of a `metricbench tune` study",
            path.display()
        );
    }
    let store = StudyStore::open(&db)?;
    let merged = experiment::load_saved_configs(path)?;
    let space = SearchSpace::from_merged(&merged)?;
    let combined = merged.combined();
    let metric = objective_metric(&store, &primary_metric(&combined))?;
    let trials = store.trials()?;
    let rule = match store.get_meta(best::RULE_META_KEY)? {
        Some(text) => Some(best::BestTrialRule::parse(&text)?),
        None => None,
    };
    let seed = combined
        .get("seed")
        .and_then(serde_yaml::Value::as_u64)
        .unwrap_or(0);
    let best = best::choose(&space, &trials, rule, seed)?;
    report::write_trial_files(path, &space, &trials, &metric, best.as_ref())?;
    let name = store.get_meta("experiment_name")?.unwrap_or_else(|| {
        path.file_name()
            .map_or("study".into(), |n| n.to_string_lossy().into_owned())
    });
    let intermediate = store.intermediate_values()?;
    plots::write_html_report(
        path,
        &name,
        &space,
        &trials,
        &intermediate,
        &metric,
        best.as_ref(),
        None,
    )?;
    tensorboard_export::write(path, &name, &space, &trials, &intermediate, &metric)?;
    println!(
        "{}
wrote {}",
        report::summary_table(&name, &trials, &metric, best.as_ref(), None),
        path.join("report.html").display()
    );
    Ok(())
}

/// Runs `tune`: the search, then the best trial's test evaluation and reproductions.
pub fn tune(args: TuneArgs) -> Result<StudySummary> {
    let (study, _lock) = Study::open(args)?;
    if let Some(rule) = study.args.best_trial_by {
        // Remembered, so `metricbench report` and a resumed study use the same rule.
        study.store.set_meta(best::RULE_META_KEY, rule.as_str())?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(search::search(&study))?;
    let trials = study.store.trials()?;
    let metric = study.objective_metric()?;
    let best = best::choose(
        &study.space,
        &trials,
        best::study_rule(study.args.best_trial_by, &study.store)?,
        study.seed(),
    )?;
    report::write_trial_files(&study.folder, &study.space, &trials, &metric, best.as_ref())?;
    tensorboard_export::write(
        &study.folder,
        &study.args.experiment_name,
        &study.space,
        &trials,
        &study.store.intermediate_values()?,
        &metric,
    )?;
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
        &study.store.intermediate_values()?,
        &metric,
        Some(&best),
        Some(&test_report),
    )?;
    println!(
        "{}",
        report::summary_table(
            &study.args.experiment_name,
            &trials,
            &metric,
            Some(&best),
            Some(&test_report)
        )
    );
    Ok(StudySummary {
        trials,
        best: Some(best),
        report: Some(test_report),
    })
}
