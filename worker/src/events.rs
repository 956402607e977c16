//! The worker's side of the protocol: events go to stdout one JSON line at a time (flushed, so the
//! coordinator sees them live); commands arrive on stdin after the job line.

use metricbench_protocol::protocol::{Command, Event};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub fn emit(event: &Event) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the coordinator is gone; the worker then has nobody to report to and
    // keeps going only until its next write fails, which is harmless.
    let _ = writeln!(out, "{}", event.to_line());
    let _ = out.flush();
}

/// Set when the coordinator asked the worker to stop after the current evaluation.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

/// Reads command lines from stdin in the background; unknown lines are reported on stderr and
/// ignored (the job keeps running).
pub fn listen_for_commands(stop: StopFlag) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match Command::parse_line(&line) {
                Ok(Command::Stop) => {
                    eprintln!("stop requested: stopping after the current evaluation");
                    stop.request();
                }
                Err(e) => eprintln!("ignoring a malformed command line: {e}"),
            }
        }
    });
}
