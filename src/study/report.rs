//! Study outputs: `trials.csv` and `best_parameters.yaml` (rewritten after every trial), and after the
//! search the best trial's test evaluation (per fold and the concatenated ensemble), its
//! reproductions, and `report.yaml` with test metrics as mean and 95% confidence interval.

use super::best::BestChoice;
use super::folder::{clear_trial_folder, has_checkpoint, Study, REPORTED_METRIC};
use super::storage::{TrialRecord, TrialState};
use crate::config::json_to_yaml;
use crate::experiment;
use crate::fsutil::write_atomic;
use crate::protocol::{Action, Event, ResumeFrom};
use crate::search_space::SearchSpace;
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// `name=value` pairs, floats with 4 significant digits (the full values are in study.db and
/// trials.csv). Names are shortened to their shortest unambiguous trailing path (at least the last
/// two components): `Adam/lr` unless two optimizers' `lr` are searched, then `trunk_optimizer/Adam/lr`.
pub fn format_parameters(p: &Map<String, Value>) -> String {
    let names: Vec<&str> = p.keys().map(String::as_str).collect();
    let suffix = |name: &str, k: usize| -> String {
        let parts: Vec<&str> = name.split('/').collect();
        parts[parts.len().saturating_sub(k)..].join("/")
    };
    p.iter()
        .map(|(k, v)| {
            let mut depth = 2;
            while depth < k.split('/').count()
                && names
                    .iter()
                    .filter(|other| suffix(other, depth) == suffix(k, depth))
                    .count()
                    > 1
            {
                depth += 1;
            }
            let value = match v.as_f64() {
                Some(x) if v.is_f64() => {
                    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e4) {
                        format!("{x:.3e}")
                    } else {
                        format!("{}", (x * 1e4).round() / 1e4)
                    }
                }
                _ => v.to_string(),
            };
            format!("{}={value}", suffix(k, depth))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| v.to_string())
}

/// The columns of `trials.csv`: index, name, state, the objective and its SEM (named after
/// `metric`), one column per search parameter, then timing, attempts, host and error.
fn trials_csv_header(space: &SearchSpace, metric: &str) -> Vec<String> {
    let mut header = vec![
        "trial_index".to_string(),
        "name".to_string(),
        "state".to_string(),
        metric.to_string(),
        format!("SEM_{metric}"),
    ];
    header.extend(space.names().iter().map(|n| n.to_string()));
    header.extend(
        [
            "started_at",
            "finished_at",
            "duration_s",
            "attempts",
            "worker_host",
            "job_id",
            "error",
        ]
        .map(String::from),
    );
    header
}

fn trials_csv_row(space: &SearchSpace, t: &TrialRecord) -> Vec<String> {
    let mut row = vec![
        t.index.to_string(),
        t.name.clone(),
        t.state.as_str().to_string(),
        opt(t.objective_mean),
        opt(t.objective_sem),
    ];
    for name in space.names() {
        row.push(match t.parameters.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        });
    }
    row.push(t.started_at.clone().unwrap_or_default());
    row.push(t.finished_at.clone().unwrap_or_default());
    row.push(opt(t.duration_s));
    row.push(t.attempts.to_string());
    row.push(t.worker_host.clone().unwrap_or_default());
    row.push(t.job_id.clone().unwrap_or_default());
    row.push(t.error.clone().unwrap_or_default());
    row
}

/// `trials.csv` as text: RFC 4180 quoting by the `csv` crate, so any cell text (a string
/// parameter, an error message with commas, quotes and newlines) reads back unchanged.
pub fn trials_csv(space: &SearchSpace, trials: &[TrialRecord], metric: &str) -> Result<String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(trials_csv_header(space, metric))?;
    for t in trials {
        out.write_record(trials_csv_row(space, t))?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write trials.csv: {e}"))?;
    Ok(String::from_utf8(bytes)?)
}

/// Reads a `trials.csv` (or any CSV with a header row) into one map per row, column -> cell.
pub fn read_csv_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let header = reader
        .headers()
        .with_context(|| format!("cannot read the header row of {}", path.display()))?
        .clone();
    reader
        .records()
        .map(|record| {
            let record = record.with_context(|| format!("malformed row in {}", path.display()))?;
            Ok(header
                .iter()
                .zip(record.iter())
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect())
        })
        .collect()
}

