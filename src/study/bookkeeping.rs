//! How trials end, kept in the store (one transaction each) and told to the sampler; and the tally
//! that stops a study whose first trials all fail.

use super::folder::Study;
use super::schedule::Schedule;
use super::storage::{TrialEnd, TrialRecord, TrialState};
use crate::executor::JobOutcome;
use anyhow::Result;

/// Trials failing one after another before any trial completed stop the study (a broken config
/// should not burn the whole budget); this many, or `--parallel` if larger.
const MIN_FAILURES_BEFORE_GIVING_UP: usize = 3;

/// The best value so far and the current streak of failures.
pub struct Tally {
    best: Option<f64>,
    any_completed_at_start: bool,
    failures_in_a_row: usize,
    first_failure: Option<String>,
    give_up_after: usize,
}

impl Tally {
    /// The tally of a study whose store holds `existing`, running `parallel` trials at once.
    pub fn new(existing: &[TrialRecord], parallel: usize) -> Tally {
        let best = existing
            .iter()
            .filter(|t| t.state == TrialState::Completed)
            .filter_map(|t| t.objective_mean)
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            });
        Tally {
            best,
            any_completed_at_start: best.is_some(),
            failures_in_a_row: 0,
            first_failure: None,
            give_up_after: parallel.max(MIN_FAILURES_BEFORE_GIVING_UP),
        }
    }

    /// The best objective of a completed trial so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    fn failed(&mut self, text: &str) {
        self.failures_in_a_row += 1;
        self.first_failure.get_or_insert_with(|| text.to_string());
    }

    /// Why the study should stop now, if it should: no trial ever completed and the last few failed.
    pub fn give_up(&self) -> Option<String> {
        let broken = !self.any_completed_at_start
            && self.best.is_none()
            && self.failures_in_a_row >= self.give_up_after;
        broken.then(|| {
            format!(
                "the first {} trials all failed, so the study stops here instead of spending its \
                 budget on a broken setup. The first error was:\n{}",
                self.failures_in_a_row,
                self.first_failure.clone().unwrap_or_default()
            )
        })
    }
}

/// Records how a trial's job ended; returns the line to show. `pruned`: the pruning rule stopped
/// it (a value then makes it `pruned`, not `completed`).
pub fn record_end(
    study: &Study,
    schedule: &mut Schedule,
    tally: &mut Tally,
    record: &TrialRecord,
    pruned: bool,
    duration_s: f64,
    outcome: Result<JobOutcome, String>,
) -> Result<String> {
    let index = record.index;
    let failed = |text: String, folds: Option<&serde_json::Value>, exit: Option<&str>| {
        study.store.finish(
            index,
            &TrialEnd {
                state: TrialState::Failed,
                folds,
                duration_s,
                exit_status: exit,
                error: Some(&text),
                ..Default::default()
            },
        )?;
        anyhow::Ok(text)
    };
    let text = match outcome {
        Ok(outcome) => {
            let folds = serde_json::to_value(&outcome.folds)?;
            match outcome.objective.mean.filter(|m| m.is_finite()) {
                Some(mean) => {
                    let state = if pruned {
                        TrialState::Pruned
                    } else {
                        TrialState::Completed
                    };
                    study.store.finish(
                        index,
                        &TrialEnd {
                            state,
                            mean: Some(mean),
                            sem: outcome.objective.sem,
                            folds: Some(&folds),
                            duration_s,
                            exit_status: Some("0"),
                            error: None,
                        },
                    )?;
                    schedule.observe(&record.parameters, Some(mean));
                    tally.failures_in_a_row = 0;
                    if state == TrialState::Completed {
                        tally.best = Some(tally.best.map_or(mean, |b| b.max(mean)));
                    }
                    return Ok(format!(
                        "trial {index} {}: {} = {mean:.4}{}",
                        state.as_str(),
                        study.primary_metric,
                        outcome
                            .objective
                            .sem
                            .map_or(String::new(), |s| format!(" ± {s:.4}"))
                    ));
                }
                None => failed(
                    format!(
                        "the objective {} is NaN or missing (the worker reported no finite best \
                         validation value)",
                        outcome.objective.metric
                    ),
                    Some(&folds),
                    Some("0"),
                )?,
            }
        }
        Err(text) => failed(text, None, None)?,
    };
    schedule.observe(&record.parameters, None);
    tally.failed(&text);
    Ok(format!("trial {index} failed: {text}"))
}

/// Records a trial that failed before its job started (its folder or job could not be written);
/// returns the line to show. It does not count towards giving up: the next trial has other values.
pub fn record_unstarted(
    study: &Study,
    schedule: &mut Schedule,
    record: &TrialRecord,
    text: &str,
) -> Result<String> {
    study.store.finish(
        record.index,
        &TrialEnd {
            state: TrialState::Failed,
            error: Some(text),
            ..Default::default()
        },
    )?;
    schedule.observe(&record.parameters, None);
    Ok(format!(
        "trial {} failed before starting: {text}",
        record.index
    ))
}
