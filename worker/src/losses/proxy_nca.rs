//! `ProxyNCALoss` (Movshovitz-Attias et al. 2017): NCA against one learnable proxy per class
//! (`proxies`, C x D, init N(0, 1), own var store); mined tuples weight anchors only.

use super::base::{class_and_size, param, BuildContext, LossCore};
use super::nca::nca_computation;
use crate::distances::Distance;
use crate::reducers::{Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{nn, Kind, Tensor};

pub struct ProxyNCALoss {
    softmax_scale: f64,
    distance: Distance,
    num_classes: i64,
    proxies: Tensor,
    vs: nn::VarStore,
}

impl ProxyNCALoss {
    pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Self> {
        let (c, d) = class_and_size(spec, ctx)?;
        let softmax_scale = spec.f64("softmax_scale", 1.0)?;
        let distance = Distance::kwarg(spec, Distance::lp().with_power(2.0))?;
        let vs = nn::VarStore::new(ctx.device);
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        let proxies = param(&vs, "proxies", &[c, d], init);
        Ok(ProxyNCALoss {
            softmax_scale,
            distance,
            num_classes: c,
            proxies,
            vs,
        })
    }
}

impl LossCore for ProxyNCALoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let device = embeddings.device();
        let w = miner_weights(indices, labels.size()[0], kind, device, true);
        let proxies = self.proxies.to_kind(kind);
        let proxy_labels = Tensor::arange(self.num_classes, (Kind::Int64, device));
        Ok(nca_computation(
            &self.distance,
            self.softmax_scale,
            embeddings,
            Some((&proxies, &proxy_labels)),
            labels,
            &w,
        ))
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
