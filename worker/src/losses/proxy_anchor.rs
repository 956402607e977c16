//! `ProxyAnchorLoss` (Kim et al. 2020): with `cos` = similarity to learnable proxies (C x D,
//! kaiming-normal fan-out init, own var store),
//! `sum_c log(1 + sum_{y_i = c} exp(-alpha (cos_ic - margin)))` / #classes present +
//! `sum_c log(1 + sum_{y_i != c} exp(alpha (cos_ic + margin)))` / C. Miner weights enter the
//! exponent as `w - 1` (PML).

use super::base::{class_and_size, param, BuildContext, LossCore};
use crate::distances::Distance;
use crate::numerics::masked_logsumexp;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{nn, Kind, Tensor};

pub struct ProxyAnchorLoss {
    margin: f64,
    alpha: f64,
    distance: Distance,
    num_classes: i64,
    proxies: Tensor,
    vs: nn::VarStore,
}

impl ProxyAnchorLoss {
    pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Self> {
        let (c, d) = class_and_size(spec, ctx)?;
        let margin = spec.f64("margin", 0.1)?;
        let alpha = spec.f64("alpha", 32.0)?;
        let distance = Distance::kwarg(spec, Distance::cosine())?;
        let vs = nn::VarStore::new(ctx.device);
        // kaiming_normal_(mode="fan_out") on (C, D): fan_out = C, gain sqrt(2).
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: (2.0 / c as f64).sqrt(),
        };
        let proxies = param(&vs, "proxies", &[c, d], init);
        Ok(ProxyAnchorLoss {
            margin,
            alpha,
            distance,
            num_classes: c,
            proxies,
            vs,
        })
    }
}

impl LossCore for ProxyAnchorLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let device = embeddings.device();
        let w = miner_weights(indices, labels.size()[0], kind, device, false).unsqueeze(1) - 1.0;
        let cos = self
            .distance
            .matrix(embeddings, &self.proxies.to_kind(kind));
        let pos_mask = labels.one_hot(self.num_classes).gt(0);
        let neg_mask = pos_mask.logical_not();
        let with_pos = i64::try_from(pos_mask.any_dim(0, false).sum(Kind::Int64))?;
        let pos_exp = self.distance.margin_xs(&cos, self.margin);
        let neg_exp = self.distance.margin_sx(-self.margin, &cos);
        let pos = masked_logsumexp(&(pos_exp * self.alpha + &w), &pos_mask, true, 0).view([-1]);
        let neg = masked_logsumexp(&(neg_exp * self.alpha + &w), &neg_mask, true, 0).view([-1]);
        Ok(vec![
            SubLoss::new("pos_loss", pos, Reduction::Element).with_divisor(with_pos as f64),
            SubLoss::new("neg_loss", neg, Reduction::Element).with_divisor(self.num_classes as f64),
        ])
    }
    fn regularized_weights(&self) -> Option<Tensor> {
        Some(self.proxies.shallow_clone())
    }
    fn var_store(&self) -> Option<&nn::VarStore> {
        Some(&self.vs)
    }
    fn num_classes(&self) -> Option<i64> {
        Some(self.num_classes)
    }
}
