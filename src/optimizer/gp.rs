//! Exact Gaussian-process regression with an ARD Matérn-5/2 kernel, on nalgebra.
//!
//! Conventions (same as Optuna's `optuna/_gp`): inputs are unit-cube encodings, outputs are
//! standardised by the caller, the prior mean is zero, and hyperparameters live in log space:
//!
//! `theta = [ln ℓ_1, …, ln ℓ_D, ln s, ln(σ² - NOISE_FLOOR)]`
//!
//! with length scales `ℓ`, signal variance `s` and noise variance `σ² = NOISE_FLOOR + e^θ`. The
//! floor keeps the Cholesky factor well conditioned even when the fit wants an interpolating model
//! (deterministic objectives), like Optuna's `DEFAULT_MINIMUM_NOISE_VAR` (which is 1e-6).
//!
//! Hyperparameters are the MAP estimate: exact log marginal likelihood plus a log prior
//! ([`Prior`]), with analytic gradients, maximised by L-BFGS from the previous optimum, the prior's
//! centre and random restarts.

use nalgebra::{DMatrix, DVector};

use super::kernel::{add_dk_dlogls, add_dk_dx, kernel, matern52, scaled_sqdist};
use super::minimize::minimize;
use super::rng::Rng;

/// Lower bound of the noise variance on standardised outputs. Optuna uses 1e-6; on deterministic
/// objectives that floor caps how finely the model resolves the optimum (σ ≥ 1e-3 output std),
/// and 1e-8 halved our median Branin regret at 40 evaluations (20 seeds) without conditioning
/// trouble (the Cholesky adds jitter if it ever needs it). Real trials are noisy and fit their own
/// noise well above either floor.
pub const NOISE_FLOOR: f64 = 1e-8;

/// Box for the log hyperparameters. Outside it the objective grows quadratically (with a matching
/// gradient) instead of failing, so L-BFGS line searches that overshoot come back; the kernel is
/// evaluated at the clamped values. The box is wide: length scales 1e-4..8e3 on the unit cube.
const LOG_LS_RANGE: (f64, f64) = (-9.0, 9.0);
const LOG_SIGNAL_RANGE: (f64, f64) = (-12.0, 12.0);
const LOG_NOISE_RANGE: (f64, f64) = (-30.0, 3.0);
const BOX_PENALTY: f64 = 1e3;

/// Hyperparameter priors (log densities, constants dropped), applied as densities of the natural
/// quantity evaluated at the log-parameter — the same MAP objective as Optuna's `default_log_prior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// Optuna GPSampler (`optuna/_gp/prior.py`): on each inverse squared length scale
    /// `λ = 1/ℓ²`: `-(0.1/λ + 0.1 λ)`; signal variance `Gamma(2, 1)`; noise variance
    /// `Gamma(1.1, 30)`.
    Optuna,
    /// BoTorch's dimension-scaled prior (Hvarfner et al. 2024): `ℓ_i ~ LogNormal(√2 + ½ ln D, √3)`
    /// (mode and fit start `e^{√2 + ½ ln D − 3}`, 0.502 at D = 6); noise variance
    /// `LogNormal(-4, 1)`; BoTorch fixes no signal variance prior, we keep the mild
    /// `Gamma(2, 1)` so the MAP problem stays proper.
    DimScaled,
}

impl Prior {
    /// Log prior and its gradient w.r.t. `theta`.
    fn log_density(self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let d = theta.len() - 2;
        let mut lp = 0.0;
        // Signal variance: Gamma(2, 1) → ln s - s.
        let s = theta[d].exp();
        lp += theta[d] - s;
        grad[d] += 1.0 - s;
        let en = theta[d + 1].exp();
        let noise = NOISE_FLOOR + en;
        match self {
            Prior::Optuna => {
                for i in 0..d {
                    let l2 = (2.0 * theta[i]).exp();
                    // λ = 1/ℓ²: -(0.1 ℓ² + 0.1 / ℓ²)
                    lp -= 0.1 * l2 + 0.1 / l2;
                    grad[i] += -0.2 * l2 + 0.2 / l2;
                }
                // Gamma(1.1, 30): 0.1 ln σ² - 30 σ²
                lp += 0.1 * noise.ln() - 30.0 * noise;
                grad[d + 1] += (0.1 / noise - 30.0) * en;
            }
            Prior::DimScaled => {
                let mu = std::f64::consts::SQRT_2 + 0.5 * (d as f64).ln();
                let var = 3.0;
                // LogNormal density of ℓ: N(ln ℓ; μ, 3) / ℓ — the 1/ℓ moves the MAP centre of
                // ln ℓ to μ − 3 (ℓ ≈ 0.5 at D = 6), BoTorch's prior mode and initial value.
                for i in 0..d {
                    lp -= (theta[i] - mu).powi(2) / (2.0 * var) + theta[i];
                    grad[i] -= (theta[i] - mu) / var + 1.0;
                }
                let z = noise.ln() + 4.0;
                lp -= 0.5 * z * z + noise.ln();
                grad[d + 1] -= (z + 1.0) / noise * en;
            }
        }
        lp
    }

