//! The loop every training method shares (PML `BaseTrainer` + `HookContainer`): epochs of
//! `iterations_per_epoch` iterations; every `save_interval` epochs (and at the last epoch) evaluate,
//! keep the best model by the primary metric on `val`, checkpoint, and stop early on patience or on
//! a `stop` command. A fold resumes from its latest (or best) checkpoint with identical results,
//! because every epoch draws its batches from an RNG seeded by (seed, fold, epoch) and every
//! optimizer's state is checkpointed.

use super::Components;
use crate::checkpoints::{self, Suffix};
use crate::datasets::Dataset;
use crate::errors::nan_error;
use crate::events::{emit, StopFlag};
use crate::records::{cell, row_value, CsvTable, IterationLog, StatsLog};
use crate::runner::{evaluate_models, Settings};
use crate::samplers;
use crate::spec::Config;
use crate::splits::SplitScheme;
use crate::tensorboard::EventWriter;
use anyhow::{Context, Result};
use metricbench_protocol::protocol::{metric_value, Event, FoldResult, Metrics, ResumeFrom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

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

impl FoldContext<'_> {
    pub fn models_folder(&self) -> PathBuf {
        self.folder.join("saved_models")
    }

    pub fn csv_folder(&self) -> PathBuf {
        self.folder.join("saved_csvs")
    }

    /// Seeds libtorch's generator for this fold (model initialisation is then reproducible).
    pub fn seed_models(&self) {
        tch::manual_seed(self.settings.seed as i64 + self.fold_index as i64);
    }

    pub fn train_labels(&self) -> Result<(Vec<usize>, Vec<i64>)> {
        let idx = self.scheme.split("train").ok_or_else(|| {
            crate::errors::config_error(format!(
                "split scheme {} has no train split",
                self.scheme.name
            ))
        })?;
        let labels = idx.iter().map(|&i| self.labels[i]).collect();
        Ok((idx.to_vec(), labels))
    }
}

/// The best validation result so far.
#[derive(Debug, Clone)]
pub struct Best {
    pub epoch: i64,
    pub value: f64,
    pub metrics: Metrics,
}

/// Accuracy tables of a fold, one per split.
pub struct Records {
    folder: PathBuf,
    tables: BTreeMap<String, CsvTable>,
    /// TensorBoard scalars of the same records, when training.
    pub tensorboard: Option<EventWriter>,
}

impl Records {
    pub fn new(folder: PathBuf) -> Self {
        Records {
            folder,
            tables: BTreeMap::new(),
            tensorboard: None,
        }
    }

    /// The table of a split, loaded from its file on first use.
    pub fn table(&mut self, settings: &Settings, split: &str) -> Result<&mut CsvTable> {
        let name = settings.accuracy_table(split);
        if !self.tables.contains_key(&name) {
            let t = CsvTable::load(&self.folder, &name)?;
            self.tables.insert(name.clone(), t);
        }
        Ok(self.tables.get_mut(&name).expect("inserted above"))
    }

    /// Appends one evaluation row (`epoch`, metrics, and on `val` the best so far).
    pub fn record(
        &mut self,
        settings: &Settings,
        split: &str,
        epoch: i64,
        metrics: &BTreeMap<String, f64>,
        best: Option<&Best>,
    ) -> Result<()> {
        let mut row = vec![("epoch".to_string(), epoch.to_string())];
        row.extend(metrics.iter().map(|(k, v)| (k.clone(), cell(*v))));
        if split == "val" {
            let (be, ba) = best.map_or((String::new(), String::new()), |b| {
                (b.epoch.to_string(), cell(b.value))
            });
            row.push(("best_epoch".to_string(), be));
            row.push(("best_accuracy".to_string(), ba));
        }
        if let Some(tb) = self.tensorboard.as_mut() {
            let group = settings.accuracy_table(split);
            let scalars: Vec<(String, f64)> = metrics
                .iter()
                .map(|(k, v)| (format!("{group}/{k}"), *v))
                .collect();
            tb.scalars(epoch, &scalars)?;
            tb.flush()?;
        }
        self.table(settings, split)?.append(row)
    }
}

