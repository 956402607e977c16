//! Testers (PML `GlobalEmbeddingSpaceTester`, `WithSameParentLabelTester`): embed the evaluated
//! splits, choose each split's reference set, and compute accuracies with `crate::accuracy`.

use crate::accuracy::knn::{Backend, Blocking};
use crate::accuracy::metrics::Averaging;
use crate::accuracy::{get_accuracy, AccuracySettings, KSetting, ALL_PML_METRICS};
use crate::datasets::{with_batches, BatchRequest, Dataset};
use crate::distances::normalize;
use crate::errors::{config_error, data_error};
use crate::models::Model;
use crate::spec::Spec;
use anyhow::Result;
use metricbench_protocol::protocol::current_metric_name;
use serde_json::Value;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Which reference set each evaluated split is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceSet {
    /// The split itself (queries included).
    CompareToSelf,
    /// Every evaluated split concatenated, the query split first (queries included).
    SetsCombined,
    /// The `train` split (queries included only when the query split is `train`).
    TrainingSet,
}

impl ReferenceSet {
    pub fn name(self) -> &'static str {
        match self {
            ReferenceSet::CompareToSelf => "compared_to_self",
            ReferenceSet::SetsCombined => "compared_to_sets_combined",
            ReferenceSet::TrainingSet => "compared_to_training_set",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TesterKind {
    Global,
    WithSameParentLabel,
}

/// Evaluation settings from the `eval_*` config keys.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub batch_size: usize,
    /// Threads that prepare evaluation batches ahead (`eval_dataloader_num_workers`).
    pub num_workers: usize,
    pub normalize_embeddings: bool,
    pub use_trunk_output: bool,
    pub reference_set: ReferenceSet,
    /// Project to this many dimensions (standardise, then PCA) before normalising.
    pub pca: Option<usize>,
    pub tester: TesterKind,
    pub accuracy: AccuracySettings,
}

fn usize_list(cfg: &crate::spec::Config, key: &str) -> Result<Vec<usize>> {
    match cfg.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| config_error(format!("`{key}` must be a list of integers")))
            })
            .collect(),
        Some(v) => v
            .as_u64()
            .map(|x| vec![x as usize])
            .ok_or_else(|| config_error(format!("`{key}` must be a list of integers"))),
    }
}

/// The tester: `testing_method` (the original's key, in config_general), or `eval_tester`.
fn tester_kind(cfg: &crate::spec::Config) -> Result<TesterKind> {
    let testing_method = cfg.str("testing_method", "")?;
    let eval_tester = cfg.str("eval_tester", "")?;
    let (key, name) = match (testing_method, eval_tester) {
        ("", "") => return Ok(TesterKind::Global),
        (t, "") => ("testing_method", t),
        ("", e) => ("eval_tester", e),
        (t, e) if t == e => ("testing_method", t),
        (t, e) => {
            return Err(config_error(format!(
                "testing_method `{t}` and eval_tester `{e}` disagree; they name the same \
                 setting (testing_method, in config_general, is the original's name): set \
                 testing_method only"
            )))
        }
    };
    match name {
        "GlobalEmbeddingSpaceTester" => Ok(TesterKind::Global),
        "WithSameParentLabelTester" => Ok(TesterKind::WithSameParentLabel),
        other => Err(config_error(format!(
            "{key} `{other}` is not GlobalEmbeddingSpaceTester or WithSameParentLabelTester"
        ))),
    }
}

