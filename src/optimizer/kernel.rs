//! ARD Matérn-5/2 kernel on unit-cube inputs.
//!
//! `k(x, x') = s · (1 + √5 r + 5/3 r²) · exp(-√5 r)`, with `r² = Σ_i (x_i - x'_i)² / ℓ_i²`.
//!
//! Two derivatives are needed and both are written so that they stay finite at `r = 0`
//! (where `dr/d·` is singular but the products below are not):
//! * w.r.t. `ln ℓ_i`: `∂k/∂ln ℓ_i = s · 5/3 · (1 + √5 r) e^{-√5 r} · d_i² / ℓ_i²`;
//! * w.r.t. the input: `∂k/∂x_i = -s · 5/3 · (1 + √5 r) e^{-√5 r} · (x_i - x'_i) / ℓ_i²`.
//!
//! (friedrich 0.6's Matérn-5/2 length-scale gradient is wrong — see the reference notes §1.4 — so
//! these are checked against finite differences in the tests below.)

pub(crate) const SQRT5: f64 = 2.236_067_977_499_79;

/// Scaled squared distance `r² = Σ (a_i - b_i)² · inv_ls2_i`.
#[inline]
pub(crate) fn scaled_sqdist(a: &[f64], b: &[f64], inv_ls2: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..a.len() {
        let d = a[i] - b[i];
        s += d * d * inv_ls2[i];
    }
    s
}

/// Unit-amplitude Matérn-5/2 correlation as a function of `r²`.
#[inline]
pub(crate) fn matern52(r2: f64) -> f64 {
    let r = r2.max(0.0).sqrt();
    (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * (-SQRT5 * r).exp()
}

/// `5/3 (1 + √5 r) e^{-√5 r}`: the common factor of both derivatives (unit amplitude).
#[inline]
pub(crate) fn matern52_dfactor(r2: f64) -> f64 {
    let r = r2.max(0.0).sqrt();
    5.0 / 3.0 * (1.0 + SQRT5 * r) * (-SQRT5 * r).exp()
}

/// `k(a, b)` for signal variance `s`.
#[inline]
pub(crate) fn kernel(a: &[f64], b: &[f64], inv_ls2: &[f64], s: f64) -> f64 {
    s * matern52(scaled_sqdist(a, b, inv_ls2))
}

/// `∂k(a, b)/∂ln ℓ_i` for every `i`, added into `out` with weight `w`.
#[inline]
pub(crate) fn add_dk_dlogls(
    a: &[f64],
    b: &[f64],
    inv_ls2: &[f64],
    s: f64,
    w: f64,
    out: &mut [f64],
) {
    let f = w * s * matern52_dfactor(scaled_sqdist(a, b, inv_ls2));
    for i in 0..a.len() {
        let d = a[i] - b[i];
        out[i] += f * d * d * inv_ls2[i];
    }
}

/// `∂k(x, b)/∂x_i` for every `i`, added into `out` with weight `w`.
#[inline]
pub(crate) fn add_dk_dx(x: &[f64], b: &[f64], inv_ls2: &[f64], s: f64, w: f64, out: &mut [f64]) {
    let f = -w * s * matern52_dfactor(scaled_sqdist(x, b, inv_ls2));
    for i in 0..x.len() {
        out[i] += f * (x[i] - b[i]) * inv_ls2[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(ls: &[f64]) -> Vec<f64> {
        ls.iter().map(|l| 1.0 / (l * l)).collect()
    }

    #[test]
    fn matern52_known_values() {
        // r = 0 → 1; r = 1 → (1 + √5 + 5/3) e^{-√5} = 0.5239941088318203.
        assert_eq!(matern52(0.0), 1.0);
        assert!((matern52(1.0) - 0.523_994_108_831_820_3).abs() < 1e-14);
        assert!(matern52(1e6) < 1e-300 + 1e-200);
    }

    #[test]
    fn lengthscale_gradient_matches_finite_differences() {
        let a = [0.1, 0.7, 0.3];
        let s = 1.7;
        for b in [[0.1, 0.7, 0.3], [0.4, 0.2, 0.35], [0.9, 0.0, 1.0]] {
            let logls = [-1.2f64, 0.3, -0.4];
            let ls: Vec<f64> = logls.iter().map(|v| v.exp()).collect();
            let mut g = vec![0.0; 3];
            add_dk_dlogls(&a, &b, &inv(&ls), s, 1.0, &mut g);
            for i in 0..3 {
                let h = 1e-6;
                let mut lp = logls;
                lp[i] += h;
                let mut lm = logls;
                lm[i] -= h;
                let kp = kernel(&a, &b, &inv(&lp.map(f64::exp)), s);
                let km = kernel(&a, &b, &inv(&lm.map(f64::exp)), s);
                let fd = (kp - km) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() < 1e-8,
                    "dim {i}: fd {fd} analytic {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn input_gradient_matches_finite_differences() {
        let b = [0.2, 0.5];
        let il = inv(&[0.3, 1.1]);
        for x in [[0.25, 0.45], [0.9, 0.1], [0.2, 0.5]] {
            let mut g = vec![0.0; 2];
            add_dk_dx(&x, &b, &il, 2.0, 1.0, &mut g);
            for i in 0..2 {
                let h = 1e-6;
                let mut xp = x;
                xp[i] += h;
                let mut xm = x;
                xm[i] -= h;
                let fd = (kernel(&xp, &b, &il, 2.0) - kernel(&xm, &b, &il, 2.0)) / (2.0 * h);
                assert!(
                    (fd - g[i]).abs() < 1e-7,
                    "x {x:?} dim {i}: fd {fd} analytic {}",
                    g[i]
                );
            }
        }
    }
}