    /// The prior's centre, the deterministic first start of every fit.
    pub(crate) fn default_theta(self, d: usize) -> Vec<f64> {
        let ls = match self {
            Prior::Optuna => 0.0,
            Prior::DimScaled => std::f64::consts::SQRT_2 + 0.5 * (d as f64).ln() - 3.0,
        };
        let mut t = vec![ls; d];
        t.push(0.0);
        t.push((1e-3f64).ln());
        t
    }
}

/// Training inputs, row-major (`n` points of `d` coordinates).
#[derive(Clone, Debug)]
pub(crate) struct Data {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub d: usize,
    /// Known observation-noise variance of each output (the squared standardised SEM), added to
    /// the learned homoscedastic noise on the diagonal; empty when no observation has one. The
    /// learned term then acts as a floor for model error the SEMs do not cover.
    pub noise: Vec<f64>,
}

impl Data {
    pub fn n(&self) -> usize {
        self.y.len()
    }
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.d..(i + 1) * self.d]
    }
    /// Known noise variance of output `i` (0 without SEMs).
    pub fn known_noise(&self, i: usize) -> f64 {
        self.noise.get(i).copied().unwrap_or(0.0)
    }
}

fn clamp_theta(theta: &[f64]) -> (Vec<f64>, f64, Vec<f64>) {
    let d = theta.len() - 2;
    let mut t = theta.to_vec();
    let mut pen = 0.0;
    let mut pgrad = vec![0.0; theta.len()];
    for (i, v) in t.iter_mut().enumerate() {
        let (lo, hi) = if i < d {
            LOG_LS_RANGE
        } else if i == d {
            LOG_SIGNAL_RANGE
        } else {
            LOG_NOISE_RANGE
        };
        let c = v.clamp(lo, hi);
        pen += BOX_PENALTY * (*v - c).powi(2);
        pgrad[i] = 2.0 * BOX_PENALTY * (*v - c);
        *v = c;
    }
    (t, pen, pgrad)
}

/// Kernel matrix `s R + σ² I` for clamped `theta`.
fn gram(data: &Data, theta: &[f64]) -> DMatrix<f64> {
    let d = data.d;
    let inv_ls2: Vec<f64> = theta[..d].iter().map(|l| (-2.0 * l).exp()).collect();
    let s = theta[d].exp();
    let noise = NOISE_FLOOR + theta[d + 1].exp();
    let n = data.n();
    let mut k = DMatrix::zeros(n, n);
    for a in 0..n {
        k[(a, a)] = s + noise + data.known_noise(a);
        for b in 0..a {
            let v = kernel(data.row(a), data.row(b), &inv_ls2, s);
            k[(a, b)] = v;
            k[(b, a)] = v;
        }
    }
    k
}

/// Cholesky with escalating jitter: positive definiteness can be lost to round-off when points
/// nearly coincide and the noise is at its floor. Gives up (None) past a jitter of 1e-2 · diag.
pub(crate) fn robust_cholesky(
    mut k: DMatrix<f64>,
) -> Option<nalgebra::Cholesky<f64, nalgebra::Dyn>> {
    let scale = (0..k.nrows())
        .map(|i| k[(i, i)])
        .fold(0.0, f64::max)
        .max(1e-300);
    let mut jitter = 0.0;
    for _ in 0..8 {
        if let Some(c) = k.clone().cholesky() {
            return Some(c);
        }
        let next = if jitter == 0.0 {
            1e-10 * scale
        } else {
            jitter * 10.0
        };
        for i in 0..k.nrows() {
            k[(i, i)] += next - jitter;
        }
        jitter = next;
        if jitter > 1e-2 * scale {
            break;
        }
    }
    None
}

/// Negative log posterior (−LML − log prior), divided by `n` so tolerances do not depend on the
/// data size, and its gradient. `None` if the Cholesky factorisation fails even with jitter.
pub(crate) fn neg_log_posterior(
    data: &Data,
    theta: &[f64],
    prior: Prior,
) -> Option<(f64, Vec<f64>)> {
    let n = data.n();
    let d = data.d;
    let (t, pen, pgrad) = clamp_theta(theta);
    let (lml, grad) = log_marginal_likelihood(data, &t)?;
    let mut pg = vec![0.0; d + 2];
    let lp = prior.log_density(&t, &mut pg);
    let nf = n as f64;
    let value = (-(lml + lp) + pen) / nf;
    // Where θ_j is clamped the likelihood is flat in θ_j; only the penalty slope remains.
    let g = (0..d + 2)
        .map(|j| {
            let data_part = if t[j] == theta[j] {
                -(grad[j] + pg[j])
            } else {
                0.0
            };
            (data_part + pgrad[j]) / nf
        })
        .collect();
    Some((value, g))
}

