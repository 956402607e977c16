//! One job: build the dataset and its split schemes, train and evaluate every fold, report the
//! objective (mean over folds of each fold's best validation metric, with its standard error).

use crate::datasets::{self, Dataset};
use crate::errors::{config_error, nan_error};
use crate::events::{emit, StopFlag};
use crate::losses::pipeline::LossPipeline;
use crate::losses::BuildContext;
use crate::models::{self, Model};
use crate::optimizers::{self, Optimizer};
use crate::records::{cell, CsvTable};
use crate::samplers;
use crate::spec::Config;
use crate::splits::{self, class_ranges, CrossValidation, SplitScheme};
use crate::testers::{evaluate_splits, EvalSettings};
use anyhow::{Context, Result};
use metricbench::protocol::{metric_value, Event, FoldResult, Job, Metrics, Objective};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tch::{Device, Tensor};

/// Training settings from the general config keys.
struct Settings {
    num_epochs: usize,
    iterations_per_epoch: usize,
    save_interval: usize,
    patience: Option<usize>,
    batch_size: usize,
    check_untrained_accuracy: bool,
    label_level: usize,
    primary_metric: String,
    seed: u64,
    eval: EvalSettings,
}

impl Settings {
    fn from_config(cfg: &Config) -> Result<Settings> {
        let save_interval = cfg.usize("save_interval", Some(2))?;
        if save_interval == 0 {
            return Err(config_error("save_interval must be at least 1"));
        }
        let iterations_per_epoch = cfg.usize("iterations_per_epoch", Some(100))?;
        if iterations_per_epoch == 0 {
            return Err(config_error("iterations_per_epoch must be at least 1"));
        }
        let batch_size = cfg.usize("batch_size", Some(32))?;
        if batch_size < 2 {
            return Err(config_error("batch_size must be at least 2"));
        }
        let primary_metric = match cfg.get("eval_metric_for_best_epoch") {
            Some(_) => cfg.str("eval_metric_for_best_epoch", "")?,
            None => cfg.str("eval_primary_metric", "mean_average_precision_at_r")?,
        }
        .to_string();
        Ok(Settings {
            num_epochs: cfg.usize("num_epochs_train", Some(1000))?,
            iterations_per_epoch,
            save_interval,
            patience: cfg.optional_usize("patience")?,
            batch_size,
            check_untrained_accuracy: cfg.bool("check_untrained_accuracy", true)?,
            label_level: cfg.usize("label_hierarchy_level", Some(0))?,
            primary_metric,
            seed: cfg.usize("seed", Some(0))? as u64,
            eval: EvalSettings::from_config(cfg)?,
        })
    }
}

/// `device: cpu | cuda | cuda:N | auto`.
pub fn parse_device(name: &str) -> Result<Device> {
    let device = match name {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => Device::Cuda(n),
            None => {
                return Err(config_error(format!(
                    "device must be cpu, cuda, cuda:N or auto, got `{other}`"
                )))
            }
        },
    };
    if let Device::Cuda(n) = device {
        let available = tch::Cuda::device_count() as usize;
        if n >= available {
            return Err(config_error(format!(
                "device `{name}` asked for CUDA device {n}, but {available} CUDA device(s) are available"
            )));
        }
    }
    Ok(device)
}

pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

fn split_schemes(cfg: &Config, dataset: &dyn Dataset, labels: &[i64]) -> Result<Vec<SplitScheme>> {
    match cfg.get("special_split_scheme_name") {
        None => splits::cross_validation(
            labels,
            &CrossValidation {
                test_size: cfg.f64("test_size", 0.5)?,
                test_start_idx: cfg.f64("test_start_idx", 0.5)?,
                num_training_partitions: cfg.usize("num_training_partitions", Some(4))?,
                num_training_sets: cfg.usize("num_training_sets", Some(4))?,
            },
        ),
        Some(_) => match cfg.str("special_split_scheme_name", "")? {
            "old_approach" => Ok(vec![splits::old_approach(labels)?]),
            "predefined" => match dataset.predefined_splits() {
                Some(splits) => Ok(vec![SplitScheme {
                    name: "predefined".to_string(),
                    splits,
                }]),
                None => Err(config_error(
                    "special_split_scheme_name is `predefined`, but this dataset has no predefined split",
                )),
            },
            other => Err(config_error(format!(
                "special_split_scheme_name must be null, old_approach or predefined, got `{other}`"
            ))),
        },
    }
}

