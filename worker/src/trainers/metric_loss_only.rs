//! `MetricLossOnly`: trunk -> embedder -> `metric_loss`.

use super::Components;
use anyhow::Result;
use tch::Tensor;

pub fn losses(c: &Components, x: &Tensor, labels: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let embeddings = c.embedder().forward(&c.trunk().forward(x));
    Ok(c.compute_loss("metric_loss", &embeddings, labels)
        .into_iter()
        .collect())
}