/// Exact log marginal likelihood `−½ yᵀK⁻¹y − ½ ln|K| − n/2 ln 2π` and its gradient w.r.t. the
/// (unclamped) log hyperparameters. `None` if the Cholesky factorisation fails even with jitter.
pub(crate) fn log_marginal_likelihood(data: &Data, t: &[f64]) -> Option<(f64, Vec<f64>)> {
    let n = data.n();
    let d = data.d;
    let chol = robust_cholesky(gram(data, t))?;
    let y = DVector::from_column_slice(&data.y);
    let alpha = chol.solve(&y);
    let l = chol.l_dirty();
    let logdet: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
    let lml =
        -0.5 * y.dot(&alpha) - 0.5 * logdet - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();

    // ∂LML/∂θ_j = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ_j)
    let kinv = chol.inverse();
    let inv_ls2: Vec<f64> = t[..d].iter().map(|l| (-2.0 * l).exp()).collect();
    let s = t[d].exp();
    let en = t[d + 1].exp();
    let mut grad = vec![0.0; d + 2];
    for a in 0..n {
        let waa = alpha[a] * alpha[a] - kinv[(a, a)];
        grad[d] += 0.5 * waa * s;
        grad[d + 1] += 0.5 * waa * en;
        for b in 0..a {
            let wab = alpha[a] * alpha[b] - kinv[(a, b)];
            // Off-diagonal pairs appear twice in the trace; ½ · 2 = 1.
            let (ra, rb) = (data.row(a), data.row(b));
            add_dk_dlogls(ra, rb, &inv_ls2, s, wab, &mut grad[..d]);
            grad[d] += wab * s * matern52(scaled_sqdist(ra, rb, &inv_ls2));
        }
    }
    Some((lml, grad))
}

/// MAP hyperparameters. Starts: `previous` (warm start from the last fit, if its dimension
/// matches), the prior's centre, and `n_random` random points; each is refined by L-BFGS and the
/// best final objective wins. Falls back to the prior's centre if every start fails.
pub(crate) fn fit(
    data: &Data,
    prior: Prior,
    previous: Option<&[f64]>,
    n_random: usize,
    rng: &mut Rng,
) -> Vec<f64> {
    let d = data.d;
    let mut starts = Vec::new();
    if let Some(p) = previous.filter(|p| p.len() == d + 2) {
        starts.push(p.to_vec());
    }
    starts.push(prior.default_theta(d));
    for _ in 0..n_random {
        let mut t: Vec<f64> = (0..d)
            .map(|_| rng.uniform_in((0.05f64).ln(), (3.0f64).ln()))
            .collect();
        t.push(rng.uniform_in((0.3f64).ln(), (3.0f64).ln()));
        t.push(rng.uniform_in((1e-6f64).ln(), (1e-1f64).ln()));
        starts.push(t);
    }
    let f = |t: &[f64]| neg_log_posterior(data, t, prior);
    let mut best: Option<(Vec<f64>, f64)> = None;
    for s in starts {
        if let Some((t, v)) = minimize(&f, s, 200) {
            if best.as_ref().is_none_or(|(_, b)| v < *b) {
                best = Some((t, v));
            }
        }
    }
    let theta = best
        .map(|(t, _)| t)
        .unwrap_or_else(|| prior.default_theta(d));
    clamp_theta(&theta).0
}

/// Unnormalised log posterior density of the log hyperparameters (LML + log prior − box
/// penalty), value only: one Cholesky factorisation, no inverse. `None` if that fails.
pub(crate) fn log_posterior(data: &Data, theta: &[f64], prior: Prior) -> Option<f64> {
    let n = data.n();
    let d = data.d;
    let (t, pen, _) = clamp_theta(theta);
    let chol = robust_cholesky(gram(data, &t))?;
    let y = DVector::from_column_slice(&data.y);
    let alpha = chol.solve(&y);
    let l = chol.l_dirty();
    let logdet: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
    let mut pg = vec![0.0; d + 2];
    let lp = prior.log_density(&t, &mut pg);
    let v = -0.5 * y.dot(&alpha) - 0.5 * logdet + lp - pen;
    v.is_finite().then_some(v)
}

/// Draws from the posterior of the log hyperparameters, starting at `start` (the MAP fit), by
/// [`slice_sample`]. The priors are used as densities on the log parameters, as in the MAP
/// objective. Returns no draws if the density cannot be evaluated at the start.
pub(crate) fn sample_hyperparameters(
    data: &Data,
    prior: Prior,
    start: &[f64],
    n_draws: usize,
    burn: usize,
    thin: usize,
    rng: &mut Rng,
) -> Vec<Vec<f64>> {
    let f = |t: &[f64]| log_posterior(data, t, prior);
    slice_sample(&f, start, n_draws, burn, thin, rng)
        .iter()
        .map(|t| clamp_theta(t).0)
        .collect()
}