/// Writes `<fold>/splits.yaml`: per split, the sorted classes (as ranges) and the sample count.
fn write_split_summary(folder: &Path, scheme: &SplitScheme, labels: &[i64]) -> Result<()> {
    let mut text = String::from(
        "# Class-disjoint split of this fold: label ranges (inclusive) and sample counts.\n",
    );
    for (name, idx) in &scheme.splits {
        let ranges: Vec<String> = class_ranges(labels, idx)
            .iter()
            .map(|(a, b)| {
                if a == b {
                    format!("\"{a}\"")
                } else {
                    format!("\"{a}-{b}\"")
                }
            })
            .collect();
        let classes: std::collections::BTreeSet<i64> = idx.iter().map(|&i| labels[i]).collect();
        text.push_str(&format!(
            "{name}:\n  num_samples: {}\n  num_classes: {}\n  classes: [{}]\n",
            idx.len(),
            classes.len(),
            ranges.join(", ")
        ));
    }
    metricbench::fsutil::write_atomic(&folder.join("splits.yaml"), text.as_bytes())
}

/// Runs a `train` job and returns the `result` event.
pub fn train(job: &Job, stop: &StopFlag) -> Result<Event> {
    let cfg = Config(&job.config);
    let settings = Settings::from_config(&cfg)?;
    let device = parse_device(cfg.str("device", "auto")?)?;
    tch::manual_seed(settings.seed as i64);
    let dataset = datasets::build(cfg.require("dataset")?)?;
    if settings.label_level >= dataset.label_levels() {
        return Err(config_error(format!(
            "label_hierarchy_level is {}, but the dataset has {} label level(s)",
            settings.label_level,
            dataset.label_levels()
        )));
    }
    let labels = dataset.labels(settings.label_level).to_vec();
    let schemes = split_schemes(&cfg, dataset.as_ref(), &labels)?;
    for split in &job.splits_to_eval {
        if !schemes[0].splits.iter().any(|(n, _)| n == split) {
            let names: Vec<&str> = schemes[0].splits.iter().map(|(n, _)| n.as_str()).collect();
            return Err(config_error(format!(
                "splits_to_eval names `{split}`, but the split scheme has only {}",
                names.join(", ")
            )));
        }
    }
    let experiment = PathBuf::from(&job.experiment_folder);
    let mut folds = Vec::new();
    for (fold_index, scheme) in schemes.iter().enumerate() {
        let fold = train_fold(
            &cfg,
            &settings,
            dataset.as_ref(),
            &labels,
            scheme,
            &experiment,
            fold_index,
            &job.splits_to_eval,
            device,
            stop,
        )
        .with_context(|| format!("fold {}", scheme.name))?;
        folds.push(fold);
        if stop.requested() {
            break;
        }
    }
    let values: Vec<f64> = folds
        .iter()
        .filter_map(|f| {
            f.metrics
                .get(&settings.primary_metric)
                .and_then(|v| v.as_f64())
        })
        .collect();
    let (mean, sem) = mean_and_sem(&values);
    Ok(Event::Result {
        objective: Objective {
            metric: settings.primary_metric.clone(),
            mean,
            sem,
        },
        folds,
    })
}

