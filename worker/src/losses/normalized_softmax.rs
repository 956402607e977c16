//! `NormalizedSoftmaxLoss` (Zhai & Wu 2018): cross-entropy on `similarity(x, W_c normalised) / T`
//! with a learnable class matrix W (D x C, init N(0, 1), own var store).

use super::base::{class_and_size, param, BuildContext, LossCore};
use crate::distances::{normalize_p, Distance};
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{nn, Tensor};

pub struct NormalizedSoftmaxLoss {
    temperature: f64,
    distance: Distance,
    num_classes: i64,
    w: Tensor,
    vs: nn::VarStore,
}

impl NormalizedSoftmaxLoss {
    pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Self> {
        let (c, d) = class_and_size(spec, ctx)?;
        let temperature = spec.f64("temperature", 0.05)?;
        let distance = Distance::kwarg(spec, Distance::dot())?;
        let vs = nn::VarStore::new(ctx.device);
        let w = param(
            &vs,
            "W",
            &[d, c],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        Ok(NormalizedSoftmaxLoss {
            temperature,
            distance,
            num_classes: c,
            w,
            vs,
        })
    }
}

impl LossCore for NormalizedSoftmaxLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let weights = miner_weights(indices, labels.size()[0], kind, embeddings.device(), false);
        // Columns (class vectors) normalised: normalise rows of W^T.
        let wt = normalize_p(&self.w.to_kind(kind).tr(), self.distance.p);
        let mut logits = self.distance.matrix(embeddings, &wt) / self.temperature;
        if !self.distance.is_inverted() {
            logits = -logits;
        }
        let ce = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::None, -100, 0.0);
        Ok(vec![SubLoss::new("loss", ce * weights, Reduction::Element)])
    }
    fn regularized_weights(&self) -> Option<Tensor> {
        Some(self.w.tr())
    }
    fn var_store(&self) -> Option<&nn::VarStore> {
        Some(&self.vs)
    }
    fn num_classes(&self) -> Option<i64> {
        Some(self.num_classes)
    }
}
