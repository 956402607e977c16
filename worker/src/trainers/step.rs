//! One training iteration, the part a training method defines (as PML's trainers define only
//! `calculate_loss` and how the optimizers step): optionally shrink the batch with the subset-batch
//! miner, compute the method's losses, weight them for this epoch, and let every optimizer that
//! learns in this epoch take one step on the gradient of the total. The fold's loop (epochs,
//! evaluation, checkpoints, records) calls this once per batch and knows nothing of the method.

use super::Components;
use crate::precision::Precision;
use crate::reducers::Stats;
use anyhow::Result;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// What one iteration did.
pub enum Step {
    /// Every loss was finite and the learning optimizers stepped. `losses` are the unweighted
    /// values by name; `total` is the weighted sum they stepped on.
    Done {
        losses: BTreeMap<String, f64>,
        total: f64,
    },
    /// Loss `name` was `value` (NaN or infinite), so no optimizer stepped.
    NonFinite { name: String, value: f64 },
}

impl Components {
    /// Trains on one batch `x` with `labels` (both on the training device) in `epoch`. Statistics of
    /// the miners and losses go to `record_stats` as (component, statistics) as soon as they are
    /// known, the subset-batch miner's first. `rng` is the method's own randomness (DAML's
    /// triplets), a stream apart from the sampler's.
    pub fn train_step(
        &mut self,
        x: Tensor,
        labels: Tensor,
        epoch: i64,
        rng: &mut ChaCha8Rng,
        record_stats: &mut dyn FnMut(&str, &Stats) -> Result<()>,
    ) -> Result<Step> {
        let (mut x, mut labels) = (x, labels);
        if self.pipeline.has_subset_batch_miner() {
            let emb = tch::no_grad(|| self.embedder().forward(&self.trunk().forward(&x)));
            if let Some((keep, stats)) = self.pipeline.subset_batch(&emb, &labels)? {
                record_stats("subset_batch_miner", &stats)?;
                x = x.index_select(0, &keep);
                labels = labels.index_select(0, &keep);
            }
        }
        let precision = self.precision;
        let parts = precision.run(|| self.batch_losses(&x, &labels, epoch, rng))?;
        for (component, stats) in self.take_stats() {
            record_stats(&component, &stats)?;
        }
        let mut total = Tensor::zeros([], (Kind::Float, x.device()));
        let mut losses = BTreeMap::new();
        for (name, value) in &parts {
            let v = f64::try_from(value).unwrap_or(f64::NAN);
            if !v.is_finite() {
                return Ok(Step::NonFinite {
                    name: name.clone(),
                    value: v,
                });
            }
            losses.insert(name.clone(), v);
            total += value * self.weight(name, epoch);
        }
        if !parts.is_empty() {
            self.step_optimizers(&total, epoch);
        }
        Ok(Step::Done {
            losses,
            total: f64::try_from(&total).unwrap_or(f64::NAN),
        })
    }

    /// One step of every optimizer that learns in `epoch`, on the gradient of `total`.
    fn step_optimizers(&mut self, total: &Tensor, epoch: i64) {
        let learners: Vec<bool> = self
            .optimizers
            .iter()
            .map(|o| self.learns(&o.name, epoch))
            .collect();
        // Gradients of the learning optimizers' parameters straight from autograd
        // (`torch.autograd.grad`) instead of zeroing every `.grad` and accumulating into it: two
        // passes over each parameter fewer, and no gradients for models that sit out this epoch.
        let inputs: Vec<Tensor> = self
            .optimizers
            .iter()
            .zip(&learners)
            .filter(|(_, learns)| **learns)
            .flat_map(|(o, _)| o.parameters().map(Tensor::shallow_clone))
            .collect();
        let fp16 = self.precision == Precision::Float16;
        let mut grads = if total.requires_grad() && !inputs.is_empty() {
            // fp16: gradients of the scaled loss, so small ones do not flush to zero.
            let target = if fp16 {
                total * self.scaler.scale
            } else {
                total.shallow_clone()
            };
            Tensor::run_backward(&[&target], &inputs, false, false)
        } else {
            inputs.iter().map(|_| Tensor::new()).collect()
        };
        if fp16 && !self.scaler.unscale(&mut grads) {
            // An overflow: this step is skipped and the scale lowered, as GradScaler does.
            return;
        }
        let mut grads = grads.as_slice();
        for (opt, learns) in self.optimizers.iter_mut().zip(learners) {
            if learns {
                let (mine, rest) = grads.split_at(opt.parameters().count());
                grads = rest;
                opt.clip(mine);
                opt.step_with(mine);
                opt.end_of_iteration();
            }
        }
    }
}