/// Coordinate-wise slice sampling with stepping out (Neal 2003, width 1, at most 3 steps out
/// each side) of the unnormalised log density `f` (`None` = outside the support): one draw per
/// `thin` sweeps after `burn` sweeps. Returns no draws if `f(start)` is `None`.
pub(crate) fn slice_sample<F>(
    f: &F,
    start: &[f64],
    n_draws: usize,
    burn: usize,
    thin: usize,
    rng: &mut Rng,
) -> Vec<Vec<f64>>
where
    F: Fn(&[f64]) -> Option<f64>,
{
    const WIDTH: f64 = 1.0;
    const MAX_STEPS_OUT: usize = 3;
    const MAX_SHRINKS: usize = 20;
    let mut theta = start.to_vec();
    let Some(mut logp) = f(&theta) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(n_draws);
    let mut sweep = 0;
    while out.len() < n_draws {
        for j in 0..theta.len() {
            let level = logp + (1.0 - rng.uniform()).ln();
            let x0 = theta[j];
            let at = |v: f64, theta: &mut Vec<f64>| {
                theta[j] = v;
                f(theta).unwrap_or(f64::NEG_INFINITY)
            };
            let mut lo = x0 - WIDTH * rng.uniform();
            let mut hi = lo + WIDTH;
            for _ in 0..MAX_STEPS_OUT {
                if at(lo, &mut theta) <= level {
                    break;
                }
                lo -= WIDTH;
            }
            for _ in 0..MAX_STEPS_OUT {
                if at(hi, &mut theta) <= level {
                    break;
                }
                hi += WIDTH;
            }
            // Shrink towards x0 until a point above the level is found (x0 itself always is,
            // so this ends; the cap only guards against a density that changed under us).
            theta[j] = x0;
            for _ in 0..MAX_SHRINKS {
                let v = rng.uniform_in(lo, hi);
                let lv = at(v, &mut theta);
                if lv > level {
                    logp = lv;
                    break;
                }
                theta[j] = x0;
                if v < x0 {
                    lo = v;
                } else {
                    hi = v;
                }
            }
        }
        sweep += 1;
        if sweep > burn && (sweep - burn).is_multiple_of(thin.max(1)) {
            out.push(theta.clone());
        }
    }
    out
}

/// The posterior of a GP with fixed hyperparameters, ready for prediction.
#[derive(Clone, Debug)]
pub(crate) struct Posterior {
    data: Data,
    inv_ls2: Vec<f64>,
    signal: f64,
    alpha: DVector<f64>,
    kinv: DMatrix<f64>,
    pub theta: Vec<f64>,
    /// Constant prior mean (0, or the generalised-least-squares estimate, see `new_gls`).
    prior_mean: f64,
    gls: bool,
}

/// Smallest latent variance reported, relative to the signal variance, so that `σ` is never 0
/// (round-off can make `s − kᵀK⁻¹k` slightly negative at training points).
const MIN_VAR_REL: f64 = 1e-12;

impl Posterior {
    /// Zero prior mean.
    pub fn new(data: Data, theta: &[f64]) -> Option<Self> {
        Self::build(data, theta, false)
    }

    /// Constant prior mean estimated by generalised least squares, `m = 1ᵀK⁻¹y / 1ᵀK⁻¹1` (the
    /// maximum-likelihood constant mean, as BoTorch's `ConstantMean`). Unlike the plain average
    /// it down-weights clusters of correlated observations; BO concentrates its samples in good
    /// regions, so the plain average overstates what unexplored regions (box corners) offer.
    pub fn new_gls(data: Data, theta: &[f64]) -> Option<Self> {
        Self::build(data, theta, true)
    }

