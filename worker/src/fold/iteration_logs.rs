//! A fold's per-iteration logs under `<fold>/saved_csvs/`: `loss_histories` (the total and every
//! loss), `loss_stats` (statistics of the miners and losses), `<optimizer>_<class>` (its learning
//! rate), and the same values as TensorBoard scalars. On resume, rows after the checkpoint's
//! iteration are dropped, since the resumed run writes them again.

use crate::optimizers::Optimizer;
use crate::records::{IterationLog, StatsLog};
use crate::reducers::Stats;
use crate::tensorboard::EventWriter;
use crate::trainers::Components;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

pub struct IterationLogs {
    /// Every loss the method produces, sorted (the columns after `total_loss`).
    loss_names: Vec<String>,
    /// `iteration`, `total_loss`, then `loss_names`.
    header: Vec<String>,
    losses: IterationLog,
    stats: StatsLog,
    /// One per optimizer, in the order of `Components::optimizers`.
    learning_rates: Vec<IterationLog>,
}

impl IterationLogs {
    /// Opens the logs in `folder` for the losses and optimizers of `c`, keeping the rows of
    /// iterations `<= keep_iterations`.
    pub fn open(folder: &Path, c: &Components, keep_iterations: u64) -> Result<Self> {
        let mut loss_names: Vec<String> = c.weights.keys().cloned().collect();
        loss_names.sort();
        let mut header = vec!["iteration".to_string(), "total_loss".to_string()];
        header.extend(loss_names.iter().cloned());
        let losses = IterationLog::open(folder, "loss_histories", &header, keep_iterations)?;
        let stats = StatsLog::open(folder, keep_iterations)?;
        let mut learning_rates = Vec::new();
        for opt in &c.optimizers {
            let name = format!("{}_{}", opt.name, opt.class);
            let h = ["iteration".to_string(), "lr".to_string()];
            learning_rates.push(IterationLog::open(folder, &name, &h, keep_iterations)?);
        }
        Ok(IterationLogs {
            loss_names,
            header,
            losses,
            stats,
            learning_rates,
        })
    }

    /// Statistics of one component (a miner or a loss) at `iteration`.
    pub fn stats(&mut self, iteration: u64, component: &str, stats: &Stats) -> Result<()> {
        self.stats.record(iteration, component, stats)
    }

    /// The losses of `iteration` (a loss the method did not compute counts 0) and the learning rate
    /// of every optimizer, in the CSVs and, when given, as TensorBoard scalars.
    pub fn record(
        &mut self,
        iteration: u64,
        total: f64,
        losses: &BTreeMap<String, f64>,
        optimizers: &[Optimizer],
        tensorboard: Option<&mut EventWriter>,
    ) -> Result<()> {
        let mut row = vec![total];
        row.extend(
            self.loss_names
                .iter()
                .map(|n| losses.get(n).copied().unwrap_or(0.0)),
        );
        self.losses.record(iteration, &row)?;
        let mut scalars: Vec<(String, f64)> = self.header[1..]
            .iter()
            .zip(&row)
            .map(|(n, v)| (format!("loss_histories/{n}"), *v))
            .collect();
        for (log, opt) in self.learning_rates.iter_mut().zip(optimizers) {
            log.record(iteration, &[opt.lr])?;
            scalars.push((format!("{}_{}/lr", opt.name, opt.class), opt.lr));
        }
        if let Some(tb) = tensorboard {
            tb.scalars(iteration as i64, &scalars)?;
        }
        Ok(())
    }

    /// Writes everything recorded so far (the CSVs and their `logs.db` mirror).
    pub fn flush(&mut self) -> Result<()> {
        self.losses.flush()?;
        self.stats.flush()?;
        for log in self.learning_rates.iter_mut() {
            log.flush()?;
        }
        Ok(())
    }
}
