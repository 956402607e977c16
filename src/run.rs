//! `metricbench run`: one experiment, trained and evaluated by one worker process.

use crate::args::{as_string, CommonArgs};
use crate::cli_values::CliValue;
use crate::config::{self, Merged, Selection};
use crate::executor::{self, Executor, JobOutcome, JobSpec, LocalExecutor};
use crate::experiment;
use crate::protocol::{Action, Event, Job, ResumeFrom, PROTOCOL_VERSION};
use crate::search_space::{Assignment, SearchSpace};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// What `run` does with the experiment folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// A new experiment (the folder must not hold results).
    New,
    /// `--resume_training [latest|best]`: continue every fold from its checkpoint.
    Resume(ResumeFrom),
    /// `--evaluate`: evaluate every fold's best checkpoint (and the ensemble on `test`).
    Evaluate,
    /// `--reproduce_results PATH`: re-run the experiment at PATH from its saved configs,
    /// replaying its resumes.
    Reproduce(PathBuf),
}

/// Flags of `run` that steer the tool instead of being config keys (the original's argparse flags).
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub experiment_name: String,
    pub root_experiment_folder: PathBuf,
    pub dataset_root: PathBuf,
    pub selection: Selection,
    /// Everything else: config overrides, in command-line order.
    pub overrides: Vec<CliValue>,
    pub mode: Mode,
}

impl RunArgs {
    /// Splits parsed `--KEY VALUE` pairs into tool flags and config overrides (see
    /// [`CommonArgs::from_tokens`]). Config category lists accept several shell words:
    /// `--config_general default with_cars196`.
    pub fn from_tokens(tokens: &[String]) -> Result<RunArgs> {
        let common = CommonArgs::from_tokens(tokens)?;
        let experiment_name = common.require_experiment_name()?.to_string();
        let mut modes = Vec::new();
        for flag in &common.tool_flags {
            match flag.key.as_str() {
                "resume_training" => match &flag.value {
                    Value::Bool(false) => {}
                    Value::Bool(true) => modes.push(Mode::Resume(ResumeFrom::Latest)),
                    Value::String(s) if s == "latest" => {
                        modes.push(Mode::Resume(ResumeFrom::Latest))
                    }
                    Value::String(s) if s == "best" => modes.push(Mode::Resume(ResumeFrom::Best)),
                    other => bail!(
                        "--resume_training takes latest or best (or nothing, meaning latest), got {}",
                        serde_yaml::to_string(other).unwrap_or_default().trim()
                    ),
                },
                "evaluate" => match &flag.value {
                    Value::Bool(true) => modes.push(Mode::Evaluate),
                    Value::Bool(false) => {}
                    _ => bail!("--evaluate is a flag and takes no value (or true/false)"),
                },
                "reproduce_results" => modes.push(Mode::Reproduce(as_string(flag)?.into())),
                other => {
                    let why = match other {
                        "bayes_opt_iters"
                        | "bayesian_optimization_n_iter"
                        | "parallel"
                        | "reproductions"
                        | "prune"
                        | "prune_warmup"
                        | "trial_timeout"
                        | "best_trial_by"
                        | "initial_trials"
                        | "executor" => "it is an option of `metricbench tune`",
                        "format" => "it is an option of `metricbench config`",
                        "evaluate_ensemble" => {
                            "`run --evaluate` evaluates the ensemble on the test split when \
                             meta_testing_method is set"
                        }
                        "merge_argparse_when_resuming" => {
                            "`run --resume_training` always merges the command-line values into \
                             the saved configs"
                        }
                        _ => "this version of `run` does not handle it",
                    };
                    bail!("--{other} cannot be used with `metricbench run`: {why}");
                }
            }
        }
        if modes.len() > 1 {
            bail!(
                "--resume_training, --evaluate and --reproduce_results exclude each other; give at most one"
            );
        }
        Ok(RunArgs {
            experiment_name,
            root_experiment_folder: common.root_experiment_folder,
            dataset_root: common.dataset_root,
            selection: common.selection,
            overrides: common.overrides,
            mode: modes.pop().unwrap_or(Mode::New),
        })
    }
}

