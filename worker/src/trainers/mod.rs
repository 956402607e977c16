//! Training methods (PML trainers). Every method shares one fold's loop (`crate::fold`), which
//! calls the training step ([`step`]) once per batch; a method only decides which models exist,
//! which losses one batch produces, and which models learn in a given epoch.

mod cascaded_embeddings;
mod deep_adversarial;
mod metric_loss_only;
pub mod step;
mod train_with_classifier;

use crate::errors::config_error;
use crate::losses::pipeline::LossPipeline;
use crate::losses::BuildContext;
use crate::models::{self, Model};
use crate::optimizers::{trainable, Optimizer};
use crate::precision::{LossScaler, Precision};
use crate::reducers::Stats;
use crate::spec::{unknown_class, Config};
use crate::tuples::IndicesTuple;
use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use tch::{Device, Tensor};

pub use deep_adversarial::DamlSettings;

pub const TRAINING_METHODS: [&str; 4] = [
    "MetricLossOnly",
    "TrainWithClassifier",
    "CascadedEmbeddings",
    "DeepAdversarialMetricLearning",
];

/// The training method of a job, with its own settings.
pub enum Method {
    MetricLossOnly,
    /// Label value -> class index 0..C-1 of the training split (a lookup tensor on the device).
    TrainWithClassifier {
        class_index: Tensor,
    },
    CascadedEmbeddings,
    DeepAdversarialMetricLearning(DamlSettings),
}

/// Builds one entry of `loss_funcs` (with the losses module's builder). The only place losses are
/// constructed for training: the fold's [`LossPipeline`] is built here, with its miners, and every
/// loss's parameters live in the loss's own VarStore (optimised by `<loss>_optimizer`).
/// `extra_weights` are losses the training method computes itself (DAML's generator losses), whose
/// `loss_weights` entries are the method's business, not the pipeline's.
pub fn build_loss(
    cfg: &Config,
    ctx: &BuildContext,
    extra_weights: &[&str],
) -> Result<LossPipeline> {
    let has_extra = cfg
        .get("loss_weights")
        .and_then(|w| w.as_object())
        .is_some_and(|w| extra_weights.iter().any(|k| w.contains_key(*k)));
    if !has_extra {
        return LossPipeline::from_config(cfg, ctx);
    }
    let mut value = cfg.0.clone();
    if let Some(w) = value
        .get_mut("loss_weights")
        .and_then(|w| w.as_object_mut())
    {
        for k in extra_weights {
            w.remove(*k);
        }
    }
    LossPipeline::from_config(&Config(&value), ctx)
}

/// Everything a fold trains: models, losses, optimizers.
pub struct Components {
    /// `trunk`, `embedder`, then method-specific models (`classifier`, `generator`).
    pub models: Vec<Model>,
    /// `loss_funcs` with their miners; parameters of the losses (proxies, learnable margins...)
    /// sit in each loss's VarStore, optimised by `<loss>_optimizer` and checkpointed as `<loss>_*`.
    pub pipeline: LossPipeline,
    /// `loss_weights` of every loss the method produces (1 when not configured).
    pub weights: BTreeMap<String, f64>,
    pub optimizers: Vec<Optimizer>,
    /// Statistics of the losses and miners computed since the last [`Components::take_stats`].
    stats: RefCell<BTreeMap<String, Stats>>,
    pub method: Method,
    /// `mixed_precision` of the forward pass and losses.
    pub precision: Precision,
    /// Loss scaling for fp16.
    scaler: LossScaler,
}