/// The best `val` row (strictly greater wins, so the earliest of equal values) among epochs
/// `>= 0` of a fold's records: how a resumed run recovers what the interrupted one knew.
pub fn best_from_records(records: &mut Records, settings: &Settings) -> Result<Option<Best>> {
    let table = records.table(settings, "val")?;
    let mut best: Option<Best> = None;
    for row in table.rows() {
        let (Some(epoch), Some(value)) = (
            row_value(row, "epoch"),
            row_value(row, &settings.primary_metric),
        ) else {
            continue;
        };
        if epoch < 0.0 || !value.is_finite() || best.as_ref().is_some_and(|b| value <= b.value) {
            continue;
        }
        let mut metrics = Metrics::new();
        for (k, v) in row {
            if k != "epoch" && k != "best_epoch" && k != "best_accuracy" {
                metrics.insert(k.clone(), metric_value(v.parse().unwrap_or(f64::NAN)));
            }
        }
        best = Some(Best {
            epoch: epoch as i64,
            value,
            metrics,
        });
    }
    Ok(best)
}

/// Every object of a checkpoint: models, loss parameters (when the losses have any) and optimizer
/// state. The trunk is written last so a complete trunk file means a complete checkpoint.
pub fn save_checkpoint(c: &Components, dir: &Path, suffix: Suffix) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for opt in &c.optimizers {
        checkpoints::save_tensors(
            &checkpoints::file(dir, &opt.name, suffix),
            &opt.state_tensors(),
        )?;
    }
    for (name, vs) in c.pipeline.var_stores() {
        let mut tensors: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        checkpoints::save_tensors(&checkpoints::file(dir, name, suffix), &tensors)?;
    }
    for model in c.models.iter().rev() {
        model.save(&checkpoints::file(dir, &model.name, suffix))?;
    }
    checkpoints::delete_others(dir, suffix)
}

/// Loads every object of a checkpoint written by [`save_checkpoint`].
pub fn load_checkpoint(c: &mut Components, dir: &Path, suffix: Suffix) -> Result<()> {
    for model in c.models.iter_mut() {
        model.load(&checkpoints::file(dir, &model.name, suffix))?;
    }
    for (name, vs) in c.pipeline.var_stores() {
        let path = checkpoints::file(dir, name, suffix);
        let saved: BTreeMap<String, Tensor> =
            checkpoints::load_tensors(&path)?.into_iter().collect();
        let variables = vs.variables();
        if saved.len() != variables.len() {
            anyhow::bail!(
                "{} holds {} tensors, but loss `{name}` has {} parameters (was it saved with the same loss config?)",
                path.display(),
                saved.len(),
                variables.len()
            );
        }
        tch::no_grad(|| -> Result<()> {
            for (key, mut var) in variables {
                let value = saved
                    .get(&key)
                    .filter(|t| t.size() == var.size())
                    .with_context(|| {
                        format!(
                            "{} has no tensor `{key}` of shape {:?} for loss `{name}`",
                            path.display(),
                            var.size()
                        )
                    })?;
                var.copy_(value);
            }
            Ok(())
        })?;
    }
    for opt in c.optimizers.iter_mut() {
        let path = checkpoints::file(dir, &opt.name, suffix);
        let tensors = checkpoints::load_tensors(&path)?;
        opt.load_state(&tensors, &path)?;
    }
    Ok(())
}

