//! The study's trials for TensorBoard's HParams table (written by [`crate::tensorboard`]): each
//! parameter under its full name, the trial's state as an extra column to filter by, the
//! objective and its SEM, and the intermediate values per fold as curves.

use super::storage::{TrialRecord, TrialState};
use crate::search_space::{ParamKind, SearchSpace};
use crate::tensorboard::{self, Domain, HParam, Session, Status};
use anyhow::Result;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The extra column with the trial's state (completed, pruned, failed, running, queued).
pub const STATE_COLUMN: &str = "trial_state";

pub fn write(
    folder: &Path,
    name: &str,
    space: &SearchSpace,
    trials: &[TrialRecord],
    intermediate: &[(u64, String, i64, f64)],
    metric: &str,
) -> Result<()> {
    let mut hparams: Vec<HParam> = space
        .parameters
        .iter()
        .map(|p| HParam {
            name: p.name.clone(),
            domain: match &p.kind {
                ParamKind::Float { low, high, .. } => Domain::Interval {
                    min: *low,
                    max: *high,
                },
                ParamKind::Int { low, high, .. } => Domain::Interval {
                    min: *low as f64,
                    max: *high as f64,
                },
                ParamKind::Choice(values) => Domain::Discrete(
                    values
                        .iter()
                        .map(|v| match v {
                            Value::Number(_) | Value::String(_) | Value::Bool(_) => v.clone(),
                            other => Value::String(other.to_string()),
                        })
                        .collect(),
                ),
            },
        })
        .collect();
    hparams.push(HParam {
        name: STATE_COLUMN.to_string(),
        domain: Domain::Discrete(
            ["completed", "pruned", "failed", "running", "queued"]
                .map(|s| Value::String(s.to_string()))
                .to_vec(),
        ),
    });
    let objective = format!("objective/{metric}");
    let sem = format!("objective/SEM_{metric}");
    // Trial index -> fold -> (epoch, value).
    type Curves<'a> = BTreeMap<u64, BTreeMap<&'a str, Vec<(i64, f64)>>>;
    let mut curves: Curves = BTreeMap::new();
    for (index, fold, epoch, value) in intermediate {
        curves
            .entry(*index)
            .or_default()
            .entry(fold.as_str())
            .or_default()
            .push((*epoch, *value));
    }
    let sessions: Vec<Session> = trials
        .iter()
        .map(|t| {
            let mut values: Vec<(String, Value)> = space
                .parameters
                .iter()
                .filter_map(|p| {
                    let v = t.parameters.get(&p.name)?;
                    let v = match v {
                        Value::Array(_) | Value::Object(_) => Value::String(v.to_string()),
                        _ => v.clone(),
                    };
                    Some((p.name.clone(), v))
                })
                .collect();
            values.push((
                STATE_COLUMN.to_string(),
                Value::String(t.state.as_str().into()),
            ));
            let status = match t.state {
                TrialState::Completed | TrialState::Pruned => Status::Success,
                TrialState::Failed => Status::Failure,
                TrialState::Running | TrialState::Queued => Status::Running,
            };
            let mut metrics = Vec::new();
            if let Some(m) = t.objective_mean {
                metrics.push((objective.clone(), m));
            }
            if let Some(s) = t.objective_sem {
                metrics.push((sem.clone(), s));
            }
            Session {
                name: t.name.clone(),
                hparams: values,
                status,
                metrics,
                curves: curves
                    .get(&t.index)
                    .map(|c| {
                        c.iter()
                            .map(|(fold, pts)| (format!("intermediate/{fold}"), pts.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    tensorboard::write_study(folder, name, &hparams, &[objective, sem], &sessions)
}
