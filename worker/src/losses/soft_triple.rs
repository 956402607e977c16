//! `SoftTripleLoss` (Qian et al. 2019): `centers_per_class` learnable centres per class (`fc`,
//! D x C*K, kaiming-uniform init, own var store); class similarity = softmax(gamma^-1 * s)-weighted
//! centre similarity; cross-entropy on `la * (S - margin * onehot)`. As in PML the `gamma` kwarg is
//! used as its reciprocal. The paper's centre regulariser is `weight_regularizer`.

use super::base::{class_and_size, param, require_inverted, BuildContext, LossCore};
use crate::distances::Distance;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{miner_weights, IndicesTuple};
use anyhow::Result;
use tch::{nn, Tensor};

pub struct SoftTripleLoss {
    centers_per_class: i64,
    la: f64,
    inv_gamma: f64,
    margin: f64,
    distance: Distance,
    num_classes: i64,
    fc: Tensor,
    vs: nn::VarStore,
}

impl SoftTripleLoss {
    pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Self> {
        let (c, d) = class_and_size(spec, ctx)?;
        let k = spec.usize("centers_per_class", 10)?.max(1) as i64;
        let la = spec.f64("la", 20.0)?;
        let gamma = spec.f64("gamma", 0.1)?;
        let margin = spec.f64("margin", 0.01)?;
        let distance = Distance::kwarg(spec, Distance::cosine())?;
        require_inverted(&distance, &spec.path, "SoftTripleLoss")?;
        if gamma <= 0.0 {
            return Err(crate::errors::config_error(format!(
                "`{}`: gamma must be positive",
                spec.path
            )));
        }
        let vs = nn::VarStore::new(ctx.device);
        // kaiming_uniform_(a=sqrt(5)) on (D, C*K): bound 1/sqrt(fan_in), fan_in = C*K.
        let bound = 1.0 / ((c * k) as f64).sqrt();
        let fc = param(
            &vs,
            "fc",
            &[d, c * k],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        Ok(SoftTripleLoss {
            centers_per_class: k,
            la,
            inv_gamma: 1.0 / gamma,
            margin,
            distance,
            num_classes: c,
            fc,
            vs,
        })
    }
}

impl LossCore for SoftTripleLoss {
    fn compute(
        &self,
        embeddings: &Tensor,
        labels: &Tensor,
        indices: Option<&IndicesTuple>,
        _stats: &mut Stats,
    ) -> Result<Vec<SubLoss>> {
        let kind = embeddings.kind();
        let weights = miner_weights(indices, labels.size()[0], kind, embeddings.device(), false);
        let sim = self
            .distance
            .matrix(embeddings, &self.fc.to_kind(kind).tr())
            .view([-1, self.num_classes, self.centers_per_class]);
        let prob = (&sim * self.inv_gamma).softmax(2, kind);
        let sim_to_classes = (prob * sim).sum_dim_intlist([2i64].as_slice(), false, kind);
        let margin = labels.one_hot(self.num_classes).to_kind(kind) * self.margin;
        let logits = (sim_to_classes - margin) * self.la;
        let ce = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::None, -100, 0.0);
        Ok(vec![SubLoss::new("loss", ce * weights, Reduction::Element)])
    }
    fn regularized_weights(&self) -> Option<Tensor> {
        Some(self.fc.tr())
    }
    fn var_store(&self) -> Option<&nn::VarStore> {
        Some(&self.vs)
    }
    fn num_classes(&self) -> Option<i64> {
        Some(self.num_classes)
    }
}