/// `patience_remaining`: false once `epoch - best_epoch > patience`.
pub fn patience_remaining(settings: &Settings, epoch: i64, best: Option<&Best>) -> bool {
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

/// Trains one fold (from scratch, or from its checkpoint when `resume` is set) and returns its
/// best validation result.
pub fn train_fold(ctx: &FoldContext, resume: Option<ResumeFrom>) -> Result<FoldResult> {
    let settings = ctx.settings;
    let models_dir = ctx.models_folder();
    let csv_dir = ctx.csv_folder();
    for d in [&models_dir, &csv_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    ctx.seed_models();
    let (train_idx, raw_train_labels) = ctx.train_labels()?;
    // Training labels as ranks 0..C (PML's set_min_label_to_zero), so classification and proxy
    // losses can index their class parameters.
    let mut classes = raw_train_labels.clone();
    classes.sort_unstable();
    classes.dedup();
    let train_labels: Vec<i64> = raw_train_labels
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0) as i64)
        .collect();
    let mut c = super::build(
        ctx.cfg,
        &ctx.dataset.sample_shape(),
        &train_labels,
        ctx.device,
    )?;
    let mut sampler = samplers::build(
        ctx.cfg.require("sampler")?,
        &train_labels,
        settings.batch_size,
    )?;
    let mut records = Records::new(csv_dir.clone());
    records.tensorboard = Some(EventWriter::create(&ctx.folder.join("tensorboard_logs"))?);

    let resumed_from = match resume {
        None => None,
        Some(ResumeFrom::Latest) => checkpoints::latest_epoch(&models_dir).map(Suffix::Epoch),
        Some(ResumeFrom::Best) => checkpoints::best_epoch(&models_dir).map(Suffix::Best),
    };
    let done_epochs = resumed_from.map_or(0, Suffix::epoch);
    if let Some(suffix) = resumed_from {
        load_checkpoint(&mut c, &models_dir, suffix)?;
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
    let mut best = best_from_records(&mut records, settings)?;
    let ipe = settings.iterations_per_epoch as u64;
    let keep_iterations = done_epochs.max(0) as u64 * ipe;
    let mut loss_names: Vec<String> = c.weights.keys().cloned().collect();
    loss_names.sort();
    let mut header = vec!["iteration".to_string(), "total_loss".to_string()];
    header.extend(loss_names.iter().cloned());
    let mut loss_log = IterationLog::open(&csv_dir, "loss_histories", &header, keep_iterations)?;
    let mut stats_log = StatsLog::open(&csv_dir, keep_iterations)?;
    let mut lr_logs = Vec::new();
    for opt in &c.optimizers {
        let name = format!("{}_{}", opt.name, opt.class);
        let h = ["iteration".to_string(), "lr".to_string()];
        lr_logs.push(IterationLog::open(&csv_dir, &name, &h, keep_iterations)?);
    }

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

    let eval = |c: &Components,
                records: &mut Records,
                epoch: i64,
                trunk_only: bool,
                best: &mut Option<Best>|
     -> Result<Option<f64>> {
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
    };

    if resumed_from.is_none() && settings.check_untrained_accuracy {
        eval(&c, &mut records, -1, true, &mut best)?;
        eval(&c, &mut records, 0, false, &mut best)?;
        if best.as_ref().is_some_and(|b| b.epoch == 0) {
            save_checkpoint(&c, &models_dir, Suffix::Best(0))?;
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
    let (train_idx, device) = (train_idx, ctx.device);
    let train_labels_tensor = Tensor::from_slice(&train_labels);
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
        for _ in 0..ipe {
            iteration += 1;
            let positions = sampler.next_batch(&mut rng);
            let batch_idx: Vec<usize> = positions.iter().map(|&p| train_idx[p]).collect();
            let pos_tensor =
                Tensor::from_slice(&positions.iter().map(|&p| p as i64).collect::<Vec<_>>());
            let batch_labels = train_labels_tensor
                .index_select(0, &pos_tensor)
                .to_device(device);
            let mut x = crate::device::upload(ctx.dataset.batch(&batch_idx, true)?, device);
            let mut batch_labels = batch_labels;
            if c.pipeline.has_subset_batch_miner() {
                let emb = tch::no_grad(|| c.embedder().forward(&c.trunk().forward(&x)));
                if let Some((keep, stats)) = c.pipeline.subset_batch(&emb, &batch_labels)? {
                    stats_log.record(iteration, "subset_batch_miner", &stats)?;
                    x = x.index_select(0, &keep);
                    batch_labels = batch_labels.index_select(0, &keep);
                }
            }
            let parts = c.batch_losses(&x, &batch_labels, epoch, &mut method_rng)?;
            for (component, stats) in c.take_stats() {
                stats_log.record(iteration, &component, &stats)?;
            }
            let mut total = Tensor::zeros([], (Kind::Float, device));
            let mut values: BTreeMap<&str, f64> = BTreeMap::new();
            for (name, value) in &parts {
                let v = f64::try_from(value).unwrap_or(f64::NAN);
                if !v.is_finite() {
                    return Err(nan_error(format!(
                        "loss `{name}` became {v} at epoch {epoch}, iteration {iteration} of fold {}; \
                         lower the learning rate or check the loss settings",
                        ctx.scheme.name
                    )));
                }
                values.insert(name.as_str(), v);
                total += value * c.weight(name, epoch);
            }
            if !parts.is_empty() {
                let learners: Vec<bool> = c
                    .optimizers
                    .iter()
                    .map(|o| c.learns(&o.name, epoch))
                    .collect();
                // Gradients of the learning optimizers' parameters straight from autograd
                // (`torch.autograd.grad`) instead of zeroing every `.grad` and accumulating into
                // it: two passes over each parameter fewer, and no gradients for models that sit
                // out this epoch.
                let inputs: Vec<Tensor> = c
                    .optimizers
                    .iter()
                    .zip(&learners)
                    .filter(|(_, learns)| **learns)
                    .flat_map(|(o, _)| o.parameters().map(Tensor::shallow_clone))
                    .collect();
                let grads = if total.requires_grad() && !inputs.is_empty() {
                    Tensor::run_backward(&[&total], &inputs, false, false)
                } else {
                    inputs.iter().map(|_| Tensor::new()).collect()
                };
                let mut grads = grads.as_slice();
                for (opt, learns) in c.optimizers.iter_mut().zip(learners) {
                    if learns {
                        let (mine, rest) = grads.split_at(opt.parameters().count());
                        grads = rest;
                        opt.clip(mine);
                        opt.step_with(mine);
                        opt.end_of_iteration();
                    }
                }
            }
            let total_value = f64::try_from(&total).unwrap_or(f64::NAN);
            let mut row = vec![total_value];
            row.extend(
                loss_names
                    .iter()
                    .map(|n| values.get(n.as_str()).copied().unwrap_or(0.0)),
            );
            loss_log.record(iteration, &row)?;
            let mut scalars: Vec<(String, f64)> = header[1..]
                .iter()
                .zip(&row)
                .map(|(n, v)| (format!("loss_histories/{n}"), *v))
                .collect();
            for (log, opt) in lr_logs.iter_mut().zip(&c.optimizers) {
                log.record(iteration, &[opt.lr])?;
                scalars.push((format!("{}_{}/lr", opt.name, opt.class), opt.lr));
            }
            if let Some(tb) = records.tensorboard.as_mut() {
                tb.scalars(iteration as i64, &scalars)?;
            }
            if last_progress.elapsed() >= Duration::from_millis(250) {
                last_progress = Instant::now();
                emit(&Event::Progress {
                    fold: ctx.scheme.name.clone(),
                    epoch,
                    iteration,
                    total_iterations: Some(total_iterations),
                    loss: Some(total_value),
                });
            }
        }
        for opt in c.optimizers.iter_mut() {
            opt.end_of_epoch();
        }
        loss_log.flush()?;
        stats_log.flush()?;
        for log in lr_logs.iter_mut() {
            log.flush()?;
        }
        if let Some(tb) = records.tensorboard.as_mut() {
            tb.flush()?;
        }
        let last = epoch == ctx.num_epochs;
        if epoch % settings.save_interval as i64 == 0 || last {
            let previous_best = best.as_ref().map(|b| b.epoch);
            let val_primary = eval(&c, &mut records, epoch, false, &mut best)?;
            if let Some(metric) = val_primary {
                for opt in c.optimizers.iter_mut() {
                    opt.after_evaluation(metric);
                }
            }
            // Optimizer state is saved after the plateau step so a resumed run continues from it.
            save_checkpoint(&c, &models_dir, Suffix::Epoch(epoch))?;
            if best.as_ref().map(|b| b.epoch) != previous_best {
                save_checkpoint(&c, &models_dir, Suffix::Best(epoch))?;
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