/// The original's `eval_accuracy_calculator: {AccuracyCalculator: {include, exclude, k,
/// avg_of_avgs}}` (PML's AccuracyCalculator and its kwargs): which metrics, and their options.
fn apply_accuracy_calculator(accuracy: &mut AccuracySettings, value: &Value) -> Result<()> {
    let mut spec = Spec::parse("eval_accuracy_calculator", value)?;
    if spec.class != "AccuracyCalculator" {
        return Err(crate::spec::unknown_class(
            "eval_accuracy_calculator",
            &spec.class,
            &["AccuracyCalculator"],
        ));
    }
    let names = |spec: &mut Spec, kwarg: &'static str| -> Result<Vec<String>> {
        let path = spec.kwarg_path(kwarg);
        match spec.value(kwarg, "list of metric names", "[]") {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(current_metric_name).ok_or_else(|| {
                        config_error(format!("`{path}` must be a list of metric names"))
                    })
                })
                .collect(),
            Some(_) => Err(config_error(format!(
                "`{path}` must be a list of metric names"
            ))),
        }
    };
    let include = names(&mut spec, "include")?;
    let exclude = names(&mut spec, "exclude")?;
    for m in include.iter().chain(&exclude) {
        if !ALL_PML_METRICS.contains(&m.as_str()) {
            return Err(config_error(format!(
                "`eval_accuracy_calculator/AccuracyCalculator` names unknown metric `{m}`; \
                 available: {}",
                ALL_PML_METRICS.join(", ")
            )));
        }
    }
    if !include.is_empty() {
        accuracy.metrics = include;
    }
    accuracy.metrics.retain(|m| !exclude.contains(m));
    if let Some(k) = spec.value("k", "max_bin_count | all | integer", "null") {
        accuracy.k = match &k {
            Value::Number(n) => KSetting::parse(&n.to_string())?,
            Value::String(s) => KSetting::parse(s)?,
            _ => {
                return Err(config_error(format!(
                    "`{}` must be max_bin_count, all, or a positive integer",
                    spec.kwarg_path("k")
                )))
            }
        };
    }
    if spec.bool("avg_of_avgs", false)? {
        accuracy.averaging = Averaging::Classes;
    }
    spec.finish()
}

impl EvalSettings {
    pub fn from_config(cfg: &crate::spec::Config) -> Result<Self> {
        let reference_set = match cfg.str("eval_reference_set", "compared_to_self")? {
            "compared_to_self" => ReferenceSet::CompareToSelf,
            "compared_to_sets_combined" => ReferenceSet::SetsCombined,
            "compared_to_training_set" => ReferenceSet::TrainingSet,
            other => {
                return Err(config_error(format!(
                    "eval_reference_set `{other}` is not one of compared_to_self, \
                     compared_to_sets_combined, compared_to_training_set"
                )))
            }
        };
        let tester = tester_kind(cfg)?;
        let batch_size = cfg.usize("eval_batch_size", Some(256))?;
        if batch_size == 0 {
            return Err(config_error("eval_batch_size must be positive"));
        }
        let pca = cfg.optional_usize("eval_pca")?;
        if pca == Some(0) {
            return Err(config_error(
                "eval_pca must be positive (or null for no PCA)",
            ));
        }
        let k = match cfg.get("eval_k") {
            None => KSetting::MaxBinCount,
            Some(Value::Number(n)) => KSetting::parse(&n.to_string())?,
            Some(Value::String(s)) => KSetting::parse(s)?,
            Some(_) => {
                return Err(config_error(
                    "eval_k must be max_bin_count, all, or a positive integer",
                ))
            }
        };
        let backend_name = cfg.str("eval_knn_backend", "auto")?;
        let backend = Backend::parse(backend_name).ok_or_else(|| {
            config_error(format!(
                "eval_knn_backend `{backend_name}` is not one of auto, cpu, device"
            ))
        })?;
        let mut accuracy = AccuracySettings {
            k,
            blocking: Blocking {
                backend,
                ..Blocking::default()
            },
            averaging: if cfg.bool("eval_avg_of_avgs", false)? {
                Averaging::Classes
            } else {
                Averaging::Queries
            },
            oml_ks: usize_list(cfg, "eval_oml_k")?,
            ..AccuracySettings::default()
        };
        if let Some(spec) = cfg.get("eval_accuracy_calculator") {
            if cfg.get("eval_k").is_some() || cfg.get("eval_avg_of_avgs").is_some() {
                return Err(config_error(
                    "give eval_k / eval_avg_of_avgs or eval_accuracy_calculator's k / \
                     avg_of_avgs, not both",
                ));
            }
            apply_accuracy_calculator(&mut accuracy, spec)?;
        }
        accuracy.validate()?;
        Ok(EvalSettings {
            batch_size,
            num_workers: cfg.usize("eval_dataloader_num_workers", Some(2))?,
            normalize_embeddings: cfg.bool("eval_normalize_embeddings", true)?,
            use_trunk_output: cfg.bool("eval_use_trunk_output", false)?,
            reference_set,
            pca,
            tester,
            accuracy,
        })
    }

