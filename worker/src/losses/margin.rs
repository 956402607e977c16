//! `MarginLoss` (Wu et al. 2017, "Sampling matters"): per triplet
//! `relu(d_ap - beta + margin) + relu(beta - d_an + margin)`, summed and divided by the number of
//! non-zero terms (DivisorReducer). `beta` is a scalar or one per class (`num_classes`); with
//! `learn_beta` it is a parameter (own var store, `metric_loss_optimizer`) and `beta * nu` is added.

use super::base::{BuildContext, LossCore};
use crate::distances::Distance;
use crate::reducers::{Reduction, Stats, SubLoss};
use crate::spec::Spec;
use crate::tuples::{convert_to_triplets, gather_pairs, IndicesTuple};
use anyhow::Result;
use tch::{nn, Kind, Tensor};

pub struct MarginLoss {
    margin: f64,
    nu: f64,
    learn_beta: bool,
    triplets_per_anchor: Option<usize>,
    distance: Distance,
    /// Shape [1] or [num_classes]; a parameter of `vs` when learnable.
    beta: Tensor,
    vs: Option<nn::VarStore>,
}

impl MarginLoss {
    pub fn from_spec(spec: &mut Spec, ctx: &BuildContext) -> Result<Self> {
        let margin = spec.f64("margin", 0.2)?;
        let nu = spec.f64("nu", 0.0)?;
        let beta0 = spec.f64("beta", 1.2)?;
        let triplets_per_anchor = spec.count_or_all("triplets_per_anchor")?;
        let learn_beta = spec.bool("learn_beta", false)?;
        let num_classes = spec.optional_usize("num_classes")?;
        let distance = Distance::kwarg(spec, Distance::lp())?;
        let len = num_classes.unwrap_or(1).max(1) as i64;
        let (beta, vs) = if learn_beta {
            let vs = nn::VarStore::new(ctx.device);
            let b = vs.root().var("beta", &[len], nn::Init::Const(beta0));
            (b, Some(vs))
        } else {
            // Double so float64 inputs see the exact value; cast to the batch's kind at use.
            (Tensor::full([len], beta0, (Kind::Double, ctx.device)), None)
        };
        Ok(MarginLoss {
            margin,
            nu,
            learn_beta,
            triplets_per_anchor,
            distance,
            beta,
            vs,
        })
    }
}

impl LossCore for MarginLoss {
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
            return Ok(vec![
                SubLoss::zero("margin_loss"),
                SubLoss::zero("beta_reg_loss"),
            ]);
        }
        let beta_all = self.beta.to_kind(embeddings.kind());
        let per_class = self.beta.size()[0] > 1;
        let beta = if per_class {
            beta_all.index_select(0, &labels.index_select(0, &a))
        } else {
            beta_all.shallow_clone()
        };
        let mat = self.distance.matrix(embeddings, embeddings);
        let d_ap = gather_pairs(&mat, &a, &p);
        let d_an = gather_pairs(&mat, &a, &n);
        let pos = (self.distance.margin(&d_ap, &beta) + self.margin).relu();
        let neg = (self.distance.margin(&beta, &d_an) + self.margin).relu();
        let num_pos = i64::try_from(pos.gt(0.0).sum(Kind::Int64))?;
        let num_neg = i64::try_from(neg.gt(0.0).sum(Kind::Int64))?;
        stats.insert("num_pos_pairs".into(), num_pos as f64);
        stats.insert("num_neg_pairs".into(), num_neg as f64);
        let divisor = (num_pos + num_neg) as f64;
        let margin_loss =
            SubLoss::new("margin_loss", pos + neg, Reduction::Triplet).with_divisor(divisor);
        let reg = if !self.learn_beta {
            SubLoss::zero("beta_reg_loss")
        } else if per_class {
            SubLoss::new("beta_reg_loss", &beta * self.nu, Reduction::Element).with_divisor(divisor)
        } else {
            SubLoss::new("beta_reg_loss", &beta * self.nu, Reduction::AlreadyReduced)
        };
        Ok(vec![margin_loss, reg])
    }

    fn var_store(&self) -> Option<&nn::VarStore> {
        self.vs.as_ref()
    }
    /// Per-class betas are indexed by label.
    fn num_classes(&self) -> Option<i64> {
        let len = self.beta.size()[0];
        (len > 1).then_some(len)
    }
}
