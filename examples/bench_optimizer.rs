//! Benchmark of the Bayesian optimiser on standard test functions (minimised here; the optimiser
//! is told `Direction::Minimize`). Run through `scripts/bench/optimizer/run.sh`.
//!
//! Usage: `bench_optimizer [--budget N] [--seeds S] [--functions a,b] [--scale] [--json PATH]`
//! Prints one row per function: median final simple regret over seeds, median suggestion time of
//! the GP phase, and the median time of the last suggestion (at budget−1 observations).
//! `--scale` also times one fit + suggestion at 40 and 500 observations in 6 dimensions.

use std::time::Instant;

use metricbench::optimizer::{
    Direction, Optimizer, OptimizerConfig, ParamValue, Parameter, Prior, SearchSpace,
};

struct Problem {
    name: &'static str,
    bounds: Vec<(f64, f64)>,
    optimum: f64,
    f: fn(&[f64]) -> f64,
}

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

fn hartmann6(x: &[f64]) -> f64 {
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

fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1: f64 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2: f64 = x
        .iter()
        .map(|v| (2.0 * std::f64::consts::PI * v).cos())
        .sum::<f64>()
        / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let pi = std::f64::consts::PI;
    let d = w.len();
    let mut s = (pi * w[0]).sin().powi(2);
    for wi in &w[..d - 1] {
        s += (wi - 1.0).powi(2) * (1.0 + 10.0 * (pi * wi + 1.0).sin().powi(2));
    }
    s + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * pi * w[d - 1]).sin().powi(2))
}

fn problems() -> Vec<Problem> {
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
    ]
}

fn space_of(p: &Problem) -> SearchSpace {
    SearchSpace::new(
        p.bounds
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| Parameter::float(format!("x{i}"), lo, hi))
            .collect(),
    )
    .expect("valid benchmark space")
}

