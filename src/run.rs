//! `metricbench run`: one experiment, trained and evaluated by one worker process.

use crate::args::CommonArgs;
use crate::cli_values::CliValue;
use crate::config::{self, Merged, Selection};
use crate::executor::{self, JobOutcome};
use crate::experiment;
use crate::protocol::{Action, Event, Job, PROTOCOL_VERSION};
use crate::search_space::{Assignment, SearchSpace};
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

impl RunArgs {
    /// Splits parsed `--KEY VALUE` pairs into tool flags and config overrides (see
    /// [`CommonArgs::from_tokens`]). Config category lists accept several shell words:
    /// `--config_general default with_cars196`.
    pub fn from_tokens(tokens: &[String]) -> Result<RunArgs> {
        let common = CommonArgs::from_tokens(tokens)?;
        let experiment_name = common.require_experiment_name()?.to_string();
        if let Some(flag) = common.tool_flags.first() {
            let why = match flag.key.as_str() {
                "bayes_opt_iters"
                | "bayesian_optimization_n_iter"
                | "parallel"
                | "reproductions"
                | "prune"
                | "prune_warmup"
                | "trial_timeout"
                | "executor" => "it is an option of `metricbench tune`",
                "format" => "it is an option of `metricbench config`",
                _ => "this version of `run` does not handle it yet",
            };
            bail!(
                "--{} cannot be used with `metricbench run`: {why}",
                flag.key
            );
        }
        Ok(RunArgs {
            experiment_name,
            root_experiment_folder: common.root_experiment_folder,
            dataset_root: common.dataset_root,
            selection: common.selection,
            overrides: common.overrides,
        })
    }
}

/// A plain run of a config with search keywords runs once at the parameters' midpoints (SPEC §3.5):
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

/// Runs the experiment and prints its results table.
pub fn run(args: RunArgs) -> Result<JobOutcome> {
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
