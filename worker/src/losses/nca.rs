//! `NCALoss` (Goldberger et al. 2004): softmax over `-softmax_scale * d(x_i, x_j)` (self excluded),
//! loss `-log(sum of the probability mass on same-label samples)`, mean over samples with non-zero
//! mass. `nca_computation` is shared with ProxyNCA (reference = proxies).

use super::base::LossCore;
use crate::distances::Distance;
use crate::numerics::neg_inf;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{Kind, Tensor};

pub struct NCALoss {
    pub softmax_scale: f64,
    pub distance: Distance,
}

impl NCALoss {
    pub fn from_spec(spec: &mut Spec) -> Result<Self> {
        Ok(NCALoss {
            softmax_scale: spec.f64("softmax_scale", 1.0)?,
            distance: Distance::kwarg(spec, Distance::lp().with_power(2.0))?,
        })
    }
}

/// `reference = None` means the batch itself (then the diagonal is excluded).
pub fn nca_computation(
    distance: &Distance,
    softmax_scale: f64,
    query: &Tensor,
    reference: Option<(&Tensor, &Tensor)>,
    query_labels: &Tensor,
    weights: &Tensor,
) -> Vec<SubLoss> {
    let kind = query.kind();
    let (r, r_labels) = reference.unwrap_or((query, query_labels));
    let mut mat = distance.matrix(query, r);
    if !distance.is_inverted() {
        mat = -mat;
    }
    let mut scaled = mat * softmax_scale;
    if reference.is_none() {
        let n = query.size()[0];
        let eye = Tensor::eye(n, (Kind::Bool, query.device()));
        scaled = scaled.masked_fill(&eye, neg_inf(kind));
    }
    let same = query_labels
        .unsqueeze(1)
        .eq_tensor(&r_labels.unsqueeze(0))
        .to_kind(kind);
    let prob = scaled.softmax(1, kind);
    let mass = (prob * same).sum_dim_intlist([1i64].as_slice(), false, kind);
    let non_zero = mass.ne(0.0);
    let losses = -mass.masked_select(&non_zero).log() * weights.masked_select(&non_zero);
    vec![SubLoss::new("loss", losses, Reduction::Element)]
}

impl LossCore for NCALoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let n = embeddings.size()[0];
        if n <= 1 {
            return Ok(vec![SubLoss::zero("loss")]);
        }
        let w = miner_weights(indices, n, embeddings.kind(), embeddings.device(), false);
        Ok(nca_computation(
            &self.distance,
            self.softmax_scale,
            embeddings,
            None,
            labels,
            &w,
        ))
    }
}
