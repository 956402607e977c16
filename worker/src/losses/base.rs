//! The plumbing every loss shares (PML's `BaseMetricLossFunction` and `GenericPairLoss`): what a
//! loss is built with, the trait a loss implements (its own computation only), the configured loss
//! that wraps it with a reducer and regularisers, and helpers for the builders and pair losses.

use crate::distances::Distance;
use crate::errors::{config_error, data_error};
use crate::reducers::{Reducer, Stats, SubLoss};
use crate::regularizers::Regularizer;
use crate::spec::Spec;
use crate::tuples::{check_batch, convert_to_pairs, IndicesTuple};
use anyhow::Result;
use tch::{nn, Device, Tensor};

/// What a loss needs from its caller besides its kwargs.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext {
    /// Number of classes of the training split (labels are 0..num_classes).
    pub num_classes: Option<i64>,
    /// Output size of the embedder.
    pub embedding_size: Option<i64>,
    pub device: Device,
}

/// The loss-specific part: turns a batch (and optional mined tuples) into sub-losses.
pub trait LossCore: Send {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>>;
    /// The parameter matrix a weight regulariser acts on (rows = class vectors), if any.
    fn regularized_weights(&self) -> Option<Tensor> {
        None
    }
    /// Learnable parameters (W, proxies, centres, beta), for `<loss>_optimizer` and checkpoints.
    fn var_store(&self) -> Option<&nn::VarStore> {
        None
    }
    /// Whether labels must lie in `0..num_classes` (classification and proxy losses).
    fn num_classes(&self) -> Option<i64> {
        None
    }
}

/// A configured loss: core + reducer + regularisers (PML `BaseMetricLossFunction`).
pub struct Loss {
    pub class: String,
    pub(super) core: Box<dyn LossCore>,
    pub(super) reducer: Reducer,
    pub(super) embedding_regularizer: Option<(Regularizer, f64)>,
    pub(super) weight_regularizer: Option<(Regularizer, f64)>,
}

impl Loss {
    pub fn var_store(&self) -> Option<&nn::VarStore> {
        self.core.var_store()
    }

    /// PML `forward(embeddings, labels, indices_tuple)`: the reduced loss and this call's statistics.
    pub fn forward(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
    ) -> Result<(Tensor, Stats)> {
        check_batch(embeddings, labels, indices)?;
        if let Some(c) = self.core.num_classes() {
            check_label_range(labels, c, &self.class)?;
        }
        let mut stats = Stats::new();
        let mut subs = self.core.compute(embeddings, labels, indices, &mut stats)?;
        if let Some((reg, weight)) = &self.embedding_regularizer {
            let value = reg.forward(embeddings, &mut stats)? * *weight;
            subs.push(SubLoss::new(
                "embedding_reg_loss",
                value,
                crate::reducers::Reduction::AlreadyReduced,
            ));
        }
        if let Some((reg, weight)) = &self.weight_regularizer {
            if let Some(w) = self.core.regularized_weights() {
                let value = reg.forward(&w.to_kind(embeddings.kind()), &mut stats)? * *weight;
                subs.push(SubLoss::new(
                    "weight_reg_loss",
                    value,
                    crate::reducers::Reduction::AlreadyReduced,
                ));
            }
        }
        let total = self.reducer.reduce_all(&subs, embeddings, &mut stats)?;
        Ok((total, stats))
    }
}

fn check_label_range(labels: &Tensor, num_classes: i64, class: &str) -> Result<()> {
    if labels.numel() == 0 {
        return Ok(());
    }
    let lo = i64::try_from(labels.min())?;
    let hi = i64::try_from(labels.max())?;
    if lo < 0 || hi >= num_classes {
        return Err(data_error(format!(
            "{class} was built for {num_classes} classes, but the batch has label {}; labels must be 0..{num_classes}",
            if lo < 0 { lo } else { hi }
        )));
    }
    Ok(())
}

/// `num_classes` / `embedding_size` kwargs, falling back to what the caller knows.
pub fn class_and_size(spec: &mut Spec, ctx: &BuildContext) -> Result<(i64, i64)> {
    let c = spec.optional_usize("num_classes")?.map(|v| v as i64);
    let d = spec.optional_usize("embedding_size")?.map(|v| v as i64);
    let c = c.or(ctx.num_classes).ok_or_else(|| {
        config_error(format!(
            "`{}` needs num_classes: give it as a kwarg or let the trainer supply the training split's class count",
            spec.path
        ))
    })?;
    let d = d.or(ctx.embedding_size).ok_or_else(|| {
        config_error(format!(
            "`{}` needs embedding_size: give it as a kwarg or let the trainer supply the embedder's output size",
            spec.path
        ))
    })?;
    if c < 1 || d < 1 {
        return Err(config_error(format!(
            "`{}`: num_classes and embedding_size must be at least 1",
            spec.path
        )));
    }
    Ok((c, d))
}

/// Records the usual tuple counts (PML's `num_pos_pairs` / `num_neg_pairs`).
fn record_pairs(stats: &mut Stats, pairs: &(Tensor, Tensor, Tensor, Tensor)) {
    stats.insert("num_pos_pairs".into(), pairs.0.size()[0] as f64);
    stats.insert("num_neg_pairs".into(), pairs.2.size()[0] as f64);
}

/// Creates a learnable parameter on its own var store.
pub fn param(vs: &nn::VarStore, name: &str, dims: &[i64], init: nn::Init) -> Tensor {
    vs.root().var(name, dims, init)
}

/// A distance that must be inverted (a similarity) for this loss.
pub fn require_inverted(d: &Distance, path: &str, class: &str) -> Result<()> {
    if !d.is_inverted() {
        return Err(config_error(format!(
            "`{path}`: {class} needs a similarity (CosineSimilarity or DotProductSimilarity), got {}",
            d.class_name()
        )));
    }
    Ok(())
}

/// GenericPairLoss's first step: the pairs to use (their counts recorded in `stats`), or `None`
/// when every index tensor has at most one element (PML then returns a zero loss).
pub fn generic_pairs(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
    stats: &mut Stats,
) -> Option<(Tensor, Tensor, Tensor, Tensor)> {
    let pairs = convert_to_pairs(indices, labels);
    let lens = [
        pairs.0.size()[0],
        pairs.1.size()[0],
        pairs.2.size()[0],
        pairs.3.size()[0],
    ];
    if lens.iter().all(|&l| l <= 1) {
        None
    } else {
        record_pairs(stats, &pairs);
        Some(pairs)
    }
}

/// [`generic_pairs`] for losses that compare positives with negatives: also `None` when there is
/// no positive or no negative pair (those losses are then zero, as in PML).
pub fn generic_pairs_of_both_kinds(
    indices: Option<&IndicesTuple>,
    labels: &Tensor,
    stats: &mut Stats,
) -> Option<(Tensor, Tensor, Tensor, Tensor)> {
    generic_pairs(indices, labels, stats)
        .filter(|(a1, _, a2, _)| a1.size()[0] > 0 && a2.size()[0] > 0)
}
