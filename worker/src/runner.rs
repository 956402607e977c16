//! One job: build the dataset and its split schemes, then train every fold (one fold's life is in
//! `fold`), evaluate saved best checkpoints, or evaluate the ensemble of all folds; write the meta
//! logs and report the objective (mean over folds of each fold's best validation metric, with its
//! standard error).

use crate::checkpoints::{self, Suffix};
use crate::datasets::{self, Dataset};
use crate::errors::config_error;
use crate::events::{emit, StopFlag};
use crate::fold::accuracies::AccuracyRecords;
use crate::fold::{evaluate_models, train_fold, FoldContext};
use crate::models::{self, Model};
use crate::records::{cell, row_value, CsvTable};
use crate::settings::Settings;
use crate::spec::Config;
use crate::splits::{self, class_ranges, CrossValidation, SplitScheme};
use crate::testers;
use crate::trainers;
use crate::visualisation::{self, FoldPictures, VisualisationSettings};
use anyhow::{Context, Result};
use metricbench_protocol::protocol::{
    metric_value, Action, Event, FoldResult, Job, Metrics, Objective,
};
use std::path::{Path, PathBuf};
use tch::Device;

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
    metricbench_protocol::fsutil::write_atomic(&folder.join("splits.yaml"), text.as_bytes())
}

/// What every action needs: settings, dataset, split schemes.
struct Prepared<'a> {
    cfg: Config<'a>,
    settings: Settings,
    device: Device,
    dataset: Box<dyn Dataset>,
    labels: Vec<i64>,
    schemes: Vec<SplitScheme>,
    experiment: PathBuf,
}

fn prepare(job: &Job) -> Result<Prepared<'_>> {
    let cfg = Config(&job.config);
    let settings = Settings::from_config(&cfg)?;
    trainers::method_name(&cfg)?;
    // Bad picture settings fail now, not after training.
    VisualisationSettings::from_config(&cfg)?;
    let device = parse_device(cfg.str("device", "auto")?)?;
    tch::manual_seed(settings.seed as i64);
    // The image pipeline produces what the trunk declares it wants (trunks over feature vectors
    // declare nothing; images then get torchvision's convention, e.g. for an MLP over pixels).
    let trunk_convention = match cfg.get("models").and_then(|m| m.get("trunk")) {
        Some(spec) => crate::models::input_convention(spec)?,
        None => None,
    };
    let options = datasets::BuildOptions {
        transforms: cfg.get("transforms"),
        convention: trunk_convention.unwrap_or(crate::input_convention::InputConvention::IMAGENET),
        dataset_root: PathBuf::from(cfg.str("dataset_root", "datasets")?),
        seed: settings.seed,
        workers: settings.dataloader_num_workers,
    };
    let dataset = datasets::build(cfg.require("dataset")?, &options)?;
    if settings.label_level >= dataset.label_levels() {
        return Err(config_error(format!(
            "label_hierarchy_level is {}, but the dataset has {} label level(s)",
            settings.label_level,
            dataset.label_levels()
        )));
    }
    let labels = dataset.labels(settings.label_level).to_vec();
    let schemes = split_schemes(&cfg, dataset.as_ref(), &labels)?;
    if job.splits_to_eval.is_empty() {
        return Err(config_error(
            "splits_to_eval is empty; name at least one split, e.g. [val]",
        ));
    }
    for split in &job.splits_to_eval {
        if !schemes[0].splits.iter().any(|(n, _)| n == split) {
            let names: Vec<&str> = schemes[0].splits.iter().map(|(n, _)| n.as_str()).collect();
            return Err(config_error(format!(
                "splits_to_eval names `{split}`, but the split scheme has only {}",
                names.join(", ")
            )));
        }
    }
    Ok(Prepared {
        cfg,
        settings,
        device,
        dataset,
        labels,
        schemes,
        experiment: PathBuf::from(&job.experiment_folder),
    })
}