    fn build(data: Data, theta: &[f64], gls: bool) -> Option<Self> {
        let (t, _, _) = clamp_theta(theta);
        let d = data.d;
        let chol = robust_cholesky(gram(&data, &t))?;
        let kinv = chol.inverse();
        let y = DVector::from_column_slice(&data.y);
        let prior_mean = if gls {
            let ones = DVector::from_element(data.n(), 1.0);
            let kinv1 = &kinv * &ones;
            let den = kinv1.sum();
            if den > 0.0 && den.is_finite() {
                kinv1.dot(&y) / den
            } else {
                0.0
            }
        } else {
            0.0
        };
        let alpha = chol.solve(&y.add_scalar(-prior_mean));
        Some(Self {
            inv_ls2: t[..d].iter().map(|l| (-2.0 * l).exp()).collect(),
            signal: t[d].exp(),
            data,
            alpha,
            kinv,
            theta: t,
            prior_mean,
            gls,
        })
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// `(K + σ²I + diag(known noise))⁻¹`, the inverse the posterior was built from.
    pub fn kinv(&self) -> &DMatrix<f64> {
        &self.kinv
    }

    /// `K⁻¹ (y − m)`.
    pub fn alpha(&self) -> &DVector<f64> {
        &self.alpha
    }

    /// The constant prior mean `m`.
    pub fn prior_mean(&self) -> f64 {
        self.prior_mean
    }

    /// Signal variance `s`.
    pub fn signal(&self) -> f64 {
        self.signal
    }

    /// `1/ℓ_i²` per input coordinate.
    pub fn inv_ls2(&self) -> &[f64] {
        &self.inv_ls2
    }

    /// Total observation-noise variance of training output `i`: the learned term (with its
    /// floor) plus the known noise.
    pub fn noise_var(&self, i: usize) -> f64 {
        let d = self.data.d;
        NOISE_FLOOR + self.theta[d + 1].exp() + self.data.known_noise(i)
    }

    /// Smallest latent variance reported (see `MIN_VAR_REL`).
    pub fn min_latent_var(&self) -> f64 {
        self.min_var()
    }

    /// The same hyperparameters conditioned on extra (fantasy) observations.
    pub fn with_extra(&self, x: &[f64], y: f64) -> Option<Self> {
        let mut data = self.data.clone();
        data.x.extend_from_slice(x);
        data.y.push(y);
        // A fantasy is the model's own belief, not a measurement: no known noise.
        if !data.noise.is_empty() {
            data.noise.push(0.0);
        }
        Posterior::build(data, &self.theta, self.gls)
    }

    fn min_var(&self) -> f64 {
        self.signal * MIN_VAR_REL
    }

    /// Posterior mean and latent (noise-free) variance at `x`.
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let n = self.data.n();
        let k = DVector::from_iterator(
            n,
            (0..n).map(|a| kernel(x, self.data.row(a), &self.inv_ls2, self.signal)),
        );
        let mean = self.prior_mean + k.dot(&self.alpha);
        let q = &self.kinv * &k;
        let var = (self.signal - k.dot(&q)).max(self.min_var());
        (mean, var)
    }

    /// Mean, variance and their gradients w.r.t. `x`. The variance gradient is zero where the
    /// variance is clamped at its minimum.
    pub fn predict_with_grad(&self, x: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let n = self.data.n();
        let d = self.data.d;
        let k = DVector::from_iterator(
            n,
            (0..n).map(|a| kernel(x, self.data.row(a), &self.inv_ls2, self.signal)),
        );
        let mean = self.prior_mean + k.dot(&self.alpha);
        let q = &self.kinv * &k;
        let raw_var = self.signal - k.dot(&q);
        let mut dmean = vec![0.0; d];
        let mut dvar = vec![0.0; d];
        for a in 0..n {
            let row = self.data.row(a);
            add_dk_dx(
                x,
                row,
                &self.inv_ls2,
                self.signal,
                self.alpha[a],
                &mut dmean,
            );
            add_dk_dx(x, row, &self.inv_ls2, self.signal, -2.0 * q[a], &mut dvar);
        }
        if raw_var <= self.min_var() {
            dvar.iter_mut().for_each(|v| *v = 0.0);
        }
        (mean, raw_var.max(self.min_var()), dmean, dvar)
    }

