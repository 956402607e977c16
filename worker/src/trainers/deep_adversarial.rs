//! `DeepAdversarialMetricLearning` (Duan et al. 2018, PML trainer): a generator turns (anchor,
//! positive, negative) trunk features into a synthetic hard negative. Phases by epoch: up to
//! `metric_alone_epochs` only the metric model learns; the next `g_alone_epochs` only the
//! generator; then both. Losses: `metric_loss` on real embeddings, `synth_loss` (a metric loss on
//! the triplets with synthetic negatives), `g_adv_loss` (the same kind of loss, negated, for the
//! generator), and the generator's `g_hard_loss` (synthetic negative close to the anchor) and
//! `g_reg_loss` (close to the real negative), both mean squared errors of L2-normalised features.

use super::Components;
use crate::errors::config_error;
use crate::models::{self, Model};
use crate::spec::Config;
use anyhow::Result;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Reduction, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct DamlSettings {
    pub metric_alone_epochs: i64,
    pub g_alone_epochs: i64,
    pub g_triplets_per_anchor: usize,
}

impl DamlSettings {
    pub fn from_config(cfg: &Config) -> Result<Self> {
        let g_triplets_per_anchor = cfg.usize("g_triplets_per_anchor", Some(100))?;
        if g_triplets_per_anchor == 0 {
            return Err(config_error("g_triplets_per_anchor must be at least 1"));
        }
        Ok(DamlSettings {
            metric_alone_epochs: cfg.usize("metric_alone_epochs", Some(0))? as i64,
            g_alone_epochs: cfg.usize("g_alone_epochs", Some(0))? as i64,
            g_triplets_per_anchor,
        })
    }

    fn metric_alone(&self, epoch: i64) -> bool {
        epoch <= self.metric_alone_epochs
    }

    fn g_alone(&self, epoch: i64) -> bool {
        self.metric_alone_epochs < epoch && epoch <= self.metric_alone_epochs + self.g_alone_epochs
    }

    fn does_metric(&self, epoch: i64) -> bool {
        !self.g_alone(epoch)
    }

    fn does_adversarial(&self, epoch: i64) -> bool {
        !self.metric_alone(epoch)
    }

    /// PML's `update_loss_weights`: the losses of the inactive phase get weight 0.
    pub fn loss_active(&self, name: &str, epoch: i64) -> bool {
        match name {
            "g_hard_loss" | "g_reg_loss" | "g_adv_loss" => self.does_adversarial(epoch),
            "metric_loss" | "classifier_loss" => self.does_metric(epoch),
            "synth_loss" => self.does_metric(epoch) && self.does_adversarial(epoch),
            _ => true,
        }
    }

    /// The generator learns in adversarial phases, every other model in metric phases.
    pub fn learns(&self, optimizer: &str, epoch: i64) -> bool {
        if optimizer == "generator_optimizer" {
            self.does_adversarial(epoch)
        } else {
            self.does_metric(epoch)
        }
    }
}

/// The generator (`models/generator`, default the original's MLP `[3d -> d -> d]` with a final
/// ReLU, `d` = trunk output size): maps concatenated (anchor, positive, negative) trunk features
/// to a synthetic negative in trunk-feature space.
pub fn generator(models_cfg: &serde_json::Value, trunk_dim: i64, device: Device) -> Result<Model> {
    let default =
        serde_json::json!({"MLP": {"layer_sizes": [trunk_dim, trunk_dim], "final_relu": true}});
    let spec = models_cfg
        .get("generator")
        .filter(|v| !v.is_null())
        .unwrap_or(&default);
    let model = models::build_extra("generator", spec, 3 * trunk_dim, device)?;
    if model.output_dim != trunk_dim {
        return Err(config_error(format!(
            "models/generator must output trunk-sized features ({trunk_dim}), but outputs {}",
            model.output_dim
        )));
    }
    Ok(model)
}