/// A plain run of a config with search keywords runs once at the parameters' midpoints (docs/configs.md):
/// returns the config with the keyword keys replaced (in every category, so the saved configs hold
/// plain keys) and the midpoints used, if any.
pub fn substitute_midpoints(merged: Merged) -> Result<(Merged, Option<Assignment>)> {
    let space = SearchSpace::from_merged(&merged)?;
    if space.is_empty() {
        return Ok((merged, None));
    }
    let midpoints = space.midpoints();
    let substituted = space.substitute_merged(&merged, &midpoints)?;
    Ok((substituted, Some(midpoints)))
}

/// The configs of a new experiment: the selected files and overrides, search keywords at their
/// midpoints, every object spec naming one class.
fn new_configs(args: &RunArgs) -> Result<Merged> {
    let merged = config::load(&args.selection, &args.overrides)?;
    let (merged, midpoints) = substitute_midpoints(merged)?;
    // After substitution, so a ~CHOICE~ between object specs is checked too.
    config::check_object_specs(&merged, &args.selection)?;
    if let Some(mid) = &midpoints {
        let shown: Vec<String> = mid.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        eprintln!(
            "note: the config defines {} search parameter(s); `run` trains once at the middle of \
             each range (geometric middle for log scales, first choice for ~CHOICE~); use \
             `metricbench tune` to search them:\n  {}",
            mid.len(),
            shown.join("\n  ")
        );
    }
    Ok(merged)
}

/// Saved configs with this command line's values applied (resume, evaluate); the result must
/// still name one class per object spec.
fn saved_with_overrides(args: &RunArgs, saved: &Merged) -> Result<Merged> {
    let mut merged = saved.clone();
    config::apply_command_line(&mut merged, &args.overrides)?;
    let (merged, midpoints) = substitute_midpoints(merged)?;
    if midpoints.is_some() {
        bail!(
            "search keywords (~BAYESIAN~, ~CHOICE~, ...) cannot be given when resuming or \
             evaluating an experiment; give plain values"
        );
    }
    config::check_object_specs(&merged, &args.selection)?;
    Ok(merged)
}

/// The `splits_to_eval` config key (default `[val]`).
pub fn splits_to_eval(combined: &serde_yaml::Mapping) -> Result<Vec<String>> {
    match combined.get("splits_to_eval") {
        None | Some(Value::Null) => Ok(vec!["val".to_string()]),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .context("splits_to_eval must be a list of split names such as [val, test]")
            })
            .collect(),
        Some(other) => bail!(
            "splits_to_eval must be a list of split names such as [val, test], not {}",
            config::kind_name(other)
        ),
    }
}

/// Whether `meta_testing_method` asks for the concatenated-embeddings ensemble. The original wrote
/// it as one name (`ConcatenateEmbeddings`, up to 0.9.24) or as a list of meta testers
/// (`[meta_SeparateEmbeddings, meta_ConcatenateEmbeddings]`, 0.9.25); `SeparateEmbeddings` (each
/// fold on its own) is what every evaluation does anyway, and `null` turns the ensemble off.
pub fn evaluates_ensemble(meta_testing_method: Option<&Value>) -> Result<bool> {
    const KNOWN: &str =
        "ConcatenateEmbeddings, meta_ConcatenateEmbeddings, meta_SeparateEmbeddings";
    let names: Vec<&Value> = match meta_testing_method {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Sequence(items)) => items.iter().collect(),
        Some(single) => vec![single],
    };
    let mut ensemble = false;
    for name in names {
        match name.as_str() {
            Some("ConcatenateEmbeddings" | "meta_ConcatenateEmbeddings") => ensemble = true,
            Some("SeparateEmbeddings" | "meta_SeparateEmbeddings") => {}
            _ => bail!(
                "meta_testing_method: {} is not a meta testing method; give one of {KNOWN}, a \
                 list of them, or null",
                serde_yaml::to_string(name).unwrap_or_default().trim()
            ),
        }
    }
    Ok(ensemble)
}

