//! `DistanceWeightedMiner` (Wu et al. 2017): negatives sampled with probability proportional to the
//! inverse of the density of distances on the unit hypersphere, `d^(2-D) (1 - d^2/4)^((3-D)/2)`,
//! distances clamped below at `cutoff` and negatives beyond `nonzero_loss_cutoff` excluded; one
//! triplet per (anchor, positive draw) as PML's `get_random_triplet_indices` (torch RNG).

use super::MinerCore;
use crate::distances::{Distance, DistanceKind};
use crate::errors::config_error;
use crate::reducers::Stats;
use crate::spec::Spec;
use crate::tuples::{random_triplets, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct DistanceWeightedMiner {
    cutoff: f64,
    nonzero_loss_cutoff: f64,
    distance: Distance,
}

impl DistanceWeightedMiner {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let cutoff = spec.f64("cutoff", 0.5)?;
        let nonzero_loss_cutoff = spec.f64("nonzero_loss_cutoff", 1.4)?;
        let distance = Distance::kwarg(spec, Distance::lp())?;
        if distance.kind != DistanceKind::Lp
            || distance.p != 2.0
            || distance.power != 1.0
            || !distance.normalize_embeddings
        {
            return Err(config_error(format!(
                "`{}`: DistanceWeightedMiner needs LpDistance(p=2, power=1, normalize_embeddings=true)",
                spec.path
            )));
        }
        Ok(DistanceWeightedMiner {
            cutoff,
            nonzero_loss_cutoff,
            distance,
        })
    }
}

impl MinerCore for DistanceWeightedMiner {
    fn mine(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        _stats: &mut Stats,
    ) -> Result<IndicesTuple> {
        let k = embeddings.kind();
        let d = embeddings.size()[1] as f64;
        let mat = self
            .distance
            .matrix(embeddings, embeddings)
            .clamp_min(self.cutoff);
        let log_w = mat.log() * (2.0 - d)
            - (-(mat.pow_tensor_scalar(2.0) * 0.25) + 1.0).log() * ((d - 3.0) / 2.0);
        let bad = log_w.isinf().logical_or(&log_w.isnan());
        let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
        let mask = same.logical_not().to_kind(k);
        let log_w = &log_w * &mask;
        let finite = log_w.masked_select(&bad.logical_not());
        let max = if finite.numel() > 0 {
            finite.max()
        } else {
            Tensor::zeros([], (k, log_w.device()))
        };
        let w = (log_w - max).exp() * mask * mat.lt(self.nonzero_loss_cutoff).to_kind(k);
        let w = w.masked_fill(&bad, 0.0);
        let w = &w / w.sum_dim_intlist([1i64].as_slice(), true, k);
        let (a, p, n) = random_triplets(labels, None, Some(&w.to_kind(Kind::Double)));
        Ok(IndicesTuple::Triplets { a, p, n })
    }
}
