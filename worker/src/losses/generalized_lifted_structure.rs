//! `GeneralizedLiftedStructureLoss` (Hermans et al. 2017), per anchor:
//! `relu(log sum_P exp(d - pos_margin) + log sum_N exp(neg_margin - d))` (an empty side gives 0),
//! mean over all anchors.

use super::base::{generic_pairs, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{pair_masks, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct GeneralizedLiftedStructureLoss {
    neg_margin: f64,
    pos_margin: f64,
    distance: Distance,
}

impl GeneralizedLiftedStructureLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(GeneralizedLiftedStructureLoss {
            neg_margin: spec.f64("neg_margin", 1.0)?,
            pos_margin: spec.f64("pos_margin", 0.0)?,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl LossCore for GeneralizedLiftedStructureLoss {
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
        let pos = masked_logsumexp(
            &self.distance.margin_xs(&mat, self.pos_margin),
            &pos_mask,
            false,
            1,
        );
        let neg = masked_logsumexp(
            &self.distance.margin_sx(self.neg_margin, &mat),
            &neg_mask,
            false,
            1,
        );
        Ok(vec![SubLoss::new(
            "loss",
            (pos + neg).relu().view([-1]),
            Reduction::Element,
        )])
    }
}
