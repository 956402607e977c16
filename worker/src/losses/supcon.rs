//! `SupConLoss` (Khosla et al. 2020): per anchor, minus the mean over its positives of
//! `log softmax` over positives and negatives (self excluded), with a detached row-max shift;
//! AvgNonZero over anchors (anchors without positives give 0 and drop out).

use super::base::{generic_pairs, LossCore};
use crate::distances::Distance;
use crate::numerics::{masked_logsumexp, small_val};
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{pair_masks, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct SupConLoss {
    temperature: f64,
    distance: Distance,
}

impl SupConLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(SupConLoss {
            temperature: spec.f64("temperature", 0.1)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        })
    }
}

impl LossCore for SupConLoss {
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
        let mut mat = self.distance.matrix(embeddings, embeddings);
        let kind = mat.kind();
        let (pos_mask, neg_mask) = pair_masks(mat.size()[0], &pairs, kind, mat.device());
        let any = |m: &Tensor| i64::try_from(m.gt(0.0).sum(tch::Kind::Int64)).unwrap_or(0) > 0;
        if !any(&pos_mask) || !any(&neg_mask) {
            return Ok(vec![SubLoss::zero("loss")]);
        }
        if !self.distance.is_inverted() {
            mat = -mat;
        }
        let mat = mat / self.temperature;
        let row_max = mat.amax([1i64].as_slice(), true).detach();
        let mat = mat - row_max;
        let keep = (&pos_mask + &neg_mask).gt(0.0);
        let denominator = masked_logsumexp(&mat, &keep, false, 1);
        let log_prob = mat - denominator;
        let dim = [1i64];
        let mean_log_prob_pos = (&pos_mask * log_prob).sum_dim_intlist(dim.as_slice(), false, kind)
            / (pos_mask.sum_dim_intlist(dim.as_slice(), false, kind) + small_val(kind));
        Ok(vec![SubLoss::new(
            "loss",
            -mean_log_prob_pos,
            Reduction::Element,
        )])
    }
}
