//! Log expected improvement (for maximisation) in the numerically safe form of Ament et al. 2023,
//! "Unexpected Improvements to Expected Improvement for Bayesian Optimization", eq. (9).
//!
//! `EI(x) = σ · h(z)`, `z = (μ − f*)/σ`, `h(z) = φ(z) + z Φ(z)`, so `log EI = log h(z) + log σ`.
//! `h` underflows for `z` below about −38 and cancels catastrophically long before, which is what
//! makes plain EI flat (zero gradient) far from the incumbent. `log h` is computed as
//!
//! * `z > −1`: directly, `ln(φ(z) + z Φ(z))`;
//! * `−20 < z ≤ −1`: `−z²/2 − ln√(2π) + log1mexp(ln(erfcx(−z/√2) |z|) + ln√(π/2))`, the paper's
//!   middle branch (`erfcx` is the scaled complementary error function);
//! * `z ≤ −20`: the asymptotic series `−z²/2 − ln√(2π) − 2 ln|z| + ln(1 − 3/z² + 15/z⁴ − …)`.
//!   The paper switches to its leading term only at `−1/√ε`; between −20 and there the
//!   `log1mexp` branch loses digits to cancellation (relative error ~ε z²), so we use the series,
//!   which is accurate to round-off for `|z| ≥ 20` with ten terms.
//!
//! The derivative `d log h/dz = Φ(z)/h(z)` is formed as `exp(ln Φ − ln h)` with the common
//! `−z²/2` cancelled analytically, so it stays finite (≈ |z|) however far `z` goes.

use std::f64::consts::{PI, SQRT_2};

/// ln √(2π)
const C1: f64 = 0.918_938_533_204_672_8;
/// ln √(π/2)
const C2: f64 = 0.225_791_352_644_727_4;

/// Scaled complementary error function `erfcx(x) = exp(x²) erfc(x)` for `x ≥ 0`.
/// Direct product below 26 (libm's `erfc` is accurate to a few ulp down to its underflow near 27,
/// and `exp(x²)` stays finite); the asymptotic series above, where it converges to round-off.
pub(crate) fn erfcx(x: f64) -> f64 {
    if x < 26.0 {
        (x * x).exp() * libm::erfc(x)
    } else {
        let t = 1.0 / (2.0 * x * x);
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..8 {
            term *= -((2 * k - 1) as f64) * t;
            sum += term;
        }
        sum / (x * PI.sqrt())
    }
}

/// `ln(1 − e^a)` for `a < 0` (Mächler 2012).
fn log1mexp(a: f64) -> f64 {
    if a > -std::f64::consts::LN_2 {
        (-a.exp_m1()).ln()
    } else {
        (-a.exp()).ln_1p()
    }
}