/// Mean and standard error of the mean (sample standard deviation / sqrt(n)); `None` where undefined.
pub fn mean_and_sem(values: &[f64]) -> (Option<f64>, Option<f64>) {
    if values.is_empty() {
        return (None, None);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (Some(mean), None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (Some(mean), Some((var / n).sqrt()))
}

struct Fold<'a> {
    trunk: Model,
    embedder: Model,
    optimizers: Vec<Optimizer>,
    pipeline: LossPipeline,
    dataset: &'a dyn Dataset,
}

fn build_fold<'a>(
    cfg: &Config,
    dataset: &'a dyn Dataset,
    num_classes: i64,
    device: Device,
) -> Result<Fold<'a>> {
    let models_cfg = cfg.require("models")?;
    let trunk_spec = models_cfg
        .get("trunk")
        .ok_or_else(|| config_error("`models` has no `trunk` entry"))?;
    let embedder_spec = models_cfg
        .get("embedder")
        .ok_or_else(|| config_error("`models` has no `embedder` entry"))?;
    let shape = dataset.sample_shape();
    let input_dim = shape.iter().product::<i64>();
    let trunk = models::build_trunk(trunk_spec, input_dim, device)?;
    let embedder = models::build_embedder(embedder_spec, trunk.output_dim, device)?;
    // Losses first: those with parameters (W, proxies, beta) get their own `<name>_optimizer`.
    let pipeline = LossPipeline::from_config(
        cfg,
        &BuildContext {
            num_classes: Some(num_classes),
            embedding_size: Some(embedder.output_dim),
            device,
        },
    )?;

    let mut optimizers = Vec::new();
    if let Some(map) = cfg.get("optimizers").and_then(|v| v.as_object()) {
        for (name, spec) in map {
            let vs = match name.as_str() {
                "trunk_optimizer" => &trunk.vs,
                "embedder_optimizer" => &embedder.vs,
                other => match pipeline.var_store(other.trim_end_matches("_optimizer")) {
                    Some(vs) => vs,
                    None => {
                        let learnable: Vec<String> = pipeline
                            .var_stores()
                            .iter()
                            .map(|(n, _)| format!("{n}_optimizer"))
                            .collect();
                        return Err(config_error(format!(
                            "optimizers/{other}: nothing to optimise under that name; expected \
                             trunk_optimizer, embedder_optimizer{}",
                            learnable
                                .iter()
                                .map(|n| format!(", {n}"))
                                .collect::<String>()
                        )));
                    }
                },
            };
            optimizers.push(optimizers::build(name, spec, vs)?);
        }
    }
    for opt in &optimizers {
        eprintln!("{}: {} (lr {})", opt.name, opt.class, opt.lr);
    }
    eprintln!(
        "{}: input {input_dim} -> {}; {}: -> {}",
        trunk.name, trunk.output_dim, embedder.name, embedder.output_dim
    );
    if optimizers.is_empty() {
        return Err(config_error(
            "`optimizers` defines no optimizer, so nothing would be trained",
        ));
    }

    Ok(Fold {
        trunk,
        embedder,
        optimizers,
        pipeline,
        dataset,
    })
}

