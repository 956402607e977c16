//! Knowledge gradient over the evaluated points (Frazier, Powell & Dayanik 2009, "The knowledge-
//! gradient policy for correlated normal beliefs", INFORMS J. Computing), for choosing under noise.
//!
//! Under noise the study's result is the evaluated point with the best posterior mean
//! (`Optimizer::recommend`), and most of the regret a noisy study ends with is lost in that choice,
//! not in where the points were put (BENCHMARKS.md). The knowledge gradient of a candidate `x` is
//! the expected rise of exactly that quantity if `x` is evaluated next:
//!
//! `KG(x) = E[max_{i ∈ X ∪ {x}} μ'(x_i)] − max_{i ∈ X} μ(x_i)`,
//!
//! where `μ'` is the posterior mean after observing `y = f(x) + ε`. Before the observation,
//! `μ'(x_i) = μ(x_i) + σ̃_i Z` with `Z ~ N(0, 1)` and `σ̃_i = Cov(f(x_i), f(x)) / √(Var f(x) + τ²)`
//! (`τ²` the new observation's noise), so the expectation is that of the upper envelope of lines
//! `a_i + b_i Z`, which is exact and cheap: sort by slope, keep the envelope, and sum
//! `(b_{j+1} − b_j) f(−|c_j|)` over its breakpoints `c_j`, `f(z) = φ(z) + z Φ(z)`.
//!
//! Unlike expected improvement it values a point by how much it can change the final choice: a
//! point next to two leading candidates that the model cannot yet tell apart is worth more than
//! one in a new region that would need several more evaluations to be trusted.

use nalgebra::DMatrix;

use super::acquisition::log_h_value;
use super::gp::Posterior;
use super::kernel::kernel;

/// The knowledge gradient of one GP posterior, ready to score candidates.
#[derive(Clone, Debug)]
pub(crate) struct KnowledgeGradient {
    post: Posterior,
    /// Kernel between the choosable points (the first rows of the model data: the real
    /// observations; pending fantasies follow them and cannot be a study's result) and all
    /// modelled points, transposed: `K(X, X_choosable)`.
    k_all_choosable: DMatrix<f64>,
    /// Posterior mean at each choosable point.
    means: Vec<f64>,
    /// The best of `means`: the value of choosing now.
    best: f64,
    /// Noise variance (standardised) the next observation is expected to carry.
    new_noise: f64,
}

impl KnowledgeGradient {
    /// `n_choosable` leading rows of the posterior's data are the points a study could choose.
    /// The next observation is assumed as noisy as the typical choosable one: the learned noise
    /// plus the mean known noise.
    pub(crate) fn new(post: &Posterior, n_choosable: usize) -> Self {
        let data = post.data();
        let n = data.n();
        let n_choosable = n_choosable.clamp(1, n);
        let inv_ls2 = post.inv_ls2();
        let signal = post.signal();
        let k_all_choosable = DMatrix::from_fn(n, n_choosable, |a, i| {
            kernel(data.row(a), data.row(i), inv_ls2, signal)
        });
        let means: Vec<f64> = (0..n_choosable)
            .map(|i| post.predict(data.row(i)).0)
            .collect();
        let best = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let new_noise =
            (0..n_choosable).map(|i| post.noise_var(i)).sum::<f64>() / n_choosable as f64;
        Self {
            post: post.clone(),
            k_all_choosable,
            means,
            best,
            new_noise,
        }
    }

    /// Posterior mean at each choosable point.
    pub(crate) fn means(&self) -> &[f64] {
        &self.means
    }