    /// Means and variances of many points at once (one matrix product instead of `m` mat-vecs).
    pub fn predict_many(&self, xs: &[Vec<f64>]) -> Vec<(f64, f64)> {
        let n = self.data.n();
        let m = xs.len();
        if m == 0 {
            return Vec::new();
        }
        let ks = DMatrix::from_fn(m, n, |j, a| {
            kernel(&xs[j], self.data.row(a), &self.inv_ls2, self.signal)
        });
        let q = &ks * &self.kinv;
        let means = &ks * &self.alpha;
        (0..m)
            .map(|j| {
                let quad = ks.row(j).dot(&q.row(j));
                (
                    self.prior_mean + means[j],
                    (self.signal - quad).max(self.min_var()),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, d: usize, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        let x: Vec<f64> = (0..n * d).map(|_| rng.uniform()).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                let r = &x[i * d..(i + 1) * d];
                (3.0 * r[0]).sin() + r.iter().map(|v| v * v).sum::<f64>() - 0.5
                    + 0.01 * rng.normal()
            })
            .collect();
        Data {
            x,
            y,
            d,
            noise: Vec::new(),
        }
    }

    /// The analytic gradient of the negative log posterior against central finite differences,
    /// within `rel_tol` relative to max(|g|, 1).
    fn assert_gradient_matches(data: &Data, theta: &[f64], prior: Prior, rel_tol: f64) {
        let (_, g) = neg_log_posterior(data, theta, prior).unwrap();
        for j in 0..theta.len() {
            let h = 1e-6;
            let mut tp = theta.to_vec();
            tp[j] += h;
            let mut tm = theta.to_vec();
            tm[j] -= h;
            let fd = (neg_log_posterior(data, &tp, prior).unwrap().0
                - neg_log_posterior(data, &tm, prior).unwrap().0)
                / (2.0 * h);
            assert!(
                (fd - g[j]).abs() < rel_tol * g[j].abs().max(1.0),
                "{prior:?} theta {theta:?} param {j}: fd {fd} analytic {}",
                g[j]
            );
        }
    }

    #[test]
    fn neg_log_posterior_gradient_matches_finite_differences() {
        for prior in [Prior::Optuna, Prior::DimScaled] {
            let data = toy(12, 3, 1);
            for theta in [
                vec![-0.5, 0.2, -1.0, 0.3, -4.0],
                vec![0.4, -1.5, 0.0, -0.7, -9.0],
                vec![-2.0, 1.0, 0.5, 1.2, -1.0],
            ] {
                assert_gradient_matches(&data, &theta, prior, 1e-6);
            }
        }
    }

    #[test]
    fn slice_sampler_reproduces_a_correlated_gaussian() {
        // N(m, Σ) with m = (1, −2), sd (0.5, 2), correlation 0.6.
        let (m, sd, rho) = ([1.0, -2.0], [0.5, 2.0], 0.6);
        let f = |x: &[f64]| {
            let a = (x[0] - m[0]) / sd[0];
            let b = (x[1] - m[1]) / sd[1];
            Some(-(a * a - 2.0 * rho * a * b + b * b) / (2.0 * (1.0 - rho * rho)))
        };
        let mut rng = Rng::new(3);
        let draws = slice_sample(&f, &[0.0, 0.0], 4000, 20, 1, &mut rng);
        assert_eq!(draws.len(), 4000);
        let n = draws.len() as f64;
        let mean: Vec<f64> = (0..2)
            .map(|j| draws.iter().map(|x| x[j]).sum::<f64>() / n)
            .collect();
        let cov = |i: usize, j: usize| {
            draws
                .iter()
                .map(|x| (x[i] - mean[i]) * (x[j] - mean[j]))
                .sum::<f64>()
                / n
        };
        assert!(
            (mean[0] - 1.0).abs() < 0.05 && (mean[1] + 2.0).abs() < 0.2,
            "{mean:?}"
        );
        assert!(
            (cov(0, 0).sqrt() / 0.5 - 1.0).abs() < 0.1,
            "sd0 {}",
            cov(0, 0).sqrt()
        );
        assert!(
            (cov(1, 1).sqrt() / 2.0 - 1.0).abs() < 0.1,
            "sd1 {}",
            cov(1, 1).sqrt()
        );
        let r = cov(0, 1) / (cov(0, 0) * cov(1, 1)).sqrt();
        assert!((r - 0.6).abs() < 0.08, "correlation {r}");
        // Seeded, and nothing when the start is outside the support.
        assert_eq!(
            draws[..5],
            slice_sample(&f, &[0.0, 0.0], 5, 20, 1, &mut Rng::new(3))[..]
        );
        assert!(slice_sample(&|_: &[f64]| None, &[0.0], 3, 0, 1, &mut rng).is_empty());
    }

    #[test]
    fn hyperparameter_draws_spread_around_the_map_fit() {
        let data = toy(15, 2, 4);
        let map = fit(&data, Prior::Optuna, None, 2, &mut Rng::new(1));
        let draws = sample_hyperparameters(&data, Prior::Optuna, &map, 30, 5, 2, &mut Rng::new(2));
        assert_eq!(draws.len(), 30);
        let lp_map = log_posterior(&data, &map, Prior::Optuna).unwrap();
        for t in &draws {
            // Draws vary, and sit in the posterior's bulk (never above the MAP by more than
            // the fit's convergence, nor in its far tail).
            let lp = log_posterior(&data, t, Prior::Optuna).unwrap();
            assert!(
                lp <= lp_map + 1.0 && lp > lp_map - 25.0,
                "{lp} vs MAP {lp_map}"
            );
        }
        let spread = draws
            .iter()
            .map(|t| (t[0] - map[0]).abs())
            .fold(0.0, f64::max);
        assert!(spread > 0.05, "length-scale draws do not move: {spread}");
    }

    #[test]
    fn dim_scaled_prior_is_a_density_of_the_length_scale() {
        // As a density of ℓ (not of ln ℓ), LogNormal(μ, √3) peaks at ℓ = e^{μ − 3}: BoTorch's
        // prior mode, 0.502 for D = 6. The prior's centre must be that stationary point.
        let d = 6;
        let theta = Prior::DimScaled.default_theta(d);
        let want = (std::f64::consts::SQRT_2 + 0.5 * (d as f64).ln() - 3.0).exp();
        assert!((theta[0].exp() - 0.5016).abs() < 1e-4 && (theta[0].exp() - want).abs() < 1e-12);
        let mut g = vec![0.0; d + 2];
        let lp = Prior::DimScaled.log_density(&theta, &mut g);
        for (i, gi) in g.iter().enumerate().take(d) {
            assert!(gi.abs() < 1e-12, "gradient {gi} at length scale {i}");
        }
        // Density of ℓ at ℓ = 1 vs the mode: ln p(1) − ln p(mode) from the closed form.
        let mu = want.ln() + 3.0;
        let mut one = theta.clone();
        one[..d].iter_mut().for_each(|t| *t = 0.0);
        let lp1 = Prior::DimScaled.log_density(&one, &mut vec![0.0; d + 2]);
        let per_dim = |l: f64| -(l.ln() - mu).powi(2) / 6.0 - l.ln();
        assert!(((lp1 - lp) - d as f64 * (per_dim(1.0) - per_dim(want))).abs() < 1e-9);
    }

    #[test]
    fn box_penalty_gradient_matches_finite_differences() {
        let data = toy(6, 2, 3);
        let theta = vec![-9.5, 9.3, 12.5, -31.0];
        assert_gradient_matches(&data, &theta, Prior::Optuna, 1e-5);
    }

    #[test]
    fn fit_improves_on_its_starting_point() {
        let data = toy(30, 3, 5);
        let mut rng = Rng::new(9);
        let start = Prior::Optuna.default_theta(3);
        let theta = fit(&data, Prior::Optuna, None, 2, &mut rng);
        let at_start = neg_log_posterior(&data, &start, Prior::Optuna).unwrap().0;
        let at_fit = neg_log_posterior(&data, &theta, Prior::Optuna).unwrap().0;
        assert!(at_fit < at_start - 1e-3, "fit {at_fit} vs start {at_start}");
        // The fitted model predicts held-out points of the smooth toy function well.
        let post = Posterior::new(data, &theta).unwrap();
        let test = toy(50, 3, 77);
        let mse: f64 = (0..50)
            .map(|i| (post.predict(test.row(i)).0 - test.y[i]).powi(2))
            .sum::<f64>()
            / 50.0;
        let var: f64 = {
            let m = test.y.iter().sum::<f64>() / 50.0;
            test.y.iter().map(|y| (y - m).powi(2)).sum::<f64>() / 50.0
        };
        assert!(mse < 0.05 * var, "mse {mse} vs variance {var}");
    }

    #[test]
    fn predict_with_grad_matches_predict_and_finite_differences() {
        let data = toy(15, 3, 2);
        let post = Posterior::new(data, &[-1.0, -0.5, 0.0, 0.2, -6.0]).unwrap();
        let x = [0.3, 0.6, 0.1];
        let (m, v, dm, dv) = post.predict_with_grad(&x);
        let (m2, v2) = post.predict(&x);
        assert!((m - m2).abs() < 1e-12 && (v - v2).abs() < 1e-12);
        let many = post.predict_many(&[x.to_vec()]);
        assert!((many[0].0 - m).abs() < 1e-10 && (many[0].1 - v).abs() < 1e-10);
        for i in 0..3 {
            let h = 1e-6;
            let mut xp = x;
            xp[i] += h;
            let mut xm = x;
            xm[i] -= h;
            let (mp, vp) = post.predict(&xp);
            let (mm, vm) = post.predict(&xm);
            assert!(((mp - mm) / (2.0 * h) - dm[i]).abs() < 1e-6, "mean dim {i}");
            assert!(((vp - vm) / (2.0 * h) - dv[i]).abs() < 1e-6, "var dim {i}");
        }
    }
}

/// Cross-checks against independent implementations with fixed hyperparameters.
#[cfg(test)]
mod reference_tests {
    use super::*;

