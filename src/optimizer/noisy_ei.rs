//! Noisy expected improvement (Letham, Karrer, Ottoni & Bakshy 2019, "Constrained Bayesian
//! optimization with noisy experiments", Bayesian Analysis), in log form.
//!
//! Under observation noise the best *value* seen is not known, so EI has no fixed incumbent. NEI
//! integrates over what the noise hides: draw the latent objective at every modelled point,
//! `f_s ~ p(f(X) | y)` (the GP posterior, jointly), and for each draw take the expected improvement
//! over `max_i f_s(x_i)` under the GP conditioned on `f_s` as exact observations (the "fantasy"
//! model); the acquisition is the mean over draws. This is the exact conditional form of
//! Ax/BoTorch's one-point qNEI: given `f(X)` the noisy `y` say nothing more about `f(x)`, so the
//! inner expectation is analytic EI, and only `f(X)` needs sampling. A lucky observation raises
//! the incumbent of only the draws in which it really was high, so the search is not pinned to
//! it, and points whose value is still uncertain keep some improvement to offer. Pending points
//! (kriging-believer fantasies of a batch) are modelled points like the others.
//!
//! Cost: all fantasy models share one kernel matrix (same inputs, same hyperparameters), so one
//! factorisation and one predictive variance per point serve every draw; each draw adds one dot
//! product for its mean. The draws are scrambled-Sobol normals with a fixed seed (quasi-Monte
//! Carlo, common random numbers across candidate points, so the acquisition surface is smooth and
//! deterministic for L-BFGS).

use nalgebra::{DMatrix, DVector};

use super::acquisition::{log_h, log_h_value};
use super::gp::{robust_cholesky, Posterior};
use super::kernel::{add_dk_dx, kernel};
use super::sobol::sobol_point;

/// ln √(2π)
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Fixed scrambling seed of the quasi-random draws (any constant: fixed base samples).
const DRAW_SEED: u32 = 0x4e45_4931;

/// Jitter of the fantasy models relative to the signal variance: the draws are exact values, but
/// an exactly interpolating kernel matrix is singular for nearly coincident points. Optuna's
/// minimum noise variance (1e-6 on standardised outputs).
const FANTASY_JITTER_REL: f64 = 1e-6;

/// The fantasy models of one GP posterior, ready to score points.
#[derive(Clone, Debug)]
pub(crate) struct NoisyIncumbent {
    /// Training inputs, row-major, `d` per row.
    x: Vec<f64>,
    d: usize,
    inv_ls2: Vec<f64>,
    signal: f64,
    prior_mean: f64,
    /// `(K + εI)⁻¹` of the fantasy models (no observation noise).
    kinv: DMatrix<f64>,
    /// Column `s`: `(K + εI)⁻¹ (f_s − m)`.
    alphas: DMatrix<f64>,
    /// `max_i f_s(x_i)` per draw: each draw's incumbent.
    bests: Vec<f64>,
    min_var: f64,
}

