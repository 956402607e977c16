//! `NTXentLoss` (InfoNCE with label-defined positives): for every positive pair (a, p),
//! `-log(exp(s_ap/T) / (exp(s_ap/T) + sum_{(a,n)} exp(s_an/T)))`, other positives of `a` not in
//! the denominator; a detached max is subtracted for stability. Mean over positive pairs.

use super::base::{generic_pairs_of_both_kinds, LossCore};
use crate::distances::Distance;
use crate::numerics::{neg_inf, small_val};
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::Tensor;

pub struct NTXentLoss {
    temperature: f64,
    distance: Distance,
}

impl NTXentLoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(NTXentLoss {
            temperature: spec.f64("temperature", 0.07)?,
            distance: Distance::kwarg(spec, Distance::cosine())?,
        })
    }
}

impl LossCore for NTXentLoss {
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
        let mut pos = gather_pairs(&mat, a1, p);
        let mut neg = gather_pairs(&mat, a2, n);
        if !self.distance.is_inverted() {
            pos = -pos;
            neg = -neg;
        }
        let kind = mat.kind();
        let pos = pos.unsqueeze(1) / self.temperature;
        let neg = neg / self.temperature;
        // n_per_p[i, j]: negative pair j belongs to the anchor of positive pair i.
        let n_per_p = a2.unsqueeze(0).eq_tensor(&a1.unsqueeze(1));
        let neg = (neg.unsqueeze(0) * n_per_p.to_kind(kind))
            .masked_fill(&n_per_p.logical_not(), neg_inf(kind));
        let max_val = pos.maximum(&neg.amax([1i64].as_slice(), true)).detach();
        let numerator = (&pos - &max_val).exp().squeeze_dim(1);
        let denominator = (&neg - &max_val)
            .exp()
            .sum_dim_intlist([1i64].as_slice(), false, kind)
            + &numerator;
        let log_exp = (numerator / denominator + small_val(kind)).log();
        Ok(vec![
            SubLoss::new("loss", -log_exp, Reduction::PosPair).with_pairs(a1, p)
        ])
    }
}
