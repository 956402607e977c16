//! `MultiSimilarityLoss` (Wang et al. 2019), per anchor:
//! `1/alpha log(1 + sum_P exp(-alpha (S - base))) + 1/beta log(1 + sum_N exp(beta (S - base)))`,
//! averaged over all anchors (an empty side contributes 0).

use super::base::{generic_pairs, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{pair_masks, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct MultiSimilarityLoss {
    alpha: f64,
    beta: f64,
    base: f64,
    distance: Distance,
}

impl MultiSimilarityLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(MultiSimilarityLoss {
            alpha: spec.f64("alpha", 2.0)?,
            beta: spec.f64("beta", 50.0)?,
            base: spec.f64("base", 0.5)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        })
    }
}

impl LossCore for MultiSimilarityLoss {
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
        let pos_exp = self.distance.margin_xs(&mat, self.base);
        let neg_exp = self.distance.margin_sx(self.base, &mat);
        let pos = masked_logsumexp(&(pos_exp * self.alpha), &pos_mask, true, 1) / self.alpha;
        let neg = masked_logsumexp(&(neg_exp * self.beta), &neg_mask, true, 1) / self.beta;
        Ok(vec![SubLoss::new(
            "loss",
            (pos + neg).view([-1]),
            Reduction::Element,
        )])
    }
}
