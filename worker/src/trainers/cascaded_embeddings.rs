//! `CascadedEmbeddings`: the trunk exposes the features after each of its layers, one embedder per
//! layer embeds them, the embedding is the concatenation, and `metric_loss_<i>` trains slice `i`.

use super::Components;
use anyhow::Result;
use tch::Tensor;

pub fn losses(c: &Components, x: &Tensor, labels: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let embedder = c.embedder();
    let embeddings = embedder.forward(&c.trunk().forward(x));
    let slices = embeddings.split_with_sizes(&embedder.output_parts, 1);
    let mut out = Vec::new();
    for (i, slice) in slices.iter().enumerate() {
        out.extend(c.compute_loss(&format!("metric_loss_{i}"), slice, labels)?);
    }
    Ok(out)
}