/// Random (anchor, positive, negative) triplets: for every sample that has a positive and a
/// negative in the batch, `per_anchor` triplets with random positive and negative (PML
/// `get_random_triplet_indices`).
pub fn random_triplets(
    labels: &[i64],
    per_anchor: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let (mut a, mut p, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &l) in labels.iter().enumerate() {
        let pos: Vec<usize> = (0..labels.len())
            .filter(|&j| j != i && labels[j] == l)
            .collect();
        let neg: Vec<usize> = (0..labels.len()).filter(|&j| labels[j] != l).collect();
        if pos.is_empty() || neg.is_empty() {
            continue;
        }
        for _ in 0..per_anchor {
            a.push(i as i64);
            p.push(pos[rng.random_range(0..pos.len())] as i64);
            n.push(neg[rng.random_range(0..neg.len())] as i64);
        }
    }
    (a, p, n)
}

fn normalized_mse(a: &Tensor, b: &Tensor) -> Tensor {
    crate::distances::normalize(a).mse_loss(&crate::distances::normalize(b), Reduction::Mean)
}

pub fn losses(
    c: &Components,
    s: &DamlSettings,
    x: &Tensor,
    labels: &Tensor,
    epoch: i64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<(String, Tensor)>> {
    let features = c.trunk().forward(x);
    let mut out = Vec::new();
    if s.does_metric(epoch) {
        let embeddings = c.embedder().forward(&features);
        out.extend(c.compute_loss("metric_loss", &embeddings, labels)?);
    }
    if !s.does_adversarial(epoch) {
        return Ok(out);
    }
    let cpu_labels: Vec<i64> = Vec::<i64>::try_from(labels.to_device(Device::Cpu))?;
    let (a, p, n) = random_triplets(&cpu_labels, s.g_triplets_per_anchor, rng);
    if a.is_empty() {
        return Ok(out);
    }
    let device = features.device();
    let idx = |v: &[i64]| Tensor::from_slice(v).to_device(device);
    let (a, p, n) = (idx(&a), idx(&p), idx(&n));
    let real_a = features.index_select(0, &a);
    let real_p = features.index_select(0, &p);
    let real_n = features.index_select(0, &n);
    let synthetic = c
        .model("generator")
        .forward(&Tensor::cat(&[&real_a, &real_p, &real_n], 1));
    // Rows interleaved as (a0, p0, n0, a1, p1, n1, ...), PML's `unslice_by_n`.
    let d = features.size()[1];
    let packed = Tensor::stack(&[&real_a, &real_p, &synthetic], 1).view([-1, d]);
    let packed_labels = Tensor::stack(
        &[
            labels.index_select(0, &a),
            labels.index_select(0, &p),
            labels.index_select(0, &n),
        ],
        1,
    )
    .view([-1]);
    let final_embeddings = c.embedder().forward(&packed);
    if s.loss_active("synth_loss", epoch) {
        out.extend(c.compute_loss("synth_loss", &final_embeddings, &packed_labels)?);
    }
    if let Some((name, loss)) = c.compute_loss("g_adv_loss", &final_embeddings, &packed_labels)? {
        out.push((name, -loss));
    }
    out.push(("g_hard_loss".into(), normalized_mse(&synthetic, &real_a)));
    out.push(("g_reg_loss".into(), normalized_mse(&synthetic, &real_n)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn triplets_are_valid_and_phases_follow_epochs() {
        let labels = [0, 0, 1, 1, 2];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (a, p, n) = random_triplets(&labels, 3, &mut rng);
        assert_eq!(a.len(), 4 * 3, "the lone label-2 sample has no positive");
        for ((a, p), n) in a.iter().zip(&p).zip(&n) {
            let (a, p, n) = (*a as usize, *p as usize, *n as usize);
            assert!(a != p && labels[a] == labels[p] && labels[a] != labels[n]);
        }
        let s = DamlSettings {
            metric_alone_epochs: 2,
            g_alone_epochs: 1,
            g_triplets_per_anchor: 1,
        };
        assert!(s.learns("trunk_optimizer", 2) && !s.learns("generator_optimizer", 2));
        assert!(!s.learns("trunk_optimizer", 3) && s.learns("generator_optimizer", 3));
        assert!(s.learns("trunk_optimizer", 4) && s.learns("generator_optimizer", 4));
        assert!(!s.loss_active("synth_loss", 3) && s.loss_active("synth_loss", 4));
        assert!(!s.loss_active("g_adv_loss", 1) && s.loss_active("metric_loss", 1));
    }
}
