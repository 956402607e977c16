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

#[path = "../../functions.rs"]
mod functions;
use functions::*;

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
