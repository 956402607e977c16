//! The study store `study.db` (docs/tuning.md): the single source of truth of a study. Every state change
//! of a trial is one SQLite transaction (WAL journal), so a coordinator killed at any moment — even by
//! a power cut — leaves a store that says exactly which trials finished, which were running (and with
//! which parameters), and nothing half-written.

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Life cycle of a trial: queued -> running -> completed | failed | pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrialState {
    #[default]
    Queued,
    Running,
    Completed,
    Failed,
    Pruned,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Completed => "completed",
            TrialState::Failed => "failed",
            TrialState::Pruned => "pruned",
        }
    }

    fn parse(s: &str) -> Result<TrialState> {
        Ok(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "completed" => TrialState::Completed,
            "failed" => TrialState::Failed,
            "pruned" => TrialState::Pruned,
            other => bail!("study.db holds an unknown trial state {other:?}"),
        })
    }

    /// Finished trials are never run again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TrialState::Completed | TrialState::Failed | TrialState::Pruned
        )
    }
}

/// One row of the `trials` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    pub index: u64,
    /// Folder name inside the study (`<experiment_name><index>`).
    pub name: String,
    pub state: TrialState,
    /// Parameter name -> value (JSON object, parameter order).
    pub parameters: serde_json::Map<String, serde_json::Value>,
    pub objective_mean: Option<f64>,
    pub objective_sem: Option<f64>,
    /// The `folds` array of the worker's result event.
    pub fold_metrics: Option<serde_json::Value>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_s: Option<f64>,
    pub worker_host: Option<String>,
    pub exit_status: Option<String>,
    pub error: Option<String>,
    /// How many times the trial was started (1 + resumes after a crash).
    pub attempts: u32,
    /// The batch system's id of the trial's current job (`--executor slurm`), kept so a restarted
    /// coordinator re-attaches to it instead of submitting the trial again.
    pub job_id: Option<String>,
}

