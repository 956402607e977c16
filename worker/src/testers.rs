//! Testers: compute embeddings of a split and evaluate them (PML `GlobalEmbeddingSpaceTester`).

use crate::accuracy::retrieval_metrics;
use crate::datasets::Dataset;
use crate::distances::normalize;
use crate::errors::config_error;
use crate::models::Model;
use anyhow::Result;
use std::collections::BTreeMap;
use tch::{Device, Tensor};

/// Evaluation settings from the `eval_*` config keys.
#[derive(Debug, Clone)]
pub struct EvalSettings {
    pub batch_size: usize,
    pub normalize_embeddings: bool,
    pub use_trunk_output: bool,
    pub reference_set: String,
}

impl EvalSettings {
    pub fn from_config(cfg: &crate::spec::Config) -> Result<Self> {
        let reference_set = cfg
            .str("eval_reference_set", "compared_to_self")?
            .to_string();
        if reference_set != "compared_to_self" {
            return Err(config_error(format!(
                "eval_reference_set `{reference_set}` is not supported yet; use compared_to_self"
            )));
        }
        let batch_size = cfg.usize("eval_batch_size", Some(256))?;
        if batch_size == 0 {
            return Err(config_error("eval_batch_size must be positive"));
        }
        Ok(EvalSettings {
            batch_size,
            normalize_embeddings: cfg.bool("eval_normalize_embeddings", true)?,
            use_trunk_output: cfg.bool("eval_use_trunk_output", false)?,
            reference_set,
        })
    }

    /// Table-name fragment, as the original: `normalized_compared_to_self`.
    pub fn table_tag(&self) -> String {
        let norm = if self.normalize_embeddings {
            "normalized"
        } else {
            "unnormalized"
        };
        format!("{norm}_{}", self.reference_set)
    }
}

/// Embeddings of the given samples, computed without gradients in evaluation batches.
pub fn embeddings(
    dataset: &dyn Dataset,
    indices: &[usize],
    trunk: &Model,
    embedder: Option<&Model>,
    settings: &EvalSettings,
    device: Device,
) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let mut parts = Vec::new();
    for chunk in indices.chunks(settings.batch_size) {
        let x = dataset.batch(chunk, false)?.to_device(device);
        let mut e = trunk.forward(&x);
        if let Some(embedder) = embedder {
            e = embedder.forward(&e);
        }
        parts.push(e.to_device(Device::Cpu));
    }
    let all = Tensor::cat(&parts, 0);
    Ok(if settings.normalize_embeddings {
        normalize(&all)
    } else {
        all
    })
}

/// Accuracies of one split compared to itself.
pub fn evaluate_split(
    dataset: &dyn Dataset,
    indices: &[usize],
    label_level: usize,
    trunk: &Model,
    embedder: Option<&Model>,
    settings: &EvalSettings,
    device: Device,
) -> Result<BTreeMap<String, f64>> {
    let emb = embeddings(dataset, indices, trunk, embedder, settings, device)?;
    let all_labels = dataset.labels(label_level);
    let labels: Vec<i64> = indices.iter().map(|&i| all_labels[i]).collect();
    retrieval_metrics(&emb, &labels, &emb, &labels, true)
}
