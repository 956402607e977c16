//! Regularizers (PML `regularizers/`): applied to the embeddings (`embedding_regularizer`) or to a
//! loss's class weights / proxies (`weight_regularizer`, rows = class vectors). Each returns its
//! reduced value; the loss adds it, times its `*_reg_weight`, as an already-reduced sub-loss.

use crate::distances::Distance;
use crate::errors::config_error;
use crate::numerics::{neg_inf, small_val};
use crate::reducers::{Reducer, Reduction, Stats, SubLoss};
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::{Kind, Tensor};

pub const REGULARIZERS: [&str; 4] = [
    "LpRegularizer",
    "RegularFaceRegularizer",
    "SparseCentersRegularizer",
    "ZeroMeanRegularizer",
];

#[derive(Debug, Clone)]
enum Kind2 {
    /// `||x_i||_p ^ power` per row.
    Lp { p: f64, power: f64 },
    /// `|sum_j x_ij|` per row.
    ZeroMean,
    /// Per class vector, the similarity to its nearest other class vector (Zhao et al. 2019).
    RegularFace,
    /// SoftTriple's centre regulariser: `sqrt(2 + tiny - min(2 cos, 2))` over pairs of centres of the
    /// same class, summed and divided by `C * K * (K - 1)`.
    SparseCenters {
        num_classes: i64,
        centers_per_class: i64,
    },
}

#[derive(Debug, Clone)]
pub struct Regularizer {
    kind: Kind2,
    reducer: Reducer,
    distance: Distance,
}

impl Regularizer {
    pub fn from_spec(spec: &mut Spec) -> Result<Regularizer> {
        let (kind, default_distance) = match spec.class.as_str() {
            "LpRegularizer" => (
                Kind2::Lp {
                    p: spec.f64("p", 2.0)?,
                    power: spec.f64("power", 1.0)?,
                },
                None,
            ),
            "ZeroMeanRegularizer" => (Kind2::ZeroMean, None),
            "RegularFaceRegularizer" => (Kind2::RegularFace, Some(Distance::cosine())),
            "SparseCentersRegularizer" => {
                let c = spec.optional_usize("num_classes")?;
                let k = spec.optional_usize("centers_per_class")?;
                match (c, k) {
                    (Some(c), Some(k)) if c > 0 && k > 1 => (
                        Kind2::SparseCenters {
                            num_classes: c as i64,
                            centers_per_class: k as i64,
                        },
                        Some(Distance::cosine()),
                    ),
                    _ => {
                        return Err(config_error(format!(
                            "`{}`: SparseCentersRegularizer needs num_classes >= 1 and centers_per_class >= 2",
                            spec.path
                        )))
                    }
                }
            }
            other => return Err(unknown_class(&spec.path, other, &REGULARIZERS)),
        };
        let distance = match default_distance {
            Some(d) => {
                let d = Distance::kwarg(spec, d)?;
                if !d.is_inverted() {
                    return Err(config_error(format!(
                        "`{}`: {} needs a similarity (CosineSimilarity)",
                        spec.path, spec.class
                    )));
                }
                d
            }
            None => Distance::default(),
        };
        let reducer = Reducer::kwarg(spec, Reducer::Mean, "MeanReducer()")?;
        Ok(Regularizer {
            kind,
            reducer,
            distance,
        })
    }

    /// The reduced regularisation value of `x` (rows = embeddings or class vectors).
    pub fn forward(&self, x: &Tensor, stats: &mut Stats) -> Result<Tensor> {
        let k = x.kind();
        let dim1 = [1i64];
        let sub = match &self.kind {
            Kind2::Lp { p, power } => {
                let mut reg = x.norm_scalaropt_dim(*p, dim1.as_slice(), false);
                if *power != 1.0 {
                    reg = reg.pow_tensor_scalar(*power);
                }
                SubLoss::new("reg", reg, Reduction::Element)
            }
            Kind2::ZeroMean => SubLoss::new(
                "reg",
                x.sum_dim_intlist(dim1.as_slice(), false, k).abs(),
                Reduction::Element,
            ),
            Kind2::RegularFace => {
                let cos = self.distance.matrix(x, x);
                let n = cos.size()[0];
                let eye = Tensor::eye(n, (Kind::Bool, x.device()));
                let nearest = cos.detach().masked_fill(&eye, neg_inf(k)).argmax(1, true);
                let picked = cos.gather(1, &nearest, false).view([-1]);
                SubLoss::new("reg", picked, Reduction::Element)
            }
            Kind2::SparseCenters {
                num_classes,
                centers_per_class,
            } => {
                let (c, kk) = (*num_classes, *centers_per_class);
                if x.size()[0] != c * kk {
                    return Err(config_error(format!(
                        "SparseCentersRegularizer expects {c} x {kk} centre rows, got {}",
                        x.size()[0]
                    )));
                }
                let cos = self.distance.matrix(x, x);
                let cls = Tensor::arange(c * kk, (Kind::Int64, x.device()))
                    .divide_scalar_mode(kk, "floor");
                let same = cls.unsqueeze(1).eq_tensor(&cls.unsqueeze(0));
                let upper = Tensor::ones([c * kk, c * kk], (Kind::Bool, x.device())).triu(1);
                let mask = same.logical_and(&upper);
                let vals = (cos * 2.0).clamp_max(2.0).masked_select(&mask);
                let reg = (-vals + 2.0 + small_val(k)).sqrt();
                let value = reg.sum(k) / ((c * kk * (kk - 1)) as f64);
                SubLoss::new("reg", value, Reduction::AlreadyReduced)
            }
        };
        self.reducer.reduce(&sub, x, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(v: serde_json::Value) -> Regularizer {
        let mut spec = Spec::parse("reg", &v).unwrap();
        let r = Regularizer::from_spec(&mut spec).unwrap();
        spec.finish().unwrap();
        r
    }

    #[test]
    fn values_by_hand() {
        let x = Tensor::from_slice(&[3.0f64, 4.0, 1.0, -2.0]).view([2, 2]);
        let mut st = Stats::new();
        let lp = build(serde_json::json!({"LpRegularizer": null}));
        let v = f64::try_from(lp.forward(&x, &mut st).unwrap()).unwrap();
        assert!((v - (5.0 + 5f64.sqrt()) / 2.0).abs() < 1e-12);
        let zm = build(serde_json::json!({"ZeroMeanRegularizer": null}));
        let v = f64::try_from(zm.forward(&x, &mut st).unwrap()).unwrap();
        assert_eq!(v, (7.0 + 1.0) / 2.0);
        let rf = build(serde_json::json!({"RegularFaceRegularizer": null}));
        // cos between (0.6, 0.8) and (1, -2)/sqrt5 = (0.6 - 1.6)/sqrt5
        let v = f64::try_from(rf.forward(&x, &mut st).unwrap()).unwrap();
        assert!((v + 1.0 / 5f64.sqrt()).abs() < 1e-12);
        let sc = build(
            serde_json::json!({"SparseCentersRegularizer": {"num_classes": 1, "centers_per_class": 2}}),
        );
        let v = f64::try_from(sc.forward(&x, &mut st).unwrap()).unwrap();
        let expected = (2.0 + 2.0 / 5f64.sqrt()).sqrt() / 2.0;
        assert!((v - expected).abs() < 1e-9, "{v} vs {expected}");
    }
}
