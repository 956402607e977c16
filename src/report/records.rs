//! Reading an experiment's record files back for a report: the per-fold CSV tables the worker
//! writes (`<fold>/saved_csvs/*.csv`), `splits.yaml`, the ensemble's meta table and the saved
//! configs. Files may be half-written (a run that is still going or was killed) or edited by hand,
//! so nothing here fails on a missing file or column: what cannot be read is recorded as a
//! [`Problem`] naming the file and what was expected, and the report shows the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Something the report could not show, and why (printed and listed in `report.html`).
pub type Problem = String;

/// A record table: its columns and numeric cells (`None`: empty or not a number).
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<f64>>>,
}

impl Table {
    /// Reads a CSV table. Rows shorter than the header (hand edits, a row cut by a crash) get
    /// empty cells; cells such as `nan` parse as NaN, as pandas writes them.
    pub fn read_csv(path: &Path) -> Result<Table, Problem> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| format!("cannot read the header of {}: {e}", path.display()))?
            .iter()
            .map(|c| crate::protocol::current_metric_name(c.trim()))
            .collect();
        if columns.iter().all(String::is_empty) {
            return Err(format!("{} is empty (no header row)", path.display()));
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            // A malformed line (e.g. an unterminated quote) ends the table: keep what came before.
            let Ok(record) = record else { break };
            let mut row: Vec<Option<f64>> = record
                .iter()
                .take(columns.len())
                .map(|c| c.trim().parse::<f64>().ok())
                .collect();
            row.resize(columns.len(), None);
            rows.push(row);
        }
        Ok(Table {
            path: path.to_path_buf(),
            columns,
            rows,
        })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cells of a column (None if the table has no such column).
    pub fn values(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let i = self.column(name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }

    /// `(x, y)` pairs of two columns where both are finite numbers.
    pub fn xy(&self, x: &str, y: &str) -> Vec<(f64, f64)> {
        let (Some(xi), Some(yi)) = (self.column(x), self.column(y)) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .filter_map(|r| match (r[xi], r[yi]) {
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Some((a, b)),
                _ => None,
            })
            .collect()
    }

    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }
}

/// One split's entry in `splits.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitComposition {
    pub split: String,
    pub num_samples: Option<u64>,
    pub num_classes: Option<u64>,
    /// Class label ranges as written (`"0-49"`, `"77"`).
    pub classes: Vec<String>,
}

/// Everything recorded for one fold.
#[derive(Debug, Clone, Default)]
pub struct FoldRecords {
    pub name: String,
    /// Accuracy table per split (lower-case split name: `train`, `val`, `test`).
    pub accuracies: BTreeMap<String, Table>,
    pub losses: Option<Table>,
    /// Learning-rate tables (`<optimizer>_<Class>`, e.g. `trunk_optimizer_Adam`).
    pub learning_rates: Vec<(String, Table)>,
    pub splits: Vec<SplitComposition>,
}

/// An experiment folder's records.
#[derive(Debug, Clone, Default)]
pub struct ExperimentRecords {
    pub folder: PathBuf,
    pub name: String,
    /// `eval_metric_for_best_epoch` from the saved configs (default `mean_average_precision_at_r`).
    pub primary_metric: String,
    pub folds: Vec<FoldRecords>,
    /// `meta_ConcatenateEmbeddings_*_TEST.csv`: the ensemble's rows (`is_trained` 0 / 1).
    pub ensemble: Option<Table>,
    pub problems: Vec<Problem>,
}

/// Folders inside an experiment that are not folds.
const NOT_FOLDS: [&str; 4] = ["configs", "logs", "meta_logs", "report_figures"];

/// Whether `folder` looks like an experiment: saved configs, or at least one fold with records.
pub fn is_experiment(folder: &Path) -> bool {
    folder.join("configs").join("config_general.yaml").is_file() || !fold_folders(folder).is_empty()
}

/// Sub-folders holding `saved_csvs/` or `splits.yaml`, sorted by name.
fn fold_folders(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            !name.is_some_and(|n| NOT_FOLDS.contains(&n.as_str()))
        })
        .filter(|p| p.join("saved_csvs").is_dir() || p.join("splits.yaml").is_file())
        .collect();
    out.sort();
    out
}

/// The primary metric from `configs/*.yaml` (the key may live in any category).
fn primary_metric(folder: &Path, problems: &mut Vec<Problem>) -> String {
    const DEFAULT: &str = "mean_average_precision_at_r";
    let configs = folder.join("configs");
    let Ok(entries) = std::fs::read_dir(&configs) else {
        problems.push(format!(
            "{} is missing: assuming the primary metric is {DEFAULT}",
            configs.display()
        ));
        return DEFAULT.to_string();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut found = None;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match serde_yaml::from_str::<serde_yaml::Value>(&text) {
            Ok(doc) => {
                for key in ["eval_metric_for_best_epoch", "eval_primary_metric"] {
                    if let Some(m) = doc.get(key).and_then(|v| v.as_str()) {
                        found.get_or_insert_with(|| crate::protocol::current_metric_name(m));
                    }
                }
            }
            Err(e) => problems.push(format!("cannot parse {}: {e}", file.display())),
        }
    }
    found.unwrap_or_else(|| DEFAULT.to_string())
}