impl NoisyIncumbent {
    /// Draws `n_draws` latent vectors from `post` at its training inputs and builds their fantasy
    /// models. `None` when a factorisation fails even with jitter (the caller then falls back to
    /// EI against the best posterior mean).
    pub fn new(post: &Posterior, n_draws: usize) -> Option<Self> {
        let data = post.data();
        let n = data.n();
        let d = data.d;
        if n == 0 || n_draws == 0 {
            return None;
        }
        let inv_ls2 = post.inv_ls2().to_vec();
        let s = post.signal();
        let m = post.prior_mean();
        let kf = DMatrix::from_fn(n, n, |a, b| kernel(data.row(a), data.row(b), &inv_ls2, s));
        let mut draws = latent_draws(post, &kf, n_draws)?;
        let bests: Vec<f64> = (0..n_draws)
            .map(|j| {
                draws
                    .column(j)
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        let mut kj = kf;
        let jitter = FANTASY_JITTER_REL * s;
        for i in 0..n {
            kj[(i, i)] += jitter;
        }
        let fchol = robust_cholesky(kj)?;
        let kinv = fchol.inverse();
        draws.add_scalar_mut(-m);
        let alphas = fchol.solve(&draws);
        Some(Self {
            x: data.x.clone(),
            d,
            inv_ls2,
            signal: s,
            prior_mean: m,
            kinv,
            alphas,
            bests,
            min_var: post.min_latent_var(),
        })
    }

    fn n(&self) -> usize {
        self.x.len() / self.d
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    fn k_star(&self, x: &[f64]) -> DVector<f64> {
        let n = self.n();
        DVector::from_iterator(
            n,
            (0..n).map(|a| kernel(x, self.row(a), &self.inv_ls2, self.signal)),
        )
    }

    /// Per draw `z = (m + μ_s − best_s)/σ`, and the floor below which a draw's `ln h(z)` is
    /// pruned: `PRUNE` nats under the largest draw's. All draws share `σ`, so ln EI is increasing
    /// in `z`, and `ln h(z) ≤ −z²/2 − ln√(2π)` for `z < 0` bounds a draw without evaluating it.
    /// Pruned terms change the mean by less than `e^-PRUNE` relative: nothing, in f64.
    fn draw_zs(&self, means: &[f64], sigma: f64) -> (Vec<f64>, f64) {
        const PRUNE: f64 = 40.0;
        let zs: Vec<f64> = means
            .iter()
            .zip(&self.bests)
            .map(|(&mu, &b)| (self.prior_mean + mu - b) / sigma)
            .collect();
        let z_max = zs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (zs, log_h_value(z_max) - PRUNE)
    }

    fn pruned(z: f64, floor: f64) -> bool {
        z < 0.0 && -0.5 * z * z - LN_SQRT_2PI < floor
    }

    /// Per draw, `(ln EI, ∂ln EI/∂μ_s, ∂ln EI/∂v)` at a point with fantasy variance `var` and
    /// per-draw means `means` (without the prior mean); `None` for pruned draws.
    fn per_draw(&self, means: &[f64], var: f64) -> Vec<Option<(f64, f64, f64)>> {
        let sigma = var.sqrt();
        let ln_sigma = sigma.ln();
        let (zs, floor) = self.draw_zs(means, sigma);
        zs.iter()
            .map(|&z| {
                if Self::pruned(z, floor) {
                    return None;
                }
                let (lh, dlh) = log_h(z);
                Some((lh + ln_sigma, dlh / sigma, (1.0 - dlh * z) / (2.0 * var)))
            })
            .collect()
    }

    /// ln of the mean EI over draws (value only).
    fn log_mean_ei(&self, means: &[f64], var: f64) -> f64 {
        let sigma = var.sqrt();
        let ln_sigma = sigma.ln();
        let (zs, floor) = self.draw_zs(means, sigma);
        let vals: Vec<f64> = zs
            .iter()
            .map(|&z| {
                if Self::pruned(z, floor) {
                    f64::NEG_INFINITY
                } else {
                    log_h_value(z) + ln_sigma
                }
            })
            .collect();
        super::log_mean_exp(&vals)
    }

    /// ln NEI at `x`.
    pub fn log_acq(&self, x: &[f64]) -> f64 {
        let k = self.k_star(x);
        let var = (self.signal - k.dot(&(&self.kinv * &k))).max(self.min_var);
        let means = self.alphas.tr_mul(&k);
        self.log_mean_ei(means.as_slice(), var)
    }

    /// ln NEI at many points (matrix products instead of per-point mat-vecs), for screening a
    /// candidate pool. The largest draw's ln EI, `u`, bounds a point's ln NEI within
    /// `[u − ln S, u]` (S draws) at the cost of one evaluation. Points are scored exactly in
    /// decreasing order of `u` until `u` falls `SCREEN` nats below the best exact score; the rest
    /// get `u − ln S`. So the best point and every point within `SCREEN` nats of it are exact,
    /// and the others (used only as roulette weights `e^{score − top}` for local-search starts,
    /// below `e^-SCREEN` either way) are within `ln S` of their value. Near-flat acquisition
    /// surfaces still cost S evaluations per point; a peaked one costs about one.
    pub fn log_acq_many(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        const SCREEN: f64 = 5.0;
        let n = self.n();
        let m = xs.len();
        if m == 0 {
            return Vec::new();
        }
        let kst = DMatrix::from_fn(n, m, |a, j| {
            kernel(&xs[j], self.row(a), &self.inv_ls2, self.signal)
        });
        let q = &self.kinv * &kst;
        let means = self.alphas.tr_mul(&kst);
        let ln_draws = (self.bests.len() as f64).ln();
        let vars: Vec<f64> = (0..m)
            .map(|j| (self.signal - kst.column(j).dot(&q.column(j))).max(self.min_var))
            .collect();
        let upper: Vec<f64> = (0..m)
            .map(|j| {
                let sigma = vars[j].sqrt();
                let z_max = means
                    .column(j)
                    .iter()
                    .zip(&self.bests)
                    .map(|(&mu, &b)| (self.prior_mean + mu - b) / sigma)
                    .fold(f64::NEG_INFINITY, f64::max);
                log_h_value(z_max) + sigma.ln()
            })
            .collect();
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by(|&a, &b| upper[b].total_cmp(&upper[a]).then(a.cmp(&b)));
        let mut scores: Vec<f64> = upper.iter().map(|u| u - ln_draws).collect();
        let mut best_exact = f64::NEG_INFINITY;
        for j in order {
            if upper[j].is_nan() || upper[j] < best_exact - SCREEN {
                break;
            }
            scores[j] = self.log_mean_ei(means.column(j).as_slice(), vars[j]);
            best_exact = best_exact.max(scores[j]);
        }
        scores
    }

    /// ln NEI at `x` and its gradient w.r.t. `x`.
    pub fn log_acq_with_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        let n = self.n();
        let k = self.k_star(x);
        let q = &self.kinv * &k;
        let raw_var = self.signal - k.dot(&q);
        let var = raw_var.max(self.min_var);
        let means = self.alphas.tr_mul(&k);
        let parts = self.per_draw(means.as_slice(), var);
        let vals: Vec<f64> = parts
            .iter()
            .map(|p| p.map_or(f64::NEG_INFINITY, |p| p.0))
            .collect();
        let value = super::log_mean_exp(&vals);
        let mut g = vec![0.0; self.d];
        if !value.is_finite() {
            return (value, g);
        }
        // d value = Σ_s w_s (∂ln EI_s/∂μ_s dμ_s + ∂ln EI_s/∂v dv), w_s = EI_s / Σ EI; both
        // dμ_s = Σ_a α_as dk_a and dv = −2 Σ_a q_a dk_a are sums over the same dk_a, so each
        // training point gets one combined coefficient.
        let s_count = vals.len() as f64;
        let weighted: Vec<(f64, f64)> = parts
            .iter()
            .zip(&vals)
            .map(|(p, a)| {
                p.map_or((0.0, 0.0), |p| {
                    let w = (a - value).exp() / s_count;
                    (w * p.1, w * p.2)
                })
            })
            .collect();
        let wdv: f64 = if raw_var > self.min_var {
            weighted.iter().map(|w| w.1).sum()
        } else {
            0.0
        };
        let wdm = DVector::from_iterator(weighted.len(), weighted.iter().map(|w| w.0));
        let coef = &self.alphas * wdm;
        for a in 0..n {
            let c = coef[a] - 2.0 * q[a] * wdv;
            add_dk_dx(x, self.row(a), &self.inv_ls2, self.signal, c, &mut g);
        }
        (value, g)
    }

    /// The draws' incumbents (for tests and diagnostics).
    #[cfg(test)]
    pub fn bests(&self) -> &[f64] {
        &self.bests
    }
}

/// `n_draws` joint draws (columns) of the latent objective at the training inputs of `post`,
/// whose noise-free kernel matrix is `kf`. Mean `m + K α`; covariance `(K⁻¹ + N⁻¹)⁻¹` written as
/// `N − N (K + N)⁻¹ N` with `N` the diagonal noise, which stays accurate when the noise is small,
/// where `K − K (K + N)⁻¹ K` would cancel. Quasi-random normals, fixed seed.
fn latent_draws(post: &Posterior, kf: &DMatrix<f64>, n_draws: usize) -> Option<DMatrix<f64>> {
    let n = kf.nrows();
    let mean = DVector::from_element(n, post.prior_mean()) + kf * post.alpha();
    let noise: Vec<f64> = (0..n).map(|i| post.noise_var(i)).collect();
    let kinv_noisy = post.kinv();
    let cov = DMatrix::from_fn(n, n, |a, b| {
        let diag = if a == b { noise[a] } else { 0.0 };
        diag - noise[a] * 0.5 * (kinv_noisy[(a, b)] + kinv_noisy[(b, a)]) * noise[b]
    });
    let l = robust_cholesky(cov)?.l();
    let mut z = DMatrix::zeros(n, n_draws);
    for j in 0..n_draws {
        let u = sobol_point(j, n, DRAW_SEED);
        for i in 0..n {
            z[(i, j)] = inverse_normal_cdf(u[i].clamp(1e-12, 1.0 - 1e-12));
        }
    }
    let mut draws = l * z;
    for j in 0..n_draws {
        for i in 0..n {
            draws[(i, j)] += mean[i];
        }
    }
    Some(draws)
}

/// Standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9, then
/// one Halley step on `Φ` from libm's `erfc`, which brings it to near round-off).
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // Halley refinement.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

#[cfg(test)]
mod tests {
    use super::super::gp::Data;
    use super::*;

    #[test]
    fn inverse_normal_cdf_inverts_the_cdf() {
        for p in [1e-10, 1e-4, 0.02, 0.024, 0.3, 0.5, 0.77, 0.98, 1.0 - 1e-6] {
            let x = inverse_normal_cdf(p);
            let back = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
            assert!(
                (back - p).abs() < 1e-13 * p.max(1e-3),
                "p {p}: x {x}, Φ(x) {back}"
            );
        }
        assert_eq!(inverse_normal_cdf(0.5), 0.0);
        assert!((inverse_normal_cdf(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
    }

    fn noisy_data() -> Data {
        // A smooth 2-D function observed at 12 points with known noise variance 0.05 each.
        let pts = [
            [0.1, 0.2],
            [0.8, 0.3],
            [0.4, 0.9],
            [0.6, 0.6],
            [0.2, 0.7],
            [0.9, 0.9],
            [0.3, 0.4],
            [0.5, 0.1],
            [0.7, 0.8],
            [0.05, 0.95],
            [0.45, 0.5],
            [0.95, 0.05],
        ];
        let x: Vec<f64> = pts.concat();
        let y: Vec<f64> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| (3.0 * p[0]).sin() - p[1] + 0.2 * ((i * 7 % 5) as f64 - 2.0))
            .collect();
        Data {
            x,
            y,
            d: 2,
            noise: vec![0.05; 12],
        }
    }

    #[test]
    fn gradient_matches_finite_differences_and_batch_matches_single() {
        let post = Posterior::new_gls(noisy_data(), &[-1.0, -0.7, 0.0, -5.0]).unwrap();
        let nei = NoisyIncumbent::new(&post, 32).unwrap();
        for p in [[0.2, 0.9], [0.55, 0.15], [0.97, 0.5], [0.45, 0.52]] {
            let (a, g) = nei.log_acq_with_grad(&p);
            assert!((nei.log_acq(&p) - a).abs() < 1e-12);
            assert!((nei.log_acq_many(&[p.to_vec()])[0] - a).abs() < 1e-9);
            for j in 0..2 {
                let h = 1e-6;
                let mut xp = p;
                xp[j] += h;
                let mut xm = p;
                xm[j] -= h;
                let fd = (nei.log_acq(&xp) - nei.log_acq(&xm)) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() < 1e-5 * g[j].abs().max(1.0),
                    "at {p:?} dim {j}: fd {fd} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn draws_follow_the_latent_posterior() {
        // Mean and variance of many draws against the posterior's own prediction at the training
        // inputs (the covariance identity used for the draws is independent of `predict`).
        let post = Posterior::new_gls(noisy_data(), &[-1.0, -0.7, 0.0, -5.0]).unwrap();
        let data = post.data();
        let kf = DMatrix::from_fn(12, 12, |a, b| {
            kernel(data.row(a), data.row(b), post.inv_ls2(), post.signal())
        });
        let draws = latent_draws(&post, &kf, 4096).unwrap();
        for i in 0..12 {
            let (m, v) = post.predict(data.row(i));
            let row: Vec<f64> = draws.row(i).iter().copied().collect();
            let mean = row.iter().sum::<f64>() / 4096.0;
            let var = row.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 4096.0;
            assert!(
                (mean - m).abs() < 0.01 * v.sqrt(),
                "point {i}: mean {mean} vs {m}"
            );
            assert!((var / v - 1.0).abs() < 0.02, "point {i}: var {var} vs {v}");
            // Latent uncertainty is below the observation noise it was inferred through.
            assert!(v < post.noise_var(i), "point {i}");
        }
        // Fixed seed: the same draws every time, so the acquisition is deterministic.
        let nei = NoisyIncumbent::new(&post, 64).unwrap();
        assert_eq!(nei.bests(), NoisyIncumbent::new(&post, 64).unwrap().bests());
        assert!(nei.bests().iter().any(|b| b != &nei.bests()[0]));
    }
}
