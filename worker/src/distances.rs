//! Distances (PML `distances/`). The sign convention lives here only: an inverted distance is a
//! similarity (larger = closer). Losses and miners never compare raw values themselves; they ask
//! `margin`, `smallest`/`largest`, `closest_is_max` so that one formula serves both kinds.

use crate::errors::config_error;
use crate::spec::{unknown_class, Spec};
use anyhow::Result;
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DistanceKind {
    /// `torch.cdist(q, r, p)`.
    Lp,
    /// `q @ r.T` (PML still normalises by default, so it equals cosine unless told otherwise).
    DotProduct,
    /// `q @ r.T` on normalised rows (normalisation cannot be switched off).
    Cosine,
    /// Signal-to-noise ratio `var(r_j - q_i) / var(q_i)` (Yuan et al. 2019).
    Snr,
}

#[derive(Debug, Clone, Copy)]
pub struct Distance {
    pub kind: DistanceKind,
    pub normalize_embeddings: bool,
    pub p: f64,
    pub power: f64,
}

impl Default for Distance {
    fn default() -> Self {
        Distance::lp()
    }
}

pub const DISTANCES: [&str; 4] = [
    "CosineSimilarity",
    "DotProductSimilarity",
    "LpDistance",
    "SNRDistance",
];

/// Rows scaled to unit `p`-norm like `F.normalize(x, p, dim=1, eps=1e-12)`.
pub fn normalize_p(x: &Tensor, p: f64) -> Tensor {
    let norms = x.norm_scalaropt_dim(p, [1], true).clamp_min(1e-12);
    x / norms
}

/// L2 row normalisation.
pub fn normalize(x: &Tensor) -> Tensor {
    normalize_p(x, 2.0)
}

impl Distance {
    pub fn new(kind: DistanceKind) -> Distance {
        Distance {
            kind,
            normalize_embeddings: true,
            p: 2.0,
            power: 1.0,
        }
    }
    pub fn lp() -> Distance {
        Distance::new(DistanceKind::Lp)
    }
    pub fn cosine() -> Distance {
        Distance::new(DistanceKind::Cosine)
    }
    pub fn dot() -> Distance {
        Distance::new(DistanceKind::DotProduct)
    }
    pub fn snr() -> Distance {
        Distance::new(DistanceKind::Snr)
    }
    pub fn with_power(mut self, power: f64) -> Distance {
        self.power = power;
        self
    }