impl Components {
    pub fn model(&self, name: &str) -> &Model {
        self.models
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("model `{name}` is built for this method"))
    }

    pub fn trunk(&self) -> &Model {
        self.model("trunk")
    }

    pub fn embedder(&self) -> &Model {
        self.model("embedder")
    }

    /// The tuple miner's tuples for `embeddings` (statistics recorded as `component`), or `None`
    /// when `mining_funcs` has no tuple miner.
    pub fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        component: &str,
    ) -> Result<Option<IndicesTuple>> {
        Ok(match self.pipeline.mine(embeddings, labels)? {
            Some((tuple, s)) => {
                self.stats.borrow_mut().insert(component.to_string(), s);
                Some(tuple)
            }
            None => None,
        })
    }

    /// `loss(input, labels, tuples)` of a configured loss (unweighted), or `None` when it is absent
    /// or its weight is zero (then it is not computed at all).
    pub fn compute_loss_with(
        &self,
        name: &str,
        input: &Tensor,
        labels: &Tensor,
        tuple: Option<&IndicesTuple>,
    ) -> Result<Option<(String, Tensor)>> {
        let Some(entry) = self.pipeline.loss(name).filter(|l| l.weight != 0.0) else {
            return Ok(None);
        };
        let (value, s) = entry.loss.forward(input, labels, tuple)?;
        self.stats.borrow_mut().insert(name.to_string(), s);
        Ok(Some((name.to_string(), value)))
    }

    /// [`Components::compute_loss_with`]; metric losses on embeddings (`metric_loss*`) get the
    /// tuple miner's tuples when `mining_funcs` has one.
    pub fn compute_loss(
        &self,
        name: &str,
        input: &Tensor,
        labels: &Tensor,
    ) -> Result<Option<(String, Tensor)>> {
        if self.pipeline.loss(name).is_none_or(|l| l.weight == 0.0) {
            return Ok(None);
        }
        let tuple = if name.starts_with("metric_loss") {
            let component = match name {
                "metric_loss" => "tuple_miner".to_string(),
                other => format!("tuple_miner_{other}"),
            };
            self.mine(input, labels, &component)?
        } else {
            None
        };
        self.compute_loss_with(name, input, labels, tuple.as_ref())
    }

    /// Records statistics computed outside [`Components::compute_loss`].
    pub fn record_stats(&self, stats: BTreeMap<String, Stats>) {
        self.stats.borrow_mut().extend(stats);
    }

    /// The statistics recorded since the last call (for `loss_stats.csv`).
    pub fn take_stats(&self) -> BTreeMap<String, Stats> {
        std::mem::take(&mut *self.stats.borrow_mut())
    }

    /// The losses of one batch, by name (unweighted; the loop applies `loss_weights`).
    pub fn batch_losses(
        &self,
        x: &Tensor,
        labels: &Tensor,
        epoch: i64,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(String, Tensor)>> {
        match &self.method {
            Method::MetricLossOnly => metric_loss_only::losses(self, x, labels),
            Method::TrainWithClassifier { class_index } => {
                train_with_classifier::losses(self, class_index, x, labels)
            }
            Method::CascadedEmbeddings => cascaded_embeddings::losses(self, x, labels),
            Method::DeepAdversarialMetricLearning(s) => {
                deep_adversarial::losses(self, s, x, labels, epoch, rng)
            }
        }
    }

    /// Whether the optimizer of `model` (or `metric_loss_optimizer`) steps in this epoch.
    pub fn learns(&self, optimizer: &str, epoch: i64) -> bool {
        match &self.method {
            Method::DeepAdversarialMetricLearning(s) => s.learns(optimizer, epoch),
            _ => true,
        }
    }

    /// Weight of a loss in the total for this epoch.
    pub fn weight(&self, name: &str, epoch: i64) -> f64 {
        let base = self.weights.get(name).copied().unwrap_or(1.0);
        match &self.method {
            Method::DeepAdversarialMetricLearning(s) if !s.loss_active(name, epoch) => 0.0,
            _ => base,
        }
    }
}

/// Which method a config names (checked before any work starts).
pub fn method_name<'a>(cfg: &Config<'a>) -> Result<&'a str> {
    let name = cfg.str("training_method", "MetricLossOnly")?;
    if TRAINING_METHODS.contains(&name) {
        Ok(name)
    } else {
        Err(unknown_class("training_method", name, &TRAINING_METHODS))
    }
}

fn loss_weights(cfg: &Config) -> Result<serde_json::Map<String, serde_json::Value>> {
    match cfg.get("loss_weights") {
        None => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(config_error(
            "`loss_weights` must be a mapping {loss_name: weight} or null",
        )),
    }
}

