//! Helpers shared by the integration tests (each test file includes this module with
//! `mod common;`, so a file that uses only some of them would warn about the rest).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A command's stdout then stderr, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, which must succeed; its output.
pub fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    all
}

/// Runs `cmd`, which must fail; its output.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    all
}

/// The example plugin worker as a `worker_command` value.
pub fn python_worker() -> String {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/examples/python_worker.py");
    format!("[python3, {}]", script.display())
}

/// The libtorch worker built beside the coordinator (`cargo build --workspace`).
pub fn worker_binary() -> PathBuf {
    let worker = Path::new(env!("CARGO_BIN_EXE_metricbench")).with_file_name("metricbench-worker");
    assert!(
        worker.is_file(),
        "{} is missing: build the workspace first (scripts/test.sh does)",
        worker.display()
    );
    worker
}

/// Opens report pages in headless Chromium (scripts/check-report-pages.py): no console errors,
/// every image loads, figures of non-trivial size. Skipped, saying so, without
/// `METRICBENCH_CHROMIUM` (scripts/test.sh sets it from scripts/setup-chromium.sh).
pub fn check_pages_in_chromium(pages: &[&Path]) {
    let Some(chromium) = std::env::var_os("METRICBENCH_CHROMIUM") else {
        println!(
            "skipping the headless-Chromium page check: METRICBENCH_CHROMIUM is not set \
             (scripts/test.sh sets it from scripts/setup-chromium.sh)"
        );
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/check-report-pages.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(chromium)
        .args(pages)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert_eq!(
        all.matches("\nok ").count() + usize::from(all.starts_with("ok ")),
        pages.len(),
        "{all}"
    );
}
