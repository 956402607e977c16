//! Shared core of the additive-margin softmax losses (ArcFace, CosFace): cosine between normalised
//! embeddings and normalised class columns of a learnable W (D x C, init N(0, 1), own var store);
//! only the target-class cosine is changed by the loss's margin rule, then `scale * cos` goes
//! through cross-entropy (mean, weighted by miner weights).

use super::base::{class_and_size, param, BuildContext, LossCore};
use crate::distances::Distance;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{nn, Tensor};

pub enum MarginRule {
    /// Additive angular margin (radians).
    ArcFace(f64),
    /// Additive cosine margin.
    CosFace(f64),
}

pub struct LargeMarginLoss {
    rule: MarginRule,
    scale: f64,
    distance: Distance,
    num_classes: i64,
    w: Tensor,
    vs: nn::VarStore,
}

impl LargeMarginLoss {
    pub fn from_spec(
        spec: &mut Spec,
        ctx: &BuildContext,
        default_margin: f64,
        rule: fn(f64) -> MarginRule,
    ) -> Result<Self> {
        let (c, d) = class_and_size(spec, ctx)?;
        let margin = spec.f64("margin", default_margin)?;
        let scale = spec.f64("scale", 64.0)?;
        let distance = Distance::kwarg(spec, Distance::cosine())?;
        if distance.kind != crate::distances::DistanceKind::Cosine {
            return Err(crate::errors::config_error(format!(
                "`{}`: {} needs CosineSimilarity (as PML asserts), got {}",
                spec.path,
                spec.class,
                distance.class_name()
            )));
        }
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
        Ok(LargeMarginLoss {
            rule: rule(margin),
            scale,
            distance,
            num_classes: c,
            w,
            vs,
        })
    }

    fn modify(&self, cos: &Tensor) -> Tensor {
        match self.rule {
            MarginRule::CosFace(m) => cos - m,
            MarginRule::ArcFace(m) => {
                let angles = cos.clamp(-1.0, 1.0).acos();
                let plus = (&angles + m).cos();
                // Past pi - m, cos(theta + m) would rise again; PML switches to a linear penalty
                // to keep the target logit monotone in theta.
                let fallback = angles.cos() - m * m.sin();
                plus.where_self(&angles.le(std::f64::consts::PI - m), &fallback)
            }
        }
    }
}

impl LossCore for LargeMarginLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let weights = miner_weights(indices, labels.size()[0], kind, embeddings.device(), false);
        let cos = self.distance.matrix(embeddings, &self.w.to_kind(kind).tr());
        let mask = labels.one_hot(self.num_classes).to_kind(kind);
        let target = cos.gather(1, &labels.view([-1, 1]), false);
        let diff = self.modify(&target) - &target;
        let logits = (cos + mask * diff) * self.scale;
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
