//! Worker protocol, version 1 (documented for people in `docs/protocol.md`).
//!
//! The coordinator writes one [`Job`] as a single JSON line to the worker's stdin, and may later write
//! [`Command`] lines. The worker answers with one [`Event`] per stdout line. These types are shared by
//! the coordinator and the Rust worker so the two can never drift apart; plugin workers in other
//! languages follow the documentation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version written in every job and every `ready` event. A worker must refuse a job of another version.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Train every fold (resuming if `resume` is set) and evaluate as configured.
    Train,
    /// Evaluate saved checkpoints only.
    Evaluate,
    /// Evaluate the concatenated embeddings of all folds' best models.
    EvaluateEnsemble,
}

/// Which checkpoint a resumed or evaluated experiment starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeFrom {
    Latest,
    Best,
}

/// The trial a job belongs to, when it is part of a tuning study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialInfo {
    pub index: u64,
    /// Parameter name (`/`-joined config path) -> value chosen for this trial.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// The first line on the worker's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub protocol: u32,
    pub action: Action,
    pub experiment_folder: String,
    /// Fully merged configuration (all categories combined), search keywords already substituted.
    pub config: serde_json::Value,
    #[serde(default)]
    pub resume: Option<ResumeFrom>,
    pub splits_to_eval: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialInfo>,
}

/// Later lines on the worker's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Stop gracefully after the current evaluation, leaving a resumable checkpoint.
    Stop,
}

/// Category of a worker-side failure, so the coordinator can tell bad input from bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The configuration names something that does not exist or has invalid values.
    Config,
    /// Dataset files are missing or malformed.
    Data,
    /// The loss became NaN or infinite.
    Nan,
    /// Anything else (a bug, out of memory, I/O failure).
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "config",
            ErrorKind::Data => "data",
            ErrorKind::Nan => "nan",
            ErrorKind::Internal => "internal",
        })
    }
}

/// Metric names that PML changed in 2020, with the name used today. Configs and record tables
/// written by the original tool before then say `mean_average_r_precision` for MAP@R.
pub const RENAMED_METRICS: [(&str, &str); 1] =
    [("mean_average_r_precision", "mean_average_precision_at_r")];

/// Today's name of a metric, or of a record column named after one (its suffix, such as
/// `_level0`, is kept): `mean_average_r_precision_level0` -> `mean_average_precision_at_r_level0`.
pub fn current_metric_name(name: &str) -> String {
    for (old, new) in RENAMED_METRICS {
        if let Some(rest) = name.strip_prefix(old) {
            if rest.is_empty() || rest.starts_with('_') {
                return format!("{new}{rest}");
            }
        }
    }
    name.to_string()
}

/// Metric name -> value. JSON has no NaN, so an undefined metric travels as `null` (`None`).
pub type Metrics = serde_json::Map<String, serde_json::Value>;

/// The objective of a run: mean over folds of each fold's best validation value, and its standard error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: String,
    pub mean: Option<f64>,
    pub sem: Option<f64>,
}

/// Best validation result of one fold (split scheme).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: String,
    pub best_epoch: i64,
    pub metrics: Metrics,
}

/// One line on the worker's stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// First line: who is working, on what device.
    Ready {
        name: String,
        version: String,
        device: String,
        #[serde(default = "default_protocol")]
        protocol: u32,
    },
    /// Training progress, at most a few times per second.
    Progress {
        fold: String,
        epoch: i64,
        iteration: u64,
        /// Total iterations of this fold, when known, so the coordinator can show a bar.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_iterations: Option<u64>,
        loss: Option<f64>,
    },
    /// Accuracies of one split after an evaluation.
    Evaluation {
        fold: String,
        epoch: i64,
        split: String,
        metrics: Metrics,
        is_best: bool,
    },
    /// Final line of a successful job.
    Result {
        objective: Objective,
        folds: Vec<FoldResult>,
    },
    /// The job failed; the worker exits non-zero after this.
    Error { kind: ErrorKind, message: String },
}

fn default_protocol() -> u32 {
    PROTOCOL_VERSION
}

/// Why a line from a worker could not be understood.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedLine {
    pub line: String,
    pub reason: String,
}

impl fmt::Display for MalformedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.line.chars().take(200).collect();
        let ellipsis = if self.line.chars().count() > 200 {
            "..."
        } else {
            ""
        };
        write!(
            f,
            "the worker printed a line that is not a protocol-v1 event ({}): {:?}{}",
            self.reason, shown, ellipsis
        )
    }
}

impl std::error::Error for MalformedLine {}

impl Event {
    /// Parses one stdout line of a worker. Unknown extra fields are accepted (forward compatibility);
    /// anything that is not a JSON object with a known `event` is an error that quotes the line.
    pub fn parse_line(line: &str) -> Result<Event, MalformedLine> {
        let malformed = |reason: String| MalformedLine {
            line: line.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| malformed(format!("invalid JSON: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| malformed("expected a JSON object".to_string()))?;
        match object.get("event") {
            None => return Err(malformed("the object has no \"event\" field".to_string())),
            Some(serde_json::Value::String(name)) if !KNOWN_EVENTS.contains(&name.as_str()) => {
                return Err(malformed(format!(
                    "unknown event {name:?}; expected one of {}",
                    KNOWN_EVENTS.join(", ")
                )))
            }
            Some(serde_json::Value::String(_)) => {}
            Some(_) => return Err(malformed("\"event\" must be a string".to_string())),
        }
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
    }

    /// Serialises the event as one line (no trailing newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }
}

/// Names of the events of protocol v1.
pub const KNOWN_EVENTS: [&str; 5] = ["ready", "progress", "evaluation", "result", "error"];

impl Job {
    /// Parses the first stdin line of a worker, checking the protocol version.
    pub fn parse_line(line: &str) -> Result<Job, String> {
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("the job line is not valid JSON: {e}"))?;
        match value.get("protocol").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(v) => {
                return Err(format!(
                "the job uses protocol version {v}, this worker speaks version {PROTOCOL_VERSION}"
            ))
            }
            None => return Err("the job has no integer \"protocol\" field".to_string()),
        }
        serde_json::from_value(value).map_err(|e| format!("the job is malformed: {e}"))
    }

    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("jobs always serialise")
    }
}

