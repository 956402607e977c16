//! Which trials run next: trials a previous coordinator left queued or running come first (with
//! their recorded parameters), then new trials the sampler suggests, each recorded `queued` in the
//! store before anything else is written for it. Trial indices are contiguous.

use super::folder::Study;
use super::sampler::{to_json_map, Sampler};
use super::storage::{TrialRecord, TrialState};
use anyhow::{bail, Result};
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// A trial about to start. `fresh`: a new trial (its folder is written from scratch), else an
/// interrupted one (resumed from its latest checkpoint when one exists).
pub struct TrialStart {
    pub record: TrialRecord,
    pub fresh: bool,
}

/// The sampler and the queue of trials still to run.
pub struct Schedule {
    sampler: Sampler,
    to_resume: VecDeque<TrialRecord>,
    /// Trials created so far (the next new trial's index).
    next_index: u64,
    /// Trials the study runs in all.
    total: u64,
}

impl Schedule {
    /// Rebuilds the optimiser's knowledge from the store's trials, in trial order, and queues the
    /// interrupted ones.
    pub fn rebuild(study: &Study, existing: &[TrialRecord]) -> Result<Schedule> {
        let total = study.iterations.max(existing.len() as u64);
        let mut sampler = Sampler::with_plan(
            &study.space,
            study.seed(),
            study.args.initial_trials,
            Some(total as usize),
        )?;
        let mut to_resume = VecDeque::new();
        for t in existing {
            match t.state {
                TrialState::Completed | TrialState::Pruned => {
                    sampler.observe(&t.parameters, t.objective_mean, t.objective_sem)
                }
                TrialState::Failed => sampler.observe(&t.parameters, None, None),
                TrialState::Queued | TrialState::Running => to_resume.push_back(t.clone()),
            }
        }
        Ok(Schedule {
            sampler,
            to_resume,
            next_index: existing.iter().map(|t| t.index + 1).max().unwrap_or(0),
            total,
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Interrupted trials not started yet.
    pub fn interrupted(&self) -> usize {
        self.to_resume.len()
    }

    /// Tells the sampler how a trial ended: its objective mean and SEM (`None` mean: failed).
    pub fn observe(
        &mut self,
        parameters: &Map<String, Value>,
        objective: Option<f64>,
        sem: Option<f64>,
    ) {
        self.sampler.observe(parameters, objective, sem)
    }

    /// Up to `free` trials to start now. `running`: the parameters of the trials running, which
    /// the sampler treats as pending so parallel suggestions spread out.
    pub fn next(
        &mut self,
        study: &Study,
        free: usize,
        running: Vec<Map<String, Value>>,
    ) -> Result<Vec<TrialStart>> {
        let mut starts = Vec::new();
        while starts.len() < free {
            let Some(record) = self.to_resume.pop_front() else {
                break;
            };
            starts.push(TrialStart {
                record,
                fresh: false,
            });
        }
        let remaining_new = self.total.saturating_sub(self.next_index);
        let want = ((free - starts.len()) as u64).min(remaining_new) as usize;
        if want == 0 {
            return Ok(starts);
        }
        let pending: Vec<_> = running
            .into_iter()
            .chain(starts.iter().map(|s| s.record.parameters.clone()))
            .collect();
        for assignment in self.sampler.suggest(want, &pending)? {
            let index = self.next_index;
            self.next_index += 1;
            let name = format!("{}{index}", study.args.experiment_name);
            let folder = study.trial_folder(&name);
            if folder.exists() {
                bail!(
                    "{} exists but is not a trial recorded in this study's study.db; refusing \
                     to write into it (move it away and re-run)",
                    folder.display()
                );
            }
            let parameters = to_json_map(&assignment);
            study.store.add_trial(index, &name, &parameters)?;
            starts.push(TrialStart {
                record: TrialRecord {
                    index,
                    name,
                    state: TrialState::Queued,
                    parameters,
                    objective_mean: None,
                    objective_sem: None,
                    fold_metrics: None,
                    started_at: None,
                    finished_at: None,
                    duration_s: None,
                    worker_host: None,
                    exit_status: None,
                    error: None,
                    attempts: 0,
                    job_id: None,
                },
                fresh: true,
            });
        }
        Ok(starts)
    }
}
