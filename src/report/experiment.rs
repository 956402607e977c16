//! The report of one experiment (`metricbench report EXPERIMENT`, also a study's trial): a printed
//! summary — per fold and split the best epoch and its metrics, the mean ± standard error over
//! folds, the ensemble — and `report.html` with loss curves (raw and smoothed), accuracy per epoch
//! with the best epoch marked, learning rates, the worker's pictures (retrieval grid, t-SNE map)
//! and the split composition of each fold.

use super::charts::{self, LineChart, Marker, Series, Style};
use super::html::{escape, Page};
use super::records::{ExperimentRecords, FoldRecords, Table};
use super::visualisations;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// Columns of an accuracy table that are not metrics.
const NOT_METRICS: [&str; 4] = ["epoch", "best_epoch", "best_accuracy", "id"];

/// One split's row at the fold's best epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitResult {
    pub split: String,
    /// The epoch of the row shown (the best epoch, or the latest evaluation if the split has no
    /// row at the best epoch).
    pub epoch: Option<i64>,
    pub metrics: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FoldSummary {
    pub fold: String,
    pub best_epoch: Option<i64>,
    /// The latest evaluated epoch of any split.
    pub latest_epoch: Option<i64>,
    pub splits: Vec<SplitResult>,
}

/// Mean and standard error over folds of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaValue {
    pub metric: String,
    pub mean: f64,
    pub sem: Option<f64>,
    pub folds: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ExperimentSummary {
    pub folds: Vec<FoldSummary>,
    /// Per split (train, val, test, then others): mean ± SEM over folds of the best-epoch rows.
    pub meta: Vec<(String, Vec<MetaValue>)>,
    /// The ConcatenateEmbeddings ensemble on `test`: (is_trained, metrics).
    pub ensemble: Vec<(bool, Vec<(String, f64)>)>,
}

fn metric_columns(t: &Table) -> Vec<&str> {
    t.columns
        .iter()
        .map(String::as_str)
        .filter(|c| !NOT_METRICS.contains(c) && !c.is_empty())
        .collect()
}

/// The fold's best epoch: the `best_epoch` the worker recorded on `val`, else the epoch with the
/// highest primary metric on `val` (ties: the earliest).
fn best_epoch(fold: &FoldRecords, primary: &str) -> Option<i64> {
    let val = fold.accuracies.get("val")?;
    let recorded = val
        .values("best_epoch")
        .and_then(|v| v.into_iter().rev().flatten().find(|x| x.is_finite()));
    if let Some(e) = recorded {
        return Some(e as i64);
    }
    val.xy("epoch", primary)
        .into_iter()
        .fold(None::<(f64, f64)>, |best, p| match best {
            Some(b) if b.1 >= p.1 => Some(b),
            _ => Some(p),
        })
        .map(|(e, _)| e as i64)
}

fn row_metrics(t: &Table, row: &[Option<f64>]) -> Vec<(String, f64)> {
    metric_columns(t)
        .into_iter()
        .filter_map(|c| {
            let v = row[t.column(c)?]?;
            Some((c.to_string(), v))
        })
        .collect()
}

fn summarise_fold(fold: &FoldRecords, primary: &str, problems: &mut Vec<String>) -> FoldSummary {
    let best = best_epoch(fold, primary);
    let mut latest = None::<i64>;
    let mut splits = Vec::new();
    for (split, table) in order_splits(&fold.accuracies) {
        let epochs = table.values("epoch");
        if epochs.is_none() {
            problems.push(format!(
                "{}: {} has no `epoch` column (expected epoch, then one column per metric)",
                fold.name,
                table.file_name()
            ));
        }
        let epochs = epochs.unwrap_or_else(|| vec![None; table.rows.len()]);
        latest = epochs
            .iter()
            .flatten()
            .map(|e| *e as i64)
            .chain(latest)
            .max();
        let at_best = best.and_then(|b| {
            epochs
                .iter()
                .rposition(|e| e.is_some_and(|e| e as i64 == b))
        });
        let (index, epoch) = match at_best {
            Some(i) => (Some(i), best),
            None => {
                let last = table.rows.len().checked_sub(1);
                (last, last.and_then(|i| epochs[i].map(|e| e as i64)))
            }
        };
        if let Some(i) = index {
            splits.push(SplitResult {
                split: split.to_string(),
                epoch,
                metrics: row_metrics(table, &table.rows[i]),
            });
        }
    }
    if fold.accuracies.contains_key("val")
        && best.is_none()
        && fold
            .accuracies
            .get("val")
            .is_some_and(|t| !t.rows.is_empty())
    {
        problems.push(format!(
            "{}: the val table has neither `best_epoch` nor the primary metric `{primary}`: \
             no best epoch (showing the latest rows)",
            fold.name
        ));
    }
    FoldSummary {
        fold: fold.name.clone(),
        best_epoch: best,
        latest_epoch: latest,
        splits,
    }
}

