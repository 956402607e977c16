//! `TrainWithClassifier`: `metric_loss` on the embeddings plus `classifier_loss` (cross-entropy) on
//! a classifier's logits over the training classes.

use super::Components;
use crate::errors::{config_error, data_error};
use crate::models::{self, Model};
use anyhow::Result;
use tch::{Device, Tensor};

/// The classifier (`models/classifier`, default `MLP: {layer_sizes: [C]}`) and the lookup from
/// label value to class index 0..C-1 (PML's `set_min_label_to_zero`, for any label values).
pub fn classifier(
    models_cfg: &serde_json::Value,
    train_labels: &[i64],
    embedding_dim: i64,
    device: Device,
) -> Result<(Model, Tensor)> {
    let mut classes: Vec<i64> = train_labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let num_classes = classes.len() as i64;
    if let Some(neg) = classes.iter().find(|&&c| c < 0) {
        return Err(data_error(format!(
            "TrainWithClassifier needs non-negative labels, but the dataset has label {neg}"
        )));
    }
    let default = serde_json::json!({"MLP": {"layer_sizes": [num_classes]}});
    let spec = models_cfg
        .get("classifier")
        .filter(|v| !v.is_null())
        .unwrap_or(&default);
    let model = models::build_extra("classifier", spec, embedding_dim, device)?;
    if model.output_dim != num_classes {
        return Err(config_error(format!(
            "models/classifier outputs {} logits, but the training split has {num_classes} classes; \
             make the last layer size {num_classes} (or leave models/classifier out)",
            model.output_dim
        )));
    }
    let max = *classes.last().unwrap_or(&0);
    let mut lookup = vec![-1i64; max as usize + 1];
    for (i, &c) in classes.iter().enumerate() {
        lookup[c as usize] = i as i64;
    }
    Ok((model, Tensor::from_slice(&lookup).to_device(device)))
}

pub fn losses(
    c: &Components,
    class_index: &Tensor,
    x: &Tensor,
    labels: &Tensor,
) -> Result<Vec<(String, Tensor)>> {
    let embeddings = c.embedder().forward(&c.trunk().forward(x));
    let mut out: Vec<(String, Tensor)> = c
        .compute_loss("metric_loss", &embeddings, labels)?
        .into_iter()
        .collect();
    let logits = c.model("classifier").forward(&embeddings);
    let targets = class_index.index_select(0, labels);
    out.extend(c.compute_loss("classifier_loss", &logits, &targets)?);
    Ok(out)
}