/// The job of an action over merged configs.
fn make_job(
    args: &RunArgs,
    folder: &Path,
    merged: &config::Merged,
    action: Action,
    resume: Option<ResumeFrom>,
    extra: Option<(&str, serde_json::Value)>,
) -> Result<(Vec<String>, Job)> {
    let combined = merged.combined();
    // Checked before any job starts, so a misspelt method fails now rather than after training.
    evaluates_ensemble(combined.get("meta_testing_method"))?;
    let worker = executor::worker_argv(combined.get("worker_command"))?;
    let splits_to_eval = splits_to_eval(&combined)?;
    let mut config_json = config::yaml_to_json(&Value::Mapping(combined))?;
    if let Some(obj) = config_json.as_object_mut() {
        obj.entry("dataset_root").or_insert_with(|| {
            serde_json::Value::String(args.dataset_root.to_string_lossy().into_owned())
        });
        if let Some((k, v)) = extra {
            obj.insert(k.to_string(), v);
        }
    }
    let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let job = Job {
        protocol: PROTOCOL_VERSION,
        action,
        experiment_folder: absolute.to_string_lossy().into_owned(),
        config: config_json,
        resume,
        splits_to_eval,
        trial: None,
    };
    Ok((worker, job))
}

/// Runs the experiment (or resumes, evaluates, reproduces it) and prints its results table.
pub fn run(args: RunArgs) -> Result<JobOutcome> {
    match args.mode.clone() {
        Mode::New => {
            let merged = new_configs(&args)?;
            let folder = experiment::new_experiment_folder(
                &args.root_experiment_folder,
                &args.experiment_name,
            )?;
            experiment::save_configs(&folder, &merged)?;
            let (worker, job) = make_job(&args, &folder, &merged, Action::Train, None, None)?;
            run_job(&args, &folder, &worker, &job)
        }
        Mode::Resume(from) => {
            let folder = experiment::existing_experiment(
                &args.root_experiment_folder,
                &args.experiment_name,
            )?;
            let saved = experiment::load_saved_configs(&folder)?;
            let merged = saved_with_overrides(&args, &saved)?;
            let epochs: Vec<u64> = experiment::latest_epochs(&folder)?
                .into_iter()
                .map(|(_, e)| e)
                .collect();
            if epochs.is_empty() {
                bail!(
                    "{} has no fold folders with saved models yet; there is nothing to resume \
                     (start it again without --resume_training)",
                    folder.display()
                );
            }
            if let Some(dir) =
                experiment::save_resume_config_diffs(&folder, &epochs, &saved, &merged)?
            {
                eprintln!("config changes for this resume saved in {}", dir.display());
            }
            let (worker, job) = make_job(&args, &folder, &merged, Action::Train, Some(from), None)?;
            run_job(&args, &folder, &worker, &job)
        }
        Mode::Evaluate => {
            let folder = experiment::existing_experiment(
                &args.root_experiment_folder,
                &args.experiment_name,
            )?;
            let saved = experiment::load_saved_configs(&folder)?;
            let merged = saved_with_overrides(&args, &saved)?;
            let (worker, job) = make_job(
                &args,
                &folder,
                &merged,
                Action::Evaluate,
                Some(ResumeFrom::Best),
                None,
            )?;
            let outcome = run_job(&args, &folder, &worker, &job)?;
            let ensemble = evaluates_ensemble(merged.combined().get("meta_testing_method"))?;
            if ensemble && job.splits_to_eval.iter().any(|s| s == "test") {
                let (worker, job) = make_job(
                    &args,
                    &folder,
                    &merged,
                    Action::EvaluateEnsemble,
                    Some(ResumeFrom::Best),
                    None,
                )?;
                return run_job(&args, &folder, &worker, &job);
            }
            Ok(outcome)
        }
        Mode::Reproduce(source) => reproduce(&args, &source),
    }
}

