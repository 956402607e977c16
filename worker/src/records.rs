//! Record keeping: one CSV per table under `<fold>/saved_csvs/`, rewritten atomically after every
//! change so a crash never leaves a half-written table, and the same tables in the SQLite database
//! `<fold>/saved_csvs/logs.db` (each change in one transaction), as the original's record keeper.

use anyhow::{Context, Result};
use metricbench_protocol::fsutil::write_atomic;
use std::fs::File;
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
    /// repeated runs append to what earlier runs recorded. Read with the `csv` crate, so a cell holding
    /// commas, quotes or line breaks comes back as it was written.
    pub fn load(folder: &Path, name: &str) -> Result<Self> {
        let mut table = CsvTable::new(folder, name);
        let text = match std::fs::read(&table.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", table.path.display()))
            }
        };
        let mut reader = csv_reader(&text);
        let bad = |e: csv::Error| {
            anyhow::anyhow!("{} is not a readable CSV table: {e}", table.path.display())
        };
        let mut records = reader.records();
        if let Some(header) = records.next() {
            table.columns = header.map_err(bad)?.iter().map(str::to_string).collect();
            for record in records {
                let record = record.map_err(bad)?;
                let row = table
                    .columns
                    .iter()
                    .cloned()
                    .zip(record.iter().map(str::to_string))
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
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(&self.columns)?;
        for row in &self.rows {
            out.write_record(self.columns.iter().map(|c| {
                row.iter()
                    .find(|(k, _)| k == c)
                    .map_or("", |(_, v)| v.as_str())
            }))?;
        }
        let text = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot format {}: {e}", self.path.display()))?;
        write_atomic(&self.path, &text)?;
        self.mirror_to_db()
    }

    /// Replaces the table's rows in `logs.db` with the current ones, in one transaction.
    fn mirror_to_db(&self) -> Result<()> {
        let folder = self.path.parent().unwrap_or(Path::new("."));
        let name = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut conn = db::open(folder)?;
        let numeric: Vec<bool> = self
            .columns
            .iter()
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.iter().find(|(k, _)| k == c))
                    .all(|(_, v)| v.parse::<f64>().is_ok())
            })
            .collect();
        let tx = conn.transaction()?;
        db::ensure_table(&tx, &name, &self.columns, &numeric)?;
        tx.execute(&format!("DELETE FROM {}", db::quote(&name)), [])?;
        let sql = db::insert_sql(&name, &self.columns);
        {
            let mut stmt = tx.prepare(&sql)?;
            for row in &self.rows {
                let values: Vec<rusqlite::types::Value> = self
                    .columns
                    .iter()
                    .map(|c| match row.iter().find(|(k, _)| k == c) {
                        None => rusqlite::types::Value::Null,
                        Some((_, v)) => match v.parse::<f64>() {
                            Ok(x) => rusqlite::types::Value::Real(x),
                            Err(_) => rusqlite::types::Value::Text(v.clone()),
                        },
                    })
                    .collect();
                stmt.execute(rusqlite::params_from_iter(values))?;
            }
        }
        tx.commit().with_context(|| {
            format!(
                "cannot write table {name} to {}",
                folder.join(db::FILE).display()
            )
        })
    }
}

/// The SQLite side of the records.
mod db {
    use anyhow::{Context, Result};
    use std::path::Path;

    pub const FILE: &str = "logs.db";

    pub fn open(folder: &Path) -> Result<rusqlite::Connection> {
        let path = folder.join(FILE);
        let conn = rusqlite::Connection::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    pub fn quote(ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    /// Creates the table (`id` plus the columns) or adds the columns it lacks.
    pub fn ensure_table(
        conn: &rusqlite::Connection,
        name: &str,
        columns: &[String],
        numeric: &[bool],
    ) -> Result<()> {
        conn.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY AUTOINCREMENT)",
                quote(name)
            ),
            [],
        )?;
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(name)))?;
        let existing: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<_>>()?;
        for (c, &num) in columns.iter().zip(numeric) {
            if !existing.contains(c) {
                let ty = if num { "REAL" } else { "TEXT" };
                conn.execute(
                    &format!("ALTER TABLE {} ADD COLUMN {} {ty}", quote(name), quote(c)),
                    [],
                )?;
            }
        }
        Ok(())
    }

    pub fn insert_sql(name: &str, columns: &[String]) -> String {
        let cols: Vec<String> = columns.iter().map(|c| quote(c)).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(name),
            cols.join(", "),
            marks.join(", ")
        )
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
    file: csv::Writer<File>,
    db: rusqlite::Connection,
    name: String,
    columns: Vec<String>,
    /// Rows not yet in `logs.db` (written in one transaction per flush).
    pending: Vec<(u64, Vec<f64>)>,
}

