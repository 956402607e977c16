//! A study in TensorBoard: `<study>/tensorboard/` holds the HParams plugin's experiment summary
//! (which parameters and metrics exist) and one run per trial, named after the trial, with its
//! session start (parameter values), its objective, its intermediate values per fold (the curves
//! the pruner saw) and its session end (status). `tensorboard --logdir <study>` then shows the
//! HParams table, sortable and filterable, next to the workers' per-fold curves. Everything comes
//! from `study.db`, so trials run by any worker (a plugin in any language) appear too. The folder
//! is rewritten as a whole each time.
//!
//! The messages are the HParams plugin's (`tensorboard/plugins/hparams/api.proto` and
//! `plugin_data.proto`), encoded by hand with `metricbench_protocol::tfevents::proto`.

use anyhow::{Context, Result};
use metricbench_protocol::tfevents::{proto, wall_time, EventWriter};
use serde_json::Value;
use std::path::Path;

/// The folder inside a study.
pub const FOLDER: &str = "tensorboard";

const PLUGIN: &str = "hparams";
const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// The hparams summaries carry an empty float tensor (`dtype: DT_FLOAT, tensor_shape { dim {} }`).
const NULL_TENSOR: [u8; 6] = [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];

/// A searched parameter's domain, as the HParams table shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Interval { min: f64, max: f64 },
    Discrete(Vec<Value>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HParam {
    pub name: String,
    pub domain: Domain,
}

/// How a trial ended, in the HParams plugin's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 1,
    Failure = 2,
    Running = 3,
}

/// One trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub name: String,
    /// Parameter values, plus anything else to filter by (e.g. the trial's state).
    pub hparams: Vec<(String, Value)>,
    pub status: Status,
    /// Scalars written once (the objective and its SEM), tag -> value.
    pub metrics: Vec<(String, f64)>,
    /// Curves: tag -> (step, value).
    pub curves: Vec<(String, Vec<(i64, f64)>)>,
}

/// `google.protobuf.Value`: numbers, strings and booleans; anything else as its JSON text.
fn proto_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::Number(n) => proto::double(&mut out, 2, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => proto::bytes(&mut out, 3, s.as_bytes()),
        Value::Bool(b) => proto::int(&mut out, 4, i64::from(*b)),
        other => proto::bytes(&mut out, 3, other.to_string().as_bytes()),
    }
    out
}

/// A `Summary` with one value holding `HParamsPluginData` (`field` = which of its oneof).
fn plugin_summary(tag: &str, field: u32, message: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    // version = 1 is 0 (PLUGIN_DATA_VERSION), the proto3 default: left out.
    proto::bytes(&mut data, field, message);
    let mut plugin_data = Vec::new();
    proto::bytes(&mut plugin_data, 1, PLUGIN.as_bytes());
    proto::bytes(&mut plugin_data, 2, &data);
    let mut metadata = Vec::new();
    proto::bytes(&mut metadata, 1, &plugin_data);
    let mut value = Vec::new();
    proto::bytes(&mut value, 1, tag.as_bytes());
    proto::bytes(&mut value, 8, &NULL_TENSOR);
    proto::bytes(&mut value, 9, &metadata);
    let mut summary = Vec::new();
    proto::bytes(&mut summary, 1, &value);
    summary
}

/// `Experiment { hparam_infos = 4; metric_infos = 5; name = 6 }`.
fn experiment(name: &str, hparams: &[HParam], metrics: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in hparams {
        let mut info = Vec::new();
        proto::bytes(&mut info, 1, h.name.as_bytes());
        match &h.domain {
            Domain::Interval { min, max } => {
                proto::int(&mut info, 4, 3); // DATA_TYPE_FLOAT64
                let mut interval = Vec::new();
                proto::double(&mut interval, 1, *min);
                proto::double(&mut interval, 2, *max);
                proto::bytes(&mut info, 6, &interval);
            }
            Domain::Discrete(values) => {
                let numeric = values.iter().all(Value::is_number);
                let boolean = values.iter().all(Value::is_boolean);
                let ty = if numeric {
                    3
                } else if boolean {
                    2
                } else {
                    1
                };
                proto::int(&mut info, 4, ty);
                let mut list = Vec::new();
                for v in values {
                    proto::bytes(&mut list, 1, &proto_value(v));
                }
                proto::bytes(&mut info, 5, &list);
            }
        }
        proto::bytes(&mut out, 4, &info);
    }
    for m in metrics {
        let mut metric_name = Vec::new();
        proto::bytes(&mut metric_name, 2, m.as_bytes());
        let mut info = Vec::new();
        proto::bytes(&mut info, 1, &metric_name);
        proto::int(&mut info, 5, 2); // DATASET_VALIDATION
        proto::bytes(&mut out, 5, &info);
    }
    proto::bytes(&mut out, 6, name.as_bytes());
    out
}