    /// PML class name (for messages and the registry).
    pub fn class_name(&self) -> &'static str {
        match self.kind {
            DistanceKind::Lp => "LpDistance",
            DistanceKind::DotProduct => "DotProductSimilarity",
            DistanceKind::Cosine => "CosineSimilarity",
            DistanceKind::Snr => "SNRDistance",
        }
    }

    /// PML-style constructor text listing the non-default settings, e.g. `LpDistance(power=2)`.
    pub fn label(&self) -> String {
        let mut args = Vec::new();
        if !self.normalize_embeddings {
            args.push("normalize_embeddings=false".to_string());
        }
        if self.p != 2.0 {
            args.push(format!("p={}", self.p));
        }
        if self.power != 1.0 {
            args.push(format!("power={}", self.power));
        }
        format!("{}({})", self.class_name(), args.join(","))
    }

    /// Builds a distance from `{Class: kwargs}` (all share `normalize_embeddings`, `p`, `power`).
    pub fn from_spec(spec: &mut Spec) -> Result<Distance> {
        let kind = match spec.class.as_str() {
            "LpDistance" => DistanceKind::Lp,
            "DotProductSimilarity" => DistanceKind::DotProduct,
            "CosineSimilarity" => DistanceKind::Cosine,
            "SNRDistance" => DistanceKind::Snr,
            other => return Err(unknown_class(&spec.path, other, &DISTANCES)),
        };
        let d = Distance {
            kind,
            normalize_embeddings: spec.bool("normalize_embeddings", true)?,
            p: spec.f64("p", 2.0)?,
            power: spec.f64("power", 1.0)?,
        };
        if kind == DistanceKind::Cosine && !d.normalize_embeddings {
            return Err(config_error(format!(
                "`{}`: CosineSimilarity requires normalize_embeddings=true (use DotProductSimilarity otherwise)",
                spec.path
            )));
        }
        if d.p <= 0.0 {
            return Err(config_error(format!("`{}`: p must be positive", spec.path)));
        }
        Ok(d)
    }

    /// Reads the optional nested `distance` kwarg of a loss or miner, falling back to `default`.
    pub fn kwarg(spec: &mut Spec, default: Distance) -> Result<Distance> {
        let label = default.label();
        match spec.nested("distance", &label)? {
            None => Ok(default),
            Some(mut sub) => {
                let d = Distance::from_spec(&mut sub)?;
                sub.finish()?;
                Ok(d)
            }
        }
    }

    /// Larger-is-closer (similarities) versus smaller-is-closer (distances).
    pub fn is_inverted(&self) -> bool {
        matches!(self.kind, DistanceKind::DotProduct | DistanceKind::Cosine)
    }

    pub fn maybe_normalize(&self, x: &Tensor) -> Tensor {
        if self.normalize_embeddings {
            normalize_p(x, self.p)
        } else {
            x.shallow_clone()
        }
    }

    /// Pairwise matrix between query rows and reference rows (`BaseDistance.forward`).
    pub fn matrix(&self, query: &Tensor, reference: &Tensor) -> Tensor {
        let q = self.maybe_normalize(query);
        let r = self.maybe_normalize(reference);
        let mat = match self.kind {
            DistanceKind::Lp => Tensor::cdist(&q, &r, self.p, None::<i64>),
            DistanceKind::DotProduct | DistanceKind::Cosine => q.matmul(&r.tr()),
            DistanceKind::Snr => {
                let anchor_var = q.var_dim([1i64].as_slice(), true, false);
                let diffs = q.unsqueeze(1) - r.unsqueeze(0);
                diffs.var_dim([2i64].as_slice(), true, false) / anchor_var.unsqueeze(1)
            }
        };
        if self.power != 1.0 {
            mat.pow_tensor_scalar(self.power)
        } else {
            mat
        }
    }

    /// Row-wise distance between `a[i]` and `b[i]` without normalisation (PML
    /// `pairwise_distance`; `F.pairwise_distance` adds 1e-6 to the difference).
    pub fn pairwise(&self, a: &Tensor, b: &Tensor) -> Tensor {
        match self.kind {
            DistanceKind::Lp => Tensor::pairwise_distance(a, b, self.p, 1e-6, false),
            DistanceKind::DotProduct | DistanceKind::Cosine => {
                (a * b).sum_dim_intlist([1i64].as_slice(), false, a.kind())
            }
            DistanceKind::Snr => {
                (a - b).var_dim([1i64].as_slice(), true, false)
                    / a.var_dim([1i64].as_slice(), true, false)
            }
        }
    }

    /// `x - y` for distances, `y - x` for similarities: positive means "x is farther than y".
    pub fn margin(&self, x: &Tensor, y: &Tensor) -> Tensor {
        if self.is_inverted() {
            y - x
        } else {
            x - y
        }
    }

    /// `margin(x, c)` for a scalar `c`.
    pub fn margin_xs(&self, x: &Tensor, c: f64) -> Tensor {
        if self.is_inverted() {
            -x + c
        } else {
            x - c
        }
    }

    /// `margin(c, x)` for a scalar `c`.
    pub fn margin_sx(&self, c: f64, x: &Tensor) -> Tensor {
        if self.is_inverted() {
            x - c
        } else {
            -x + c
        }
    }

    /// Element-wise closer of two values (min distance / max similarity).
    pub fn smallest(&self, a: &Tensor, b: &Tensor) -> Tensor {
        if self.is_inverted() {
            a.maximum(b)
        } else {
            a.minimum(b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn conventions_and_values() {
        let x = Tensor::from_slice(&[3.0f64, 4.0, 0.0, 2.0]).view([2, 2]);
        let lp = Distance::lp().matrix(&x, &x);
        // normalised: (0.6, 0.8) and (0, 1): distance sqrt(0.36 + 0.04)
        let d01 = f64::try_from(lp.get(0).get(1)).unwrap();
        assert!((d01 - 0.4f64.sqrt()).abs() < 1e-12);
        let cos = Distance::cosine().matrix(&x, &x);
        assert!((f64::try_from(cos.get(0).get(1)).unwrap() - 0.8).abs() < 1e-12);
        let mut raw = Distance::dot();
        raw.normalize_embeddings = false;
        let dot = raw.matrix(&x, &x);
        assert_eq!(f64::try_from(dot.get(0).get(1)).unwrap(), 8.0);
        assert!(!Distance::lp().is_inverted() && Distance::cosine().is_inverted());
        let sq = Distance::lp().with_power(2.0).matrix(&x, &x);
        assert!((f64::try_from(sq.get(0).get(1)).unwrap() - 0.4).abs() < 1e-12);
        let a = Tensor::from_slice(&[1.0f64]);
        let b = Tensor::from_slice(&[2.0f64]);
        assert_eq!(f64::try_from(Distance::lp().margin(&a, &b)).unwrap(), -1.0);
        assert_eq!(
            f64::try_from(Distance::cosine().margin(&a, &b)).unwrap(),
            1.0
        );
        let _ = Kind::Double;
    }

    #[test]
    fn cosine_without_normalisation_is_rejected() {
        let v = serde_json::json!({"CosineSimilarity": {"normalize_embeddings": false}});
        let mut spec = Spec::parse("distance", &v).unwrap();
        assert!(Distance::from_spec(&mut spec).is_err());
    }
}
