//! Metric losses (PML `losses/`). A loss maps a batch of embeddings and labels to a scalar tensor
//! that keeps the autograd graph (a batch without valid pairs gives `sum(embeddings * 0)`).

mod contrastive;

pub use contrastive::ContrastiveLoss;

use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::{Kind, Tensor};

pub trait MetricLoss: Send {
    fn forward(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor;
}

pub const LOSSES: [&str; 1] = ["ContrastiveLoss"];

/// Builds one entry of `loss_funcs: {name: {Class: kwargs}}`.
pub fn build(name: &str, value: &serde_json::Value) -> Result<Box<dyn MetricLoss>> {
    let path = format!("loss_funcs/{name}");
    let mut spec = Spec::parse(&path, value)?;
    let loss: Box<dyn MetricLoss> = match spec.class.as_str() {
        "ContrastiveLoss" => Box::new(ContrastiveLoss::from_spec(&mut spec)?),
        other => return Err(unknown_class(&path, other, &LOSSES)),
    };
    spec.finish()?;
    Ok(loss)
}

/// All (anchor, positive) and (anchor, negative) index pairs of a batch, row-major, self-pairs
/// excluded (PML `get_all_pairs_indices` when the reference set is the batch itself).
pub fn all_pairs(labels: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
    let l = labels.view([-1, 1]);
    let same = l.eq_tensor(&l.view([1, -1]));
    let diffs = same.logical_not();
    let n = labels.size()[0];
    let eye = Tensor::eye(n, (Kind::Bool, labels.device()));
    let matches = same.logical_and(&eye.logical_not());
    let pos = matches.nonzero();
    let neg = diffs.nonzero();
    (
        pos.select(1, 0),
        pos.select(1, 1),
        neg.select(1, 0),
        neg.select(1, 1),
    )
}

/// Mean of the strictly positive entries; a graph-keeping zero when there are none
/// (PML `AvgNonZeroReducer`).
pub fn avg_non_zero(losses: &Tensor, embeddings: &Tensor) -> Tensor {
    let positive = losses.gt(0.0);
    let count = i64::try_from(positive.sum(Kind::Int64)).unwrap_or(0);
    if count == 0 {
        return zero_loss(embeddings);
    }
    losses.masked_select(&positive).mean(losses.kind())
}

/// A zero that keeps the graph, so `backward()` works on batches without valid tuples.
pub fn zero_loss(embeddings: &Tensor) -> Tensor {
    (embeddings * 0.0).sum(embeddings.kind())
}