    /// `KG(x)` at each point, on the model's (standardised, larger-is-better) scale; never
    /// negative. The kernel rows of all points at once, so the products with the model's inverse
    /// are matrix products.
    pub(crate) fn values(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        let data = self.post.data();
        let (n, m) = (data.n(), xs.len());
        if m == 0 {
            return Vec::new();
        }
        let inv_ls2 = self.post.inv_ls2();
        let signal = self.post.signal();
        let ks = DMatrix::from_fn(m, n, |j, a| kernel(&xs[j], data.row(a), inv_ls2, signal));
        // Row j of `q`: (K + N)⁻¹ k(x_j), as a row.
        let q = &ks * self.post.kinv();
        let means = &ks * self.post.alpha();
        // Cov(f(x_j), f(x_i)) = k(x_j, x_i) − k(x_j)ᵀ (K + N)⁻¹ k(X, x_i) for choosable x_i.
        let explained = &q * &self.k_all_choosable;
        let n_choosable = self.means.len();
        let mut lines = Vec::with_capacity(n_choosable + 1);
        (0..m)
            .map(|j| {
                let var = (signal - ks.row(j).dot(&q.row(j))).max(0.0);
                let scale = (var + self.new_noise).sqrt();
                if !(scale > 0.0 && scale.is_finite()) {
                    return 0.0;
                }
                lines.clear();
                lines.extend(
                    (0..n_choosable)
                        .map(|i| (self.means[i], (ks[(j, i)] - explained[(j, i)]) / scale)),
                );
                lines.push((self.post.prior_mean() + means[j], var / scale));
                (expected_max(&mut lines) - self.best).max(0.0)
            })
            .collect()
    }
}

/// `E[max_i (a_i + b_i Z)]`, `Z ~ N(0, 1)`, for lines `(a_i, b_i)` (reordered in place).
pub(crate) fn expected_max(lines: &mut [(f64, f64)]) -> f64 {
    // By slope, and for equal slopes the highest intercept last (it alone can be on the envelope).
    lines.sort_by(|p, q| p.1.total_cmp(&q.1).then(p.0.total_cmp(&q.0)));
    // The upper envelope: each kept line with the Z from which it is the maximum.
    let mut envelope: Vec<((f64, f64), f64)> = Vec::with_capacity(lines.len());
    for (i, &line) in lines.iter().enumerate() {
        if i + 1 < lines.len() && lines[i + 1].1 == line.1 {
            continue;
        }
        let mut from = f64::NEG_INFINITY;
        while let Some(&((a, b), start)) = envelope.last() {
            // Where the new, steeper line overtakes the top of the envelope.
            let z = (a - line.0) / (line.1 - b);
            if z <= start {
                envelope.pop();
                from = f64::NEG_INFINITY;
            } else {
                from = z;
                break;
            }
        }
        envelope.push((line, from));
    }
    // E[max] = max_i a_i + Σ_j (b_{j+1} − b_j) f(−|c_j|) over the envelope's breakpoints c_j,
    // where max_i a_i is the envelope's value at Z = 0.
    let at_zero = envelope
        .iter()
        .rev()
        .find(|(_, start)| *start <= 0.0)
        .map_or(envelope[0].0 .0, |((a, _), _)| *a);
    let mut gain = 0.0;
    for w in envelope.windows(2) {
        let ((_, b0), _) = w[0];
        let ((_, b1), c) = w[1];
        gain += (b1 - b0) * log_h_value(-c.abs()).exp();
    }
    at_zero + gain
}

#[cfg(test)]
mod tests {
    use super::super::gp::{Data, NOISE_FLOOR};
    use super::*;

    /// E[max] by quadrature on a fine grid, the oracle for the envelope formula.
    fn by_quadrature(lines: &[(f64, f64)]) -> f64 {
        let (lo, hi, steps) = (-12.0, 12.0, 400_000);
        let h = (hi - lo) / steps as f64;
        (0..=steps)
            .map(|s| {
                let z = lo + s as f64 * h;
                let w = if s == 0 || s == steps { 0.5 } else { 1.0 };
                let m = lines
                    .iter()
                    .map(|(a, b)| a + b * z)
                    .fold(f64::NEG_INFINITY, f64::max);
                w * h * m * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
            })
            .sum()
    }