    /// Table-name fragment, as the original: `normalized_compared_to_self`.
    pub fn table_tag(&self) -> String {
        let norm = if self.normalize_embeddings {
            "normalized"
        } else {
            "unnormalized"
        };
        let pca = self.pca.map_or(String::new(), |n| format!("_pca{n}"));
        format!("{norm}{pca}_{}", self.reference_set.name())
    }

    /// The tester's class name, as it appears in the original's table names.
    pub fn tester_name(&self) -> &'static str {
        match self.tester {
            TesterKind::Global => "GlobalEmbeddingSpaceTester",
            TesterKind::WithSameParentLabel => "WithSameParentLabelTester",
        }
    }
}

/// PML's post-processing: optional PCA (per-dimension standardisation with the unbiased std, then
/// projection on the top principal components, as `faiss.PCAMatrix`), then optional L2
/// normalisation. A constant dimension (std 0) is left unscaled instead of becoming NaN.
pub fn postprocess(emb: &Tensor, pca: Option<usize>, normalize_rows: bool) -> Result<Tensor> {
    let mut e = emb.to_kind(Kind::Float);
    if let Some(dims) = pca {
        let (n, d) = (e.size()[0], e.size()[1]);
        if dims as i64 > d {
            return Err(config_error(format!(
                "eval_pca {dims} exceeds the embedding size {d}"
            )));
        }
        if n < 2 {
            return Err(data_error("PCA needs at least two embeddings"));
        }
        let x = e.to_kind(Kind::Double);
        let mean = x.mean_dim(&[0i64][..], true, Kind::Double);
        let std = x.std_dim(&[0i64][..], true, true);
        let std = std.where_scalarother(&std.gt(0.0), 1.0);
        let z = (x - mean) / std;
        let cov = z.transpose(0, 1).matmul(&z) / (n - 1) as f64;
        // eigh returns ascending eigenvalues; the last `dims` columns are the top components.
        let (_, vecs) = cov.linalg_eigh("L");
        let top = vecs.narrow(1, d - dims as i64, dims as i64).flip([1]);
        e = z.matmul(&top).to_kind(Kind::Float);
    }
    Ok(if normalize_rows { normalize(&e) } else { e })
}

/// Embeddings of the given samples, computed without gradients in evaluation batches, then
/// post-processed (PCA, normalisation).
pub fn embeddings(
    dataset: &dyn Dataset,
    indices: &[usize],
    trunk: &Model,
    embedder: Option<&Model>,
    settings: &EvalSettings,
    device: Device,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let keep_on_device = settings.accuracy.blocking.backend.searches_on(device);
    // Evaluation mode (BatchNorm running statistics, no dropout), restored afterwards so training
    // continues in the mode it was in.
    let _trunk_mode = EvalMode::enter(trunk);
    let _embedder_mode = embedder.map(EvalMode::enter);
    let requests: Vec<BatchRequest> = indices
        .chunks(settings.batch_size)
        .map(|chunk| BatchRequest {
            indices: chunk.to_vec(),
            draw: 0,
        })
        .collect();
    let parts = with_batches(dataset, &requests, false, settings.num_workers, |batches| {
        let mut parts = Vec::new();
        while let Some(x) = batches.next_batch() {
            let x = crate::device::upload(x?, device);
            let mut e = trunk.forward(&x);
            if let Some(embedder) = embedder {
                e = embedder.forward(&e);
            }
            // Kept on the device when the kNN searches there (`eval_knn_backend`).
            parts.push(if keep_on_device {
                e
            } else {
                e.to_device(Device::Cpu)
            });
        }
        Ok(parts)
    })?;
    if parts.is_empty() {
        return Err(data_error("cannot evaluate an empty split"));
    }
    postprocess(
        &Tensor::cat(&parts, 0),
        settings.pca,
        settings.normalize_embeddings,
    )
}

/// A model switched to evaluation mode until this guard drops.
struct EvalMode<'a> {
    model: &'a Model,
    was_training: bool,
}

