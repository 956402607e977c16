//! The optimiser's GP fitted once to a finished set of evaluations, for reports: which
//! parameters mattered (fANOVA main effects of the posterior mean), the fitted length scales, and
//! the posterior mean anywhere (for contour plots).
//!
//! Importance is the share of the posterior mean's variance over the domain explained by each
//! parameter alone (first-order Sobol index of the GP mean, as fANOVA computes it for random
//! forests, Hutter et al. 2014): for parameter `i`, the variance over `x_i` of the mean over all
//! other parameters, estimated on a grid of `x_i` values times quasi-random base points. A
//! parameter the objective ignores gets a flat main effect, so a share near zero. Shares are
//! normalised to sum to 1.

use super::domain::{DimensionKind, Domain, Point};
use super::gp::{fit, Data, Posterior, Prior};
use super::rng::Rng;
use super::sobol::sobol_point;

pub struct Surrogate {
    domain: Domain,
    posterior: Posterior,
    y_mean: f64,
    y_std: f64,
}

/// Base points for the main effects, and grid values per float or integer parameter.
const BASE_POINTS: usize = 128;
const GRID: usize = 12;

impl Surrogate {
    /// Fits the GP (MAP hyperparameters, Optuna's priors) to `points` with objective `values`
    /// (finite values only are used). `None` with fewer than two usable points or when the fit
    /// fails.
    pub fn fit(domain: &Domain, points: &[Point], values: &[f64], seed: u64) -> Option<Surrogate> {
        let usable: Vec<(Vec<f64>, f64)> = points
            .iter()
            .zip(values)
            .filter(|(p, v)| v.is_finite() && domain.validate(p).is_ok())
            .map(|(p, v)| (domain.encode(p), *v))
            .collect();
        if usable.len() < 2 {
            return None;
        }
        let n = usable.len() as f64;
        let y_mean = usable.iter().map(|u| u.1).sum::<f64>() / n;
        let var = usable.iter().map(|u| (u.1 - y_mean).powi(2)).sum::<f64>() / n;
        let y_std = if var > 0.0 { var.sqrt() } else { 1.0 };
        let data = Data {
            x: usable.iter().flat_map(|u| u.0.iter().copied()).collect(),
            y: usable.iter().map(|u| (u.1 - y_mean) / y_std).collect(),
            d: domain.encoded_dim(),
            // Importance and the contour describe the objective's shape: the mean alone.
            noise: Vec::new(),
        };
        let mut rng = Rng::new(seed);
        let theta = fit(&data, Prior::Optuna, None, 4, &mut rng);
        let posterior = Posterior::new_gls(data, &theta)?;
        Some(Surrogate {
            domain: domain.clone(),
            posterior,
            y_mean,
            y_std,
        })
    }

    /// The posterior mean of the objective at an encoded point.
    pub fn mean(&self, encoded: &[f64]) -> f64 {
        self.posterior.predict(encoded).0 * self.y_std + self.y_mean
    }

    /// The posterior means at many encoded points.
    pub fn means(&self, encoded: &[Vec<f64>]) -> Vec<f64> {
        self.posterior
            .predict_many(encoded)
            .into_iter()
            .map(|(m, _)| m * self.y_std + self.y_mean)
            .collect()
    }

    /// ARD length scale per parameter on the unit cube (a choice: the shortest of its one-hot
    /// coordinates). Short means the objective changes quickly along it.
    pub fn length_scales(&self) -> Vec<f64> {
        let theta = &self.posterior.theta;
        let mut out = Vec::new();
        let mut off = 0;
        for p in self.domain.params() {
            let width = match p.kind {
                DimensionKind::Choice { n } => n,
                _ => 1,
            };
            let ls = theta[off..off + width]
                .iter()
                .map(|t| t.exp())
                .fold(f64::INFINITY, f64::min);
            out.push(ls);
            off += width;
        }
        out
    }

