//! The events of a running trial: progress updates its display line, validation results are
//! recorded in the store (for pruning and plots), and the pruning rule may ask the trial to stop.

use super::folder::Study;
use super::pruner::{self, PruneRule};
use super::storage::TrialRecord;
use crate::executor::JobControl;
use crate::protocol::Event;
use anyhow::Result;
use indicatif::ProgressBar;
use std::time::Instant;

/// A trial whose job is running.
pub struct RunningTrial {
    pub record: TrialRecord,
    pub started: Instant,
    pub control: JobControl,
    /// The pruning rule asked it to stop: when it ends with a value, it is `pruned`.
    pub prune_requested: bool,
    /// Validation evaluations after training started.
    evaluations: usize,
    pub line: ProgressBar,
    /// The latest validation value, shown on its line.
    latest: String,
}

impl RunningTrial {
    pub fn new(record: TrialRecord, control: JobControl, line: ProgressBar) -> RunningTrial {
        RunningTrial {
            record,
            started: Instant::now(),
            control,
            prune_requested: false,
            evaluations: 0,
            line,
            latest: String::new(),
        }
    }

    /// Records an event of the trial, updates its display line, and applies the pruning rule.
    pub fn handle(&mut self, study: &Study, event: &Event) -> Result<()> {
        match event {
            Event::Progress { fold, epoch, .. } => {
                self.line
                    .set_message(format!("{fold} epoch {epoch}{}", self.latest));
            }
            Event::Evaluation {
                fold,
                epoch,
                split,
                metrics,
                ..
            } if split == "val" => {
                let Some(value) = metrics.get(&study.primary_metric).and_then(|v| v.as_f64())
                else {
                    return Ok(());
                };
                study
                    .store
                    .record_intermediate(self.record.index, fold, *epoch, value)?;
                self.latest = format!(" val {}={value:.4}", study.primary_metric);
                self.line
                    .set_message(format!("{fold} epoch {epoch}{}", self.latest));
                if *epoch > 0 {
                    self.evaluations += 1;
                }
                let rule = PruneRule {
                    warmup: study.args.prune_warmup,
                };
                if study.args.prune
                    && !self.prune_requested
                    && rule.applies(*epoch, self.evaluations)
                {
                    let others = study.store.completed_values_at(fold, *epoch)?;
                    if pruner::should_prune(value, &others) {
                        self.prune_requested = true;
                        self.control.stop();
                        self.line
                            .set_message(format!("{fold} epoch {epoch}{} (pruning)", self.latest));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
