//! Training methods (PML trainers, reference §7). Every method shares the loop in [`base`]; a
//! method only decides which models exist, which losses one batch produces, and which models learn
//! in a given epoch.

pub mod base;
mod cascaded_embeddings;
mod deep_adversarial;
mod metric_loss_only;
mod train_with_classifier;

use crate::errors::config_error;
use crate::losses::{self, MetricLoss};
use crate::models::{self, Model};
use crate::optimizers::{trainable, Optimizer};
use crate::spec::{unknown_class, Config, Spec};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{nn, Device, Tensor};

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

/// A loss function of `loss_funcs`.
pub enum LossFn {
    Metric(Box<dyn MetricLoss>),
    /// `CrossEntropyLoss` on classifier logits (implemented here until the losses module has it).
    CrossEntropy,
}

impl LossFn {
    /// `input` is embeddings for a metric loss, logits for cross-entropy; `labels` raw labels for
    /// a metric loss, class indices for cross-entropy.
    pub fn compute(&self, input: &Tensor, labels: &Tensor) -> Tensor {
        match self {
            LossFn::Metric(loss) => loss.forward(input, labels),
            LossFn::CrossEntropy => input.cross_entropy_for_logits(labels),
        }
    }
}

/// Builds one entry of `loss_funcs`. The only place losses are constructed, so changes to how
/// losses are built (miners, reducers, loss parameters) touch this function alone.
pub fn build_loss(
    name: &str,
    value: &serde_json::Value,
    _loss_params: &nn::Path,
) -> Result<LossFn> {
    let is_ce = value
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("CrossEntropyLoss"));
    if is_ce {
        let spec = Spec::parse(&format!("loss_funcs/{name}"), value)?;
        spec.finish()?;
        return Ok(LossFn::CrossEntropy);
    }
    Ok(LossFn::Metric(losses::build(name, value)?))
}

pub struct LossEntry {
    pub name: String,
    pub weight: f64,
    pub func: LossFn,
}

/// Everything a fold trains: models, losses, optimizers.
pub struct Components {
    /// `trunk`, `embedder`, then method-specific models (`classifier`, `generator`).
    pub models: Vec<Model>,
    pub losses: Vec<LossEntry>,
    /// `loss_weights` of every loss the method produces (1 when not configured).
    pub weights: BTreeMap<String, f64>,
    /// Parameters of the losses (proxies, learnable margins...), optimized by
    /// `metric_loss_optimizer` and checkpointed as `metric_loss_*`.
    pub loss_params: nn::VarStore,
    pub optimizers: Vec<Optimizer>,
    pub method: Method,
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

    pub fn loss(&self, name: &str) -> Option<&LossEntry> {
        self.losses.iter().find(|l| l.name == name)
    }

    /// `loss(input, labels)` of a configured loss (unweighted), or `None` when it is absent or its
    /// weight is zero (then it is not computed at all).
    pub fn compute_loss(
        &self,
        name: &str,
        input: &Tensor,
        labels: &Tensor,
    ) -> Option<(String, Tensor)> {
        let entry = self.loss(name).filter(|l| l.weight != 0.0)?;
        Some((name.to_string(), entry.func.compute(input, labels)))
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
    input_dim: i64,
    train_labels: &[i64],
    device: Device,
) -> Result<Components> {
    let method = method_name(cfg)?;
    let models_cfg = cfg.require("models")?;
    let spec_of = |role: &str| {
        models_cfg
            .get(role)
            .filter(|v| !v.is_null())
            .ok_or_else(|| config_error(format!("`models` has no `{role}` entry")))
    };
    let (trunk, embedder) = if method == "CascadedEmbeddings" {
        models::build_cascaded(spec_of("trunk")?, spec_of("embedder")?, input_dim, device)?
    } else {
        let trunk = models::build_trunk(spec_of("trunk")?, input_dim, device)?;
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
    let loss_params = nn::VarStore::new(device);
    let loss_map = cfg
        .require("loss_funcs")?
        .as_object()
        .ok_or_else(|| config_error("`loss_funcs` must be a mapping {name: {Class: kwargs}}"))?;
    let mut losses = Vec::new();
    for (name, spec) in loss_map {
        let func = build_loss(name, spec, &(loss_params.root() / name.as_str()))?;
        losses.push(LossEntry {
            name: name.clone(),
            weight: weight_of(&weights, name)?,
            func,
        });
    }
    for name in &required_losses {
        if !loss_map.contains_key(name) {
            let have: Vec<&String> = loss_map.keys().collect();
            return Err(config_error(format!(
                "training_method {} needs `loss_funcs/{name}`; the config has {have:?}",
                cfg.str("training_method", "MetricLossOnly")?
            )));
        }
    }
    if let Some(extra) = loss_map.keys().find(|k| !required_losses.contains(k)) {
        return Err(config_error(format!(
            "`loss_funcs/{extra}` is not used by training_method {}; it uses {}",
            cfg.str("training_method", "MetricLossOnly")?,
            required_losses.join(", ")
        )));
    }
    if let Some(miners) = cfg.get("mining_funcs").and_then(|v| v.as_object()) {
        if let Some(name) = miners.keys().next() {
            return Err(config_error(format!(
                "mining_funcs/{name}: miners are not available in this worker version"
            )));
        }
    }

    let mut optimizers = Vec::new();
    if let Some(map) = cfg.get("optimizers").and_then(|v| v.as_object()) {
        for (name, spec) in map {
            if spec.is_null() {
                continue;
            }
            let params = if name == "metric_loss_optimizer" {
                trainable(&loss_params)
            } else {
                let model = name
                    .strip_suffix("_optimizer")
                    .and_then(|m| models.iter().find(|x| x.name == m));
                match model {
                    Some(m) => trainable(&m.vs),
                    None => {
                        let valid: Vec<String> = models
                            .iter()
                            .map(|m| format!("{}_optimizer", m.name))
                            .chain(["metric_loss_optimizer".to_string()])
                            .collect();
                        return Err(config_error(format!(
                            "optimizers/{name}: no such model to optimise; valid names: {}",
                            valid.join(", ")
                        )));
                    }
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
    for l in &losses {
        all_weights.insert(l.name.clone(), l.weight);
    }
    if let Method::DeepAdversarialMetricLearning(_) = method {
        for name in ["g_hard_loss", "g_reg_loss"] {
            all_weights.insert(name.to_string(), weight_of(&weights, name)?);
        }
    }
    Ok(Components {
        models,
        losses,
        weights: all_weights,
        loss_params,
        optimizers,
        method,
    })
}