    /// fANOVA main-effect share of each parameter (sums to 1; all 0 if the mean is flat).
    pub fn importance(&self) -> Vec<f64> {
        let params = self.domain.params();
        let k = params.len();
        let base: Vec<Vec<f64>> = (0..BASE_POINTS)
            .map(|i| sobol_point(i, k, 0x5eed))
            .collect();
        // Total variance of the mean over the base points.
        let base_x: Vec<Vec<f64>> = base
            .iter()
            .map(|u| self.domain.from_param_unit(u))
            .collect();
        let base_m = self.means(&base_x);
        let total = variance(&base_m);
        let mut effects = Vec::with_capacity(k);
        for (i, p) in params.iter().enumerate() {
            let levels: Vec<f64> = match p.kind {
                DimensionKind::Choice { n } => {
                    (0..n).map(|c| (c as f64 + 0.5) / n as f64).collect()
                }
                DimensionKind::Int { low, high, .. } => {
                    let n = ((high - low + 1) as usize).min(GRID);
                    (0..n).map(|c| (c as f64 + 0.5) / n as f64).collect()
                }
                DimensionKind::Float { .. } => {
                    (0..GRID).map(|c| (c as f64 + 0.5) / GRID as f64).collect()
                }
            };
            let main: Vec<f64> = levels
                .iter()
                .map(|&level| {
                    let xs: Vec<Vec<f64>> = base
                        .iter()
                        .map(|u| {
                            let mut u = u.clone();
                            u[i] = level;
                            self.domain.from_param_unit(&u)
                        })
                        .collect();
                    let m = self.means(&xs);
                    m.iter().sum::<f64>() / m.len() as f64
                })
                .collect();
            effects.push(variance(&main));
        }
        let sum: f64 = effects.iter().sum();
        // NaN sums (a degenerate fit) count as flat, like zero.
        if sum.is_nan() || total.is_nan() || sum <= 0.0 || total <= 0.0 {
            return vec![0.0; k];
        }
        effects.iter().map(|e| e / sum).collect()
    }
}

fn variance(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n
}

#[cfg(test)]
mod tests {
    use super::super::domain::{Dimension, ParamValue};
    use super::*;

    #[test]
    fn an_ignored_parameter_ranks_last_and_the_strongest_first() {
        let domain = Domain::new(vec![
            Dimension::float("ignored", 0.0, 1.0),
            Dimension::float("strong", 0.0, 1.0),
            Dimension::log_float("weak", 1e-4, 1e-1),
        ])
        .unwrap();
        let mut rng = Rng::new(7);
        let mut points = Vec::new();
        let mut values = Vec::new();
        for _ in 0..40 {
            let a = rng.uniform();
            let b = rng.uniform();
            let c = 10f64.powf(-4.0 + 3.0 * rng.uniform());
            points.push(vec![
                ParamValue::Float(a),
                ParamValue::Float(b),
                ParamValue::Float(c),
            ]);
            values.push(-4.0 * (b - 0.3).powi(2) - 0.1 * (c.log10() + 2.5).powi(2));
        }
        let s = Surrogate::fit(&domain, &points, &values, 1).unwrap();
        let imp = s.importance();
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{imp:?}");
        assert!(imp[1] > imp[2] && imp[2] > imp[0], "{imp:?}");
        assert!(imp[0] < 0.02, "{imp:?}");
        let ls = s.length_scales();
        assert!(ls[0] > ls[1], "{ls:?}");
        // The mean reproduces the data near an observed point.
        let x = domain.encode(&points[0]);
        assert!(
            (s.mean(&x) - values[0]).abs() < 0.05,
            "{} {}",
            s.mean(&x),
            values[0]
        );
    }

    #[test]
    fn too_few_points_give_no_model() {
        let domain = Domain::new(vec![Dimension::float("a", 0.0, 1.0)]).unwrap();
        assert!(Surrogate::fit(&domain, &[vec![ParamValue::Float(0.5)]], &[1.0], 0).is_none());
    }
}