    /// The data of `scripts/reference/gp_reference.py`: a Kronecker sequence and a closed form.
    fn kronecker(n: usize, offset: f64) -> Vec<Vec<f64>> {
        const ALPHAS: [f64; 3] = [0.6180339887498949, 0.7548776662466927, 0.5698402909980532];
        (0..n)
            .map(|i| {
                ALPHAS
                    .iter()
                    .map(|a| (offset + (i + 1) as f64 * a) % 1.0)
                    .collect()
            })
            .collect()
    }

    fn f(x: &[f64]) -> f64 {
        (3.0 * x[0]).sin() + x[1] * x[1] - 0.5 * x[2]
    }

    fn data(xs: &[Vec<f64>]) -> Data {
        Data {
            x: xs.concat(),
            y: xs.iter().map(|x| f(x)).collect(),
            d: 3,
            noise: Vec::new(),
        }
    }

    #[test]
    fn posterior_and_lml_match_scikit_learn() {
        // Output of scripts/reference/gp_reference.py (scikit-learn 1.9.1, GaussianProcessRegressor
        // with s·Matern(ℓ=[0.3, 0.7, 1.5], ν=2.5), s = 1.3, alpha = 1e-4, no optimiser).
        const SK_LML: f64 = -6.323152008497462;
        const SK_MEAN: [f64; 4] = [
            0.03831345034269519,
            1.2799371745066688,
            0.7540231518998158,
            0.5108178764380753,
        ];
        const SK_VAR: [f64; 4] = [
            0.07057112131974352,
            0.08622058518532393,
            0.08873017842788689,
            0.028124346768587216,
        ];
        let train = data(&kronecker(8, 0.0));
        let theta = vec![
            0.3f64.ln(),
            0.7f64.ln(),
            1.5f64.ln(),
            1.3f64.ln(),
            (1e-4 - NOISE_FLOOR).ln(),
        ];
        let (lml, _) = log_marginal_likelihood(&train, &theta).unwrap();
        assert!((lml - SK_LML).abs() < 1e-9, "LML {lml} vs {SK_LML}");
        let post = Posterior::new(train, &theta).unwrap();
        let test = kronecker(4, 0.31);
        for (i, x) in test.iter().enumerate() {
            let (m, v) = post.predict(x);
            assert!(
                (m - SK_MEAN[i]).abs() < 1e-9,
                "mean {i}: {m} vs {}",
                SK_MEAN[i]
            );
            assert!(
                (v - SK_VAR[i]).abs() < 1e-9,
                "var {i}: {v} vs {}",
                SK_VAR[i]
            );
        }
    }