/// Rewrites `trials.csv` and `best_parameters.yaml` (the trial `best` names, see
/// [`super::best`]) from the store's rows.
pub fn write_trial_files(
    folder: &Path,
    space: &SearchSpace,
    trials: &[TrialRecord],
    metric: &str,
    best: Option<&BestChoice>,
) -> Result<()> {
    let text = trials_csv(space, trials, metric)?;
    write_atomic(&folder.join("trials.csv"), text.as_bytes())?;

    if let Some(choice) = best {
        let best = &choice.trial;
        let doc = json!({
            "best_sub_experiment_name": best.name,
            "best_trial_index": best.index,
            "best_parameters": Value::Object(best.parameters.clone()),
            "best_values": {metric: {"mean": best.objective_mean, "SEM": best.objective_sem}},
            "best_trial_by": choice.rule.as_str(),
            "model_mean": choice.model_mean,
        });
        let text = serde_yaml::to_string(&json_to_yaml(&doc))?;
        write_atomic(&folder.join("best_parameters.yaml"), text.as_bytes())?;
    }
    Ok(())
}

/// Test accuracy of the best trial and its reproductions.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    /// Test metrics per experiment (best trial first, then reproductions): mean over folds.
    pub experiments: Vec<(String, BTreeMap<String, f64>)>,
    /// Concatenated-embeddings ensemble of the best trial's folds.
    pub ensemble: Option<BTreeMap<String, f64>>,
    /// Per metric: mean over experiments and the 95% t-interval half-width (None with one experiment).
    pub summary: BTreeMap<String, (f64, Option<f64>)>,
    pub errors: Vec<String>,
}

