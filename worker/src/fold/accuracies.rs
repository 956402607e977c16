//! A fold's accuracy records: one table per evaluated split under `<fold>/saved_csvs/` (and the same
//! values as TensorBoard scalars while training), plus the fold's best validation result read back
//! from them, which is how a resumed or re-evaluated fold learns what an earlier run found.

use crate::records::{cell, row_value, CsvTable};
use crate::settings::Settings;
use crate::tensorboard::EventWriter;
use anyhow::Result;
use metricbench_protocol::protocol::{metric_value, Metrics};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The best validation result so far.
#[derive(Debug, Clone)]
pub struct Best {
    pub epoch: i64,
    pub value: f64,
    pub metrics: Metrics,
}

/// Accuracy tables of a fold, one per split.
pub struct AccuracyRecords {
    folder: PathBuf,
    tables: BTreeMap<String, CsvTable>,
    /// TensorBoard scalars of the same records, when training.
    pub tensorboard: Option<EventWriter>,
}

impl AccuracyRecords {
    pub fn new(folder: PathBuf) -> Self {
        AccuracyRecords {
            folder,
            tables: BTreeMap::new(),
            tensorboard: None,
        }
    }

    /// The table of a split, loaded from its file on first use.
    pub fn table(&mut self, settings: &Settings, split: &str) -> Result<&mut CsvTable> {
        let name = settings.accuracy_table(split);
        if !self.tables.contains_key(&name) {
            let t = CsvTable::load(&self.folder, &name)?;
            self.tables.insert(name.clone(), t);
        }
        Ok(self.tables.get_mut(&name).expect("inserted above"))
    }

    /// Appends one evaluation row (`epoch`, metrics, and on `val` the best so far).
    pub fn record(
        &mut self,
        settings: &Settings,
        split: &str,
        epoch: i64,
        metrics: &BTreeMap<String, f64>,
        best: Option<&Best>,
    ) -> Result<()> {
        let mut row = vec![("epoch".to_string(), epoch.to_string())];
        row.extend(metrics.iter().map(|(k, v)| (k.clone(), cell(*v))));
        if split == "val" {
            let (be, ba) = best.map_or((String::new(), String::new()), |b| {
                (b.epoch.to_string(), cell(b.value))
            });
            row.push(("best_epoch".to_string(), be));
            row.push(("best_accuracy".to_string(), ba));
        }
        if let Some(tb) = self.tensorboard.as_mut() {
            let group = settings.accuracy_table(split);
            let scalars: Vec<(String, f64)> = metrics
                .iter()
                .map(|(k, v)| (format!("{group}/{k}"), *v))
                .collect();
            tb.scalars(epoch, &scalars)?;
            tb.flush()?;
        }
        self.table(settings, split)?.append(row)
    }

    /// The best `val` row (strictly greater wins, so the earliest of equal values) among epochs
    /// `>= 0`: how a resumed run recovers what the interrupted one knew.
    pub fn best(&mut self, settings: &Settings) -> Result<Option<Best>> {
        let table = self.table(settings, "val")?;
        let mut best: Option<Best> = None;
        for row in table.rows() {
            let (Some(epoch), Some(value)) = (
                row_value(row, "epoch"),
                row_value(row, &settings.primary_metric),
            ) else {
                continue;
            };
            if epoch < 0.0 || !value.is_finite() || best.as_ref().is_some_and(|b| value <= b.value)
            {
                continue;
            }
            let mut metrics = Metrics::new();
            for (k, v) in row {
                if k != "epoch" && k != "best_epoch" && k != "best_accuracy" {
                    metrics.insert(k.clone(), metric_value(v.parse().unwrap_or(f64::NAN)));
                }
            }
            best = Some(Best {
                epoch: epoch as i64,
                value,
                metrics,
            });
        }
        Ok(best)
    }
}