/// A reader of the records' CSVs: first record the header, rows of any length (a table's columns
/// grow as new metrics appear), empty lines skipped.
fn csv_reader(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text)
}

/// Rewrites a per-iteration CSV (first column: iteration) keeping its rows of iterations
/// `<= keep_through` (what an earlier run wrote before the checkpoint this run resumes from; none
/// when 0) under `header`, atomically, and opens it for appending.
fn reopen_csv(path: &Path, header: &[String], keep_through: u64) -> Result<csv::Writer<File>> {
    let mut kept = csv::Writer::from_writer(Vec::new());
    kept.write_record(header)?;
    if keep_through > 0 {
        if let Ok(old) = std::fs::read(path) {
            for record in csv_reader(&old).records().skip(1) {
                // A row cut short by a crash (or otherwise unreadable) is not kept.
                let Ok(record) = record else { continue };
                let it = record.get(0).and_then(|v| v.parse::<u64>().ok());
                if it.is_some_and(|i| i <= keep_through) {
                    kept.write_record(&record)?;
                }
            }
        }
    }
    let kept = kept
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot format {}: {e}", path.display()))?;
    write_atomic(path, &kept)?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Ok(csv::Writer::from_writer(file))
}

impl IterationLog {
    /// Opens `<folder>/<name>.csv` keeping the rows of iterations `<= keep_through` (those an earlier
    /// run wrote before the checkpoint this run resumes from), or starts it with `header`.
    pub fn open(folder: &Path, name: &str, header: &[String], keep_through: u64) -> Result<Self> {
        let file = reopen_csv(&folder.join(format!("{name}.csv")), header, keep_through)?;
        let db = db::open(folder)?;
        db::ensure_table(&db, name, header, &vec![true; header.len()])?;
        db.execute(
            &format!("DELETE FROM {} WHERE iteration > ?1", db::quote(name)),
            [keep_through as i64],
        )?;
        Ok(IterationLog {
            file,
            db,
            name: name.to_string(),
            columns: header.to_vec(),
            pending: Vec::new(),
        })
    }