    #[test]
    fn posterior_matches_friedrich_for_an_isotropic_kernel() {
        use friedrich::gaussian_process::GaussianProcess;
        use friedrich::kernel::Matern2;
        use friedrich::prior::ZeroPrior;

        let xs = kronecker(10, 0.1);
        let ys: Vec<f64> = xs.iter().map(|x| f(x)).collect();
        let (ls, ampl, noise_std) = (0.4, 1.3, 0.05);
        let fr = GaussianProcess::builder(xs.clone(), ys)
            .set_prior(ZeroPrior {})
            .set_kernel(Matern2::new(ls, ampl))
            .set_noise(noise_std)
            .train();
        let test = kronecker(6, 0.57);
        let (fr_mean, fr_var) = fr.predict_mean_variance(&test);

        let theta = vec![
            f64::ln(ls),
            f64::ln(ls),
            f64::ln(ls),
            f64::ln(ampl),
            (noise_std * noise_std - NOISE_FLOOR).ln(),
        ];
        let post = Posterior::new(data(&xs), &theta).unwrap();
        for (i, x) in test.iter().enumerate() {
            let (m, v) = post.predict(x);
            assert!(
                (m - fr_mean[i]).abs() < 1e-9,
                "mean {i}: {m} vs friedrich {}",
                fr_mean[i]
            );
            assert!(
                (v - fr_var[i]).abs() < 1e-9,
                "var {i}: {v} vs friedrich {}",
                fr_var[i]
            );
        }
    }
}

#[cfg(test)]
mod mean_tests {
    use super::*;

    #[test]
    fn gls_mean_down_weights_a_cluster() {
        // Five nearly coincident good points and three spread-out poor ones. The sample mean is
        // 1.25; the GLS mean counts the cluster about once, so it is near (2 + 0 + 0 + 0) / 4.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..5 {
            x.extend_from_slice(&[0.8 + 1e-3 * i as f64, 0.8]);
            y.push(2.0);
        }
        for p in [[0.1, 0.1], [0.1, 0.9], [0.5, 0.2]] {
            x.extend_from_slice(&p);
            y.push(0.0);
        }
        let data = Data {
            x,
            y,
            d: 2,
            noise: Vec::new(),
        };
        let theta = [(0.15f64).ln(), (0.15f64).ln(), 0.0, (1e-4f64).ln()];
        let gls = Posterior::new_gls(data.clone(), &theta).unwrap();
        let zero = Posterior::new(data, &theta).unwrap();
        // Far from all data the posterior mean reverts to the prior mean.
        let far = [0.0, 0.5];
        let (m_gls, _) = gls.predict(&far);
        let (m_zero, _) = zero.predict(&far);
        assert!(
            m_zero.abs() < 0.05,
            "zero-mean model reverts to 0, got {m_zero}"
        );
        assert!(m_gls > 0.3 && m_gls < 0.7, "GLS mean {m_gls}");
        // Both interpolate the data.
        assert!((gls.predict(&[0.8, 0.8]).0 - 2.0).abs() < 0.05);
        assert!((gls.predict(&[0.1, 0.1]).0).abs() < 0.05);
        // The mean shift is consistent between the single, gradient and batch paths.
        let (m, _, _, _) = gls.predict_with_grad(&far);
        assert!((m - m_gls).abs() < 1e-12);
        assert!((gls.predict_many(&[far.to_vec()])[0].0 - m_gls).abs() < 1e-10);
    }
}