/// `--reproduce_results PATH`: a new experiment with PATH's saved configs. Each config-diff folder
/// of PATH marks a resume: train every fold up to that folder's epochs, apply its diff, resume; then
/// train to the end.
fn reproduce(args: &RunArgs, source: &Path) -> Result<JobOutcome> {
    if !source.join("configs").join("config_general.yaml").is_file() {
        bail!(
            "--reproduce_results {}: not an experiment folder (no configs/config_general.yaml)",
            source.display()
        );
    }
    // 0.9.26 moved the dataset and split keys into config_dataset (split-manager objects), and
    // 0.9.29 added factories and trainer/tester objects: a format of its own, not read here.
    for later in ["config_dataset.yaml", "config_factories.yaml"] {
        let file = source.join("configs").join(later);
        if file.is_file() {
            bail!(
                "--reproduce_results {}: {} was written by powerful-benchmarker 0.9.26 or later, \
                 whose config format (split managers, factories, trainer and tester objects) \
                 this tool does not read; it reads the 0.9.13-0.9.25 format (docs/experiments.md)",
                source.display(),
                file.display()
            );
        }
    }
    let base = experiment::load_base_configs(source)?;
    let mut merged = saved_with_overrides(args, &base)?;
    let diffs = experiment::config_diff_folders(source)?;
    let folder =
        experiment::new_experiment_folder(&args.root_experiment_folder, &args.experiment_name)?;
    experiment::save_configs(&folder, &merged)?;
    let mut resume = None;
    for (epochs, diff_dir) in &diffs {
        // The folder name lists each fold's epochs in the split scheme's order, which the worker
        // knows: the source needs no fold folders (published experiments ship only `configs/`).
        let (worker, job) = make_job(
            args,
            &folder,
            &merged,
            Action::Train,
            resume,
            Some(("num_epochs_train", serde_json::Value::from(epochs.clone()))),
        )?;
        run_job(args, &folder, &worker, &job)?;
        // Replay the resume: its diff joins the configs, and is saved like the original's.
        let name = diff_dir.file_name().expect("a folder name");
        for (category, _) in &merged.categories {
            let file = diff_dir.join(format!("{category}.yaml"));
            if file.is_file() {
                let target = folder
                    .join("configs")
                    .join(name)
                    .join(format!("{category}.yaml"));
                crate::fsutil::write_atomic(&target, &std::fs::read(&file)?)?;
            }
        }
        experiment::apply_config_diff_folder(&mut merged, diff_dir)?;
        resume = Some(ResumeFrom::Latest);
    }
    let (worker, job) = make_job(args, &folder, &merged, Action::Train, resume, None)?;
    run_job(args, &folder, &worker, &job)
}

/// Runs one job with a progress bar and prints its results table.
fn run_job(args: &RunArgs, folder: &Path, worker: &[String], job: &Job) -> Result<JobOutcome> {
    eprintln!(
        "experiment {} ({:?}) -> worker `{}`",
        folder.display(),
        job.action,
        worker.join(" ")
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} it {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let spec = JobSpec {
        job: job.clone(),
        folder: folder.to_path_buf(),
        concurrent: 1,
    };
    let executor = LocalExecutor::new(worker.to_vec());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        let mut handle = match executor.start(&spec) {
            Ok(handle) => handle,
            Err(failure) => return Some(Err(failure)),
        };
        let control = handle.control();
        let mut interrupts = 0;
        loop {
            tokio::select! {
                event = handle.next_event() => match event {
                    Some(event) => show_event(&bar, &event),
                    None => return Some(handle.outcome().await),
                },
                signal = tokio::signal::ctrl_c() => {
                    if signal.is_err() {
                        // No signal handling on this platform: just wait for the job.
                        return Some(handle.wait(|event| show_event(&bar, event)).await);
                    }
                    interrupts += 1;
                    if interrupts == 1 {
                        say(&bar, "Ctrl-C: the worker stops after its next evaluation and leaves a \
                            checkpoint (resume with --resume_training); press Ctrl-C again to kill it"
                            .to_string());
                        control.stop();
                    } else {
                        // Dropping the handle kills the worker.
                        return None;
                    }
                }
            }
        }
    });
    let Some(outcome) = outcome else {
        bar.finish_and_clear();
        bail!(
            "interrupted: the worker of {} was killed; its last checkpoint is kept in {}",
            args.experiment_name,
            folder.display()
        );
    };
    bar.finish_and_clear();
    let outcome = outcome.map_err(|e| {
        anyhow::anyhow!(
            "the experiment {} failed: {e}\n(configs are in {})",
            args.experiment_name,
            folder.join("configs").display()
        )
    })?;
    println!("{}", results_table(&args.experiment_name, &outcome));
    Ok(outcome)
}