impl<'a> EvalMode<'a> {
    fn enter(model: &'a Model) -> EvalMode<'a> {
        EvalMode {
            model,
            was_training: model.set_train(false),
        }
    }
}

impl Drop for EvalMode<'_> {
    fn drop(&mut self) {
        self.model.set_train(self.was_training);
    }
}

/// One split's embeddings and labels at every hierarchy level.
pub struct EmbeddedSplit {
    pub embeddings: Tensor,
    /// `labels[level][i]`.
    pub labels: Vec<Vec<i64>>,
}

/// The splits whose samples make up the reference set of `split` under `reference_set`, in
/// order, and whether the queries are the reference's first rows.
pub fn reference_splits<'s>(
    split: &'s str,
    splits_to_eval: &'s [String],
    reference_set: ReferenceSet,
) -> (Vec<&'s str>, bool) {
    match reference_set {
        ReferenceSet::CompareToSelf => (vec![split], true),
        ReferenceSet::SetsCombined => {
            // The query split first: PML requires the queries to be the reference's first rows.
            let mut names = vec![split];
            names.extend(
                splits_to_eval
                    .iter()
                    .map(String::as_str)
                    .filter(|n| *n != split),
            );
            (names, true)
        }
        ReferenceSet::TrainingSet => (vec!["train"], split == "train"),
    }
}

/// The query and reference sets of `split` under `reference_set`: reference rows, labels per
/// level, and whether the queries are the reference's first rows.
fn reference_for(
    split: &str,
    embedded: &BTreeMap<String, EmbeddedSplit>,
    splits_to_eval: &[String],
    reference_set: ReferenceSet,
) -> Result<(Tensor, Vec<Vec<i64>>, bool)> {
    let query = &embedded[split];
    let (names, riq) = reference_splits(split, splits_to_eval, reference_set);
    if names.len() == 1 && names[0] == split {
        return Ok((query.embeddings.shallow_clone(), query.labels.clone(), riq));
    }
    let mut parts = Vec::new();
    for n in &names {
        parts.push(embedded.get(*n).ok_or_else(|| {
            config_error(format!(
                "eval_reference_set {} needs a `{n}` split",
                reference_set.name()
            ))
        })?);
    }
    let levels = query.labels.len();
    let labels = (0..levels)
        .map(|l| {
            parts
                .iter()
                .flat_map(|p| p.labels[l].iter().copied())
                .collect()
        })
        .collect();
    let embeddings: Vec<&Tensor> = parts.iter().map(|p| &p.embeddings).collect();
    Ok((Tensor::cat(&embeddings, 0), labels, riq))
}

/// Accuracies of `query` against `reference` with the configured tester, at `level`.
fn tester_accuracies(
    query: &EmbeddedSplit,
    reference: (&Tensor, &[Vec<i64>]),
    riq: bool,
    level: usize,
    settings: &EvalSettings,
) -> Result<BTreeMap<String, f64>> {
    let (ref_emb, ref_labels) = reference;
    match settings.tester {
        TesterKind::Global => Ok(get_accuracy(
            &query.embeddings,
            &query.labels[level],
            Some((ref_emb, &ref_labels[level])),
            riq,
            &settings.accuracy,
        )?
        .metrics),
        TesterKind::WithSameParentLabel => {
            let parent = level + 1;
            if parent >= query.labels.len() {
                return Err(config_error(format!(
                    "WithSameParentLabelTester needs a parent label level above \
                     label_hierarchy_level {level}, but the dataset has {} level(s) \
                     (Synthetic: set classes_per_super_class)",
                    query.labels.len()
                )));
            }
            let mut parents = query.labels[parent].clone();
            parents.sort_unstable();
            parents.dedup();
            let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            for p in parents {
                let pick = |labels: &[i64]| -> Vec<i64> {
                    (0..labels.len() as i64)
                        .filter(|&i| labels[i as usize] == p)
                        .collect()
                };
                let qi = pick(&query.labels[parent]);
                let ri = pick(&ref_labels[parent]);
                if ri.is_empty() {
                    continue;
                }
                let take = |labels: &[i64], idx: &[i64]| -> Vec<i64> {
                    idx.iter().map(|&i| labels[i as usize]).collect()
                };
                // Filtering keeps the order, so with riq the queries stay the reference's first
                // rows.
                let rows = |t: &Tensor, idx: &[i64]| {
                    t.index_select(0, &Tensor::from_slice(idx).to_device(t.device()))
                };
                let acc = get_accuracy(
                    &rows(&query.embeddings, &qi),
                    &take(&query.labels[level], &qi),
                    Some((&rows(ref_emb, &ri), &take(&ref_labels[level], &ri))),
                    riq,
                    &settings.accuracy,
                )?;
                for (m, v) in acc.metrics {
                    // A parent whose queries are all lone has NaN kNN metrics; PML's np.mean
                    // would turn the whole average into NaN, we leave that parent out.
                    let e = sums.entry(m).or_insert((0.0, 0));
                    if v.is_finite() {
                        e.0 += v;
                        e.1 += 1;
                    }
                }
            }
            Ok(sums
                .into_iter()
                .map(|(m, (s, c))| (m, if c == 0 { f64::NAN } else { s / c as f64 }))
                .collect())
        }
    }
}

