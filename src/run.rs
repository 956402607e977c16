//! `metricbench run`: one experiment, trained and evaluated by one worker process.

use crate::cli_values::CliValue;
use crate::config::{self, Selection, CATEGORIES};
use crate::executor::{self, JobOutcome};
use crate::experiment;
use crate::protocol::{Action, Event, Job, PROTOCOL_VERSION};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_yaml::Value;
use std::path::PathBuf;

/// Flags of `run` that steer the tool instead of being config keys (the original's argparse flags).
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub experiment_name: String,
    pub root_experiment_folder: PathBuf,
    pub dataset_root: PathBuf,
    pub selection: Selection,
    /// Everything else: config overrides, in command-line order.
    pub overrides: Vec<CliValue>,
}

fn as_string(cv: &CliValue) -> Result<String> {
    match &cv.value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => bail!(
            "--{} expects a single word, got {}",
            cv.key,
            config::kind_name(other)
        ),
    }
}

fn as_names(cv: &CliValue) -> Result<Vec<String>> {
    match &cv.value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => bail!(
                    "--{} expects config file names, got {}",
                    cv.key,
                    config::kind_name(other)
                ),
            })
            .collect(),
        _ => Ok(vec![as_string(cv)?]),
    }
}

/// The config folder used when `--root_config_folder` is not given: `./configs`, else the shipped
/// configs of the source tree this binary was built from.
fn default_config_folder() -> PathBuf {
    let local = PathBuf::from("configs");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")
}

impl RunArgs {
    /// Splits parsed `--KEY VALUE` pairs into tool flags and config overrides. Config category lists
    /// accept several shell words: `--config_general default with_cars196`.
    pub fn from_tokens(tokens: &[String]) -> Result<RunArgs> {
        let (category_lists, rest) = split_category_lists(tokens);
        let values = crate::cli_values::parse(&rest)?;
        let mut name = None;
        let mut root_experiment_folder = PathBuf::from("experiments");
        let mut dataset_root = PathBuf::from("datasets");
        let mut root_config_folder = None;
        let mut overrides = Vec::new();
        for cv in values {
            match cv.key.as_str() {
                "experiment_name" => name = Some(as_string(&cv)?),
                "root_experiment_folder" => root_experiment_folder = as_string(&cv)?.into(),
                "dataset_root" => dataset_root = as_string(&cv)?.into(),
                "root_config_folder" => root_config_folder = Some(PathBuf::from(as_string(&cv)?)),
                k if k.starts_with("config_") => {
                    let names = as_names(&cv)?;
                    // Validated below against the category list.
                    overrides.push(CliValue {
                        key: k.to_string(),
                        value: Value::Sequence(names.into_iter().map(Value::String).collect()),
                    });
                }
                _ => overrides.push(cv),
            }
        }
        let experiment_name = name.context(
            "--experiment_name is required (the experiment's folder name inside --root_experiment_folder)",
        )?;
        let mut selection =
            Selection::defaults(root_config_folder.unwrap_or_else(default_config_folder));
        let mut config_overrides = Vec::new();
        for cv in overrides.into_iter().chain(category_lists) {
            if cv.key.starts_with("config_") {
                let names = as_names(&cv)?;
                selection.set(&cv.key, names)?;
            } else {
                config_overrides.push(cv);
            }
        }
        Ok(RunArgs {
            experiment_name,
            root_experiment_folder,
            dataset_root,
            selection,
            overrides: config_overrides,
        })
    }
}

/// Pulls `--config_<category> a b c` out of the token list (several plain words are a list here,
/// unlike any other flag), leaving the other tokens for the YAML value parser.
fn split_category_lists(tokens: &[String]) -> (Vec<CliValue>, Vec<String>) {
    let mut lists = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let is_category = t
            .strip_prefix("--")
            .is_some_and(|k| CATEGORIES.contains(&k));
        let next_is_list = tokens.get(i + 1).is_some_and(|n| n.starts_with('['));
        if is_category && !next_is_list {
            let key = t[2..].to_string();
            let mut names = Vec::new();
            i += 1;
            while i < tokens.len() && !tokens[i].starts_with("--") {
                names.push(Value::String(tokens[i].clone()));
                i += 1;
            }
            lists.push(CliValue {
                key,
                value: Value::Sequence(names),
            });
        } else {
            rest.push(t.clone());
            i += 1;
        }
    }
    (lists, rest)
}

/// Runs the experiment and prints its results table.
pub fn run(args: RunArgs) -> Result<JobOutcome> {
    let merged = config::load(&args.selection, &args.overrides)?;
    let combined = merged.combined();
    let folder =
        experiment::new_experiment_folder(&args.root_experiment_folder, &args.experiment_name)?;
    experiment::save_configs(&folder, &merged)?;

    let worker = executor::worker_argv(combined.get("worker_command"))?;
    let splits_to_eval = match combined.get("splits_to_eval") {
        None => vec!["val".to_string()],
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .context("splits_to_eval must be a list of split names such as [val, test]")
            })
            .collect::<Result<_>>()?,
        Some(other) => bail!(
            "splits_to_eval must be a list of split names such as [val, test], not {}",
            config::kind_name(other)
        ),
    };
    let mut config_json = config::yaml_to_json(&Value::Mapping(combined))?;
    if let Some(obj) = config_json.as_object_mut() {
        obj.entry("dataset_root").or_insert_with(|| {
            serde_json::Value::String(args.dataset_root.to_string_lossy().into_owned())
        });
    }
    let absolute = std::path::absolute(&folder).unwrap_or_else(|_| folder.clone());
    let job = Job {
        protocol: PROTOCOL_VERSION,
        action: Action::Train,
        experiment_folder: absolute.to_string_lossy().into_owned(),
        config: config_json,
        resume: None,
        splits_to_eval,
        trial: None,
    };

    eprintln!(
        "experiment {} -> worker `{}`",
        folder.display(),
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
    let log = folder.join("logs").join("worker_stderr.log");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(executor::run_job(&worker, &job, &log, None, |event| {
        show_event(&bar, event)
    }));
    bar.finish_and_clear();
    let outcome = outcome.map_err(|e| {
        anyhow::anyhow!(
            "the experiment {} failed: {e}\n(configs are in {}; nothing else was changed)",
            args.experiment_name,
            folder.join("configs").display()
        )
    })?;
    println!("{}", results_table(&args.experiment_name, &outcome));
    Ok(outcome)
}

fn show_event(bar: &ProgressBar, event: &Event) {
    match event {
        Event::Ready { name, device, .. } => {
            bar.println(format!("worker {name} ready on {device}"))
        }
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
            bar.println(format!(
                "{fold} epoch {epoch} {split}: {}{best}",
                shown.join(" ")
            ));
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
        let err = RunArgs::from_tokens(&toks("--experiment_name a --config_foo x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("config_foo"));
    }
}
