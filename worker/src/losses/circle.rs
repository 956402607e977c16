//! `CircleLoss` (Sun et al. 2020): per anchor
//! `softplus(logsumexp_p(-gamma [O_p - s]+ (s - D_p)) + logsumexp_n(gamma [s - O_n]+ (s - D_n)))`
//! with O_p = 1 + m, O_n = -m, D_p = 1 - m, D_n = m and the weights detached (as PML);
//! anchors lacking positives or negatives give 0. AvgNonZero over anchors.

use super::base::{generic_pairs, require_inverted, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{pair_masks, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct CircleLoss {
    m: f64,
    gamma: f64,
    distance: Distance,
}

impl CircleLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let loss = CircleLoss {
            m: spec.f64("m", 0.4)?,
            gamma: spec.f64("gamma", 80.0)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        };
        require_inverted(&loss.distance, &spec.path, "CircleLoss")?;
        Ok(loss)
    }
}

impl LossCore for CircleLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let Some(pairs) = generic_pairs(indices, labels, stats) else {
            return Ok(vec![SubLoss::zero("loss")]);
        };
        let mat = self.distance.matrix(embeddings, embeddings);
        let (pos_mask, neg_mask) = pair_masks(mat.size()[0], &pairs, Kind::Bool, mat.device());
        let (op, on, dp, dn) = (1.0 + self.m, -self.m, 1.0 - self.m, self.m);
        let logit_p = (-mat.detach() + op).relu() * (&mat - dp) * (-self.gamma);
        let logit_n = (mat.detach() - on).relu() * (&mat - dn) * self.gamma;
        let zeros = mat.zeros_like();
        let new_mat = logit_p.where_self(&pos_mask, &logit_n.where_self(&neg_mask, &zeros));
        let lse_p = masked_logsumexp(&new_mat, &pos_mask, false, 1);
        let lse_n = masked_logsumexp(&new_mat, &neg_mask, false, 1);
        let losses = (lse_p + lse_n).softplus().view([-1]);
        let has_both = pos_mask
            .any_dim(1, false)
            .logical_and(&neg_mask.any_dim(1, false));
        let losses = losses.masked_fill(&has_both.logical_not(), 0.0);
        Ok(vec![SubLoss::new("loss", losses, Reduction::Element)])
    }
}