/// Prints a line above the progress bar, or plainly on stderr when there is no terminal to draw on
/// (indicatif then hides the bar and drops its printed lines).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn show_event(bar: &ProgressBar, event: &Event) {
    match event {
        Event::Ready { name, device, .. } => say(bar, format!("worker {name} ready on {device}")),
        Event::Progress {
            fold,
            epoch,
            iteration,
            total_iterations,
            loss,
        } => {
            if let Some(total) = total_iterations {
                bar.set_length(*total);
            }
            bar.set_position(*iteration);
            bar.set_prefix(fold.clone());
            let loss = loss.map_or("nan".to_string(), |l| format!("{l:.4}"));
            bar.set_message(format!("epoch {epoch} loss {loss}"));
        }
        Event::Evaluation {
            fold,
            epoch,
            split,
            metrics,
            is_best,
        } => {
            let shown: Vec<String> = metrics
                .iter()
                .map(|(k, v)| format!("{k}={}", format_metric(v)))
                .collect();
            let best = if *is_best { " (best)" } else { "" };
            say(
                bar,
                format!("{fold} epoch {epoch} {split}: {}{best}", shown.join(" ")),
            );
        }
        Event::Result { .. } | Event::Error { .. } => {}
    }
}

fn format_metric(v: &serde_json::Value) -> String {
    v.as_f64().map_or("nan".to_string(), |x| format!("{x:.4}"))
}

