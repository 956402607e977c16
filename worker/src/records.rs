//! Record keeping: one CSV per table under `<fold>/saved_csvs/`, rewritten atomically after every
//! change so a crash never leaves a half-written table.

use anyhow::Result;
use metricbench::fsutil::write_atomic;
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

    /// Appends a row and rewrites the file.
    pub fn append(&mut self, row: Vec<(String, String)>) -> Result<()> {
        for (k, _) in &row {
            if !self.columns.contains(k) {
                self.columns.push(k.clone());
            }
        }
        self.rows.push(row);
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

/// Formats a float for CSV (`nan` for NaN, as pandas writes it... and reads it back).
pub fn cell(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else {
        format!("{x}")
    }
}
