//! One fold's life (PML's `BaseTrainer` loop with the hooks of its `HookContainer`): build the
//! fold's models, losses and optimizers; run epochs of `iterations_per_epoch` training steps; every
//! `save_interval` epochs (and at the last epoch) evaluate, keep the best model by the primary metric
//! on `val`, checkpoint, and stop early on patience or on a `stop` command. The training method only
//! supplies the step (`Components::train_step`: what one iteration does).
//!
//! A fold resumes from its latest (or best) checkpoint with identical results, because every epoch
//! draws its batches from an RNG seeded by (seed, fold, epoch) and every optimizer's state is
//! checkpointed.

pub mod accuracies;
pub mod checkpoint;
mod iteration_logs;

use crate::checkpoints::{self, Suffix};
use crate::datasets::{with_batches, BatchRequest, Dataset};
use crate::errors::{config_error, nan_error};
use crate::events::{emit, StopFlag};
use crate::models::Model;
use crate::samplers;
use crate::settings::Settings;
use crate::spec::Config;
use crate::splits::SplitScheme;
use crate::tensorboard::EventWriter;
use crate::testers::evaluate_splits;
use crate::trainers::{self, step::Step, Components};
use accuracies::{AccuracyRecords, Best};
use anyhow::{Context, Result};
use iteration_logs::IterationLogs;
use metricbench_protocol::protocol::{metric_value, Event, FoldResult, Metrics, ResumeFrom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

/// What one fold needs from the job.
pub struct FoldContext<'a> {
    pub cfg: &'a Config<'a>,
    pub settings: &'a Settings,
    pub dataset: &'a dyn Dataset,
    pub labels: &'a [i64],
    pub scheme: &'a SplitScheme,
    /// `<experiment>/<scheme name>`.
    pub folder: PathBuf,
    pub fold_index: usize,
    pub splits_to_eval: &'a [String],
    pub device: Device,
    pub stop: &'a StopFlag,
    pub num_epochs: i64,
}

/// The training split of a fold.
pub struct TrainingSet {
    /// Dataset indices of the split's samples.
    pub indices: Vec<usize>,
    /// Their labels as ranks 0..C (PML's `set_min_label_to_zero`), so classification and proxy
    /// losses can index their class parameters.
    pub labels: Vec<i64>,
}

impl FoldContext<'_> {
    pub fn models_folder(&self) -> PathBuf {
        self.folder.join("saved_models")
    }

    pub fn csv_folder(&self) -> PathBuf {
        self.folder.join("saved_csvs")
    }

    pub fn training_set(&self) -> Result<TrainingSet> {
        let idx = self.scheme.split("train").ok_or_else(|| {
            config_error(format!(
                "split scheme {} has no train split",
                self.scheme.name
            ))
        })?;
        let raw: Vec<i64> = idx.iter().map(|&i| self.labels[i]).collect();
        let mut classes = raw.clone();
        classes.sort_unstable();
        classes.dedup();
        let labels = raw
            .iter()
            .map(|l| classes.binary_search(l).unwrap_or(0) as i64)
            .collect();
        Ok(TrainingSet {
            indices: idx.to_vec(),
            labels,
        })
    }

    /// The one place a fold's models, losses and optimizers are built. libtorch's generator is
    /// seeded for the fold first, so every call gives the models training starts from.
    pub fn build_components(&self, training: &TrainingSet) -> Result<Components> {
        tch::manual_seed(self.settings.seed as i64 + self.fold_index as i64);
        trainers::build(
            self.cfg,
            &self.dataset.sample_shape(),
            &training.labels,
            self.device,
        )
    }
}

/// The single place a tester is called: accuracies of every split of `splits_to_eval` (by split
/// name) embedded by trunk -> embedder (or the trunk alone when `embedder` is `None`); `splits` are
/// the fold's splits, from which the tester takes its reference sets.
pub fn evaluate_models(
    dataset: &dyn Dataset,
    splits: &[(String, Vec<usize>)],
    splits_to_eval: &[String],
    settings: &Settings,
    trunk: &Model,
    embedder: Option<&Model>,
    device: Device,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    evaluate_splits(
        dataset,
        splits,
        splits_to_eval,
        settings.label_level,
        trunk,
        embedder,
        &settings.eval,
        device,
    )
}

/// `patience_remaining`: false once `epoch - best_epoch > patience`.
fn patience_remaining(settings: &Settings, epoch: i64, best: Option<&Best>) -> bool {
    match (settings.patience, best) {
        (Some(p), Some(b)) => epoch - b.epoch <= p as i64,
        _ => true,
    }
}

/// Batches of an epoch come from an RNG seeded by (seed, fold, epoch), so a resumed run (which
/// replays the sampler up to its checkpoint) draws exactly the batches an uninterrupted one would.
fn epoch_rng(seed: u64, fold: usize, epoch: i64) -> ChaCha8Rng {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [fold as u64, epoch as u64] {
        state = (state ^ v)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
            .rotate_left(31);
    }
    ChaCha8Rng::seed_from_u64(state)
}