/// A plain-text table: one row per fold with its best epoch and metrics, then the objective.
pub fn results_table(name: &str, outcome: &JobOutcome) -> String {
    let mut metric_names: Vec<String> = Vec::new();
    for fold in &outcome.folds {
        for k in fold.metrics.keys() {
            if !metric_names.contains(k) {
                metric_names.push(k.clone());
            }
        }
    }
    let mut header = vec!["fold".to_string(), "best_epoch".to_string()];
    header.extend(metric_names.iter().cloned());
    let mut rows = vec![header];
    for fold in &outcome.folds {
        let mut row = vec![fold.fold.clone(), fold.best_epoch.to_string()];
        for m in &metric_names {
            row.push(fold.metrics.get(m).map_or("-".to_string(), format_metric));
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("Results of {name} (best validation epoch per fold)\n");
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    let o = &outcome.objective;
    let mean = o.mean.map_or("nan".into(), |m| format!("{m:.4}"));
    let sem = o.sem.map_or("n/a".into(), |s| format!("{s:.4}"));
    out.push_str(&format!("objective {} = {mean} ± {sem} (SEM)", o.metric));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn tool_flags_are_separated_from_config_overrides() {
        let args = RunArgs::from_tokens(&toks(
            "--experiment_name e1 --config_general default with_cars196 --batch_size 64 \
             --root_experiment_folder /tmp/x --config_models [default, big]",
        ))
        .unwrap();
        assert_eq!(args.experiment_name, "e1");
        assert_eq!(args.root_experiment_folder, PathBuf::from("/tmp/x"));
        assert_eq!(args.overrides.len(), 1);
        assert_eq!(args.overrides[0].key, "batch_size");
        let general = &args.selection.files[0];
        assert_eq!(general.1, vec!["default", "with_cars196"]);
        assert_eq!(args.selection.files[1].1, vec!["default", "big"]);
        let err = RunArgs::from_tokens(&toks("--batch_size 3"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--experiment_name is required"));
        assert_eq!(args.mode, Mode::New);
        let a = RunArgs::from_tokens(&toks("--experiment_name e --resume_training")).unwrap();
        assert_eq!(a.mode, Mode::Resume(ResumeFrom::Latest));
        let a = RunArgs::from_tokens(&toks(
            "--experiment_name e --resume_training best --batch_size 8",
        ))
        .unwrap();
        assert_eq!(a.mode, Mode::Resume(ResumeFrom::Best));
        assert_eq!(a.overrides.len(), 1);
        let a = RunArgs::from_tokens(&toks(
            "--experiment_name e --evaluate --splits_to_eval [test]",
        ))
        .unwrap();
        assert_eq!(a.mode, Mode::Evaluate);
        let a =
            RunArgs::from_tokens(&toks("--experiment_name e --reproduce_results /x/old")).unwrap();
        assert_eq!(a.mode, Mode::Reproduce(PathBuf::from("/x/old")));
        let err = RunArgs::from_tokens(&toks("--experiment_name e --evaluate --resume_training"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("exclude each other"), "{err}");
        let err = RunArgs::from_tokens(&toks("--experiment_name e --resume_training soon"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("latest or best"), "{err}");
        let err = RunArgs::from_tokens(&toks("--experiment_name a --config_foo x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config_foo"));
        let err = RunArgs::from_tokens(&toks("--experiment_name a --bayes_opt_iters 3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--bayes_opt_iters") && err.contains("tune"),
            "{err}"
        );
    }

    #[test]
    fn meta_testing_method_in_each_of_the_originals_forms() {
        let v = |s: &str| -> Value { serde_yaml::from_str(s).unwrap() };
        for (text, ensemble) in [
            ("ConcatenateEmbeddings", true),
            (
                "[meta_SeparateEmbeddings, meta_ConcatenateEmbeddings]",
                true,
            ),
            ("[meta_SeparateEmbeddings]", false),
            ("[]", false),
            ("null", false),
        ] {
            assert_eq!(
                evaluates_ensemble(Some(&v(text))).unwrap(),
                ensemble,
                "{text}"
            );
        }
        assert!(!evaluates_ensemble(None).unwrap());
        let err = evaluates_ensemble(Some(&v("[meta_Concatenate]")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("meta_Concatenate is not") && err.contains("meta_ConcatenateEmbeddings"),
            "{err}"
        );
    }

    #[test]
    fn plain_runs_use_midpoints_and_plain_keys() {
        let m = |s: &str| -> serde_yaml::Mapping { serde_yaml::from_str(s).unwrap() };
        let merged = Merged {
            categories: vec![
                ("config_general".into(), m("{seed: 0}")),
                (
                    "config_optimizers".into(),
                    m("{optimizers: {t: {Adam: {lr~LOG_BAYESIAN~: [0.0001, 0.01], wd: 0}}}}"),
                ),
            ],
        };
        let (out, mid) = substitute_midpoints(merged.clone()).unwrap();
        let mid = mid.unwrap();
        assert_eq!(mid.len(), 1);
        let lr = out.categories[1].1["optimizers"]["t"]["Adam"]["lr"]
            .as_f64()
            .unwrap();
        assert!((lr - 0.001).abs() < 1e-12, "{lr}");
        let text = serde_yaml::to_string(&out.categories[1].1).unwrap();
        assert!(!text.contains('~'), "{text}");
        let (same, none) = substitute_midpoints(out.clone()).unwrap();
        assert!(none.is_none());
        assert_eq!(same, out);
    }
}
