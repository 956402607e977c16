//! Record keeping: one CSV per table under `<fold>/saved_csvs/`, rewritten atomically after every
//! change so a crash never leaves a half-written table.

use anyhow::{Context, Result};
use metricbench::fsutil::write_atomic;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A table of rows with a fixed column order (the first row's keys, then new keys as they appear).
pub struct CsvTable {
    path: PathBuf,
    columns: Vec<String>,
    rows: Vec<Vec<(String, String)>>,
}

impl CsvTable {
    pub fn new(folder: &Path, name: &str) -> Self {
        CsvTable {
            path: folder.join(format!("{name}.csv")),
            columns: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Opens a table with the rows already in its file (none if there is no file), so resumed and
    /// repeated runs append to what earlier runs recorded. Cells hold numbers and plain words only
    /// (this module never writes commas or quotes inside a cell), so a plain split reads them back.
    pub fn load(folder: &Path, name: &str) -> Result<Self> {
        let mut table = CsvTable::new(folder, name);
        let text = match std::fs::read_to_string(&table.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", table.path.display()))
            }
        };
        let mut lines = text.lines();
        if let Some(header) = lines.next() {
            table.columns = header.split(',').map(str::to_string).collect();
            for line in lines.filter(|l| !l.is_empty()) {
                let row = table
                    .columns
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_string))
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                table.rows.push(row);
            }
        }
        Ok(table)
    }

    pub fn rows(&self) -> &[Vec<(String, String)>] {
        &self.rows
    }

    /// Drops rows whose `epoch` is above `epoch` (a run resumed from an earlier checkpoint redoes
    /// those epochs) and rewrites the file if anything changed.
    pub fn truncate_after_epoch(&mut self, epoch: i64) -> Result<()> {
        let before = self.rows.len();
        self.rows
            .retain(|r| row_value(r, "epoch").is_none_or(|e| e <= epoch as f64));
        if self.rows.len() != before {
            self.write()?;
        }
        Ok(())
    }

    /// Appends a row and rewrites the file.
    pub fn append(&mut self, row: Vec<(String, String)>) -> Result<()> {
        for (k, _) in &row {
            if !self.columns.contains(k) {
                self.columns.push(k.clone());
            }
        }
        self.rows.push(row);
        self.write()
    }

    fn write(&self) -> Result<()> {
        let mut text = self.columns.join(",");
        text.push('\n');
        for row in &self.rows {
            let cells: Vec<&str> = self
                .columns
                .iter()
                .map(|c| {
                    row.iter()
                        .find(|(k, _)| k == c)
                        .map_or("", |(_, v)| v.as_str())
                })
                .collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
        write_atomic(&self.path, text.as_bytes())
    }
}

/// A numeric cell of a row.
pub fn row_value(row: &[(String, String)], column: &str) -> Option<f64> {
    row.iter()
        .find(|(k, _)| k == column)
        .and_then(|(_, v)| v.parse::<f64>().ok())
}

/// A per-iteration series (`loss_histories.csv`, learning rates), appended line by line and flushed
/// every epoch: rewriting a growing file atomically every iteration would cost quadratic time.
pub struct IterationLog {
    file: std::io::BufWriter<std::fs::File>,
}

impl IterationLog {
    /// Opens `<folder>/<name>.csv` keeping the rows of iterations `<= keep_through` (those an earlier
    /// run wrote before the checkpoint this run resumes from), or starts it with `header`.
    pub fn open(folder: &Path, name: &str, header: &[String], keep_through: u64) -> Result<Self> {
        let path = folder.join(format!("{name}.csv"));
        let mut kept = format!("{}\n", header.join(","));
        if keep_through > 0 {
            if let Ok(old) = std::fs::read_to_string(&path) {
                for line in old.lines().skip(1) {
                    let it = line.split(',').next().and_then(|v| v.parse::<u64>().ok());
                    if it.is_some_and(|i| i <= keep_through) {
                        kept.push_str(line);
                        kept.push('\n');
                    }
                }
            }
        }
        write_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(IterationLog {
            file: std::io::BufWriter::new(file),
        })
    }

    pub fn record(&mut self, iteration: u64, values: &[f64]) -> Result<()> {
        let cells: Vec<String> = values.iter().map(|v| cell(*v)).collect();
        writeln!(self.file, "{iteration},{}", cells.join(","))?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        Ok(())
    }
}

/// Formats a float for CSV (`nan` for NaN, as pandas writes it... and reads it back).
pub fn cell(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{x}")
    }
}