fn values(point: &[ParamValue]) -> Vec<f64> {
    point
        .iter()
        .map(|v| match v {
            ParamValue::Float(x) => *x,
            _ => unreachable!("benchmark spaces are continuous"),
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
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

struct RunResult {
    regret: f64,
    gp_times: Vec<f64>,
    gp_cpu: Vec<f64>,
    last_time: f64,
}

/// CPU seconds consumed by this (single-threaded) process so far, from /proc/self/schedstat
/// (nanosecond resolution; Linux). On a shared machine the wall clock mostly measures the other
/// tenants, so the CPU time is reported beside it. NaN where unavailable.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

fn run(p: &Problem, seed: u64, budget: usize, base: &OptimizerConfig) -> RunResult {
    let config = OptimizerConfig {
        seed,
        direction: Direction::Minimize,
        ..base.clone()
    };
    let mut opt = Optimizer::new(space_of(p), config);
    let n_init = opt.n_initial();
    let mut best = f64::INFINITY;
    let mut gp_times = Vec::new();
    let mut gp_cpu = Vec::new();
    let mut last_time = 0.0;
    for i in 0..budget {
        let t = Instant::now();
        let c = cpu_seconds();
        let pts = opt.suggest(1, &[]).expect("suggest");
        let dt = t.elapsed().as_secs_f64();
        if i >= n_init {
            gp_times.push(dt);
            gp_cpu.push(cpu_seconds() - c);
        }
        last_time = dt;
        let y = (p.f)(&values(&pts[0]));
        best = best.min(y);
        opt.observe(&pts[0], y).expect("observe");
    }
    RunResult {
        regret: best - p.optimum,
        gp_times,
        gp_cpu,
        last_time,
    }
}

fn scale_check() {
    for &(n, reps) in &[(40usize, 5usize), (500, 2)] {
        let p = &problems()[1];
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for rep in 0..reps {
            let mut opt = Optimizer::new(
                space_of(p),
                OptimizerConfig {
                    seed: rep as u64,
                    direction: Direction::Minimize,
                    ..Default::default()
                },
            );
            // Observations from a Sobol design (as the optimiser's own initial design would be).
            let mut init = Optimizer::new(
                space_of(p),
                OptimizerConfig {
                    seed: 99 + rep as u64,
                    n_initial: Some(n + 1),
                    ..Default::default()
                },
            );
            let pts = init.suggest(n, &[]).expect("suggest");
            for q in &pts {
                opt.observe(q, (p.f)(&values(q))).expect("observe");
            }
            let t = Instant::now();
            let c = cpu_seconds();
            opt.suggest(1, &[]).expect("suggest");
            times.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - c);
        }
        println!(
            "scale: fit + 1 suggestion at n={n}, d=6: median {:.1} ms wall, {:.1} ms CPU over {reps}",
            1e3 * median(&mut times),
            1e3 * median(&mut cpu)
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let budget: usize = get("--budget")
        .map(|v| v.parse().expect("--budget N"))
        .unwrap_or(40);
    let seeds: u64 = get("--seeds")
        .map(|v| v.parse().expect("--seeds S"))
        .unwrap_or(10);
    let prior = match get("--prior").as_deref() {
        Some("dimscaled") => Prior::DimScaled,
        _ => Prior::Optuna,
    };
    let only = get("--functions");
    let mut base = OptimizerConfig {
        prior,
        ..Default::default()
    };
    if let Some(v) = get("--n-initial") {
        base.n_initial = Some(v.parse().expect("--n-initial N"));
    }
    if let Some(v) = get("--n-candidates") {
        base.n_candidates = v.parse().expect("--n-candidates N");
    }
    if let Some(v) = get("--n-local") {
        base.n_local_searches = v.parse().expect("--n-local N");
    }
    if args.iter().any(|a| a == "--warp") {
        base.compress_bad_tail = true;
    }
    if args.iter().any(|a| a == "--gls") {
        base.gls_mean = true;
    }
    if let Some(v) = get("--n-restarts") {
        base.n_fit_restarts = v.parse().expect("--n-restarts N");
    }
    let mut json_rows = Vec::new();
    println!("metricbench GP-LogEI, budget {budget}, {seeds} seeds, prior {prior:?}");
    println!(
        "{:<12} {:>14} {:>14} {:>16} {:>16} {:>10}",
        "function",
        "median regret",
        "mean regret",
        "median t/sugg ms",
        "median t@last ms",
        "cpu ms"
    );
    for p in problems() {
        if let Some(o) = &only {
            if !o.split(',').any(|f| f == p.name) {
                continue;
            }
        }
        let mut regrets = Vec::new();
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        let mut last = Vec::new();
        for seed in 0..seeds {
            let r = run(&p, seed, budget, &base);
            regrets.push(r.regret);
            times.extend(r.gp_times);
            cpu.extend(r.gp_cpu);
            last.push(r.last_time);
        }
        let mean = regrets.iter().sum::<f64>() / regrets.len() as f64;
        let all: Vec<String> = regrets.iter().map(|r| format!("{r:.3e}")).collect();
        let (mr, mt, ml, mc) = (
            median(&mut regrets),
            1e3 * median(&mut times),
            1e3 * median(&mut last),
            1e3 * median(&mut cpu),
        );
        println!(
            "{:<12} {:>14.3e} {:>14.3e} {:>16.2} {:>16.2} {:>10.2}",
            p.name, mr, mean, mt, ml, mc
        );
        json_rows.push(format!(
            "{{\"method\":\"metricbench-gp\",\"function\":\"{}\",\"median_regret\":{mr:e},\"median_suggest_ms\":{mt},\"median_last_suggest_ms\":{ml},\"median_suggest_cpu_ms\":{mc},\"regrets\":[{}]}}",
            p.name,
            all.join(",")
        ));
    }
    if args.iter().any(|a| a == "--scale") {
        scale_check();
    }
    if let Some(path) = get("--json") {
        std::fs::write(&path, format!("[{}]\n", json_rows.join(",\n"))).expect("write json");
    }
}