/// `SessionStartInfo { map<string, Value> hparams = 1; group_name = 4; start_time_secs = 5 }`.
fn session_start(s: &Session, time: f64) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in &s.hparams {
        let mut entry = Vec::new();
        proto::bytes(&mut entry, 1, k.as_bytes());
        proto::bytes(&mut entry, 2, &proto_value(v));
        proto::bytes(&mut out, 1, &entry);
    }
    proto::bytes(&mut out, 4, s.name.as_bytes());
    proto::double(&mut out, 5, time);
    out
}

/// `SessionEndInfo { status = 1; end_time_secs = 2 }`.
fn session_end(status: Status, time: f64) -> Vec<u8> {
    let mut out = Vec::new();
    proto::int(&mut out, 1, status as i64);
    proto::double(&mut out, 2, time);
    out
}

/// Rewrites `<study>/tensorboard/`: the experiment summary and one run per session.
pub fn write_study(
    study: &Path,
    name: &str,
    hparams: &[HParam],
    metrics: &[String],
    sessions: &[Session],
) -> Result<()> {
    let root = study.join(FOLDER);
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot replace {}", root.display()))?;
    }
    let time = wall_time();
    let mut w = EventWriter::create(&root)?;
    w.summary(
        time,
        0,
        &plugin_summary(EXPERIMENT_TAG, 2, &experiment(name, hparams, metrics)),
    )?;
    w.flush()?;
    for s in sessions {
        let mut w = EventWriter::create(&root.join(&s.name))?;
        w.summary(
            time,
            0,
            &plugin_summary(SESSION_START_TAG, 3, &session_start(s, time)),
        )?;
        for (tag, points) in &s.curves {
            for &(step, v) in points {
                w.scalars_at(time, step, &[(tag.clone(), v)])?;
            }
        }
        w.scalars_at(time, 0, &s.metrics)?;
        if s.status != Status::Running {
            w.summary(
                time,
                0,
                &plugin_summary(SESSION_END_TAG, 4, &session_end(s.status, time)),
            )?;
        }
        w.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metricbench_protocol::tfevents::read_records;

    #[test]
    fn a_study_gets_one_run_per_trial_with_framed_records() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = vec![Session {
            name: "s0".into(),
            hparams: vec![("lr".into(), serde_json::json!(0.01))],
            status: Status::Success,
            metrics: vec![("objective".into(), 0.5)],
            curves: vec![("intermediate/f0".into(), vec![(1, 0.2), (2, 0.4)])],
        }];
        let hp = [HParam {
            name: "lr".into(),
            domain: Domain::Interval {
                min: 1e-4,
                max: 0.1,
            },
        }];
        write_study(dir.path(), "s", &hp, &["objective".into()], &sessions).unwrap();
        let files = |p: &Path| -> Vec<Vec<u8>> {
            std::fs::read_dir(p)
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| std::fs::read(e.path()).unwrap())
                .collect()
        };
        let root = files(&dir.path().join(FOLDER));
        assert_eq!(root.len(), 1);
        assert_eq!(read_records(&root[0]).len(), 2);
        let run = files(&dir.path().join(FOLDER).join("s0"));
        // file version, session start, two curve points, the objective, session end.
        assert_eq!(read_records(&run[0]).len(), 6);
        // Rewriting replaces, never duplicates.
        write_study(dir.path(), "s", &hp, &["objective".into()], &sessions).unwrap();
        assert_eq!(files(&dir.path().join(FOLDER).join("s0")).len(), 1);
    }
}
