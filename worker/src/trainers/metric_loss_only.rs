//! `MetricLossOnly`: trunk -> embedder -> `metric_loss` (plus any other configured loss on the same
//! embeddings, all with the tuple miner's tuples).

use super::Components;
use anyhow::Result;
use tch::Tensor;

pub fn losses(c: &Components, x: &Tensor, labels: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let embeddings = c.embedder().forward(&c.trunk().forward(x));
    let (values, stats) = c.pipeline.forward_each(&embeddings, labels)?;
    c.record_stats(stats);
    Ok(c.pipeline
        .losses
        .iter()
        .zip(values)
        .filter(|(l, _)| l.weight != 0.0)
        .map(|(l, v)| (l.name.clone(), v))
        .collect())
}