impl Prepared<'_> {
    fn context<'b>(
        &'b self,
        fold_index: usize,
        splits_to_eval: &'b [String],
        stop: &'b StopFlag,
    ) -> Result<FoldContext<'b>> {
        let scheme = &self.schemes[fold_index];
        Ok(FoldContext {
            cfg: &self.cfg,
            settings: &self.settings,
            dataset: self.dataset.as_ref(),
            labels: &self.labels,
            scheme,
            folder: self.experiment.join(&scheme.name),
            fold_index,
            splits_to_eval,
            device: self.device,
            stop,
            num_epochs: self
                .settings
                .num_epochs
                .for_fold(fold_index, &scheme.name)?,
        })
    }

    /// The trunk and embedder of a fold as saved in its best checkpoint.
    fn best_models(&self, ctx: &FoldContext) -> Result<(i64, Model, Model)> {
        let dir = ctx.models_folder();
        let epoch = checkpoints::best_epoch(&dir).ok_or_else(|| {
            config_error(format!(
                "fold {} has no best checkpoint in {} (no trunk_best<epoch>.safetensors); train the                  experiment first",
                ctx.scheme.name,
                dir.display()
            ))
        })?;
        let (mut trunk, mut embedder) = self.fresh_models(ctx)?;
        trunk.load(&checkpoints::file(&dir, "trunk", Suffix::Best(epoch)))?;
        embedder.load(&checkpoints::file(&dir, "embedder", Suffix::Best(epoch)))?;
        Ok((epoch, trunk, embedder))
    }

    /// A fold's trunk and embedder as initialised before training (same seed as training).
    fn fresh_models(&self, ctx: &FoldContext) -> Result<(Model, Model)> {
        let mut c = ctx.build_components(&ctx.training_set()?)?;
        let mut models = std::mem::take(&mut c.models).into_iter();
        let trunk = models.next().expect("trunk is built first");
        let embedder = models.next().expect("embedder is built second");
        Ok((trunk, embedder))
    }
}

/// `save_embeddings_for_projector: N`: the best model's embeddings of N samples per split (spread
/// evenly over the split) with their labels, for TensorBoard's Projector, in the fold's
/// `tensorboard_logs/` (the Projector reads a run's folder); for datasets of images, with a sprite
/// of the samples' thumbnails.
fn save_projector_embeddings(
    p: &Prepared,
    ctx: &FoldContext,
    scheme: &SplitScheme,
    n: usize,
) -> Result<()> {
    use metricbench_protocol::projector::{self, ProjectedSplit, Sprite};
    if n == 0 || checkpoints::best_epoch(&ctx.models_folder()).is_none() {
        return Ok(());
    }
    let (_, trunk, embedder) = p.best_models(ctx)?;
    let mut data = Vec::new();
    for (split, idx) in &scheme.splits {
        let picked: Vec<usize> = projector::sample_indices(idx.len(), n)
            .into_iter()
            .map(|i| idx[i])
            .collect();
        if picked.is_empty() {
            continue;
        }
        let e = testers::embeddings(
            p.dataset.as_ref(),
            &picked,
            &trunk,
            Some(&embedder),
            &p.settings.eval,
            p.device,
        )?;
        let dim = e.size().last().copied().unwrap_or(0) as usize;
        let values = Vec::<f32>::try_from(e.to_kind(tch::Kind::Float).flatten(0, -1))?;
        let labels: Vec<i64> = picked.iter().map(|&i| p.labels[i]).collect();
        let sprite = visualisation::sprite::sprite(p.dataset.as_ref(), &picked)?;
        data.push((split.clone(), values, dim, labels, picked, sprite));
    }
    let splits: Vec<ProjectedSplit> = data
        .iter()
        .map(
            |(split, values, dim, labels, picked, sprite)| ProjectedSplit {
                split,
                embeddings: values,
                dim: *dim,
                labels,
                indices: picked,
                sprite: sprite.as_ref().map(|(png, side)| Sprite {
                    png,
                    thumbnail_width: *side,
                    thumbnail_height: *side,
                }),
            },
        )
        .collect();
    projector::write(&ctx.folder.join("tensorboard_logs"), &splits)
}

