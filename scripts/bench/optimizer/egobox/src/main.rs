//! egobox 0.42 (`egobox-ego`, EGO with its default LogEI infill) on the five functions of
//! `examples/bench_optimizer.rs`: 40 evaluations including egobox's own initial LHS
//! (max(d + 1, 5) points), seeds 0..S. Prints one row per function: median final simple regret,
//! median CPU ms and wall ms per EGO iteration (the whole run divided by its iterations, so the
//! initial design is included; the test functions themselves cost microseconds).
//!
//! Standalone crate (own `[workspace]`), see `scripts/bench/optimizer/egobox/run.sh`.
//! Usage: `bench-egobox [--seeds S] [--budget N] [--functions a,b] [--json PATH]`

use std::time::Instant;

use egobox_ego::{EgorBuilder, InfillStrategy};
use ndarray::{Array2, ArrayView2};

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

/// CPU seconds of the whole process (all threads: egobox uses rayon), from /proc/self/stat
/// utime + stime (clock ticks, 100 Hz on Linux). NaN where unavailable.
fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            // after ")": state is field 3, utime field 14, stime field 15 (1-based in proc(5))
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

struct RunResult {
    regret: f64,
    cpu_ms_per_iter: f64,
    wall_ms_per_iter: f64,
}

fn run(p: &Problem, seed: u64, budget: usize) -> RunResult {
    let d = p.bounds.len();
    let n_doe = (d + 1).max(5); // egobox's default initial LHS size
    let iters = budget - n_doe;
    let mut xlimits = Array2::zeros((d, 2));
    for (i, &(lo, hi)) in p.bounds.iter().enumerate() {
        xlimits[[i, 0]] = lo;
        xlimits[[i, 1]] = hi;
    }
    let f = p.f;
    let obj = move |x: &ArrayView2<f64>| -> Array2<f64> {
        let mut y = Array2::zeros((x.nrows(), 1));
        for (i, row) in x.rows().into_iter().enumerate() {
            y[[i, 0]] = f(&row.to_vec());
        }
        y
    };
    let t = Instant::now();
    let c = process_cpu_seconds();
    let res = EgorBuilder::optimize(obj)
        .configure(|config| {
            config
                .infill_strategy(InfillStrategy::LogEI)
                .n_doe(n_doe)
                .max_iters(iters)
                .seed(seed)
        })
        .min_within(&xlimits)
        .expect("egor configured")
        .run()
        .expect("egor run");
    let wall = t.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - c;
    // Best over the first `budget` evaluations of the history (egobox may stop early).
    let n = res.y_doe.nrows().min(budget);
    let best = (0..n)
        .map(|i| res.y_doe[[i, 0]])
        .fold(f64::INFINITY, f64::min);
    RunResult {
        regret: best - p.optimum,
        cpu_ms_per_iter: cpu * 1e3 / iters as f64,
        wall_ms_per_iter: wall * 1e3 / iters as f64,
    }
}

fn main() {
    let mut seeds = 10u64;
    let mut budget = 40usize;
    let mut only: Option<Vec<String>> = None;
    let mut json: Option<String> = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => {
                seeds = args[i + 1].parse().expect("--seeds N");
                i += 1;
            }
            "--budget" => {
                budget = args[i + 1].parse().expect("--budget N");
                i += 1;
            }
            "--functions" => {
                only = Some(args[i + 1].split(',').map(str::to_string).collect());
                i += 1;
            }
            "--json" => {
                json = Some(args[i + 1].clone());
                i += 1;
            }
            a => panic!("unknown argument {a}"),
        }
        i += 1;
    }
    println!("| function | egobox 0.42 regret (median, {seeds} seeds) | CPU ms/iter | wall ms/iter | per-seed regrets |");
    println!("|---|---|---|---|---|");
    let mut rows = Vec::new();
    for p in problems() {
        if let Some(o) = &only {
            if !o.iter().any(|n| n == p.name) {
                continue;
            }
        }
        let runs: Vec<RunResult> = (0..seeds).map(|s| run(&p, s, budget)).collect();
        let per_seed: Vec<f64> = runs.iter().map(|r| r.regret).collect();
        let mut reg = per_seed.clone();
        let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_ms_per_iter).collect();
        let mut wall: Vec<f64> = runs.iter().map(|r| r.wall_ms_per_iter).collect();
        let (mr, mc, mw) = (median(&mut reg), median(&mut cpu), median(&mut wall));
        let list: Vec<String> = per_seed.iter().map(|r| format!("{r:.3e}")).collect();
        println!(
            "| {} | {mr:.3e} | {mc:.1} | {mw:.1} | {} |",
            p.name,
            list.join(" ")
        );
        rows.push(format!(
            "{{\"function\":\"{}\",\"method\":\"egobox-0.42\",\"seeds\":{seeds},\"median_regret\":{mr:e},\"median_cpu_ms_per_iter\":{mc},\"median_wall_ms_per_iter\":{mw},\"regrets\":[{}]}}",
            p.name,
            per_seed.iter().map(|r| format!("{r:e}")).collect::<Vec<_>>().join(",")
        ));
    }
    if let Some(path) = json {
        std::fs::write(&path, format!("[{}]\n", rows.join(",\n"))).expect("write json");
    }
}
