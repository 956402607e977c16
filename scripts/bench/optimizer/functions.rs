//! The benchmark's test functions (minimised; known optima), shared by our optimiser's benchmark
//! (`examples/bench_optimizer.rs`) and the standalone egobox benchmark
//! (`scripts/bench/optimizer/egobox`), which include this file with `#[path]` so both optimise
//! exactly the same problems, and summarise them the same way ([`median`]).
#![allow(dead_code)]

/// Median of `v` (sorted in place); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub struct Problem {
    pub name: &'static str,
    pub bounds: Vec<(f64, f64)>,
    pub optimum: f64,
    pub f: fn(&[f64]) -> f64,
}

pub fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

pub fn hartmann6(x: &[f64]) -> f64 {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4)
        .map(|i| {
            let s: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-s).exp()
        })
        .sum::<f64>()
}

pub fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1: f64 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2: f64 = x
        .iter()
        .map(|v| (2.0 * std::f64::consts::PI * v).cos())
        .sum::<f64>()
        / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

pub fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let pi = std::f64::consts::PI;
    let d = w.len();
    let mut s = (pi * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (pi * wi + 1.0).sin().powi(2));
    }
    s + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * pi * w[d - 1]).sin().powi(2))
}

pub fn hartmann3(x: &[f64]) -> f64 {
    const A: [[f64; 3]; 4] = [
        [3.0, 10.0, 30.0],
        [0.1, 10.0, 35.0],
        [3.0, 10.0, 30.0],
        [0.1, 10.0, 35.0],
    ];
    const P: [[f64; 3]; 4] = [
        [0.3689, 0.1170, 0.2673],
        [0.4699, 0.4387, 0.7470],
        [0.1091, 0.8732, 0.5547],
        [0.03815, 0.5743, 0.8828],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4)
        .map(|i| {
            let s: f64 = (0..3).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-s).exp()
        })
        .sum::<f64>()
}

pub fn styblinski_tang(x: &[f64]) -> f64 {
    x.iter()
        .map(|v| 0.5 * (v.powi(4) - 16.0 * v * v + 5.0 * v))
        .sum()
}

/// Noise sd of the noisy suite: 10% of the function's spread over its box, the spread being the
/// standard deviation of f over 4,096 scrambled Sobol points (scipy, seed 0), computed once by
/// `reference.py --noise-scales` (the same numbers are written there). `None`: not in the suite.
pub fn noise_sd(name: &str) -> Option<f64> {
    Some(match name {
        "branin" => 5.1258,
        "hartmann6" => 3.8765e-2,
        "ackley5_shifted" => 8.5217e-2,
        "rosenbrock4" => 3.73e4,
        "levy4" => 2.7915,
        "hartmann3" => 9.5554e-2,
        "styblinski_tang4" => 6.4148,
        _ => return None,
    })
}

/// The mixed suite's distances (a 3-way choice) with each one's best log10 learning rate, best
/// margin and offset.
pub const MIXED_PARAMS: [(f64, f64, f64); 3] =
    [(-3.0, 0.2, 0.0), (-3.7, 0.6, -0.05), (-2.5, 0.4, 0.1)];

/// A smooth, metric-learning-like loss over (learning rate in [1e-5, 1e-1], log scale; batch size
/// in 16..=512, log scale; margin in [0, 1]; distance 0..3), minimised: each distance has its own
/// best learning rate and margin and an offset; the best learning rate grows with the batch size
/// (the linear scaling rule: 0.15 decades per doubling beyond 128); batch sizes near 2^7.3 are
/// best. Same definition as `mixed_objective` in reference.py.
pub fn mixed_objective(lr: f64, batch: i64, margin: f64, choice: usize) -> f64 {
    let (lr_opt, m_opt, base) = MIXED_PARAMS[choice];
    let (u, b) = (lr.log10(), (batch as f64).log2());
    base + 0.08 * (u - lr_opt - 0.15 * (b - 7.0)).powi(2)
        + 0.5 * (margin - m_opt).powi(2)
        + 0.02 * (b - 7.3).powi(2)
}

/// For every distance and batch size the best learning rate (log10 in [-4.15, -1.6]) and margin
/// lie inside the box, so the optimum is the best offset plus the best batch term.
pub fn mixed_optimum() -> f64 {
    let base = MIXED_PARAMS
        .iter()
        .map(|p| p.2)
        .fold(f64::INFINITY, f64::min);
    let batch = (16..=512)
        .map(|b: i64| 0.02 * ((b as f64).log2() - 7.3).powi(2))
        .fold(f64::INFINITY, f64::min);
    base + batch
}

pub fn problems() -> Vec<Problem> {
    vec![
        Problem {
            name: "branin",
            bounds: vec![(-5.0, 10.0), (0.0, 15.0)],
            optimum: 0.397_887_357_729_738,
            f: branin,
        },
        Problem {
            name: "hartmann6",
            bounds: vec![(0.0, 1.0); 6],
            optimum: -3.322_368_011_415_51,
            f: hartmann6,
        },
        Problem {
            name: "ackley5",
            bounds: vec![(-32.768, 32.768); 5],
            optimum: 0.0,
            f: ackley,
        },
        // Ackley's optimum at the centre of its usual box rewards any method that evaluates the
        // centre first (Ax does) without saying anything about its model; the same box shifted
        // by 10 per coordinate keeps the landscape and moves the optimum off-centre.
        Problem {
            name: "ackley5_shifted",
            bounds: vec![(-22.768, 42.768); 5],
            optimum: 0.0,
            f: ackley,
        },
        Problem {
            name: "rosenbrock4",
            bounds: vec![(-5.0, 10.0); 4],
            optimum: 0.0,
            f: rosenbrock,
        },
        Problem {
            name: "levy4",
            bounds: vec![(-10.0, 10.0); 4],
            optimum: 0.0,
            f: levy,
        },
        Problem {
            name: "hartmann3",
            bounds: vec![(0.0, 1.0); 3],
            optimum: -3.862_782_147_820_76,
            f: hartmann3,
        },
        Problem {
            name: "styblinski_tang4",
            bounds: vec![(-5.0, 5.0); 4],
            optimum: -39.166_165_703_771_41 * 4.0,
            f: styblinski_tang,
        },
    ]
}