/// The retrieval grid and the t-SNE map of the fold's best checkpoint (`visualisation`), when the
/// config asks for them and the fold has a best checkpoint.
fn save_visualisations(p: &Prepared, ctx: &FoldContext, splits_to_eval: &[String]) -> Result<()> {
    let settings = VisualisationSettings::from_config(&p.cfg)?;
    if !settings.any() || checkpoints::best_epoch(&ctx.models_folder()).is_none() {
        return Ok(());
    }
    let (_, trunk, embedder) = p.best_models(ctx)?;
    FoldPictures {
        dataset: p.dataset.as_ref(),
        label_level: p.settings.label_level,
        splits: &ctx.scheme.splits,
        splits_to_eval,
        trunk: &trunk,
        embedder: (!p.settings.eval.use_trunk_output).then_some(&embedder),
        eval: &p.settings.eval,
        device: p.device,
        folder: &ctx.folder,
    }
    .save(&settings)
    .with_context(|| format!("fold {}", ctx.scheme.name))
}

/// Runs a job and returns its `result` event.
pub fn run(job: &Job, stop: &StopFlag) -> Result<Event> {
    let p = prepare(job)?;
    match job.action {
        Action::Train => train(job, &p, stop),
        Action::Evaluate => evaluate(job, &p),
        Action::EvaluateEnsemble => evaluate_ensemble(job, &p),
    }
}

fn result_event(settings: &Settings, folds: Vec<FoldResult>) -> Event {
    let values: Vec<f64> = folds
        .iter()
        .filter_map(|f| {
            f.metrics
                .get(&settings.primary_metric)
                .and_then(|v| v.as_f64())
        })
        .collect();
    let (mean, sem) = mean_and_sem(&values);
    Event::Result {
        objective: Objective {
            metric: settings.primary_metric.clone(),
            mean,
            sem,
        },
        folds,
    }
}

fn train(job: &Job, p: &Prepared, stop: &StopFlag) -> Result<Event> {
    let mut folds = Vec::new();
    for (fold_index, scheme) in p.schemes.iter().enumerate() {
        let ctx = p.context(fold_index, &job.splits_to_eval, stop)?;
        std::fs::create_dir_all(&ctx.folder)
            .with_context(|| format!("cannot create {}", ctx.folder.display()))?;
        write_split_summary(&ctx.folder, scheme, &p.labels)?;
        let fold = train_fold(&ctx, job.resume).with_context(|| format!("fold {}", scheme.name))?;
        folds.push(fold);
        if let Some(n) = p.cfg.optional_usize("save_embeddings_for_projector")? {
            save_projector_embeddings(p, &ctx, scheme, n)
                .with_context(|| format!("fold {}: embeddings for the Projector", scheme.name))?;
        }
        save_visualisations(p, &ctx, &job.splits_to_eval)?;
        if stop.requested() {
            break;
        }
    }
    write_meta_logs(p, &job.splits_to_eval)?;
    Ok(result_event(&p.settings, folds))
}

/// `--evaluate`: accuracies of every fold's best checkpoint on `splits_to_eval`. A row is added to
/// a split's table unless that table already has the row of that epoch (the original's
/// `skip_eval_if_already_done`); the events always carry the freshly computed values.
fn evaluate(job: &Job, p: &Prepared) -> Result<Event> {
    let stop = StopFlag::default();
    let mut folds = Vec::new();
    let report_split = if job.splits_to_eval.iter().any(|s| s == "val") {
        "val"
    } else {
        job.splits_to_eval[0].as_str()
    };
    for fold_index in 0..p.schemes.len() {
        let ctx = p.context(fold_index, &job.splits_to_eval, &stop)?;
        let (epoch, trunk, embedder) = p.best_models(&ctx)?;
        let mut records = AccuracyRecords::new(ctx.csv_folder());
        let mut reported = Metrics::new();
        let mut all_metrics = evaluate_models(
            p.dataset.as_ref(),
            &ctx.scheme.splits,
            &job.splits_to_eval,
            &p.settings,
            &trunk,
            (!p.settings.eval.use_trunk_output).then_some(&embedder),
            p.device,
        )?;
        for split in &job.splits_to_eval {
            let metrics = all_metrics.remove(split).unwrap_or_default();
            p.settings.primary(&metrics)?;
            let json: Metrics = metrics
                .iter()
                .map(|(k, v)| (k.clone(), metric_value(*v)))
                .collect();
            let done = records
                .table(&p.settings, split)?
                .rows()
                .iter()
                .any(|r| row_value(r, "epoch") == Some(epoch as f64));
            if !done {
                let best = records.best(&p.settings)?;
                records.record(&p.settings, split, epoch, &metrics, best.as_ref())?;
            }
            if split == report_split {
                reported = json.clone();
            }
            emit(&Event::Evaluation {
                fold: ctx.scheme.name.clone(),
                epoch,
                split: split.clone(),
                metrics: json,
                is_best: true,
            });
        }
        folds.push(FoldResult {
            fold: ctx.scheme.name.clone(),
            best_epoch: epoch,
            metrics: reported,
        });
        save_visualisations(p, &ctx, &job.splits_to_eval)?;
    }
    write_meta_logs(p, &job.splits_to_eval)?;
    Ok(result_event(&p.settings, folds))
}