    pub fn record(&mut self, iteration: u64, values: &[f64]) -> Result<()> {
        let cells = std::iter::once(iteration.to_string()).chain(values.iter().map(|v| cell(*v)));
        self.file.write_record(cells)?;
        self.pending.push((iteration, values.to_vec()));
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        let tx = self.db.transaction()?;
        {
            let mut stmt = tx.prepare(&db::insert_sql(&self.name, &self.columns))?;
            for (iteration, values) in self.pending.drain(..) {
                let mut row = vec![iteration as f64];
                // SQLite has no NaN: store NULL, as pandas/record-keeper do.
                row.extend(values);
                let row: Vec<Option<f64>> = row
                    .into_iter()
                    .map(|v| v.is_finite().then_some(v))
                    .collect();
                stmt.execute(rusqlite::params_from_iter(row))?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// `saved_csvs/loss_stats.csv`: per-iteration statistics of losses and miners, long format
/// `iteration,component,stat,value` (the set of statistics varies by component). On resume, rows
/// after the checkpoint's iteration are dropped as in [`IterationLog`].
pub struct StatsLog {
    file: csv::Writer<File>,
}

impl StatsLog {
    pub fn open(folder: &Path, keep_through: u64) -> Result<Self> {
        let header = ["iteration", "component", "stat", "value"].map(String::from);
        let file = reopen_csv(&folder.join("loss_stats.csv"), &header, keep_through)?;
        Ok(StatsLog { file })
    }

    pub fn record(
        &mut self,
        iteration: u64,
        component: &str,
        stats: &crate::reducers::Stats,
    ) -> Result<()> {
        for (k, v) in stats {
            let it = iteration.to_string();
            self.file
                .write_record([it.as_str(), component, k.as_str(), &cell(*v)])?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn db_rows(folder: &Path, sql: &str) -> Vec<Vec<Option<f64>>> {
        let conn = db::open(folder).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Option<f64>>(i)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn tables_are_mirrored_in_logs_db_and_truncated_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut t = CsvTable::load(d, "acc_VAL").unwrap();
        for e in [-1, 0, 2, 4] {
            t.append(vec![
                ("epoch".into(), e.to_string()),
                ("map".into(), cell(0.1 * e as f64)),
            ])
            .unwrap();
        }
        let mut t = CsvTable::load(d, "acc_VAL").unwrap();
        assert_eq!(t.rows().len(), 4);
        t.truncate_after_epoch(2).unwrap();
        t.append(vec![
            ("epoch".into(), "3".into()),
            ("map".into(), "0.5".into()),
            ("note".into(), "x".into()),
        ])
        .unwrap();
        let csv = std::fs::read_to_string(d.join("acc_VAL.csv")).unwrap();
        assert_eq!(csv, "epoch,map,note\n-1,-0.1,\n0,0,\n2,0.2,\n3,0.5,x\n");
        let rows = db_rows(d, "SELECT epoch, map FROM acc_VAL ORDER BY id");
        assert_eq!(
            rows,
            vec![
                vec![Some(-1.0), Some(-0.1)],
                vec![Some(0.0), Some(0.0)],
                vec![Some(2.0), Some(0.2)],
                vec![Some(3.0), Some(0.5)]
            ]
        );

        let header = vec!["iteration".to_string(), "total_loss".to_string()];
        let mut log = IterationLog::open(d, "loss_histories", &header, 0).unwrap();
        for i in 1..=4 {
            log.record(i, &[i as f64]).unwrap();
        }
        log.record(5, &[f64::NAN]).unwrap();
        log.flush().unwrap();
        drop(log);
        let log = IterationLog::open(d, "loss_histories", &header, 2).unwrap();
        drop(log);
        let csv = std::fs::read_to_string(d.join("loss_histories.csv")).unwrap();
        assert_eq!(csv, "iteration,total_loss\n1,1\n2,2\n");
        let rows = db_rows(
            d,
            "SELECT iteration, total_loss FROM loss_histories ORDER BY id",
        );
        assert_eq!(
            rows,
            vec![vec![Some(1.0), Some(1.0)], vec![Some(2.0), Some(2.0)]]
        );
    }

    #[test]
    fn cells_with_commas_quotes_and_newlines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tricky = "a, b \"quoted\"\nsecond line";
        let mut t = CsvTable::load(d, "acc_VAL").unwrap();
        t.append(vec![
            ("epoch".into(), "1".into()),
            ("note, with comma".into(), tricky.into()),
            ("map".into(), "0.5".into()),
        ])
        .unwrap();
        t.append(vec![
            ("epoch".into(), "2".into()),
            ("map".into(), "0.7".into()),
        ])
        .unwrap();
        let t = CsvTable::load(d, "acc_VAL").unwrap();
        assert_eq!(
            t.rows(),
            &[
                vec![
                    ("epoch".to_string(), "1".to_string()),
                    ("note, with comma".to_string(), tricky.to_string()),
                    ("map".to_string(), "0.5".to_string()),
                ],
                vec![
                    ("epoch".to_string(), "2".to_string()),
                    ("map".to_string(), "0.7".to_string()),
                ],
            ]
        );
        assert_eq!(row_value(&t.rows()[1], "map"), Some(0.7));

        // Per-iteration statistics: a component name with the same characters survives a resume,
        // which rereads the file and keeps the rows up to the checkpoint.
        let mut stats = StatsLog::open(d, 0).unwrap();
        for it in 1..=3 {
            let s: crate::reducers::Stats = [("num \"pos\", pairs".to_string(), it as f64)].into();
            stats.record(it, tricky, &s).unwrap();
        }
        stats.flush().unwrap();
        drop(stats);
        drop(StatsLog::open(d, 2).unwrap());
        let text = std::fs::read(d.join("loss_stats.csv")).unwrap();
        let rows: Vec<Vec<String>> = csv_reader(&text)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let row = |it: &str, v: &str| -> Vec<String> {
            [it, tricky, "num \"pos\", pairs", v]
                .map(String::from)
                .to_vec()
        };
        assert_eq!(
            rows,
            vec![
                ["iteration", "component", "stat", "value"]
                    .map(String::from)
                    .to_vec(),
                row("1", "1"),
                row("2", "2"),
            ]
        );
    }
}