/// How a trial ended (see [`StudyStore::finish`]).
#[derive(Debug, Clone, Default)]
pub struct TrialEnd<'a> {
    pub state: TrialState,
    pub mean: Option<f64>,
    pub sem: Option<f64>,
    /// The `folds` array of the worker's result event.
    pub folds: Option<&'a serde_json::Value>,
    pub duration_s: f64,
    pub exit_status: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub struct StudyStore {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS study (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    trial_index INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    parameters TEXT NOT NULL,
    objective_mean REAL,
    objective_sem REAL,
    fold_metrics TEXT,
    started_at TEXT,
    finished_at TEXT,
    duration_s REAL,
    worker_host TEXT,
    exit_status TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS intermediate (
    trial_index INTEGER NOT NULL,
    fold TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (trial_index, fold, epoch)
);
";

fn now() -> String {
    chrono_like_now()
}

/// UTC timestamp `YYYY-MM-DDTHH:MM:SS.mmmZ` from the system clock (no date crate needed).
pub fn chrono_like_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl StudyStore {
    pub fn open(path: &Path) -> Result<StudyStore> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the study store {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a committed transaction survives a power cut, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("{} is not a metricbench study store", path.display()))?;
        // Stores written before jobs had ids gain the column (NULL for their trials).
        let has_job_id = conn
            .prepare("SELECT 1 FROM pragma_table_info('trials') WHERE name = 'job_id'")?
            .exists([])?;
        if !has_job_id {
            conn.execute("ALTER TABLE trials ADD COLUMN job_id TEXT", [])
                .with_context(|| format!("cannot add the job_id column to {}", path.display()))?;
        }
        Ok(StudyStore { conn })
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM study WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO study (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Adds a new trial in state `queued`.
    pub fn add_trial(
        &self,
        index: u64,
        name: &str,
        parameters: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO trials (trial_index, name, state, parameters) VALUES (?1, ?2, 'queued', ?3)",
                params![index as i64, name, serde_json::to_string(parameters)?],
            )
            .with_context(|| format!("cannot record trial {index}"))?;
        Ok(())
    }

    /// Marks a trial running (again, for a resumed one), counting the attempt.
    pub fn mark_running(&self, index: u64, host: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE trials SET state = 'running', started_at = ?2, worker_host = ?3,
             attempts = attempts + 1, error = NULL WHERE trial_index = ?1",
            params![index as i64, now(), host],
        )?;
        Ok(())
    }

    /// Records (or, with `None`, forgets) the id of the job running a trial.
    pub fn set_job_id(&self, index: u64, job_id: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE trials SET job_id = ?2 WHERE trial_index = ?1",
            params![index as i64, job_id],
        )?;
        Ok(())
    }

    /// Records a finished trial: completed (with its objective) or pruned (with its best value so
    /// far), or failed (with the reason), with its per-fold metrics and duration.
    pub fn finish(&self, index: u64, end: &TrialEnd) -> Result<()> {
        let folds = end.folds.map(serde_json::to_string).transpose()?;
        self.conn.execute(
            "UPDATE trials SET state = ?2, objective_mean = ?3, objective_sem = ?4, fold_metrics = ?5,
             finished_at = ?6, duration_s = ?7, exit_status = ?8, error = ?9 WHERE trial_index = ?1",
            params![
                index as i64,
                end.state.as_str(),
                end.mean,
                end.sem,
                folds,
                now(),
                end.duration_s,
                end.exit_status,
                end.error
            ],
        )?;
        Ok(())
    }

    /// Records the primary metric of a trial at (fold, epoch) on `val`, for pruning.
    pub fn record_intermediate(
        &self,
        index: u64,
        fold: &str,
        epoch: i64,
        value: f64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO intermediate (trial_index, fold, epoch, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(trial_index, fold, epoch) DO UPDATE SET value = excluded.value",
            params![index as i64, fold, epoch, value],
        )?;
        Ok(())
    }

    /// Values at (fold, epoch) of the completed trials, for the median rule.
    pub fn completed_values_at(&self, fold: &str, epoch: i64) -> Result<Vec<f64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.value FROM intermediate i JOIN trials t ON t.trial_index = i.trial_index
             WHERE t.state = 'completed' AND i.fold = ?1 AND i.epoch = ?2 AND i.value IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![fold, epoch], |r| r.get::<_, f64>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<f64>>>()?)
    }

    /// Every recorded intermediate value `(trial index, fold, epoch, value)`, for reports.
    pub fn intermediate_values(&self) -> Result<Vec<(u64, String, i64, f64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT trial_index, fold, epoch, value FROM intermediate WHERE value IS NOT NULL
             ORDER BY trial_index, fold, epoch",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    pub fn trials(&self) -> Result<Vec<TrialRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT trial_index, name, state, parameters, objective_mean, objective_sem, fold_metrics,
                    started_at, finished_at, duration_s, worker_host, exit_status, error, attempts, job_id
             FROM trials ORDER BY trial_index",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, Option<f64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<f64>>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, Option<String>>(12)?,
                r.get::<_, i64>(13)?,
                r.get::<_, Option<String>>(14)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                index,
                name,
                state,
                parameters,
                mean,
                sem,
                folds,
                started,
                finished,
                dur,
                host,
                exit,
                error,
                attempts,
                job_id,
            ) = row?;
            out.push(TrialRecord {
                index: index as u64,
                name,
                state: TrialState::parse(&state)?,
                parameters: serde_json::from_str(&parameters)
                    .with_context(|| format!("trial {index}: malformed parameters in study.db"))?,
                objective_mean: mean,
                objective_sem: sem,
                fold_metrics: folds.map(|f| serde_json::from_str(&f)).transpose()?,
                started_at: started,
                finished_at: finished,
                duration_s: dur,
                worker_host: host,
                exit_status: exit,
                error,
                attempts: attempts as u32,
                job_id,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_lifecycle_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = StudyStore::open(&dir.path().join("study.db")).unwrap();
        store.set_meta("experiment_name", "s").unwrap();
        store.set_meta("experiment_name", "t").unwrap();
        assert_eq!(
            store.get_meta("experiment_name").unwrap().as_deref(),
            Some("t")
        );
        let mut p = serde_json::Map::new();
        p.insert("lr".into(), serde_json::json!(0.01));
        store.add_trial(0, "s0", &p).unwrap();
        assert!(store.add_trial(0, "s0", &p).is_err(), "indices are unique");
        store.mark_running(0, "host").unwrap();
        store.record_intermediate(0, "f", 2, 0.5).unwrap();
        store
            .finish(
                0,
                &TrialEnd {
                    state: TrialState::Completed,
                    mean: Some(0.5),
                    duration_s: 1.5,
                    exit_status: Some("0"),
                    ..Default::default()
                },
            )
            .unwrap();
        drop(store);
        // Reopened: everything is there.
        let store = StudyStore::open(&dir.path().join("study.db")).unwrap();
        let trials = store.trials().unwrap();
        assert_eq!(trials.len(), 1);
        assert_eq!(trials[0].state, TrialState::Completed);
        assert_eq!(trials[0].parameters, p);
        assert_eq!(trials[0].attempts, 1);
        assert_eq!(store.completed_values_at("f", 2).unwrap(), vec![0.5]);
        assert!(store.completed_values_at("f", 4).unwrap().is_empty());
    }

    #[test]
    fn timestamps_are_iso_utc() {
        let t = chrono_like_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