/// Evaluates the fold's models at `epoch` on every split of `splits_to_eval` (the trunk alone when
/// `trunk_only`: the untrained trunk of epoch -1), records the rows and events, updates `best`, and
/// returns the primary metric on `val` when it counts towards the best.
fn evaluate_epoch(
    ctx: &FoldContext,
    c: &Components,
    records: &mut AccuracyRecords,
    epoch: i64,
    trunk_only: bool,
    best: &mut Option<Best>,
) -> Result<Option<f64>> {
    let settings = ctx.settings;
    let mut val_primary = None;
    let embedder = (!trunk_only && !settings.eval.use_trunk_output).then(|| c.embedder());
    let mut all_metrics = evaluate_models(
        ctx.dataset,
        &ctx.scheme.splits,
        ctx.splits_to_eval,
        settings,
        c.trunk(),
        embedder,
        ctx.device,
    )?;
    for split in ctx.splits_to_eval {
        let metrics = all_metrics.remove(split).unwrap_or_default();
        let primary = settings.primary(&metrics)?;
        let json: Metrics = metrics
            .iter()
            .map(|(k, v)| (k.clone(), metric_value(*v)))
            .collect();
        let is_best = split == "val"
            && !trunk_only
            && primary.is_finite()
            && best.as_ref().is_none_or(|b| primary > b.value);
        if split == "val" && !trunk_only {
            val_primary = Some(primary);
        }
        if is_best {
            *best = Some(Best {
                epoch,
                value: primary,
                metrics: json.clone(),
            });
        }
        records.record(settings, split, epoch, &metrics, best.as_ref())?;
        emit(&Event::Evaluation {
            fold: ctx.scheme.name.clone(),
            epoch,
            split: split.clone(),
            metrics: json,
            is_best,
        });
    }
    Ok(val_primary)
}