/// `train`, `val`, `test` first, then any other split in name order.
fn order_splits(tables: &BTreeMap<String, Table>) -> Vec<(&str, &Table)> {
    let rank = |s: &str| match s {
        "train" => 0,
        "val" => 1,
        "test" => 2,
        _ => 3,
    };
    let mut v: Vec<(&str, &Table)> = tables.iter().map(|(k, t)| (k.as_str(), t)).collect();
    v.sort_by_key(|(k, _)| (rank(k), k.to_string()));
    v
}

fn mean_and_sem(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

pub fn summarise(records: &ExperimentRecords, problems: &mut Vec<String>) -> ExperimentSummary {
    let folds: Vec<FoldSummary> = records
        .folds
        .iter()
        .map(|f| summarise_fold(f, &records.primary_metric, problems))
        .collect();
    // Only rows at a fold's best epoch enter the mean (a fold still training has none on test).
    let mut per_split: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for f in &folds {
        for s in f.splits.iter().filter(|s| s.epoch == f.best_epoch) {
            for (m, v) in s.metrics.iter().filter(|(_, v)| v.is_finite()) {
                if !order.contains(m) {
                    order.push(m.clone());
                }
                per_split
                    .entry(s.split.clone())
                    .or_default()
                    .entry(m.clone())
                    .or_default()
                    .push(*v);
            }
        }
    }
    let rank = |s: &str| match s {
        "train" => 0,
        "val" => 1,
        "test" => 2,
        _ => 3,
    };
    let mut meta: Vec<(String, Vec<MetaValue>)> = per_split
        .into_iter()
        .map(|(split, metrics)| {
            let values = order
                .iter()
                .filter_map(|m| {
                    let v = metrics.get(m)?;
                    let (mean, sem) = mean_and_sem(v);
                    Some(MetaValue {
                        metric: m.clone(),
                        mean,
                        sem,
                        folds: v.len(),
                    })
                })
                .collect();
            (split, values)
        })
        .collect();
    meta.sort_by_key(|(s, _)| (rank(s), s.clone()));
    let ensemble = records
        .ensemble
        .as_ref()
        .map(|t| {
            let trained = t.column("is_trained");
            t.rows
                .iter()
                .map(|r| {
                    let is_trained = trained.and_then(|i| r[i]).is_none_or(|v| v == 1.0);
                    let metrics = row_metrics(t, r)
                        .into_iter()
                        .filter(|(k, _)| k != "is_trained" && k != "num_folds")
                        .collect();
                    (is_trained, metrics)
                })
                .collect()
        })
        .unwrap_or_default();
    ExperimentSummary {
        folds,
        meta,
        ensemble,
    }
}

fn metrics_line(metrics: &[(String, f64)]) -> String {
    metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The printed summary.
pub fn summary_text(
    records: &ExperimentRecords,
    s: &ExperimentSummary,
    problems: &[String],
) -> String {
    let mut out = format!(
        "Experiment {} ({} fold(s)); best epoch by {} on val\n",
        records.name,
        records.folds.len(),
        records.primary_metric
    );
    for f in &s.folds {
        out.push_str(&format!(
            "fold {}: best epoch {}, latest evaluated epoch {}\n",
            f.fold,
            f.best_epoch.map_or("-".to_string(), |e| e.to_string()),
            f.latest_epoch.map_or("-".to_string(), |e| e.to_string()),
        ));
        for r in &f.splits {
            let note = if r.epoch != f.best_epoch {
                " (no row at the best epoch: latest row)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {:<5} epoch {}{note}: {}\n",
                r.split,
                r.epoch.map_or("-".to_string(), |e| e.to_string()),
                metrics_line(&r.metrics)
            ));
        }
    }
    for (split, values) in &s.meta {
        let n = values.iter().map(|v| v.folds).max().unwrap_or(0);
        out.push_str(&format!(
            "{split}: mean ± SEM over {n} fold(s) at each fold's best epoch\n"
        ));
        for v in values {
            out.push_str(&format!(
                "  {:<36} {:.4}{}\n",
                v.metric,
                v.mean,
                v.sem.map_or(String::new(), |e| format!(" ± {e:.4}"))
            ));
        }
    }
    for (trained, metrics) in &s.ensemble {
        out.push_str(&format!(
            "ensemble (ConcatenateEmbeddings) on test, {}: {}\n",
            if *trained { "trained" } else { "untrained" },
            metrics_line(metrics)
        ));
    }
    if !problems.is_empty() {
        out.push_str("missing or unreadable:\n");
        for p in problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out.trim_end().to_string()
}

/// EMA weight for a series of `n` values: stronger for longer series, so the trend shows.
fn smoothing_weight(n: usize) -> f64 {
    match n {
        0..=200 => 0.6,
        201..=20_000 => 0.9,
        _ => 0.99,
    }
}

/// Raw (faint, thinned) and smoothed curves of every loss column.
pub fn loss_chart(fold: &str, losses: &Table) -> LineChart {
    let mut chart = LineChart::new(format!("Losses, fold {fold}"), "iteration", "loss");
    let x = if losses.column("iteration").is_some() {
        "iteration"
    } else {
        losses.columns.first().map_or("", String::as_str)
    };
    for (i, c) in losses
        .columns
        .iter()
        .filter(|c| c.as_str() != x && c.as_str() != "id")
        .enumerate()
    {
        let raw = losses.xy(x, c);
        if raw.is_empty() {
            continue;
        }
        let smoothed = charts::smooth(&raw, smoothing_weight(raw.len()));
        chart.series.push(Series {
            label: format!("{c} (raw)"),
            points: charts::thin(&raw, 2000),
            color: charts::color(i),
            style: Style::Faint,
            in_legend: false,
        });
        chart.series.push(Series {
            label: format!("{c} (smoothed)"),
            points: charts::thin(&smoothed, 1000),
            color: charts::color(i),
            style: Style::Line,
            in_legend: true,
        });
    }
    chart
}

/// The primary metric per split against the epoch, the best epoch marked.
pub fn accuracy_chart(fold: &FoldRecords, primary: &str, best: Option<i64>) -> LineChart {
    let mut chart = LineChart::new(format!("{primary}, fold {}", fold.name), "epoch", primary);
    for (i, (split, t)) in order_splits(&fold.accuracies).into_iter().enumerate() {
        let pts = t.xy("epoch", primary);
        if !pts.is_empty() {
            chart.series.push(Series {
                label: split.to_string(),
                points: pts,
                color: charts::color(i),
                style: Style::LineAndDots,
                in_legend: true,
            });
        }
    }
    if let Some(b) = best {
        chart.markers.push(Marker {
            x: b as f64,
            color: charts::color(3),
            label: format!("best epoch {b}"),
        });
    }
    chart
}

pub fn learning_rate_chart(fold: &FoldRecords) -> LineChart {
    let mut chart = LineChart::new(
        format!("Learning rates, fold {}", fold.name),
        "iteration",
        "learning rate",
    );
    for (i, (name, t)) in fold.learning_rates.iter().enumerate() {
        let pts = t.xy("iteration", "lr");
        if !pts.is_empty() {
            chart.series.push(Series {
                label: name.clone(),
                points: charts::thin(&pts, 1000),
                color: charts::color(i),
                style: Style::Line,
                in_legend: true,
            });
        }
    }
    chart
}

/// Writes `report.html` and its figures into `out` (the experiment folder unless `--output`).
pub fn write_report(
    records: &ExperimentRecords,
    summary: &ExperimentSummary,
    problems: &[String],
    out: &Path,
) -> Result<()> {
    let mut page = Page::new(out, &format!("Experiment {}", records.name))?;
    page.paragraph(&format!(
        "{} fold(s). Best epoch: the highest <b>{}</b> on val. Folder: <code>{}</code>.",
        records.folds.len(),
        escape(&records.primary_metric),
        escape(&records.folder.display().to_string())
    ));
    if !problems.is_empty() {
        page.heading("Missing or unreadable");
        page.list(problems);
    }
    if !summary.meta.is_empty() {
        page.heading("Mean ± SEM over folds (each fold's best epoch)");
        let mut rows = Vec::new();
        for (split, values) in &summary.meta {
            for v in values {
                rows.push(vec![
                    split.clone(),
                    v.metric.clone(),
                    format!("{:.4}", v.mean),
                    v.sem.map_or("-".to_string(), |e| format!("{e:.4}")),
                    v.folds.to_string(),
                ]);
            }
        }
        page.table(&["split", "metric", "mean", "SEM", "folds"], &rows);
    }
    if !summary.ensemble.is_empty() {
        page.heading("Ensemble (ConcatenateEmbeddings) on test");
        let rows: Vec<Vec<String>> = summary
            .ensemble
            .iter()
            .flat_map(|(trained, m)| {
                m.iter().map(move |(k, v)| {
                    vec![
                        if *trained { "trained" } else { "untrained" }.to_string(),
                        k.clone(),
                        format!("{v:.4}"),
                    ]
                })
            })
            .collect();
        page.table(&["models", "metric", "value"], &rows);
    }
    for (fold, fs) in records.folds.iter().zip(&summary.folds) {
        page.heading(&format!("Fold {}", fold.name));
        let rows: Vec<Vec<String>> = fs
            .splits
            .iter()
            .flat_map(|r| {
                r.metrics.iter().map(move |(k, v)| {
                    vec![
                        r.split.clone(),
                        r.epoch.map_or("-".into(), |e| e.to_string()),
                        k.clone(),
                        format!("{v:.4}"),
                    ]
                })
            })
            .collect();
        if !rows.is_empty() {
            page.table(&["split", "epoch", "metric", "value"], &rows);
        }
        let stem = sanitize(&fold.name);
        let accuracy = accuracy_chart(fold, &records.primary_metric, fs.best_epoch);
        if !accuracy.is_empty() {
            page.figure(&format!("accuracy_{stem}"), &accuracy.to_svg()?)?;
        }
        if let Some(losses) = &fold.losses {
            let chart = loss_chart(&fold.name, losses);
            if !chart.is_empty() {
                page.paragraph(
                    "Faint: every iteration's value; solid: exponential moving average.",
                );
                page.figure(&format!("loss_{stem}"), &chart.to_svg()?)?;
            }
        }
        let lr = learning_rate_chart(fold);
        if !lr.is_empty() {
            page.figure(&format!("learning_rate_{stem}"), &lr.to_svg()?)?;
        }
        let mut picture_problems = Vec::new();
        let pictures =
            visualisations::read(&records.folder.join(&fold.name), &mut picture_problems);
        if !picture_problems.is_empty() {
            page.list(&picture_problems);
        }
        visualisations::add_to_page(&mut page, &pictures, &fold.name, &stem)?;
        if !fold.splits.is_empty() {
            let rows: Vec<Vec<String>> = fold
                .splits
                .iter()
                .map(|s| {
                    vec![
                        s.split.clone(),
                        s.num_samples.map_or("-".into(), |n| n.to_string()),
                        s.num_classes.map_or("-".into(), |n| n.to_string()),
                        s.classes.join(", "),
                    ]
                })
                .collect();
            page.table(&["split", "samples", "classes", "class labels"], &rows);
        }
    }
    page.finish()
}

/// A file-name-safe version of a fold name.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