fn weight_of(weights: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<f64> {
    match weights.get(name) {
        None | Some(serde_json::Value::Null) => Ok(1.0),
        Some(v) => v
            .as_f64()
            .filter(|w| w.is_finite())
            .ok_or_else(|| config_error(format!("loss_weights/{name} must be a number, got {v}"))),
    }
}

/// Builds the models, losses and optimizers of a fold. `train_labels` are the training split's
/// labels (the classifier's number of classes comes from them).
pub fn build(
    cfg: &Config,
    sample_shape: &[i64],
    train_labels: &[i64],
    device: Device,
) -> Result<Components> {
    let trunk_options = models::TrunkOptions::from_config(cfg, sample_shape, device)?;
    let method = method_name(cfg)?;
    let models_cfg = cfg.require("models")?;
    let spec_of = |role: &str| {
        models_cfg
            .get(role)
            .filter(|v| !v.is_null())
            .ok_or_else(|| config_error(format!("`models` has no `{role}` entry")))
    };
    let (trunk, embedder) = if method == "CascadedEmbeddings" {
        models::build_cascaded(spec_of("trunk")?, spec_of("embedder")?, &trunk_options)?
    } else {
        let trunk = models::build_trunk(spec_of("trunk")?, &trunk_options)?;
        let embedder = models::build_embedder(spec_of("embedder")?, trunk.output_dim, device)?;
        (trunk, embedder)
    };
    let embedding_dim = embedder.output_dim;
    let trunk_dim = trunk.output_dim;
    let mut models = vec![trunk, embedder];
    let mut required_losses = vec!["metric_loss".to_string()];
    let method = match method {
        "MetricLossOnly" => Method::MetricLossOnly,
        "TrainWithClassifier" => {
            let (model, class_index) =
                train_with_classifier::classifier(models_cfg, train_labels, embedding_dim, device)?;
            models.push(model);
            required_losses.push("classifier_loss".into());
            Method::TrainWithClassifier { class_index }
        }
        "CascadedEmbeddings" => {
            let n = models[1].output_parts.len();
            required_losses = (0..n).map(|i| format!("metric_loss_{i}")).collect();
            Method::CascadedEmbeddings
        }
        _ => {
            let settings = DamlSettings::from_config(cfg)?;
            models.push(deep_adversarial::generator(models_cfg, trunk_dim, device)?);
            required_losses.extend(["synth_loss".into(), "g_adv_loss".into()]);
            Method::DeepAdversarialMetricLearning(settings)
        }
    };

    let weights = loss_weights(cfg)?;
    let loss_map = cfg
        .require("loss_funcs")?
        .as_object()
        .ok_or_else(|| config_error("`loss_funcs` must be a mapping {name: {Class: kwargs}}"))?;
    for name in &required_losses {
        if !loss_map.contains_key(name) {
            let have: Vec<&String> = loss_map.keys().collect();
            return Err(config_error(format!(
                "training_method {} needs `loss_funcs/{name}`; the config has {have:?}",
                cfg.str("training_method", "MetricLossOnly")?
            )));
        }
    }
    // MetricLossOnly computes every configured loss on the embeddings (weighted by loss_weights).
    let any_loss_allowed = matches!(method, Method::MetricLossOnly);
    if let Some(extra) = loss_map
        .keys()
        .find(|k| !any_loss_allowed && !required_losses.contains(k))
    {
        return Err(config_error(format!(
            "`loss_funcs/{extra}` is not used by training_method {}; it uses {}",
            cfg.str("training_method", "MetricLossOnly")?,
            required_losses.join(", ")
        )));
    }
    let num_classes = {
        let mut classes = train_labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        classes.len() as i64
    };
    let extra_weights: &[&str] = match method {
        Method::DeepAdversarialMetricLearning(_) => &["g_hard_loss", "g_reg_loss"],
        _ => &[],
    };
    let pipeline = build_loss(
        cfg,
        &BuildContext {
            num_classes: Some(num_classes),
            embedding_size: Some(embedding_dim),
            device,
        },
        extra_weights,
    )?;

    let mut optimizers = Vec::new();
    if let Some(map) = cfg.get("optimizers").and_then(|v| v.as_object()) {
        for (name, spec) in map {
            if spec.is_null() {
                continue;
            }
            let target = name.strip_suffix("_optimizer");
            let model = target.and_then(|m| models.iter().find(|x| x.name == m));
            let loss_vs = target.and_then(|l| pipeline.var_store(l));
            let params = match (model, loss_vs) {
                (Some(m), _) => trainable(&m.vs),
                (None, Some(vs)) => trainable(vs),
                (None, None) => {
                    let valid: Vec<String> = models
                        .iter()
                        .map(|m| format!("{}_optimizer", m.name))
                        .chain(
                            pipeline
                                .var_stores()
                                .iter()
                                .map(|(n, _)| format!("{n}_optimizer")),
                        )
                        .collect();
                    return Err(config_error(format!(
                        "optimizers/{name}: nothing to optimise under that name (no such model, and no loss with parameters); valid names: {}",
                        valid.join(", ")
                    )));
                }
            };
            optimizers.push(Optimizer::build(name, spec, params)?);
        }
    }
    if optimizers.is_empty() {
        return Err(config_error(
            "`optimizers` defines no optimizer, so nothing would be trained",
        ));
    }
    if let Method::DeepAdversarialMetricLearning(_) = method {
        if !optimizers.iter().any(|o| o.name == "generator_optimizer") {
            return Err(config_error(
                "DeepAdversarialMetricLearning needs `optimizers/generator_optimizer` for its generator",
            ));
        }
    }
    if let Method::TrainWithClassifier { .. } = method {
        if !optimizers.iter().any(|o| o.name == "classifier_optimizer") {
            return Err(config_error(
                "TrainWithClassifier needs `optimizers/classifier_optimizer` for its classifier",
            ));
        }
    }
    // Every loss the method produces takes its weight from loss_weights (default 1), including the
    // DAML generator's internal losses that loss_funcs does not configure.
    let mut all_weights = BTreeMap::new();
    for l in &pipeline.losses {
        all_weights.insert(l.name.clone(), l.weight);
    }
    if let Method::DeepAdversarialMetricLearning(_) = method {
        for name in ["g_hard_loss", "g_reg_loss"] {
            all_weights.insert(name.to_string(), weight_of(&weights, name)?);
        }
    }
    Ok(Components {
        models,
        pipeline,
        weights: all_weights,
        optimizers,
        method,
        stats: RefCell::new(BTreeMap::new()),
        precision: Precision::from_config(cfg, device)?,
        scaler: LossScaler::default(),
    })
}
