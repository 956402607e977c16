//! `TripletMarginLoss`: `relu(d_ap - d_an + margin)` (or softplus with `smooth_loss`) per triplet,
//! optionally with the anchor swap (`d_an := min(d_an, d_pn)`), reduced by AvgNonZero.

use super::base::LossCore;
use crate::distances::Distance;
use crate::numerics::scalar;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{convert_to_triplets, gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct TripletMarginLoss {
    margin: f64,
    swap: bool,
    smooth_loss: bool,
    triplets_per_anchor: Option<usize>,
    distance: Distance,
}

impl TripletMarginLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(TripletMarginLoss {
            margin: spec.f64("margin", 0.05)?,
            swap: spec.bool("swap", false)?,
            smooth_loss: spec.bool("smooth_loss", false)?,
            triplets_per_anchor: spec.count_or_all("triplets_per_anchor")?,
            distance: Distance::kwarg(spec, Distance::lp())?,
        })
    }
}

impl LossCore for TripletMarginLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let (a, p, n) = convert_to_triplets(indices, labels, self.triplets_per_anchor);
        stats.insert("num_triplets".into(), a.size()[0] as f64);
        if a.size()[0] == 0 {
            return Ok(vec![SubLoss::zero("loss")]);
        }
        let mat = self.distance.matrix(embeddings, embeddings);
        let ap = gather_pairs(&mat, &a, &p);
        let mut an = gather_pairs(&mat, &a, &n);
        if self.swap {
            let pn = gather_pairs(&mat, &p, &n);
            an = self.distance.smallest(&an, &pn);
        }
        let violation = self.distance.margin(&ap, &an) + self.margin;
        let losses = if self.smooth_loss {
            violation.softplus()
        } else {
            violation.relu()
        };
        stats.insert(
            "avg_violation".into(),
            scalar(&violation.mean(violation.kind())),
        );
        Ok(vec![SubLoss::new("loss", losses, Reduction::Triplet)])
    }
}