/// Trains one fold (from scratch, or from its checkpoint when `resume` is set) and returns its
/// best validation result.
pub fn train_fold(ctx: &FoldContext, resume: Option<ResumeFrom>) -> Result<FoldResult> {
    let settings = ctx.settings;
    let models_dir = ctx.models_folder();
    let csv_dir = ctx.csv_folder();
    for d in [&models_dir, &csv_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let training = ctx.training_set()?;
    let mut c = ctx.build_components(&training)?;
    let mut sampler = samplers::build(
        ctx.cfg.require("sampler")?,
        &training.labels,
        settings.batch_size,
    )?;
    let mut records = AccuracyRecords::new(csv_dir.clone());
    records.tensorboard = Some(EventWriter::create(&ctx.folder.join("tensorboard_logs"))?);

    let resumed_from = match resume {
        None => None,
        Some(ResumeFrom::Latest) => checkpoints::latest_epoch(&models_dir).map(Suffix::Epoch),
        Some(ResumeFrom::Best) => checkpoints::best_epoch(&models_dir).map(Suffix::Best),
    };
    let done_epochs = resumed_from.map_or(0, Suffix::epoch);
    if let Some(suffix) = resumed_from {
        checkpoint::load(&mut c, &models_dir, suffix)?;
        eprintln!("{}: resuming after epoch {done_epochs}", ctx.scheme.name);
    }
    // Records of epochs after the checkpoint belong to a future this run replaces.
    let keep_through = if resumed_from.is_some() {
        done_epochs
    } else {
        -2
    };
    for split in ctx.splits_to_eval {
        records
            .table(settings, split)?
            .truncate_after_epoch(keep_through)?;
    }
    let mut best = records.best(settings)?;
    let ipe = settings.iterations_per_epoch as u64;
    let keep_iterations = done_epochs.max(0) as u64 * ipe;
    let mut logs = IterationLogs::open(&csv_dir, &c, keep_iterations)?;

    let fold_result = |best: &Option<Best>| FoldResult {
        fold: ctx.scheme.name.clone(),
        best_epoch: best.as_ref().map_or(0, |b| b.epoch),
        metrics: best
            .as_ref()
            .map_or_else(Metrics::new, |b| b.metrics.clone()),
    };
    if done_epochs >= ctx.num_epochs || !patience_remaining(settings, done_epochs, best.as_ref()) {
        eprintln!(
            "{}: nothing to train (at epoch {done_epochs} of {}, best epoch {:?})",
            ctx.scheme.name,
            ctx.num_epochs,
            best.as_ref().map(|b| b.epoch)
        );
        return Ok(fold_result(&best));
    }

    if resumed_from.is_none() && settings.check_untrained_accuracy {
        evaluate_epoch(ctx, &c, &mut records, -1, true, &mut best)?;
        evaluate_epoch(ctx, &c, &mut records, 0, false, &mut best)?;
        if best.as_ref().is_some_and(|b| b.epoch == 0) {
            checkpoint::save(&c, &models_dir, Suffix::Best(0))?;
        }
    }

    // Samplers stream passes across epochs (PML's `length_before_new_iter`), so a resumed fold
    // replays the batches of the epochs before its checkpoint to continue the same stream.
    for epoch in 1..=done_epochs {
        let mut rng = epoch_rng(settings.seed, ctx.fold_index, epoch);
        for _ in 0..ipe {
            sampler.next_batch(&mut rng);
        }
    }
    let device = ctx.device;
    let train_labels = Tensor::from_slice(&training.labels);
    let total_iterations = ctx.num_epochs as u64 * ipe;
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let mut iteration = keep_iterations;
    for epoch in done_epochs + 1..=ctx.num_epochs {
        let mut rng = epoch_rng(settings.seed, ctx.fold_index, epoch);
        // The method's own randomness (DAML's triplets) has a stream of its own, so the sampler's
        // draws depend on nothing but (seed, fold, epoch) and can be replayed on resume.
        let mut method_rng = epoch_rng(!settings.seed, ctx.fold_index, epoch);
        // libtorch's own generator too (dropout-like randomness in future models).
        tch::manual_seed((settings.seed as i64) ^ ((ctx.fold_index as i64) << 20) ^ (epoch << 40));
        // The epoch's batches are drawn up front (the sampler's stream is the same as drawing
        // them one by one) so prefetching workers can prepare their inputs ahead of the steps.
        // Each batch's augmentation derives from (fold, iteration): the same whatever the number
        // of workers, and the same on resume.
        let planned: Vec<Vec<usize>> = (0..ipe).map(|_| sampler.next_batch(&mut rng)).collect();
        let requests: Vec<BatchRequest> = planned
            .iter()
            .enumerate()
            .map(|(k, positions)| BatchRequest {
                indices: positions.iter().map(|&p| training.indices[p]).collect(),
                draw: ((ctx.fold_index as u64) << 40) | (iteration + k as u64 + 1),
            })
            .collect();
        let workers = settings.dataloader_num_workers;
        with_batches(ctx.dataset, &requests, true, workers, |batches| {
            for positions in &planned {
                iteration += 1;
                // The batch: positions in the training split, their labels, their samples.
                let pos_tensor =
                    Tensor::from_slice(&positions.iter().map(|&p| p as i64).collect::<Vec<_>>());
                let batch_labels = train_labels.index_select(0, &pos_tensor).to_device(device);
                let x = crate::device::upload(
                    batches
                        .next_batch()
                        .context("the batch loader ended early")??,
                    device,
                );

                let step = c.train_step(x, batch_labels, epoch, &mut method_rng, &mut |k, s| {
                    logs.stats(iteration, k, s)
                })?;
                let (losses, total) = match step {
                    Step::Done { losses, total } => (losses, total),
                    Step::NonFinite { name, value } => {
                        return Err(nan_error(format!(
                            "loss `{name}` became {value} at epoch {epoch}, iteration {iteration} of fold {}; \
                             lower the learning rate or check the loss settings",
                            ctx.scheme.name
                        )));
                    }
                };
                logs.record(
                    iteration,
                    total,
                    &losses,
                    &c.optimizers,
                    records.tensorboard.as_mut(),
                )?;
                if last_progress.elapsed() >= Duration::from_millis(250) {
                    last_progress = Instant::now();
                    emit(&Event::Progress {
                        fold: ctx.scheme.name.clone(),
                        epoch,
                        iteration,
                        total_iterations: Some(total_iterations),
                        loss: Some(total),
                    });
                }
            }
            Ok(())
        })?;
        for opt in c.optimizers.iter_mut() {
            opt.end_of_epoch();
        }
        logs.flush()?;
        if let Some(tb) = records.tensorboard.as_mut() {
            tb.flush()?;
        }
        let last = epoch == ctx.num_epochs;
        if epoch % settings.save_interval as i64 == 0 || last {
            let previous_best = best.as_ref().map(|b| b.epoch);
            let val_primary = evaluate_epoch(ctx, &c, &mut records, epoch, false, &mut best)?;
            if let Some(metric) = val_primary {
                for opt in c.optimizers.iter_mut() {
                    opt.after_evaluation(metric);
                }
            }
            // Optimizer state is saved after the plateau step so a resumed run continues from it.
            checkpoint::save(&c, &models_dir, Suffix::Epoch(epoch))?;
            if best.as_ref().map(|b| b.epoch) != previous_best {
                checkpoint::save(&c, &models_dir, Suffix::Best(epoch))?;
            }
            if !patience_remaining(settings, epoch, best.as_ref()) {
                eprintln!(
                    "{}: no improvement since epoch {:?} (patience {:?}), stopping the fold",
                    ctx.scheme.name,
                    best.as_ref().map(|b| b.epoch),
                    settings.patience
                );
                break;
            }
            if ctx.stop.requested() {
                eprintln!(
                    "{}: stopping after epoch {epoch} as requested; resume with --resume_training",
                    ctx.scheme.name
                );
                break;
            }
        }
    }
    emit(&Event::Progress {
        fold: ctx.scheme.name.clone(),
        epoch: ctx.num_epochs,
        iteration,
        total_iterations: Some(total_iterations),
        loss: None,
    });
    Ok(fold_result(&best))
}
