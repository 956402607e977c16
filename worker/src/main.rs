//! `metricbench-worker`: reads one job (protocol v1, one JSON line) on stdin, trains and evaluates it
//! with libtorch, writes the experiment folder and streams events on stdout. Human-readable logs go
//! to stderr. Exit status 0 only after a `result` event.

mod accuracy;
mod bench_cli;
mod checkpoints;
mod datasets;
mod device;
mod distances;
mod errors;
mod eval_cli;
mod events;
mod fold;
mod images;
mod input_convention;
mod load_images_cli;
mod losses;
mod miners;
mod models;
mod npy;
mod numerics;
mod optimizers;
#[cfg(test)]
mod parity_tests;
mod precision;
mod records;
mod reducers;
mod registry;
mod regularizers;
mod runner;
mod samplers;
mod schedulers;
mod settings;
mod spec;
mod splits;
mod tensorboard;
mod testers;
mod trainers;
mod tuples;
mod visualisation;

use errors::kind_of;
use events::{emit, listen_for_commands, StopFlag};
use metricbench_protocol::protocol::{ErrorKind, Event, Job, PROTOCOL_VERSION};
use std::process::ExitCode;

const USAGE: &str = "usage: metricbench-worker    (reads one protocol-v1 job line on stdin)\n\
                     \x20      metricbench-worker components [--format table|json]\n\
                     \x20      metricbench-worker eval-embeddings --embeddings E.npy --labels L.npy ...\n\
                     \x20      metricbench-worker load-images --folder DIR [--workers N] ...\n\
                     \x20      metricbench-worker bench-trunk --trunk resnet50 [--batch 32 --size 227 ...]\n\
                     \x20      metricbench-worker --version";

fn fail(kind: ErrorKind, message: String) -> ExitCode {
    eprintln!("error ({kind}): {message}");
    emit(&Event::Error { kind, message });
    ExitCode::FAILURE
}

/// `components [--format table|json]`: prints the component registry.
fn components(args: &[String]) -> ExitCode {
    let format = match args {
        [] => "table",
        [flag, value] if flag == "--format" => value.as_str(),
        [flag] if flag.starts_with("--format=") => &flag["--format=".len()..],
        _ => {
            eprintln!("unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let classes = registry::all();
    match format {
        "json" => println!("{:#}", registry::to_json(&classes)),
        "table" => print!("{}", registry::to_table(&classes)),
        other => {
            eprintln!("unknown format `{other}` (expected table or json)\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// Keeps freed tensor memory in the process instead of returning it to the kernel. glibc serves
/// allocations above its mmap threshold (a parameter-sized gradient, a batch activation) with fresh
/// `mmap`s and trims the heap top beyond its trim threshold, so every training iteration page-faulted
/// its temporaries back in: about 400 minor faults per iteration of the training benchmark and about
/// 2 s of system time per 1500 iterations (perf: `clear_page_erms`, `exc_page_fault`). A 1 GiB
/// threshold for both keeps that memory mapped and reused: faults drop ninefold, system time halves,
/// and peak resident memory grows by a few percent (555 -> 580 MB there), since the same sizes recur.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    // SAFETY: mallopt only changes allocator parameters; called first thing in main, before any
    // other thread exists. Failure (a 0 return) only leaves glibc's defaults in place.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("--version") => {
            println!(
                "metricbench-worker {} (protocol {PROTOCOL_VERSION})",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Some("components") => return components(&args[1..]),
        Some("load-images") => {
            return match load_images_cli::run(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error ({}): {e:#}", kind_of(&e));
                    ExitCode::FAILURE
                }
            };
        }
        Some("eval-embeddings") => {
            return match eval_cli::run(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error ({}): {e:#}", kind_of(&e));
                    ExitCode::FAILURE
                }
            };
        }
        Some("bench-trunk") => {
            return match bench_cli::run(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error ({}): {e:#}", kind_of(&e));
                    ExitCode::FAILURE
                }
            };
        }
        Some(other) => {
            eprintln!("unknown argument `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    }

    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => return fail(ErrorKind::Config, "no job received on stdin".to_string()),
        Ok(_) => {}
        Err(e) => {
            return fail(
                ErrorKind::Internal,
                format!("cannot read the job from stdin: {e}"),
            )
        }
    }
    let job = match Job::parse_line(line.trim_end()) {
        Ok(job) => job,
        Err(e) => return fail(ErrorKind::Config, e),
    };
    let stop = StopFlag::default();
    listen_for_commands(stop.clone());

    let device = runner::parse_device(
        job.config
            .get("device")
            .and_then(|d| d.as_str())
            .unwrap_or("auto"),
    )
    .map(runner::device_name)
    .unwrap_or_else(|_| "invalid".to_string());
    emit(&Event::Ready {
        name: "metricbench-worker".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        device,
        protocol: PROTOCOL_VERSION,
    });

    let outcome = runner::run(&job, &stop);
    match outcome {
        Ok(result) => {
            emit(&result);
            ExitCode::SUCCESS
        }
        Err(e) => fail(kind_of(&e), format!("{e:#}")),
    }
}