#[allow(clippy::too_many_arguments)]
fn train_fold(
    cfg: &Config,
    settings: &Settings,
    dataset: &dyn Dataset,
    labels: &[i64],
    scheme: &SplitScheme,
    experiment: &Path,
    fold_index: usize,
    splits_to_eval: &[String],
    device: Device,
    stop: &StopFlag,
) -> Result<FoldResult> {
    let folder = experiment.join(&scheme.name);
    let csv_folder = folder.join("saved_csvs");
    std::fs::create_dir_all(&csv_folder)
        .with_context(|| format!("cannot create {}", csv_folder.display()))?;
    write_split_summary(&folder, scheme, labels)?;
    tch::manual_seed(settings.seed as i64 + fold_index as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed.wrapping_add(fold_index as u64));

    let train_idx = scheme
        .split("train")
        .ok_or_else(|| config_error(format!("split scheme {} has no train split", scheme.name)))?;
    // Training labels as ranks 0..C (PML's set_min_label_to_zero), so classification and proxy
    // losses can index their class parameters.
    let mut classes: Vec<i64> = train_idx.iter().map(|&i| labels[i]).collect();
    classes.sort_unstable();
    classes.dedup();
    let train_labels: Vec<i64> = train_idx
        .iter()
        .map(|&i| classes.binary_search(&labels[i]).unwrap_or(0) as i64)
        .collect();
    let mut fold = build_fold(cfg, dataset, classes.len() as i64, device)?;
    let mut sampler = samplers::build(cfg.require("sampler")?, &train_labels, settings.batch_size)?;

    let mut tables: BTreeMap<String, CsvTable> = BTreeMap::new();
    let mut best: Option<(i64, f64, Metrics)> = None;
    let total_iterations = (settings.num_epochs * settings.iterations_per_epoch) as u64;

    let mut evaluate = |fold: &Fold,
                        epoch: i64,
                        trunk_only: bool,
                        best: &mut Option<(i64, f64, Metrics)>|
     -> Result<()> {
        let mut all_metrics = evaluate_splits(
            fold.dataset,
            &scheme.splits,
            splits_to_eval,
            settings.label_level,
            &fold.trunk,
            (!trunk_only && !settings.eval.use_trunk_output).then_some(&fold.embedder),
            &settings.eval,
            device,
        )?;
        for split in splits_to_eval {
            let metrics = all_metrics.remove(split).unwrap_or_default();
            let primary = metrics
                .get(&settings.primary_metric)
                .copied()
                .ok_or_else(|| {
                    config_error(format!(
                        "eval_metric_for_best_epoch `{}` is not a computed metric; available: {}",
                        settings.primary_metric,
                        metrics.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
            let mut json = Metrics::new();
            for (k, v) in &metrics {
                json.insert(k.clone(), metric_value(*v));
            }
            let is_best = split == "val"
                && !trunk_only
                && primary.is_finite()
                && best.as_ref().is_none_or(|(_, b, _)| primary > *b);
            if is_best {
                *best = Some((epoch, primary, json.clone()));
            }
            let table_name = format!(
                "accuracies_{}_{}_level_{}_{}",
                settings.eval.table_tag(),
                settings.eval.tester_name(),
                settings.label_level,
                split.to_uppercase()
            );
            let table = tables
                .entry(table_name.clone())
                .or_insert_with(|| CsvTable::new(&csv_folder, &table_name));
            let mut row = vec![("epoch".to_string(), epoch.to_string())];
            row.extend(metrics.iter().map(|(k, v)| (k.clone(), cell(*v))));
            if split == "val" {
                let (be, ba) = best
                    .as_ref()
                    .map_or((String::new(), String::new()), |(e, a, _)| {
                        (e.to_string(), cell(*a))
                    });
                row.push(("best_epoch".to_string(), be));
                row.push(("best_accuracy".to_string(), ba));
            }
            table.append(row)?;
            emit(&Event::Evaluation {
                fold: scheme.name.clone(),
                epoch,
                split: split.clone(),
                metrics: json,
                is_best,
            });
        }
        Ok(())
    };

    if settings.check_untrained_accuracy {
        evaluate(&fold, -1, true, &mut best)?;
        evaluate(&fold, 0, false, &mut best)?;
    }

    let loss_names: Vec<&str> = fold
        .pipeline
        .losses
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    let mut loss_log = LossLog::create(&csv_folder, &loss_names)?;
    let train_labels_tensor = Tensor::from_slice(&train_labels);
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let mut iteration: u64 = 0;
    for epoch in 1..=settings.num_epochs as i64 {
        for _ in 0..settings.iterations_per_epoch {
            iteration += 1;
            let positions = sampler.next_batch(&mut rng);
            let batch_idx: Vec<usize> = positions.iter().map(|&p| train_idx[p]).collect();
            let pos_tensor =
                Tensor::from_slice(&positions.iter().map(|&p| p as i64).collect::<Vec<_>>());
            let batch_labels = train_labels_tensor
                .index_select(0, &pos_tensor)
                .to_device(device);
            let mut x = dataset.batch(&batch_idx, true)?.to_device(device);
            let mut batch_labels = batch_labels;
            if fold.pipeline.has_subset_batch_miner() {
                let emb = tch::no_grad(|| fold.embedder.forward(&fold.trunk.forward(&x)));
                if let Some((keep, stats)) = fold.pipeline.subset_batch(&emb, &batch_labels)? {
                    loss_log.record_stats(iteration, "subset_batch_miner", &stats)?;
                    x = x.index_select(0, &keep);
                    batch_labels = batch_labels.index_select(0, &keep);
                }
            }
            let embeddings = fold.embedder.forward(&fold.trunk.forward(&x));
            let step = fold.pipeline.forward(&embeddings, &batch_labels)?;
            for (l, v) in fold.pipeline.losses.iter().zip(&step.values) {
                if !v.is_finite() {
                    return Err(nan_error(format!(
                        "loss `{}` became {v} at epoch {epoch}, iteration {iteration} of fold {}; \
                         lower the learning rate or check the loss settings",
                        l.name, scheme.name
                    )));
                }
            }
            for (component, stats) in &step.stats {
                loss_log.record_stats(iteration, component, stats)?;
            }
            let parts = step.values;
            let total = step.total;
            for opt in fold.optimizers.iter_mut() {
                opt.inner.zero_grad();
            }
            total.backward();
            for opt in fold.optimizers.iter_mut() {
                opt.inner.step();
            }
            let total_value = f64::try_from(&total).unwrap_or(f64::NAN);
            loss_log.record(iteration, total_value, &parts)?;
            if last_progress.elapsed() >= Duration::from_millis(250) {
                last_progress = Instant::now();
                emit(&Event::Progress {
                    fold: scheme.name.clone(),
                    epoch,
                    iteration,
                    total_iterations: Some(total_iterations),
                    loss: Some(total_value),
                });
            }
        }
        loss_log.flush()?;
        let last = epoch == settings.num_epochs as i64;
        if epoch % settings.save_interval as i64 == 0 || last {
            evaluate(&fold, epoch, false, &mut best)?;
            let best_epoch = best.as_ref().map_or(0, |(e, _, _)| *e);
            if let Some(patience) = settings.patience {
                if epoch - best_epoch > patience as i64 {
                    eprintln!(
                        "{}: no improvement for {} epochs (patience {patience}), stopping the fold",
                        scheme.name,
                        epoch - best_epoch
                    );
                    break;
                }
            }
            if stop.requested() {
                eprintln!("{}: stopping after epoch {epoch} as requested", scheme.name);
                break;
            }
        }
    }
    emit(&Event::Progress {
        fold: scheme.name.clone(),
        epoch: settings.num_epochs as i64,
        iteration,
        total_iterations: Some(total_iterations),
        loss: None,
    });
    let (best_epoch, _, metrics) = best.unwrap_or((0, f64::NAN, Metrics::new()));
    Ok(FoldResult {
        fold: scheme.name.clone(),
        best_epoch,
        metrics,
    })
}

/// Per-iteration loss history (`loss_histories.csv`), appended line by line and flushed every epoch:
/// rewriting a growing file atomically every iteration would cost quadratic time.
struct LossLog {
    file: std::io::BufWriter<std::fs::File>,
    /// Per-iteration statistics of losses and miners (`loss_stats.csv`, long format
    /// `iteration,component,stat,value`, since the set of statistics varies by component).
    stats: std::io::BufWriter<std::fs::File>,
}

impl LossLog {
    fn create(folder: &Path, names: &[&str]) -> Result<LossLog> {
        let path = folder.join("loss_histories.csv");
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut file = std::io::BufWriter::new(file);
        writeln!(file, "iteration,total_loss,{}", names.join(","))?;
        let stats_path = folder.join("loss_stats.csv");
        let stats = std::fs::File::create(&stats_path)
            .with_context(|| format!("cannot create {}", stats_path.display()))?;
        let mut stats = std::io::BufWriter::new(stats);
        writeln!(stats, "iteration,component,stat,value")?;
        Ok(LossLog { file, stats })
    }

    fn record(&mut self, iteration: u64, total: f64, parts: &[f64]) -> Result<()> {
        let parts: Vec<String> = parts.iter().map(|v| cell(*v)).collect();
        writeln!(self.file, "{iteration},{},{}", cell(total), parts.join(","))?;
        Ok(())
    }

    fn record_stats(
        &mut self,
        iteration: u64,
        component: &str,
        stats: &crate::reducers::Stats,
    ) -> Result<()> {
        for (k, v) in stats {
            writeln!(self.stats, "{iteration},{component},{k},{}", cell(*v))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        self.stats.flush()?;
        Ok(())
    }
}