/// `ln h(z)` and `d ln h / dz`.
pub(crate) fn log_h(z: f64) -> (f64, f64) {
    // Beyond this z² overflows; nothing meaningful is lost by clamping (EI is 0 to any precision).
    let z = z.max(-1e150);
    if z > -1.0 {
        let phi = (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let cdf = 0.5 * libm::erfc(-z / SQRT_2);
        let h = phi + z * cdf;
        return (h.ln(), cdf / h);
    }
    // Both ln h and ln Φ are written as (reduced part) − z²/2; the derivative uses only the
    // reduced parts, so no large numbers are subtracted.
    let x = -z / SQRT_2;
    let ex = erfcx(x);
    let reduced_log_cdf = (0.5 * ex).ln(); // ln Φ(z) + z²/2
    let reduced_log_h = if z > -20.0 {
        -C1 + log1mexp((ex * -z).ln() + C2)
    } else {
        let iz2 = 1.0 / (z * z);
        // 1 − 3/z² + 15/z⁴ − 105/z⁶ + …, coefficients (2k+1)!!
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..11 {
            term *= -((2 * k + 1) as f64) * iz2;
            sum += term;
        }
        -C1 - 2.0 * (-z).ln() + sum.ln()
    };
    (
        reduced_log_h - 0.5 * z * z,
        (reduced_log_cdf - reduced_log_h).exp(),
    )
}

/// `ln h(z)` alone: the same arithmetic as [`log_h`]'s value, without the derivative's extra
/// logarithm and exponential (the noisy EI scores thousands of draws where no gradient is needed).
pub(crate) fn log_h_value(z: f64) -> f64 {
    let z = z.max(-1e150);
    if z > -1.0 {
        let phi = (-0.5 * z * z).exp() / (2.0 * PI).sqrt();
        let cdf = 0.5 * libm::erfc(-z / SQRT_2);
        return (phi + z * cdf).ln();
    }
    let x = -z / SQRT_2;
    let ex = erfcx(x);
    let reduced_log_h = if z > -20.0 {
        -C1 + log1mexp((ex * -z).ln() + C2)
    } else {
        let iz2 = 1.0 / (z * z);
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..11 {
            term *= -((2 * k + 1) as f64) * iz2;
            sum += term;
        }
        -C1 - 2.0 * (-z).ln() + sum.ln()
    };
    reduced_log_h - 0.5 * z * z
}

/// Log EI of a Gaussian `N(mean, var)` above `best` (maximisation), and its partial derivatives
/// w.r.t. `mean` and `var`.
pub(crate) fn log_ei(mean: f64, var: f64, best: f64) -> (f64, f64, f64) {
    let sigma = var.sqrt();
    let z = (mean - best) / sigma;
    let (lh, dlh) = log_h(z);
    let value = lh + sigma.ln();
    let d_mean = dlh / sigma;
    // dz/dvar = −z/(2 var); d ln σ / dvar = 1/(2 var)
    let d_var = (1.0 - dlh * z) / (2.0 * var);
    (value, d_mean, d_var)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h_direct(z: f64) -> f64 {
        (-0.5 * z * z).exp() / (2.0 * PI).sqrt() + z * 0.5 * libm::erfc(-z / SQRT_2)
    }

    #[test]
    fn erfcx_matches_reference_values() {
        // Reference values from mpmath (exp(x^2) * erfc(x), 30 digits).
        let cases = [
            (0.0, 1.0),
            (1.0, 0.427_583_576_155_807),
            (5.0, 0.110_704_637_733_068_6),
            (25.0, 0.022_549_572_432_641_36),
            (30.0, 0.018_795_888_861_416_75),
            (1e4, 5.641_895_807_268_084e-5),
        ];
        for (x, want) in cases {
            let got = erfcx(x);
            assert!(
                (got / want - 1.0).abs() < 1e-13,
                "erfcx({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn log_h_agrees_with_direct_formula_where_that_is_accurate() {
        for z in [3.0, 1.0, 0.0, -0.5, -0.999, -1.0, -1.5, -3.0, -5.0] {
            let (lh, _) = log_h(z);
            let want = h_direct(z).ln();
            assert!(
                (lh - want).abs() < 1e-9 * want.abs().max(1.0),
                "z {z}: {lh} vs {want}"
            );
        }
    }

    #[test]
    fn log_h_value_is_log_h_bit_for_bit() {
        for k in -400..200 {
            let z = k as f64 * 0.137;
            assert_eq!(log_h_value(z).to_bits(), log_h(z).0.to_bits(), "z {z}");
        }
        for z in [-1.0, -20.0, -1e6, -1e200, f64::NEG_INFINITY, 40.0] {
            assert_eq!(log_h_value(z).to_bits(), log_h(z).0.to_bits(), "z {z}");
        }
    }

    #[test]
    fn log_h_is_continuous_across_branches() {
        for z0 in [-1.0f64, -20.0] {
            let (a, da) = log_h(z0 + 1e-9);
            let (b, db) = log_h(z0 - 1e-9);
            assert!((a - b).abs() < 1e-7, "value jump at {z0}: {a} vs {b}");
            assert!(
                (da - db).abs() < 1e-6 * da.abs(),
                "slope jump at {z0}: {da} vs {db}"
            );
        }
    }

    #[test]
    fn log_h_stays_finite_and_monotone_far_from_the_incumbent() {
        let mut prev = f64::INFINITY;
        for k in 0..60 {
            let z = -(1.5f64.powi(k));
            let (lh, dlh) = log_h(z);
            assert!(lh.is_finite() && dlh.is_finite(), "z {z}: {lh} {dlh}");
            assert!(lh < prev, "not decreasing at z {z}");
            assert!(dlh > 0.0);
            prev = lh;
        }
        // Leading asymptotics: ln h ≈ −z²/2 − ln√(2π) − 2 ln|z|, slope ≈ |z|.
        let z = -1e6;
        let (lh, dlh) = log_h(z);
        let lead = -0.5 * z * z - C1 - 2.0 * (-z).ln();
        assert!((lh - lead).abs() < 1e-3);
        assert!((dlh / -z - 1.0).abs() < 1e-6);
        // Plain EI is exactly 0 here; log EI still ranks points.
        assert_eq!(h_direct(-40.0), 0.0);
        assert!(log_h(-40.0).0 > log_h(-41.0).0);
        assert!(
            log_h(f64::NEG_INFINITY).0.is_finite()
                || log_h(f64::NEG_INFINITY).0 == f64::NEG_INFINITY
        );
    }

    #[test]
    fn log_h_derivative_matches_finite_differences() {
        for z in [
            2.0f64, 0.3, -0.9, -1.2, -4.0, -15.0, -19.9, -20.1, -60.0, -1e3,
        ] {
            let h = 1e-5 * (1.0f64).max(z.abs());
            let fd = (log_h(z + h).0 - log_h(z - h).0) / (2.0 * h);
            let (_, d) = log_h(z);
            assert!(
                (fd - d).abs() < 1e-5 * d.abs().max(1.0),
                "z {z}: fd {fd} analytic {d}"
            );
        }
    }

    #[test]
    fn log_ei_gradients_match_finite_differences() {
        for (m, v, b) in [
            (0.3, 0.5, 0.1),
            (-2.0, 0.01, 1.0),
            (-50.0, 0.04, 2.0),
            (1.0, 1e-6, 0.0),
        ] {
            let (val, dm, dv) = log_ei(m, v, b);
            assert!(val.is_finite());
            let hm = 1e-6;
            let fdm = (log_ei(m + hm, v, b).0 - log_ei(m - hm, v, b).0) / (2.0 * hm);
            let hv = 1e-6 * v;
            let fdv = (log_ei(m, v + hv, b).0 - log_ei(m, v - hv, b).0) / (2.0 * hv);
            assert!(
                (fdm - dm).abs() < 1e-4 * dm.abs().max(1.0),
                "{m} {v} {b}: dmean {fdm} vs {dm}"
            );
            assert!(
                (fdv - dv).abs() < 1e-4 * dv.abs().max(1.0),
                "{m} {v} {b}: dvar {fdv} vs {dv}"
            );
        }
    }
}