/// Mean over folds of each metric of `evaluation` events on `test`.
fn mean_over_folds(per_fold: &BTreeMap<String, BTreeMap<String, f64>>) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for metrics in per_fold.values() {
        for (k, v) in metrics {
            let e = sums.entry(k.clone()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

/// Runs one job and gathers the `test` evaluations per fold.
async fn run_and_collect(
    study: &Study,
    folder: &Path,
    action: Action,
    resume: Option<ResumeFrom>,
    splits: Vec<String>,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>, String> {
    let merged = experiment::load_saved_configs(folder).map_err(|e| format!("{e:#}"))?;
    let job = study
        .job(folder, &merged, action, resume, splits, None)
        .map_err(|e| format!("{e:#}"))?;
    let mut per_fold: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let spec = study.spec(folder, job, 1);
    let handle = study.executor.start(&spec).map_err(|e| e.to_string())?;
    handle
        .wait(|event| {
            if let Event::Evaluation {
                fold,
                split,
                metrics,
                ..
            } = event
            {
                if split == "test" {
                    let m = metrics
                        .iter()
                        .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
                        .collect();
                    per_fold.insert(fold.clone(), m);
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(per_fold)
}

/// Student-t 95% interval half-width for the mean of `values`.
pub fn t_interval_95(values: &[f64]) -> Option<f64> {
    use statrs::distribution::{ContinuousCDF, StudentsT};
    let n = values.len();
    if n < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64).ok()?;
    Some(t.inverse_cdf(0.975) * sd / (n as f64).sqrt())
}

/// Reproduction `j` retrains the best trial's config with its own seed: on the CPU a run is
/// deterministic given its seed, so reusing the trial's seed would "reproduce" the same numbers and
/// give a confidence interval of width zero. The seeds are fixed, so a resumed study reuses them.
fn reproduction_seed(study: &Study, j: usize) -> u64 {
    study.seed().wrapping_add(1000 * (j as u64 + 1))
}

/// The configs with `seed` set (where a category defines it, else in the first category).
fn with_seed(mut merged: crate::config::Merged, seed: u64) -> crate::config::Merged {
    let key = serde_yaml::Value::String("seed".to_string());
    let value = serde_yaml::Value::Number(seed.into());
    let mut set = false;
    for (_, map) in merged.categories.iter_mut() {
        if let Some(v) = map.get_mut(&key) {
            *v = value.clone();
            set = true;
        }
    }
    if !set {
        if let Some((_, first)) = merged.categories.first_mut() {
            first.insert(key, value);
        }
    }
    merged
}

/// Evaluates the best trial on `test` (per fold and ensemble), runs `--reproductions`, and writes
/// `report.yaml`. Reproductions already finished (recorded in the store) are not run again.
pub(super) async fn test_best(study: &Study, choice: &BestChoice) -> Result<TestReport> {
    let best = &choice.trial;
    let mut report = TestReport::default();
    let best_folder = study.trial_folder(&best.name);
    let test = vec!["test".to_string()];
    match run_and_collect(
        study,
        &best_folder,
        Action::Evaluate,
        Some(ResumeFrom::Best),
        test.clone(),
    )
    .await
    {
        Ok(per_fold) if !per_fold.is_empty() => {
            report
                .experiments
                .push((best.name.clone(), mean_over_folds(&per_fold)));
        }
        Ok(_) => report.errors.push(format!(
            "{}: the worker's evaluation produced no `test` results",
            best.name
        )),
        Err(e) => report
            .errors
            .push(format!("{}: test evaluation failed: {e}", best.name)),
    }
    match run_and_collect(
        study,
        &best_folder,
        Action::EvaluateEnsemble,
        Some(ResumeFrom::Best),
        test.clone(),
    )
    .await
    {
        Ok(per_fold) => report.ensemble = per_fold.into_values().last(),
        Err(e) => report
            .errors
            .push(format!("{}: ensemble evaluation failed: {e}", best.name)),
    }

    for j in 0..study.args.reproductions {
        let name = format!("{}_reproduction{j}", best.name);
        let key = format!("reproduction:{name}");
        if let Some(stored) = study.store.get_meta(&key)? {
            let metrics: BTreeMap<String, f64> = serde_json::from_str(&stored)?;
            report.experiments.push((name, metrics));
            continue;
        }
        let folder = study.trial_folder(&name);
        let resume = if has_checkpoint(&folder) {
            Some(ResumeFrom::Latest)
        } else {
            clear_trial_folder(&folder)?;
            let configs = experiment::load_saved_configs(&best_folder)?;
            experiment::save_configs(&folder, &with_seed(configs, reproduction_seed(study, j)))?;
            None
        };
        eprintln!(
            "reproduction {} of {}: {name}",
            j + 1,
            study.args.reproductions
        );
        let trained = run_and_collect(
            study,
            &folder,
            Action::Train,
            resume,
            study.splits_to_eval.clone(),
        )
        .await;
        if let Err(e) = trained {
            report.errors.push(format!("{name}: training failed: {e}"));
            continue;
        }
        match run_and_collect(
            study,
            &folder,
            Action::Evaluate,
            Some(ResumeFrom::Best),
            test.clone(),
        )
        .await
        {
            Ok(per_fold) if !per_fold.is_empty() => {
                let metrics = mean_over_folds(&per_fold);
                study
                    .store
                    .set_meta(&key, &serde_json::to_string(&metrics)?)?;
                report.experiments.push((name, metrics));
            }
            Ok(_) => report.errors.push(format!(
                "{name}: the worker's evaluation produced no `test` results"
            )),
            Err(e) => report
                .errors
                .push(format!("{name}: test evaluation failed: {e}")),
        }
    }

    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (_, metrics) in &report.experiments {
        for (k, v) in metrics {
            values.entry(k.clone()).or_default().push(*v);
        }
    }
    report.summary = values
        .iter()
        .map(|(k, v)| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            (k.clone(), (mean, t_interval_95(v)))
        })
        .collect();
    for e in &report.errors {
        eprintln!("warning: {e}");
    }
    write_report(study, choice, &report)?;
    Ok(report)
}

fn write_report(study: &Study, choice: &BestChoice, report: &TestReport) -> Result<()> {
    let best = &choice.trial;
    let reported = study.store.get_meta(REPORTED_METRIC)?;
    let source = match &reported {
        Some(_) => "the name the worker reported with its result (objective.metric)",
        None => "the config's eval_metric_for_best_epoch (no worker reported a name)",
    };
    let metric = reported.unwrap_or_else(|| study.primary_metric.clone());
    let summary: Map<String, Value> = report
        .summary
        .iter()
        .map(|(k, (mean, half))| {
            let ci = half.map(|h| json!([mean - h, mean + h]));
            (
                k.clone(),
                json!({
                    "mean": mean,
                    "n": report.experiments.len(),
                    "95%_confidence_interval": ci,
                    "95%_confidence_interval_width": half,
                }),
            )
        })
        .collect();
    let experiments: Vec<Value> = report
        .experiments
        .iter()
        .map(|(name, m)| json!({"name": name, "test_mean_over_folds": m}))
        .collect();
    let doc = json!({
        "best_trial": best.name,
        "best_parameters": Value::Object(best.parameters.clone()),
        "objective": {
            "metric": metric,
            "metric_source": source,
            "mean": best.objective_mean,
            "SEM": best.objective_sem,
        },
        "best_trial_by": choice.rule.as_str(),
        "best_trial_rule": choice.describe(),
        "model_mean": choice.model_mean,
        "test": {
            "experiments": experiments,
            "ConcatenateEmbeddings": report.ensemble,
            "summary": summary,
        },
        "errors": report.errors,
    });
    let text = serde_yaml::to_string(&json_to_yaml(&doc))?;
    write_atomic(&study.folder.join("report.yaml"), text.as_bytes())
}

/// The table printed at the end of a study.
pub fn summary_table(
    name: &str,
    trials: &[TrialRecord],
    metric: &str,
    best: Option<&BestChoice>,
    report: Option<&TestReport>,
) -> String {
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let mut out = format!(
        "Study {name}: {} trials ({} completed, {} pruned, {} failed)\n",
        trials.len(),
        count(TrialState::Completed),
        count(TrialState::Pruned),
        count(TrialState::Failed)
    );
    let mut ranked: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.objective_mean.is_some())
        .collect();
    ranked.sort_by(|a, b| {
        b.objective_mean
            .unwrap_or(f64::NAN)
            .total_cmp(&a.objective_mean.unwrap_or(f64::NAN))
    });
    out.push_str(&format!(
        "objective: {metric} (mean over folds of each fold's best validation epoch)\n"
    ));
    out.push_str(&format!(
        "{:<6} {:<10} {:>9} {:>8}  parameters\n",
        "trial", "state", "objective", "SEM"
    ));
    for t in ranked.iter().take(10) {
        out.push_str(&format!(
            "{:<6} {:<10} {:>9.4} {:>8}  {}\n",
            t.index,
            t.state.as_str(),
            t.objective_mean.unwrap_or(f64::NAN),
            t.objective_sem
                .map_or("-".to_string(), |s| format!("{s:.4}")),
            format_parameters(&t.parameters)
        ));
    }
    if let Some(choice) = best {
        out.push_str(&format!(
            "best trial: {} ({}), {}\n",
            choice.trial.name,
            format_parameters(&choice.trial.parameters),
            choice.describe()
        ));
    }
    if let Some(r) = report {
        if !r.summary.is_empty() {
            out.push_str(&format!(
                "test accuracy over {} run(s) (best trial + reproductions):\n",
                r.experiments.len()
            ));
            for (k, (mean, half)) in &r.summary {
                out.push_str(&format!(
                    "  {k:<32} {mean:.4}{}\n",
                    half.map_or(String::new(), |h| format!(" ± {h:.4} (95% CI)"))
                ));
            }
        }
        if let Some(e) = &r.ensemble {
            if let Some(v) = e.get(metric) {
                out.push_str(&format!(
                    "  ensemble (ConcatenateEmbeddings) {metric}: {v:.4}\n"
                ));
            }
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_are_short_but_unambiguous() {
        let p: Map<String, Value> = serde_json::from_value(json!({
            "optimizers/trunk_optimizer/Adam/lr": 0.00123,
            "optimizers/embedder_optimizer/Adam/lr": 0.5,
            "loss_funcs/metric_loss/ContrastiveLoss/pos_margin": 0.1,
            "batch_size": 64,
        }))
        .unwrap();
        assert_eq!(
            format_parameters(&p),
            "trunk_optimizer/Adam/lr=0.0012, embedder_optimizer/Adam/lr=0.5, \
             ContrastiveLoss/pos_margin=0.1, batch_size=64"
        );
    }

    #[test]
    fn t_interval_matches_scipy() {
        // scipy.stats.t.interval(0.95, 2, loc=2, scale=sem([1,2,3])): half-width t(0.975, 2) / sqrt(3)
        // = 4.302652729911275 / 1.7320508075688772
        let h = t_interval_95(&[1.0, 2.0, 3.0]).unwrap();
        assert!((h - 2.484_137_711_843_753).abs() < 1e-9, "{h}");
        assert_eq!(t_interval_95(&[1.0]), None);
    }

    #[test]
    fn trials_csv_cells_with_commas_quotes_and_newlines_round_trip() {
        let config: serde_yaml::Mapping =
            serde_yaml::from_str("{lr~LOG_BAYESIAN~: [0.001, 1], note~CHOICE~: [plain, other]}")
                .unwrap();
        let space = SearchSpace::from_config(&config).unwrap();
        // A choice's value is any YAML scalar, so a string parameter can hold CSV's special
        // characters; so can an error message.
        let tricky = "a, \"b\"\nc";
        let record = TrialRecord {
            index: 0,
            name: "s0".into(),
            state: TrialState::Failed,
            parameters: serde_json::from_value(json!({"lr": 0.01, "note": tricky})).unwrap(),
            objective_mean: None,
            objective_sem: None,
            fold_metrics: None,
            started_at: Some("2026-01-01T00:00:00Z".into()),
            finished_at: None,
            duration_s: Some(1.5),
            worker_host: Some("host".into()),
            exit_status: None,
            error: Some("worker `x, y` said \"no\"\nsecond line, too".into()),
            attempts: 1,
            job_id: Some("4711".into()),
        };
        let dir = tempfile::tempdir().unwrap();
        let metric = "precision_at_1";
        write_trial_files(
            dir.path(),
            &space,
            std::slice::from_ref(&record),
            metric,
            None,
        )
        .unwrap();
        let rows = read_csv_rows(&dir.path().join("trials.csv")).unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["note"], tricky);
        assert_eq!(row["error"], record.error.clone().unwrap());
        assert_eq!(row["lr"], "0.01");
        assert_eq!(row["state"], "failed");
        assert_eq!(row[metric], "");
        assert_eq!(row["duration_s"], "1.5");
        assert_eq!(row["job_id"], "4711");
        let header: Vec<&String> = rows[0].keys().collect();
        assert_eq!(header.len(), 14, "{header:?}");
    }
}
