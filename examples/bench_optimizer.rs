//! Benchmark of the Bayesian optimiser on standard test functions (minimised here; the optimiser
//! is told `Direction::Minimize`). Run through `scripts/bench/optimizer/run.sh`.
//!
//! Usage: `bench_optimizer [--suite noiseless|noisy|mixed] [--budget N] [--seeds S]
//! [--first-seed S0] [--functions a,b] [--scale] [--json PATH]` (seeds S0..S0+S, default 0..10)
//! Prints one row per function: median and mean final simple regret over seeds, median suggestion
//! time of the GP phase, and the median time of the last suggestion (at budget−1 observations).
//! Suites: `noiseless` (regret of the best value evaluated); `noisy` (each evaluation gets
//! Gaussian noise of sd `functions::noise_sd`, which the optimiser is told as the SEM; regret is
//! the TRUE value at the optimiser's recommendation, `Optimizer::recommend`; a second line gives
//! the true regret of the best point evaluated, the ceiling of any recommendation among the same
//! evaluations); `mixed` (log float, log int, float and a 3-way choice on
//! `functions::mixed_objective`).
//! `--scale` also times one fit + suggestion at 40 (with and without SEMs) and 500 observations in
//! 6 dimensions.
//! Options of the optimiser for experiments: `--n-initial N` (or `--n-initial-2d`: max(5, 2 ×
//! parameters)), `--n-candidates N`, `--n-local N`,
//! `--n-restarts N`, `--prior dimscaled`, `--hyper-samples N` (integrated EI over N
//! hyperparameter draws; `--hyper-burn`, `--hyper-thin`, `--hyper-below`), `--noisy-draws N`
//! (latent draws of the noisy EI used with SEMs; 0 = plain LogEI against the best posterior mean),
//! `--final-exploitation K` (the last K evaluations maximise the posterior mean; default 3, 0 =
//! off), `--no-compress` (no log-compression of the worse half of the outputs). `BENCH_TRACE=1`
//! prints every evaluation (point, value, fitted hyperparameters) to stderr.

use std::time::Instant;

use metricbench::optimizer::{
    Dimension, Direction, Domain, Optimizer, OptimizerConfig, ParamValue, Prior,
};

#[path = "../scripts/bench/optimizer/functions.rs"]
mod functions;
use functions::*;

fn space_of(p: &Problem) -> Domain {
    Domain::new(
        p.bounds
            .iter()
            .enumerate()
            .map(|(i, &(lo, hi))| Dimension::float(format!("x{i}"), lo, hi))
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

/// Noisy suite: how many final suggestions get their own CPU-time line (the default
/// knowledge-gradient phase of a 40-evaluation run).
const LATE: usize = 5;

struct RunResult {
    regret: f64,
    /// Noisy suite: the true regret of the best point evaluated (what a perfect recommendation
    /// would have chosen among the same evaluations), to separate placement from identification.
    in_sample: Option<f64>,
    gp_times: Vec<f64>,
    gp_cpu: Vec<f64>,
    /// Noisy suite: CPU seconds of the last [`LATE`] suggestions (the knowledge gradient's by
    /// default, the noisy EI's with `--kg-last 0`), the most expensive ones: refits grow with n.
    late_cpu: Vec<f64>,
    last_time: f64,
}

/// CPU seconds consumed by this process so far (all threads), from
/// `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`: nanosecond resolution and up to date at the call.
/// (`/proc/self/schedstat`, used before, only advances at scheduler ticks, so per-suggestion
/// times came out in multiples of the 4 ms tick.) On a shared machine the wall clock mostly
/// measures the other tenants, so the CPU time is reported beside it. NaN where unavailable.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    } else {
        f64::NAN
    }
}