fn read_split_composition(path: &Path) -> Result<Vec<SplitComposition>, Problem> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let map = doc.as_mapping().ok_or_else(|| {
        format!(
            "{}: expected a mapping of split name -> {{num_samples, num_classes, classes}}",
            path.display()
        )
    })?;
    Ok(map
        .iter()
        .map(|(k, v)| SplitComposition {
            split: k.as_str().map_or_else(|| format!("{k:?}"), str::to_string),
            num_samples: v.get("num_samples").and_then(|x| x.as_u64()),
            num_classes: v.get("num_classes").and_then(|x| x.as_u64()),
            classes: v
                .get("classes")
                .and_then(|c| c.as_sequence())
                .map(|s| {
                    s.iter()
                        .map(|x| match x {
                            serde_yaml::Value::String(s) => s.clone(),
                            other => serde_yaml::to_string(other)
                                .unwrap_or_default()
                                .trim()
                                .to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

fn csv_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    out.sort();
    out
}

fn read_fold(folder: &Path, problems: &mut Vec<Problem>) -> FoldRecords {
    let name = folder
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut fold = FoldRecords {
        name: name.clone(),
        ..FoldRecords::default()
    };
    let splits = folder.join("splits.yaml");
    if splits.is_file() {
        match read_split_composition(&splits) {
            Ok(s) => fold.splits = s,
            Err(p) => problems.push(p),
        }
    } else {
        problems.push(format!(
            "{name}: no splits.yaml (the split composition is not shown)"
        ));
    }
    let csvs = folder.join("saved_csvs");
    for path in csv_files(&csvs) {
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let table = match Table::read_csv(&path) {
            Ok(t) => t,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if let Some(rest) = stem.strip_prefix("accuracies_") {
            let split = rest.rsplit('_').next().unwrap_or(rest).to_lowercase();
            fold.accuracies.entry(split).or_insert(table);
        } else if stem == "loss_histories" {
            fold.losses = Some(table);
        } else if stem.contains("_optimizer_") && table.column("lr").is_some() {
            fold.learning_rates.push((stem, table));
        }
    }
    if fold.accuracies.is_empty() {
        problems.push(format!(
            "{name}: no accuracy tables in {} (no evaluation recorded yet)",
            csvs.display()
        ));
    }
    if fold.losses.is_none() {
        problems.push(format!(
            "{name}: no loss_histories.csv (no training iteration recorded yet)"
        ));
    }
    fold
}

/// Reads every fold of an experiment folder (never fails: problems are collected).
pub fn read_experiment(folder: &Path) -> ExperimentRecords {
    let mut problems = Vec::new();
    let primary_metric = primary_metric(folder, &mut problems);
    let folds: Vec<FoldRecords> = fold_folders(folder)
        .iter()
        .map(|f| read_fold(f, &mut problems))
        .collect();
    if folds.is_empty() {
        problems.push(format!(
            "{} has no fold folders with records yet (nothing was trained)",
            folder.display()
        ));
    }
    let meta = folder.join("meta_logs").join("saved_csvs");
    let ensemble = csv_files(&meta)
        .into_iter()
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy()
                    .starts_with("meta_ConcatenateEmbeddings_")
            })
        })
        .and_then(|p| match Table::read_csv(&p) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(e);
                None
            }
        });
    let name = std::fs::canonicalize(folder)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| folder.display().to_string());
    ExperimentRecords {
        folder: folder.to_path_buf(),
        name,
        primary_metric,
        folds,
        ensemble,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_rows_and_text_cells_read_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "epoch,a,b\n0,0.5,x\n1,nan\n2,0.25,1e-3\n").unwrap();
        let t = Table::read_csv(&path).unwrap();
        assert_eq!(t.columns, ["epoch", "a", "b"]);
        assert_eq!(t.rows[0], vec![Some(0.0), Some(0.5), None]);
        assert!(t.rows[1][1].unwrap().is_nan());
        assert_eq!(t.rows[1][2], None);
        assert_eq!(t.xy("epoch", "b"), vec![(2.0, 1e-3)]);
        assert_eq!(t.xy("epoch", "missing"), vec![]);
    }

    #[test]
    fn an_empty_file_is_a_problem_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss_histories.csv");
        std::fs::write(&path, "").unwrap();
        let e = Table::read_csv(&path).unwrap_err();
        assert!(
            e.contains("loss_histories.csv") && e.contains("empty"),
            "{e}"
        );
    }
}
