//! `ContrastiveLoss` (PML 2.x): positive pairs pulled within `pos_margin`, negative pairs pushed
//! beyond `neg_margin`; `pos_loss` and `neg_loss` are reduced separately (AvgNonZero) and summed.

use super::base::{generic_pairs, LossCore};
use crate::distances::Distance;
use crate::numerics::scalar;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct ContrastiveLoss {
    pub pos_margin: f64,
    pub neg_margin: f64,
    pub distance: Distance,
}

impl ContrastiveLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Self::from_spec_with(spec, Distance::lp())
    }

    pub fn from_spec_with(spec: &mut Spec, default_distance: Distance) -> Result<Self> {
        Ok(ContrastiveLoss {
            pos_margin: spec.f64("pos_margin", 0.0)?,
            neg_margin: spec.f64("neg_margin", 1.0)?,
            distance: Distance::kwarg(spec, default_distance)?,
        })
    }
}

impl LossCore for ContrastiveLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let Some(pairs) = generic_pairs(indices, labels, stats) else {
            return Ok(vec![SubLoss::zero("pos_loss"), SubLoss::zero("neg_loss")]);
        };
        let (a1, p, a2, n) = &pairs;
        let mat = self.distance.matrix(embeddings, embeddings);
        let pos = if a1.size()[0] > 0 {
            let d = gather_pairs(&mat, a1, p);
            stats.insert("pos_pair_dist".into(), scalar(&d.mean(d.kind())));
            let l = self.distance.margin_xs(&d, self.pos_margin).relu();
            SubLoss::new("pos_loss", l, Reduction::PosPair).with_pairs(a1, p)
        } else {
            SubLoss::zero("pos_loss")
        };
        let neg = if a2.size()[0] > 0 {
            let d = gather_pairs(&mat, a2, n);
            stats.insert("neg_pair_dist".into(), scalar(&d.mean(d.kind())));
            let l = self.distance.margin_sx(self.neg_margin, &d).relu();
            SubLoss::new("neg_loss", l, Reduction::NegPair).with_pairs(a2, n)
        } else {
            SubLoss::zero("neg_loss")
        };
        Ok(vec![pos, neg])
    }
}