/// Arithmetic mean; NaN when empty.
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Comma-separated values in their shortest round-trip form, so runs can be compared bit for bit.
fn round_trip_list(v: &[f64]) -> String {
    v.iter()
        .map(|r| format!("{r:e}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Standard normal draws from a seeded splitmix64 stream (Box–Muller), for the noisy suite.
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Suite {
    Noiseless,
    Noisy,
    Mixed,
}

fn mixed_space() -> Domain {
    Domain::new(vec![
        Dimension::log_float("lr", 1e-5, 1e-1),
        Dimension::log_int("batch", 16, 512),
        Dimension::float("margin", 0.0, 1.0),
        Dimension::choice("distance", 3),
    ])
    .expect("valid mixed space")
}

fn mixed_value(p: &[ParamValue]) -> f64 {
    match (p[0], p[1], p[2], p[3]) {
        (
            ParamValue::Float(lr),
            ParamValue::Int(b),
            ParamValue::Float(m),
            ParamValue::Choice(c),
        ) => mixed_objective(lr, b, m, c),
        _ => unreachable!("the mixed space's kinds"),
    }
}

fn run(
    p: &Problem,
    seed: u64,
    budget: usize,
    base: &OptimizerConfig,
    suite: Suite,
    design_2d: bool,
    replicate_last: usize,
) -> RunResult {
    let space = if suite == Suite::Mixed {
        mixed_space()
    } else {
        space_of(p)
    };
    let config = OptimizerConfig {
        seed,
        direction: Direction::Minimize,
        n_initial: if design_2d {
            Some((2 * space.len()).max(5))
        } else {
            base.n_initial
        },
        ..base.clone()
    };
    let sd = noise_sd(p.name).filter(|_| suite == Suite::Noisy);
    let mut noise = Noise(1000 + seed);
    let mut opt = Optimizer::new(space, config);
    let n_init = opt.n_initial();
    let mut best = f64::INFINITY;
    let mut gp_times = Vec::new();
    let mut gp_cpu = Vec::new();
    let mut late_cpu = Vec::new();
    let mut last_time = 0.0;
    for i in 0..budget {
        let t = Instant::now();
        let c = cpu_seconds();
        // `--replicate-last R` (an experiment): the last R evaluations re-measure the current
        // recommendation instead of asking the optimiser.
        let pts = if sd.is_some() && i + replicate_last >= budget {
            vec![opt.recommend().expect("observations").point]
        } else {
            opt.suggest(1, &[]).expect("suggest")
        };
        let dt = t.elapsed().as_secs_f64();
        if i >= n_init {
            gp_times.push(dt);
            gp_cpu.push(cpu_seconds() - c);
            if sd.is_some() && i + LATE >= budget {
                late_cpu.push(cpu_seconds() - c);
            }
        }
        last_time = dt;
        let y = if suite == Suite::Mixed {
            mixed_value(&pts[0])
        } else {
            (p.f)(&values(&pts[0]))
        };
        best = best.min(y);
        let y = y + sd.map_or(0.0, |sd| sd * noise.normal());
        if std::env::var_os("BENCH_TRACE").is_some() {
            let ls: Vec<String> = opt
                .last_hyperparameters()
                .map(|t| t.iter().map(|v| format!("{:.2}", v.exp())).collect())
                .unwrap_or_default();
            let x: Vec<String> = pts[0].iter().map(|v| format!("{v:.2?}")).collect();
            eprintln!(
                "seed {seed} step {i}: y {y:.4} best {best:.4} x [{}] theta [{}]",
                x.join(" "),
                ls.join(" ")
            );
        }
        opt.observe(&pts[0], y, sd).expect("observe");
    }
    let optimum = if suite == Suite::Mixed {
        mixed_optimum()
    } else {
        p.optimum
    };
    let mut in_sample = None;
    if sd.is_some() {
        // Under noise the best value seen is not known to the method; its recommendation is.
        in_sample = Some(best - optimum);
        let r = opt.recommend().expect("observations exist");
        best = (p.f)(&values(&r.point));
    }
    RunResult {
        regret: best - optimum,
        in_sample,
        gp_times,
        gp_cpu,
        late_cpu,
        last_time,
    }
}

fn scale_check() {
    // (observations, repetitions, with SEMs, knowledge gradient): the SEM lines give every
    // observation Hartmann-6's noise sd of the noisy suite as its SEM (values stay exact: only the
    // acquisition's cost is measured); the knowledge-gradient line tells the optimiser the budget
    // ends with this suggestion, so it is one of the final ones.
    for &(n, reps, noisy, kg) in &[
        (40usize, 5usize, false, false),
        (40, 5, true, false),
        (40, 5, true, true),
        (500, 2, false, false),
    ] {
        let p = &problems()[1];
        let sem = noise_sd(p.name).filter(|_| noisy);
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        for rep in 0..reps {
            let mut opt = Optimizer::new(
                space_of(p),
                OptimizerConfig {
                    seed: rep as u64,
                    direction: Direction::Minimize,
                    budget: kg.then_some(n + 1),
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
                opt.observe(q, (p.f)(&values(q)), sem).expect("observe");
            }
            let t = Instant::now();
            let c = cpu_seconds();
            opt.suggest(1, &[]).expect("suggest");
            times.push(t.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - c);
        }
        println!(
            "scale: fit + 1 suggestion at n={n}, d=6{}: median {:.1} ms wall, {:.1} ms CPU over {reps}",
            match (noisy, kg) {
                (false, _) => "",
                (true, false) => ", with SEMs (noisy EI)",
                (true, true) => ", with SEMs, final (knowledge gradient)",
            },
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
    let first_seed: u64 = get("--first-seed")
        .map(|v| v.parse().expect("--first-seed S"))
        .unwrap_or(0);
    let suite = match get("--suite").as_deref() {
        None | Some("noiseless") => Suite::Noiseless,
        Some("noisy") => Suite::Noisy,
        Some("mixed") => Suite::Mixed,
        Some(other) => panic!("--suite noiseless|noisy|mixed, got {other}"),
    };
    let suite_name = ["noiseless", "noisy", "mixed"][suite as usize];
    let only = get("--functions");
    let design_2d = args.iter().any(|a| a == "--n-initial-2d");
    let replicate_last: usize = get("--replicate-last")
        .map(|v| v.parse().expect("--replicate-last R"))
        .unwrap_or(0);
    let mut base = OptimizerConfig {
        prior,
        budget: Some(budget),
        ..Default::default()
    };
    if let Some(v) = get("--final-exploitation") {
        base.final_exploitation = v.parse().expect("--final-exploitation K");
    }
    if let Some(v) = get("--kg-last") {
        base.knowledge_gradient_last = v.parse().expect("--kg-last K");
    }
    if args.iter().any(|a| a == "--no-compress") {
        base.compress_bad_tail = false;
    }
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
    if let Some(v) = get("--hyper-samples") {
        base.n_hyper_samples = v.parse().expect("--hyper-samples N");
    }
    if let Some(v) = get("--hyper-below") {
        base.sample_hyper_below = v.parse().expect("--hyper-below N");
    }
    if let Some(v) = get("--hyper-burn") {
        base.hyper_burn = v.parse().expect("--hyper-burn N");
    }
    if let Some(v) = get("--noisy-draws") {
        base.noisy_ei_draws = v.parse().expect("--noisy-draws N");
    }
    if let Some(v) = get("--hyper-thin") {
        base.hyper_thin = v.parse().expect("--hyper-thin N");
    }
    let mut json_rows = Vec::new();
    println!("metricbench GP, {suite_name} suite, budget {budget}, {seeds} seeds, prior {prior:?}");
    println!(
        "{:<16} {:>14} {:>14} {:>16} {:>16} {:>10}",
        "function",
        "median regret",
        "mean regret",
        "median t/sugg ms",
        "median t@last ms",
        "cpu ms"
    );
    let list = match suite {
        // One row; the problem only carries the name (the space and objective are the mixed ones).
        Suite::Mixed => vec![Problem {
            name: "mixed",
            bounds: Vec::new(),
            optimum: mixed_optimum(),
            f: |_| unreachable!("the mixed suite evaluates mixed_objective"),
        }],
        Suite::Noisy => problems()
            .into_iter()
            .filter(|p| noise_sd(p.name).is_some())
            .collect(),
        Suite::Noiseless => problems(),
    };
    for p in list {
        if let Some(o) = &only {
            if suite != Suite::Mixed && !o.split(',').any(|f| f == p.name) {
                continue;
            }
        }
        let mut regrets = Vec::new();
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        let mut late_cpu = Vec::new();
        let mut last = Vec::new();
        let mut in_sample = Vec::new();
        for seed in first_seed..first_seed + seeds {
            let r = run(&p, seed, budget, &base, suite, design_2d, replicate_last);
            regrets.push(r.regret);
            times.extend(r.gp_times);
            cpu.extend(r.gp_cpu);
            late_cpu.extend(r.late_cpu);
            last.push(r.last_time);
            in_sample.extend(r.in_sample);
        }
        let mean_regret = mean(&regrets);
        let all = round_trip_list(&regrets);
        let all_in_sample = round_trip_list(&in_sample);
        // Hartmann-6 ends in its global basin or in the local one at regret ~0.12.
        let basin = (p.name == "hartmann6").then(|| regrets.iter().filter(|&&r| r < 0.119).count());
        let (mr, mt, ml, mc) = (
            median(&mut regrets),
            1e3 * median(&mut times),
            1e3 * median(&mut last),
            1e3 * median(&mut cpu),
        );
        println!(
            "{:<16} {:>14.3e} {:>14.3e} {:>16.2} {:>16.2} {:>10.2}{}",
            p.name,
            mr,
            mean_regret,
            mt,
            ml,
            mc,
            basin.map_or(String::new(), |b| format!(
                "   global basin {b} of {}",
                regrets.len()
            )),
        );
        let late_ms = (!late_cpu.is_empty()).then(|| 1e3 * median(&mut late_cpu));
        if let Some(ms) = late_ms {
            println!(
                "{:<16} {:>14} {:>14}   (median CPU ms of the last {LATE} suggestions: {ms:.2})",
                "", "", ""
            );
        }
        if !in_sample.is_empty() {
            println!(
                "{:<16} {:>14.3e} {:>14.3e}   (best point evaluated, true regret: the recommendation's ceiling)",
                "",
                median(&mut in_sample),
                mean(&in_sample)
            );
        }
        json_rows.push(format!(
            "{{\"method\":\"metricbench-gp\",\"suite\":\"{suite_name}\",\"function\":\"{}\",\"median_regret\":{mr:e},\"mean_regret\":{mean_regret:e},\"median_suggest_ms\":{mt},\"median_last_suggest_ms\":{ml},\"median_suggest_cpu_ms\":{mc},\"median_late_suggest_cpu_ms\":{},\"regrets\":[{}],\"in_sample_regrets\":[{}]}}",
            p.name,
            late_ms.map_or("null".to_string(), |v| v.to_string()),
            all,
            all_in_sample
        ));
    }
    if args.iter().any(|a| a == "--scale") {
        scale_check();
    }
    if let Some(path) = get("--json") {
        std::fs::write(&path, format!("[{}]\n", json_rows.join(",\n"))).expect("write json");
    }
}