/// The tester: embeds every split that `splits_to_eval` and the reference mode need (each once),
/// then returns the metrics of each evaluated split. `splits` maps split names to dataset indices.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_splits(
    dataset: &dyn Dataset,
    splits: &[(String, Vec<usize>)],
    splits_to_eval: &[String],
    label_level: usize,
    trunk: &Model,
    embedder: Option<&Model>,
    settings: &EvalSettings,
    device: Device,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut needed: Vec<&str> = splits_to_eval.iter().map(String::as_str).collect();
    if settings.reference_set == ReferenceSet::TrainingSet && !needed.contains(&"train") {
        needed.push("train");
    }
    let mut embedded = BTreeMap::new();
    for name in needed {
        let indices = splits
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, idx)| idx)
            .ok_or_else(|| config_error(format!("there is no split named `{name}`")))?;
        let labels = (0..dataset.label_levels())
            .map(|l| {
                let all = dataset.labels(l);
                indices.iter().map(|&i| all[i]).collect()
            })
            .collect();
        let e = embeddings(dataset, indices, trunk, embedder, settings, device)?;
        embedded.insert(
            name.to_string(),
            EmbeddedSplit {
                embeddings: e,
                labels,
            },
        );
    }
    let mut out = BTreeMap::new();
    for split in splits_to_eval {
        let (ref_emb, ref_labels, riq) =
            reference_for(split, &embedded, splits_to_eval, settings.reference_set)?;
        let metrics = tester_accuracies(
            &embedded[split.as_str()],
            (&ref_emb, &ref_labels),
            riq,
            label_level,
            settings,
        )?;
        out.insert(split.clone(), metrics);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split(e: &[f32], labels: &[i64], parents: &[i64]) -> EmbeddedSplit {
        EmbeddedSplit {
            embeddings: Tensor::from_slice(e).view([e.len() as i64, 1]),
            labels: vec![labels.to_vec(), parents.to_vec()],
        }
    }

    fn settings(cfg: Value) -> EvalSettings {
        EvalSettings::from_config(&crate::spec::Config(&cfg)).unwrap()
    }

    #[test]
    fn reference_modes() {
        let mut embedded = BTreeMap::new();
        embedded.insert(
            "train".to_string(),
            split(&[0., 10., 0.1, 10.1], &[0, 1, 0, 1], &[0; 4]),
        );
        embedded.insert("val".to_string(), split(&[0.05, 9.9], &[0, 1], &[0; 2]));
        let evals = ["val".to_string(), "train".to_string()];
        // compared_to_self: the val queries are lone (one item per class).
        let s = settings(json!({"eval_reference_set": "compared_to_self"}));
        let (r, l, riq) = reference_for("val", &embedded, &evals, s.reference_set).unwrap();
        let m = tester_accuracies(&embedded["val"], (&r, &l), riq, 0, &s).unwrap();
        assert!(m["precision_at_1"].is_nan());
        // compared_to_training_set: val against train, nothing to remove.
        let s = settings(json!({"eval_reference_set": "compared_to_training_set"}));
        let (r, l, riq) = reference_for("val", &embedded, &evals, s.reference_set).unwrap();
        assert!(!riq);
        assert_eq!(r.size()[0], 4);
        let m = tester_accuracies(&embedded["val"], (&r, &l), riq, 0, &s).unwrap();
        assert_eq!(m["precision_at_1"], 1.0);
        assert_eq!(m["mean_average_precision_at_r"], 1.0);
        // compared_to_sets_combined: val first, then train.
        let s = settings(json!({"eval_reference_set": "compared_to_sets_combined"}));
        let (r, l, riq) = reference_for("val", &embedded, &evals, s.reference_set).unwrap();
        assert!(riq);
        assert_eq!(l[0], vec![0, 1, 0, 1, 0, 1]);
        assert_eq!(r.size()[0], 6);
        let m = tester_accuracies(&embedded["val"], (&r, &l), riq, 0, &s).unwrap();
        assert_eq!(m["r_precision"], 1.0);
    }

    #[test]
    fn same_parent_tester_averages_over_parents() {
        // Parent 0 holds classes 0,1 (well separated); parent 1 holds classes 2,3 interleaved.
        let q = split(
            &[0., 0.1, 5., 5.1, 20., 21., 22., 23.],
            &[0, 0, 1, 1, 2, 3, 2, 3],
            &[0, 0, 0, 0, 1, 1, 1, 1],
        );
        let s = settings(json!({"eval_tester": "WithSameParentLabelTester"}));
        let m = tester_accuracies(&q, (&q.embeddings, &q.labels), true, 0, &s).unwrap();
        // Parent 0: P@1 = 1; parent 1: every nearest neighbour has the other class -> 0.
        assert!((m["precision_at_1"] - 0.5).abs() < 1e-12, "{m:?}");
        // Without a parent level it is a configuration error.
        let flat = EmbeddedSplit {
            embeddings: q.embeddings.shallow_clone(),
            labels: vec![q.labels[0].clone()],
        };
        assert!(tester_accuracies(&flat, (&flat.embeddings, &flat.labels), true, 0, &s).is_err());
    }

    /// The whole tester path on the Synthetic dataset with a real (untrained) model: each
    /// reference mode must equal `get_accuracy` on the embeddings the tester computes.
    #[test]
    fn evaluate_splits_wires_reference_modes_and_testers() {
        let dataset = crate::datasets::build(
            &json!({"Synthetic": {
            "num_classes": 8, "samples_per_class": 10, "input_dim": 16, "seed": 3,
            "classes_per_super_class": 4}}),
            &crate::datasets::BuildOptions::features_only(),
        )
        .unwrap();
        let dataset = dataset.as_ref();
        let trunk = crate::models::build_trunk(
            &json!({"MLP": {"layer_sizes": [12]}}),
            &crate::models::TrunkOptions::features(16, Device::Cpu),
        )
        .unwrap();
        let splits = vec![
            (
                "train".to_string(),
                (0..80).step_by(2).collect::<Vec<usize>>(),
            ),
            (
                "val".to_string(),
                (1..80).step_by(2).collect::<Vec<usize>>(),
            ),
        ];
        let evals = vec!["val".to_string()];
        let run = |cfg: Value| {
            let s = settings(cfg);
            let m = evaluate_splits(dataset, &splits, &evals, 0, &trunk, None, &s, Device::Cpu)
                .unwrap();
            (s, m["val"].clone())
        };
        let embed = |name: &str, s: &EvalSettings| {
            let idx = &splits.iter().find(|(n, _)| n == name).unwrap().1;
            let labels: Vec<i64> = idx.iter().map(|&i| dataset.labels(0)[i]).collect();
            (
                embeddings(dataset, idx, &trunk, None, s, Device::Cpu).unwrap(),
                labels,
            )
        };
        let (s, got) = run(json!({"eval_reference_set": "compared_to_training_set"}));
        let (ve, vl) = embed("val", &s);
        let (te, tl) = embed("train", &s);
        let want = get_accuracy(&ve, &vl, Some((&te, &tl)), false, &s.accuracy).unwrap();
        assert_eq!(got, want.metrics);
        assert!(got["precision_at_1"].is_finite());

        let (s, got) = run(json!({"eval_reference_set": "compared_to_self"}));
        let want = get_accuracy(&ve, &vl, None, true, &s.accuracy).unwrap();
        assert_eq!(got, want.metrics);

        // WithSameParentLabelTester: the mean over the two parent labels (classes 0-3, 4-7).
        let (s, got) = run(json!({"eval_tester": "WithSameParentLabelTester", "eval_k": 3}));
        let parents: Vec<i64> = splits[1].1.iter().map(|&i| dataset.labels(1)[i]).collect();
        let mut sum = 0.0;
        for p in [0i64, 1] {
            let rows: Vec<i64> = (0..vl.len() as i64)
                .filter(|&i| parents[i as usize] == p)
                .collect();
            let e = ve.index_select(0, &Tensor::from_slice(&rows));
            let l: Vec<i64> = rows.iter().map(|&i| vl[i as usize]).collect();
            sum += get_accuracy(&e, &l, None, true, &s.accuracy)
                .unwrap()
                .metrics["mean_average_precision_at_r"];
        }
        assert!((got["mean_average_precision_at_r"] - sum / 2.0).abs() < 1e-12);
        assert_eq!(s.tester_name(), "WithSameParentLabelTester");
    }

    fn error(cfg: Value) -> String {
        format!(
            "{:#}",
            EvalSettings::from_config(&crate::spec::Config(&cfg)).unwrap_err()
        )
    }

    #[test]
    fn the_originals_testing_method_selects_the_tester() {
        assert_eq!(settings(json!({})).tester, TesterKind::Global);
        let s = settings(json!({"testing_method": "WithSameParentLabelTester"}));
        assert_eq!(s.tester, TesterKind::WithSameParentLabel);
        let s = settings(json!({
            "testing_method": "GlobalEmbeddingSpaceTester",
            "eval_tester": "GlobalEmbeddingSpaceTester"}));
        assert_eq!(s.tester, TesterKind::Global);
        let e = error(json!({
            "testing_method": "GlobalEmbeddingSpaceTester",
            "eval_tester": "WithSameParentLabelTester"}));
        assert!(e.contains("disagree"), "{e}");
        let e = error(json!({"testing_method": "GlobalTester"}));
        assert!(e.contains("testing_method `GlobalTester`"), "{e}");
    }

    #[test]
    fn the_originals_accuracy_calculator_chooses_metrics_and_options() {
        // The original's default: every metric, k = the largest class, per-query means.
        let s = settings(json!({"eval_accuracy_calculator": {"AccuracyCalculator": null}}));
        assert_eq!(s.accuracy.metrics, AccuracySettings::default().metrics);
        assert!(matches!(s.accuracy.k, KSetting::MaxBinCount));
        let s = settings(json!({"eval_accuracy_calculator": {"AccuracyCalculator": {
            "include": ["precision_at_1", "NMI", "mean_average_precision_at_r"],
            "exclude": ["NMI"], "k": 5, "avg_of_avgs": true}}}));
        assert_eq!(
            s.accuracy.metrics,
            ["precision_at_1", "mean_average_precision_at_r"]
        );
        assert!(matches!(s.accuracy.k, KSetting::Fixed(5)));
        assert_eq!(s.accuracy.averaging, Averaging::Classes);
        // Configs from before PML's 2020 renaming call MAP@R `mean_average_r_precision`.
        let s = settings(json!({"eval_accuracy_calculator": {"AccuracyCalculator": {
            "include": ["mean_average_r_precision", "r_precision"]}}}));
        assert_eq!(
            s.accuracy.metrics,
            ["mean_average_precision_at_r", "r_precision"]
        );
        let s = settings(json!({"eval_accuracy_calculator": {"AccuracyCalculator": {
            "exclude": ["NMI", "AMI"]}}}));
        assert!(!s.accuracy.metrics.iter().any(|m| m.ends_with("MI")));
        for (cfg, expected) in [
            (
                json!({"AccuracyCalculator": {"include": ["recall"]}}),
                "unknown metric `recall`",
            ),
            (
                json!({"AccuracyCalculator": {"knn": 3}}),
                "has no kwarg `knn`",
            ),
            (json!({"AccuracyCalculator": {"k": 0}}), "positive integer"),
            (json!({"Calculator": null}), "unknown class `Calculator`"),
        ] {
            let e = error(json!({"eval_accuracy_calculator": cfg}));
            assert!(e.contains(expected), "{e}");
        }
        let e = error(json!({"eval_k": 3,
            "eval_accuracy_calculator": {"AccuracyCalculator": {"k": 5}}}));
        assert!(e.contains("not both"), "{e}");
    }

    /// `eval_knn_backend: device` (here on CPU tensors) through the whole tester gives the
    /// metrics of the CPU path, for each tester and reference mode.
    #[test]
    fn knn_backends_give_the_same_tester_metrics() {
        let dataset = crate::datasets::build(
            &json!({"Synthetic": {
            "num_classes": 12, "samples_per_class": 15, "input_dim": 16, "seed": 8,
            "classes_per_super_class": 3}}),
            &crate::datasets::BuildOptions::features_only(),
        )
        .unwrap();
        let trunk = crate::models::build_trunk(
            &json!({"MLP": {"layer_sizes": [10]}}),
            &crate::models::TrunkOptions::features(16, Device::Cpu),
        )
        .unwrap();
        let splits = vec![
            ("train".to_string(), (0..180).step_by(3).collect::<Vec<_>>()),
            ("val".to_string(), (1..180).step_by(3).collect::<Vec<_>>()),
            ("test".to_string(), (2..180).step_by(3).collect::<Vec<_>>()),
        ];
        let evals = vec!["val".to_string(), "test".to_string()];
        for (reference, tester) in [
            ("compared_to_self", "GlobalEmbeddingSpaceTester"),
            ("compared_to_sets_combined", "GlobalEmbeddingSpaceTester"),
            ("compared_to_training_set", "WithSameParentLabelTester"),
        ] {
            let run = |backend: &str| {
                let s = settings(
                    json!({"eval_reference_set": reference, "eval_tester": tester,
                    "eval_knn_backend": backend, "eval_oml_k": [1, 3]}),
                );
                evaluate_splits(
                    dataset.as_ref(),
                    &splits,
                    &evals,
                    0,
                    &trunk,
                    None,
                    &s,
                    Device::Cpu,
                )
                .unwrap()
            };
            let cpu = run("cpu");
            assert_eq!(cpu, run("device"), "{reference} {tester}");
            assert_eq!(cpu, run("auto"), "{reference} {tester}");
            assert!(cpu["test"]["precision_at_1"].is_finite());
        }
        let bad =
            EvalSettings::from_config(&crate::spec::Config(&json!({"eval_knn_backend": "gpu"})));
        let message = format!("{:#}", bad.unwrap_err());
        assert!(message.contains("eval_knn_backend `gpu`"), "{message}");
    }

    #[test]
    fn pca_keeps_the_dominant_directions() {
        tch::manual_seed(5);
        // Columns [a, a + noise, b, b + noise]: after standardisation the correlation matrix has
        // eigenvalues about 2, 2, 0, 0, so projecting on 2 components keeps nearly all of the total
        // variance of 4.
        let a = Tensor::randn([60, 1], (Kind::Float, Device::Cpu)) * 10.0;
        let b = Tensor::randn([60, 1], (Kind::Float, Device::Cpu)) * 3.0;
        let noise = |_: ()| Tensor::randn([60, 1], (Kind::Float, Device::Cpu)) * 0.01;
        let x = Tensor::cat(&[&a, &(&a + noise(())), &b, &(&b + noise(()))], 1);
        let p = postprocess(&x, Some(2), false).unwrap();
        assert_eq!(p.size(), vec![60, 2]);
        let var = f64::try_from(p.var_dim(&[0i64][..], true, false).sum(Kind::Double)).unwrap();
        assert!(var > 3.99 && var < 4.0001, "{var}");
        // One component keeps only about half.
        let p1 = postprocess(&x, Some(1), false).unwrap();
        let var1 = f64::try_from(p1.var_dim(&[0i64][..], true, false).sum(Kind::Double)).unwrap();
        assert!(var1 < 2.6, "{var1}");
        assert!(postprocess(&x, Some(5), false).is_err());
        let n = postprocess(&x, None, true).unwrap();
        let norms = n.norm_scalaropt_dim(2, [1], false);
        assert!(f64::try_from((norms - 1.0).abs().max()).unwrap() < 1e-5);
    }
}