impl Command {
    pub fn parse_line(line: &str) -> Result<Command, String> {
        serde_json::from_str(line).map_err(|e| {
            format!("expected a command such as {{\"command\": \"stop\"}}, got {line:?}: {e}")
        })
    }
}

/// Converts a metric value to JSON (`null` for NaN or infinity, which JSON cannot carry).
pub fn metric_value(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::Value::from(x)
    } else {
        serde_json::Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let mut metrics = Metrics::new();
        metrics.insert("precision_at_1".into(), metric_value(0.75));
        metrics.insert("NMI".into(), metric_value(f64::NAN));
        let events = vec![
            Event::Ready {
                name: "w".into(),
                version: "1".into(),
                device: "cpu".into(),
                protocol: 1,
            },
            Event::Progress {
                fold: "Test50_50_Partitions4_0".into(),
                epoch: 1,
                iteration: 10,
                total_iterations: Some(100),
                loss: Some(0.5),
            },
            Event::Evaluation {
                fold: "f".into(),
                epoch: 2,
                split: "val".into(),
                metrics: metrics.clone(),
                is_best: true,
            },
            Event::Result {
                objective: Objective {
                    metric: "precision_at_1".into(),
                    mean: Some(0.75),
                    sem: None,
                },
                folds: vec![FoldResult {
                    fold: "f".into(),
                    best_epoch: 2,
                    metrics,
                }],
            },
            Event::Error {
                kind: ErrorKind::Nan,
                message: "loss is NaN".into(),
            },
        ];
        for event in events {
            let line = event.to_line();
            assert!(!line.contains('\n'));
            assert_eq!(Event::parse_line(&line).unwrap(), event);
        }
    }

    #[test]
    fn malformed_event_lines_are_rejected_with_the_line_quoted() {
        for (line, needle) in [
            ("hello", "invalid JSON"),
            ("[1, 2]", "expected a JSON object"),
            (r#"{"fold": "x"}"#, "no \"event\" field"),
            (r#"{"event": 3}"#, "must be a string"),
            (r#"{"event": "finished"}"#, "unknown event \"finished\""),
            (r#"{"event": "progress", "fold": "f"}"#, "missing field"),
            (
                r#"{"event": "error", "kind": "boom", "message": "m"}"#,
                "unknown variant",
            ),
        ] {
            let err = Event::parse_line(line).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(needle), "{line}: {text}");
            assert!(
                text.contains(&format!("{line:?}")) || text.contains("..."),
                "{text}"
            );
        }
    }

    #[test]
    fn extra_fields_are_ignored() {
        let line =
            r#"{"event": "ready", "name": "py", "version": "0.1", "device": "cpu", "pid": 12}"#;
        assert!(matches!(
            Event::parse_line(line),
            Ok(Event::Ready { protocol: 1, .. })
        ));
    }

    #[test]
    fn jobs_check_the_protocol_version() {
        let job = Job {
            protocol: PROTOCOL_VERSION,
            action: Action::Train,
            experiment_folder: "/tmp/x".into(),
            config: serde_json::json!({"batch_size": 32}),
            resume: None,
            splits_to_eval: vec!["val".into()],
            trial: None,
        };
        assert_eq!(Job::parse_line(&job.to_line()).unwrap(), job);
        let v2 = job.to_line().replace("\"protocol\":1", "\"protocol\":2");
        assert!(Job::parse_line(&v2).unwrap_err().contains("version 2"));
        assert!(Job::parse_line("{").unwrap_err().contains("not valid JSON"));
        assert!(Job::parse_line("{}").unwrap_err().contains("no integer"));
        let bad_action = job.to_line().replace("\"train\"", "\"dance\"");
        assert!(Job::parse_line(&bad_action).unwrap_err().contains("dance"));
    }

    #[test]
    fn commands_parse() {
        assert_eq!(
            Command::parse_line(r#"{"command": "stop"}"#).unwrap(),
            Command::Stop
        );
        assert!(Command::parse_line(r#"{"command": "halt"}"#).is_err());
        assert!(Command::parse_line("stop").is_err());
    }

    #[test]
    fn renamed_metrics_get_their_current_name() {
        assert_eq!(
            current_metric_name("mean_average_r_precision"),
            "mean_average_precision_at_r"
        );
        assert_eq!(
            current_metric_name("mean_average_r_precision_level1"),
            "mean_average_precision_at_r_level1"
        );
        for unchanged in [
            "precision_at_1",
            "mean_average_precision_at_r",
            "mean_average_r_precisionx",
        ] {
            assert_eq!(current_metric_name(unchanged), unchanged);
        }
    }
}