/// `ConcatenateEmbeddings` on `test`: every fold's best trunk + embedder, each fold's embedding
/// L2-normalised (when `eval_normalize_embeddings`) and concatenated; plus the untrained variant
/// (fresh trunks, identity embedders) when `check_untrained_accuracy`. Written to
/// `meta_logs/saved_csvs/meta_ConcatenateEmbeddings_<group>_TEST.csv`.
fn evaluate_ensemble(job: &Job, p: &Prepared) -> Result<Event> {
    let stop = StopFlag::default();
    if !job.splits_to_eval.iter().any(|s| s == "test") {
        return Err(config_error(
            "the ConcatenateEmbeddings ensemble evaluates the test split; add test to splits_to_eval",
        ));
    }
    let test_only = ["test".to_string()];
    p.schemes[0].split("test").ok_or_else(|| {
        config_error(format!(
            "split scheme {} has no test split (test_size 0 or old_approach), so there is nothing              for the ensemble to evaluate",
            p.schemes[0].name
        ))
    })?;
    let normalize = p.settings.eval.normalize_embeddings;
    let (mut trunks, mut embedders, mut fresh_trunks, mut identities) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut last_epoch = 0;
    for fold_index in 0..p.schemes.len() {
        let ctx = p.context(fold_index, &job.splits_to_eval, &stop)?;
        let (epoch, trunk, embedder) = p.best_models(&ctx)?;
        last_epoch = last_epoch.max(epoch);
        trunks.push(trunk);
        embedders.push(embedder);
        if p.settings.check_untrained_accuracy {
            let (fresh, _) = p.fresh_models(&ctx)?;
            identities.push(models::identity(fresh.output_dim, p.device));
            fresh_trunks.push(fresh);
        }
    }
    let mut variants = Vec::new();
    if !fresh_trunks.is_empty() {
        variants.push((
            0,
            -1,
            models::concatenate(fresh_trunks, identities, normalize),
        ));
    }
    variants.push((
        1,
        last_epoch,
        models::concatenate(trunks, embedders, normalize),
    ));
    let group = p.settings.accuracy_table("test");
    let folder = p.experiment.join("meta_logs").join("saved_csvs");
    let mut table = CsvTable::load(&folder, &format!("meta_ConcatenateEmbeddings_{group}"))?;
    let mut trained = Metrics::new();
    for (is_trained, epoch, (trunk, embedder)) in variants {
        let metrics = evaluate_models(
            p.dataset.as_ref(),
            &p.schemes[0].splits,
            &test_only,
            &p.settings,
            &trunk,
            Some(&embedder),
            p.device,
        )?
        .remove("test")
        .unwrap_or_default();
        let json: Metrics = metrics
            .iter()
            .map(|(k, v)| (k.clone(), metric_value(*v)))
            .collect();
        let mut row = vec![("is_trained".to_string(), is_trained.to_string())];
        row.extend(metrics.iter().map(|(k, v)| (k.clone(), cell(*v))));
        row.push(("num_folds".to_string(), p.schemes.len().to_string()));
        table.append(row)?;
        emit(&Event::Evaluation {
            fold: "ConcatenateEmbeddings".to_string(),
            epoch,
            split: "test".to_string(),
            metrics: json.clone(),
            is_best: is_trained == 1,
        });
        if is_trained == 1 {
            trained = json;
        }
    }
    Ok(result_event(
        &p.settings,
        vec![FoldResult {
            fold: "ConcatenateEmbeddings".to_string(),
            best_epoch: last_epoch,
            metrics: trained,
        }],
    ))
}

