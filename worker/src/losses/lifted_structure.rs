//! `LiftedStructureLoss` (Song et al. 2016), per ordered positive pair (a, p):
//! `relu(log(sum_{(a,n)} exp(neg_margin - d_an) + sum_{(p,n)} exp(neg_margin - d_pn)) + d_ap - pos_margin)^2 / 2`,
//! mean over positive pairs.

use super::base::{generic_pairs_of_both_kinds, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct LiftedStructureLoss {
    neg_margin: f64,
    pos_margin: f64,
    distance: Distance,
}

impl LiftedStructureLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(LiftedStructureLoss {
            neg_margin: spec.f64("neg_margin", 1.0)?,
            pos_margin: spec.f64("pos_margin", 0.0)?,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl LossCore for LiftedStructureLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let Some(pairs) = generic_pairs_of_both_kinds(indices, labels, stats) else {
            return Ok(vec![SubLoss::zero("loss")]);
        };
        let (a1, p, a2, n) = &pairs;
        let mat = self.distance.matrix(embeddings, embeddings);
        let kind = mat.kind();
        let pos = gather_pairs(&mat, a1, p).unsqueeze(1);
        let neg = gather_pairs(&mat, a2, n);
        let n_per_p = a2
            .unsqueeze(0)
            .eq_tensor(&a1.unsqueeze(1))
            .logical_or(&a2.unsqueeze(0).eq_tensor(&p.unsqueeze(1)));
        let neg = neg.unsqueeze(0) * n_per_p.to_kind(kind);
        let neg = self.distance.margin_sx(self.neg_margin, &neg);
        let neg_loss = masked_logsumexp(&neg, &n_per_p, false, 1);
        let per_pair = neg_loss + self.distance.margin_xs(&pos, self.pos_margin);
        let per_pair = per_pair.relu().pow_tensor_scalar(2.0) / 2.0;
        Ok(vec![SubLoss::new(
            "loss",
            per_pair.view([-1]),
            Reduction::PosPair,
        )
        .with_pairs(a1, p)])
    }
}
