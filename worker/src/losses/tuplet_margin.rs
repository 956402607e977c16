//! `TupletMarginLoss` (Yu & Tao 2019), per positive pair (a, p):
//! `log(1 + sum_{(a,n)} exp(scale (s_an - cos(acos(s_ap) - margin))))`, margin in degrees;
//! mean over positive pairs. Like PML, `acos` is not clamped.

use super::base::{generic_pairs_of_both_kinds, require_inverted, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct TupletMarginLoss {
    /// Radians.
    margin: f64,
    scale: f64,
    distance: Distance,
}

impl TupletMarginLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        let loss = TupletMarginLoss {
            margin: spec.f64("margin", 5.73)?.to_radians(),
            scale: spec.f64("scale", 64.0)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        };
        require_inverted(&loss.distance, &spec.path, "TupletMarginLoss")?;
        Ok(loss)
    }
}

impl LossCore for TupletMarginLoss {
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
        let pos = (gather_pairs(&mat, a1, p).acos() - self.margin)
            .cos()
            .unsqueeze(1);
        let neg = gather_pairs(&mat, a2, n).unsqueeze(0);
        let inside = (neg - pos) * self.scale;
        let keep = a2.unsqueeze(0).eq_tensor(&a1.unsqueeze(1));
        let losses = masked_logsumexp(&inside, &keep, true, 1).view([-1]);
        Ok(vec![
            SubLoss::new("loss", losses, Reduction::PosPair).with_pairs(a1, p)
        ])
    }
}