/// Meta logs (docs/experiments.md): per split, the mean and standard error over folds of the
/// best-epoch row (`is_trained` 1) and of the untrained-trunk row (epoch -1, `is_trained` 0),
/// appended to `meta_logs/saved_csvs/meta_<accuracy table>.csv`. Read back from the fold records,
/// so folds skipped by a resume count as well.
fn write_meta_logs(p: &Prepared, splits: &[String]) -> Result<()> {
    let folder = p.experiment.join("meta_logs").join("saved_csvs");
    for split in splits {
        let mut untrained = Vec::new();
        let mut trained = Vec::new();
        for scheme in &p.schemes {
            let mut records =
                AccuracyRecords::new(p.experiment.join(&scheme.name).join("saved_csvs"));
            let best = records.best(&p.settings)?;
            let rows = records.table(&p.settings, split)?.rows().to_vec();
            let find = |epoch: i64| {
                rows.iter()
                    .rev()
                    .find(|r| row_value(r, "epoch") == Some(epoch as f64))
                    .cloned()
            };
            if let Some(row) = find(-1) {
                untrained.push(row);
            }
            if let Some(row) = best.and_then(|b| find(b.epoch)) {
                trained.push(row);
            }
        }
        if trained.is_empty() && untrained.is_empty() {
            continue;
        }
        let mut table = CsvTable::load(
            &folder,
            &format!("meta_{}", p.settings.accuracy_table(split)),
        )?;
        for (is_trained, rows) in [(0, &untrained), (1, &trained)] {
            if rows.is_empty() {
                continue;
            }
            let mut columns: Vec<String> = Vec::new();
            for r in rows.iter() {
                for (k, _) in r {
                    if !["epoch", "best_epoch", "best_accuracy"].contains(&k.as_str())
                        && !columns.contains(k)
                    {
                        columns.push(k.clone());
                    }
                }
            }
            let mut out = vec![("is_trained".to_string(), is_trained.to_string())];
            for col in &columns {
                let values: Vec<f64> = rows
                    .iter()
                    .filter_map(|r| row_value(r, col))
                    .filter(|v| v.is_finite())
                    .collect();
                let (mean, sem) = mean_and_sem(&values);
                out.push((col.clone(), mean.map_or("nan".to_string(), cell)));
                out.push((format!("SEM_{col}"), sem.map_or("nan".to_string(), cell)));
            }
            out.push(("num_folds".to_string(), rows.len().to_string()));
            table.append(out)?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type Row = (usize, Vec<(i64, i64)>, Vec<(i64, i64)>, Vec<(i64, i64)>);

    /// The split schemes the runner builds for the embedded Synthetic dataset with the given
    /// classes, checked against the original tool's published rows (fold, test, train, val as inclusive ranges).
    fn check(first_label: i64, num_classes: usize, settings: serde_json::Value, rows: &[Row]) {
        let mut cfg = json!({
            "dataset": {"Synthetic": {"num_classes": num_classes, "samples_per_class": 2,
                                      "input_dim": 9, "first_label": first_label}},
        });
        for (k, v) in settings.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let config = Config(&cfg);
        let dataset = datasets::build(
            config.require("dataset").unwrap(),
            &datasets::BuildOptions::features_only(),
        )
        .unwrap();
        let labels = dataset.labels(0).to_vec();
        let schemes = split_schemes(&config, dataset.as_ref(), &labels).unwrap();
        let test0 = schemes[0].split("test").map(<[usize]>::to_vec);
        for scheme in &schemes {
            // The test set is the same in every fold.
            assert_eq!(scheme.split("test").map(<[usize]>::to_vec), test0);
        }
        for (fold, test, train, val) in rows {
            let s = &schemes[*fold];
            let ranges = |split: &str| s.split(split).map_or(vec![], |i| class_ranges(&labels, i));
            assert_eq!(&ranges("test"), test, "{} test", s.name);
            assert_eq!(&ranges("train"), train, "{} train", s.name);
            assert_eq!(&ranges("val"), val, "{} val", s.name);
        }
    }

    #[test]
    fn reference_split_tables_on_synthetic_data() {
        let old = json!({"special_split_scheme_name": "old_approach"});
        check(
            0,
            200,
            old.clone(),
            &[(0, vec![], vec![(0, 99)], vec![(100, 199)])],
        );
        check(1, 196, old, &[(0, vec![], vec![(1, 98)], vec![(99, 196)])]);
        let cv = |t: f64, s: f64, p: usize, n: usize| {
            json!({"test_size": t, "test_start_idx": s, "num_training_partitions": p,
                   "num_training_sets": n})
        };
        let cub_test = vec![(100, 199)];
        check(
            0,
            200,
            cv(0.5, 0.5, 4, 4),
            &[
                (0, cub_test.clone(), vec![(0, 74)], vec![(75, 99)]),
                (1, cub_test.clone(), vec![(25, 99)], vec![(0, 24)]),
                (2, cub_test.clone(), vec![(0, 24), (50, 99)], vec![(25, 49)]),
                (3, cub_test, vec![(0, 49), (75, 99)], vec![(50, 74)]),
            ],
        );
        let cars_test = vec![(99, 196)];
        check(
            1,
            196,
            cv(0.5, 0.5, 4, 4),
            &[
                (0, cars_test.clone(), vec![(1, 74)], vec![(75, 98)]),
                (1, cars_test.clone(), vec![(25, 98)], vec![(1, 24)]),
                (
                    2,
                    cars_test.clone(),
                    vec![(1, 25), (50, 98)],
                    vec![(26, 49)],
                ),
                (3, cars_test, vec![(1, 49), (74, 98)], vec![(50, 73)]),
            ],
        );
        check(
            0,
            200,
            cv(0.5, 0.25, 4, 4),
            &[(
                0,
                vec![(50, 149)],
                vec![(0, 49), (150, 174)],
                vec![(175, 199)],
            )],
        );
        let wrap = vec![(0, 39), (180, 199)];
        check(
            0,
            200,
            cv(0.3, 0.9, 5, 3),
            &[
                (0, wrap.clone(), vec![(40, 152)], vec![(153, 179)]),
                (1, wrap.clone(), vec![(40, 40), (68, 179)], vec![(41, 67)]),
                (2, wrap, vec![(40, 68), (96, 179)], vec![(69, 95)]),
            ],
        );
    }

    #[test]
    fn split_settings_that_cannot_work_are_refused() {
        let build = |settings: serde_json::Value| {
            let mut cfg = json!({"dataset": {"Synthetic": {"num_classes": 12, "samples_per_class": 2,
                                                           "input_dim": 9}}});
            for (k, v) in settings.as_object().unwrap() {
                cfg[k] = v.clone();
            }
            let config = Config(&cfg);
            let dataset = datasets::build(
                config.require("dataset").unwrap(),
                &datasets::BuildOptions::features_only(),
            )
            .unwrap();
            let labels = dataset.labels(0).to_vec();
            split_schemes(&config, dataset.as_ref(), &labels)
                .unwrap_err()
                .to_string()
        };
        // 12 classes, test 6, P=4: val gets int(12 * 0.25 * 0.5) = 1 class.
        let e = build(json!({"num_training_partitions": 4}));
        assert!(e.contains("val split would hold a single class"), "{e}");
        let e = build(json!({"num_training_partitions": 8}));
        assert!(e.contains("val split would be empty"), "{e}");
        let e = build(json!({"num_training_partitions": 3, "num_training_sets": 4}));
        assert!(
            e.contains("num_training_sets must be between 1 and num_training_partitions (3)"),
            "{e}"
        );
        let e = build(json!({"special_split_scheme_name": "predefined"}));
        assert!(e.contains("no predefined split"), "{e}");
        let e = build(json!({"special_split_scheme_name": "random"}));
        assert!(e.contains("old_approach or predefined"), "{e}");
    }

    #[test]
    fn device_cuda_without_a_gpu_is_a_clear_error() {
        if tch::Cuda::device_count() > 0 {
            eprintln!("SKIPPED: a GPU is present");
            return;
        }
        for name in ["cuda", "cuda:1"] {
            let e = format!("{:#}", parse_device(name).unwrap_err());
            assert!(e.contains("0 CUDA device(s) are available"), "{e}");
        }
        assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
    }
}