    /// A 1-D posterior (Matérn-5/2, length scale 0.2, signal 1, learned noise 0.09) on eight
    /// observations with two leading regions of nearly equal height and a poor one near 0.
    fn posterior(known_noise: bool) -> Posterior {
        let x = vec![0.02, 0.1, 0.25, 0.3, 0.35, 0.68, 0.72, 0.95];
        let y = vec![-1.5, -1.2, 0.6, 0.9, 0.7, 0.8, 0.95, -0.2];
        let n = x.len();
        let data = Data {
            x,
            y,
            d: 1,
            noise: if known_noise {
                (0..n).map(|i| 0.02 * (1 + i % 3) as f64).collect()
            } else {
                Vec::new()
            },
        };
        let theta = [0.2f64.ln(), 0.0, (0.09 - NOISE_FLOOR).ln()];
        Posterior::new(data, &theta).expect("a well-conditioned toy posterior")
    }

    #[test]
    fn matches_conditioning_the_model_on_each_possible_outcome() {
        // The oracle does what the knowledge gradient describes, with no shortcut: for each
        // outcome y = μ(x) + √(Var f(x) + σ²) z on a fine grid of z, condition the posterior on
        // (x, y) (`with_extra`, a refactorisation with the learned noise σ², which without
        // known noise is also what the next observation carries), take the best posterior mean
        // over the evaluated points and x, and integrate against φ(z).
        let post = posterior(false);
        let n = post.data().n();
        let kg = KnowledgeGradient::new(&post, n);
        let noise = post.noise_var(0);
        let best_now = (0..n)
            .map(|i| post.predict(post.data().row(i)).0)
            .fold(f64::NEG_INFINITY, f64::max);
        let xs: Vec<Vec<f64>> = [0.0, 0.3, 0.5, 0.53, 0.7, 0.85, 1.0]
            .iter()
            .map(|&v| vec![v])
            .collect();
        let got = kg.values(&xs);
        for (x, got) in xs.iter().zip(got) {
            let (m, v) = post.predict(x);
            let (lo, hi, steps) = (-9.0, 9.0, 6000);
            let h = (hi - lo) / steps as f64;
            let mut want = 0.0;
            for s in 0..=steps {
                let z = lo + s as f64 * h;
                let updated = post.with_extra(x, m + (v + noise).sqrt() * z).unwrap();
                let best_after = (0..n)
                    .map(|i| updated.predict(post.data().row(i)).0)
                    .chain([updated.predict(x).0])
                    .fold(f64::NEG_INFINITY, f64::max);
                let w = if s == 0 || s == steps { 0.5 } else { 1.0 };
                want +=
                    w * h * best_after * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            }
            want -= best_now;
            assert!((got - want).abs() < 1e-5, "x = {x:?}: {got} vs {want}");
        }
    }

    #[test]
    fn values_points_that_can_change_the_choice() {
        // Between and at the two nearly equal leaders the next result can change which point is
        // chosen; in the poor region near 0 no plausible outcome lifts it above the leaders.
        for known_noise in [false, true] {
            let post = posterior(known_noise);
            let kg = KnowledgeGradient::new(&post, post.data().n());
            let v = kg.values(&[vec![0.0], vec![0.3], vec![0.7]]);
            assert!(v.iter().all(|&k| k >= 0.0), "{v:?}");
            assert!(v[1] > 20.0 * v[0] && v[2] > 20.0 * v[0], "{v:?}");
        }
    }

    #[test]
    fn expected_max_matches_quadrature() {
        let cases: Vec<Vec<(f64, f64)>> = vec![
            vec![(0.0, 1.0)],
            vec![(0.3, 0.0), (0.0, 1.0)],
            vec![(0.0, -1.0), (0.0, 1.0)],
            vec![
                (1.0, 0.2),
                (0.8, 0.5),
                (0.2, -0.7),
                (0.9, 0.5),
                (-3.0, 2.0),
                (0.5, 0.0),
            ],
            vec![(2.0, 0.1), (0.0, 0.05), (-1.0, 0.3)],
        ];
        for case in cases {
            let want = by_quadrature(&case);
            let got = expected_max(&mut case.clone());
            assert!((got - want).abs() < 1e-7, "{case:?}: {got} vs {want}");
        }
        // Two symmetric lines: E|Z| = √(2/π).
        let got = expected_max(&mut [(0.0, -1.0), (0.0, 1.0)]);
        assert!((got - (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-12);
    }
}
