//! The training objective of one fold: every configured loss with its weight, plus the optional
//! miners, built from `loss_funcs`, `loss_weights` and `mining_funcs`. The training loop only calls
//! `subset_batch` (before the forward pass) and `forward` (after it).

use super::base::{BuildContext, Loss};
use super::build;
use crate::errors::config_error;
use crate::miners::{self, Miner};
use crate::reducers::Stats;
use crate::spec::Config;
use crate::tuples::IndicesTuple;
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

pub struct NamedLoss {
    pub name: String,
    pub weight: f64,
    pub loss: Loss,
}

pub struct LossPipeline {
    pub losses: Vec<NamedLoss>,
    tuple_miner: Option<Miner>,
    subset_batch_miner: Option<Miner>,
}

/// One iteration's outcome.
#[cfg(test)]
pub struct Step {
    /// `sum_k weight_k * loss_k` (keeps the graph).
    pub total: Tensor,
    /// Each loss's (unweighted) value, in `losses` order.
    pub values: Vec<f64>,
    /// Statistics per component (`metric_loss`, `tuple_miner`, ...).
    pub stats: BTreeMap<String, Stats>,
}

impl LossPipeline {
    pub fn from_config(cfg: &Config, ctx: &BuildContext) -> Result<LossPipeline> {
        let weights = cfg.get("loss_weights").and_then(|v| v.as_object());
        let loss_map = cfg.require("loss_funcs")?.as_object().ok_or_else(|| {
            config_error("`loss_funcs` must be a mapping {name: {Class: kwargs}}")
        })?;
        let mut losses = Vec::new();
        for (name, spec) in loss_map {
            let weight = match weights.and_then(|w| w.get(name)) {
                None => 1.0,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| config_error(format!("loss_weights/{name} must be a number")))?,
            };
            losses.push(NamedLoss {
                name: name.clone(),
                weight,
                loss: build(name, spec, ctx)?,
            });
        }
        if losses.is_empty() {
            return Err(config_error("`loss_funcs` defines no loss"));
        }
        if let Some(w) = weights {
            if let Some(unknown) = w.keys().find(|k| !loss_map.contains_key(k.as_str())) {
                return Err(config_error(format!(
                    "loss_weights/{unknown} names no loss in loss_funcs"
                )));
            }
        }
        let (mut tuple_miner, mut subset_batch_miner) = (None, None);
        if let Some(map) = cfg.get("mining_funcs") {
            let map = map.as_object().ok_or_else(|| {
                config_error("`mining_funcs` must be a mapping {role: {Class: kwargs}}")
            })?;
            for (role, spec) in map {
                if spec.is_null() {
                    continue;
                }
                let path = format!("mining_funcs/{role}");
                // The pre-0.9.77 names are accepted as aliases (same semantics).
                let slot = match role.as_str() {
                    "tuple_miner" | "post_gradient_miner" => &mut tuple_miner,
                    "subset_batch_miner" | "pre_gradient_miner" => &mut subset_batch_miner,
                    other => {
                        return Err(config_error(format!(
                            "mining_funcs/{other}: unknown role; valid roles: tuple_miner \
                             (alias post_gradient_miner), subset_batch_miner (alias pre_gradient_miner)"
                        )))
                    }
                };
                if slot.is_some() {
                    return Err(config_error(format!(
                        "{path}: the role is given twice (under its name and its alias)"
                    )));
                }
                *slot = Some(miners::build(&path, spec)?);
            }
        }
        Ok(LossPipeline {
            losses,
            tuple_miner,
            subset_batch_miner,
        })
    }

    /// The configured loss `name`.
    pub fn loss(&self, name: &str) -> Option<&NamedLoss> {
        self.losses.iter().find(|l| l.name == name)
    }

    /// The tuple miner's tuples for these embeddings, with its statistics (`None` without one).
    pub fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
    ) -> Result<Option<(IndicesTuple, Stats)>> {
        match &self.tuple_miner {
            None => Ok(None),
            Some(m) => m.mine(embeddings, labels).map(Some),
        }
    }

    /// The learnable parameters of the loss `name` (for `<name>_optimizer` and checkpoints).
    pub fn var_store(&self, name: &str) -> Option<&nn::VarStore> {
        self.losses
            .iter()
            .find(|l| l.name == name)
            .and_then(|l| l.loss.var_store())
    }

    /// Every loss that holds parameters, by name.
    pub fn var_stores(&self) -> Vec<(&str, &nn::VarStore)> {
        self.losses
            .iter()
            .filter_map(|l| l.loss.var_store().map(|vs| (l.name.as_str(), vs)))
            .collect()
    }

    pub fn has_subset_batch_miner(&self) -> bool {
        self.subset_batch_miner.is_some()
    }

    /// With a subset-batch miner: the sorted batch positions its tuples mention (the sub-batch to
    /// train on), computed from embeddings the caller made in eval mode without gradients.
    pub fn subset_batch(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
    ) -> Result<Option<(Tensor, Stats)>> {
        let Some(miner) = &self.subset_batch_miner else {
            return Ok(None);
        };
        let (tuple, stats) = miner.mine(embeddings, labels)?;
        let n = labels.size()[0];
        let all = Tensor::cat(&tuple.tensors(), 0);
        let used = all.bincount::<Tensor>(None, n).gt(0);
        let idx = Tensor::arange(n, (Kind::Int64, labels.device())).masked_select(&used);
        Ok(Some((idx, stats)))
    }

    /// Mines (tuple miner) and evaluates every loss on the same embeddings (what `MetricLossOnly`
    /// does): each loss's unweighted value, in `losses` order, and the statistics per component
    /// (`tuple_miner`, then each loss by name).
    pub fn forward_each(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
    ) -> Result<(Vec<Tensor>, BTreeMap<String, Stats>)> {
        let mut stats = BTreeMap::new();
        let tuple: Option<IndicesTuple> = match self.mine(embeddings, labels)? {
            None => None,
            Some((t, s)) => {
                stats.insert("tuple_miner".to_string(), s);
                Some(t)
            }
        };
        let mut values = Vec::with_capacity(self.losses.len());
        for l in &self.losses {
            let (value, s) = l.loss.forward(embeddings, labels, tuple.as_ref())?;
            values.push(value);
            stats.insert(l.name.clone(), s);
        }
        Ok((values, stats))
    }

    /// [`LossPipeline::forward_each`] with the weighted total.
    #[cfg(test)]
    pub fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Result<Step> {
        let (tensors, stats) = self.forward_each(embeddings, labels)?;
        let mut total: Option<Tensor> = None;
        let mut values = Vec::with_capacity(tensors.len());
        for (l, value) in self.losses.iter().zip(tensors) {
            values.push(crate::numerics::scalar(&value));
            let weighted = value * l.weight;
            total = Some(match total {
                None => weighted,
                Some(t) => t + weighted,
            });
        }
        Ok(Step {
            total: total.expect("at least one loss (checked at build)"),
            values,
            stats,
        })
    }
}
